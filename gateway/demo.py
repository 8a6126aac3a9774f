"""``ente-gateway demo``: everything on one machine with no pagoPA account.

Migrates a local database, creates a demo ente with its tipi dovuto (once), then runs the gateway with
the embedded pagoPA simulator mounted under /sim, and the job worker, until Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import requests

from gateway.settings import Settings

DEMO_COD_IPA = "C_DEMO"
DEMO_FISCAL_CODE = "80011112220"
DEMO_PASSWORD = "demo-password"
DEMO_TIPI = (
    ("TARI", "Tassa rifiuti", "9/0101100IM/"),
    ("MENSA_SCOLASTICA", "Mensa scolastica", "9/0201133IM/"),
    ("TRASPORTO_SCOLASTICO", "Trasporto scolastico", "9/0201133IM/"),
)
DEMO_IBAN = "IT60X0542811101000000123456"


def ensure_demo_data(settings: Settings) -> None:
    from sqlalchemy import select

    from gateway.enti.registry import NewEnte, add_ente, add_tipo_dovuto
    from storage.db import Database
    from storage.migrate import upgrade
    from storage.models import Ente

    upgrade(settings.database_url)
    database = Database(settings.database_url)
    try:
        with database.transaction() as session:
            if session.scalar(select(Ente).where(Ente.cod_ipa == DEMO_COD_IPA)) is None:
                add_ente(session, NewEnte(cod_ipa=DEMO_COD_IPA, fiscal_code=DEMO_FISCAL_CODE, name="Comune di Demo",
                                          password=DEMO_PASSWORD, segregation_code="01"))
                for code, description, taxonomy in DEMO_TIPI:
                    add_tipo_dovuto(session, DEMO_COD_IPA, code, description, DEMO_IBAN, taxonomy)
    finally:
        database.dispose()


def run_demo(settings: Settings, *, host: str, port: int) -> None:
    base = f"http://{host}:{port}"
    public_url = os.environ.get("ENTE_GATEWAY_PUBLIC_URL") or base
    if settings.database_url == Settings().database_url:
        Path("var").mkdir(exist_ok=True)
        settings = settings.with_overrides(database_url="sqlite:///var/demo.sqlite3")
    settings = settings.with_overrides(public_url=public_url,
                                       node_url=os.environ.get("ENTE_GATEWAY_NODE_URL") or public_url + "/sim")
    ensure_demo_data(settings)
    env = dict(os.environ, ENTE_GATEWAY_DATABASE_URL=settings.database_url, ENTE_GATEWAY_PUBLIC_URL=public_url,
               ENTE_GATEWAY_NODE_URL=settings.node_url)
    command = [sys.executable, "-m", "gateway.cli"]
    # gthread workers: the gateway calls the simulator, which calls the gateway back in the same server.
    server = subprocess.Popen(command + ["serve", "--host", host, "--port", str(port), "--workers", "2",
                                         "--threads", "8", "--with-simulator"], env=env)
    worker = subprocess.Popen(command + ["worker"], env=env)
    try:
        _wait_healthy(base, server)
        _banner(public_url, settings)
        while server.poll() is None and worker.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in (server, worker):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (server, worker):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_healthy(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise click.ClickException("the gateway did not start; see the messages above")
        try:
            if requests.get(base + "/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise click.ClickException("the gateway did not become healthy within 60 s")


def _banner(url: str, settings: Settings) -> None:
    click.echo(f"""
ente-gateway demo is running (Ctrl-C stops it)

  Ente SOAP service (MyPay contract)  {url}/ente/PagamentiTelematiciDovutiPagati?wsdl
  Rendicontazione (FlussiSPC)         {url}/ente/PagamentiTelematiciFlussiSPC?wsdl
  pagoPA node -> ente (paForNode)     {url}/pa/paForNode?wsdl
  pagoPA node -> ente (PaPerNodo)     {url}/pa/PaPerNodo?wsdl
  Embedded pagoPA simulator           {url}/sim/   (control API: {url}/sim/api/)
  Health / metrics                    {url}/healthz  {url}/metrics

  Demo ente: codIpaEnte={DEMO_COD_IPA}  password={DEMO_PASSWORD}  fiscal code={DEMO_FISCAL_CODE}
  Tipi dovuto: {", ".join(code for code, _, _ in DEMO_TIPI)}
  Database: {settings.database_url}
""")
