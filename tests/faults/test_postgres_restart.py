"""PostgreSQL restarted (pg_ctl restart -m fast) while threads keep calling paVerifyPaymentNotice, paSendRTV2 and
paaSILImportaDovuto through zeep: every call ends in a contract answer (never a hang, never an HTML 500), the
gateway recovers by itself, and every answer OK corresponds to exactly one complete committed effect.

storage/db.py runs without pool_pre_ping (a round trip per request saved): the first statement on a dead
pooled connection fails and invalidates that worker's pool, so a call just after the restart may still get
PAA_SYSTEM_ERROR; the calls after it must all succeed.

The cluster is private to this file (the session one is shared by every test and must not restart).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
import requests
import zeep
from sqlalchemy import func, select
from zeep.transports import Transport

from storage.db import Database
from storage.migrate import upgrade
from storage.models import Dovuto, DovutoTransition, Ente, Receipt
from bench.postgres import Cluster, pg_bindir, start_cluster
from tests.conftest import REFERENCE, create_ente, start_gateway, stop_gateway
from tests.e2e.test_importa_dovuto import BINDING as ENTE_BINDING, PATH as ENTE_PATH, WSDL as ENTE_WSDL, versamento
from tests.e2e.test_node_side import PAFN_BINDING, add_dovuto, ids, receipt

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PAFN_WSDL = str(REFERENCE / "pagopa" / "wsdl" / "paForNode.wsdl")
CALL_TIMEOUT = 30  # a call that takes longer than this is a hang


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A cluster of this file's own, since it restarts it."""
    if pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed")
    running = start_cluster("ente-gateway-pg-restart-")
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Outcomes:
    """What each thread saw: (key, faultCode or None) per call, and anything that was not a contract answer."""

    answers: dict[str, list[tuple[str, str | None, float]]] = field(default_factory=lambda: {
        "verify": [], "receipt": [], "importa": []})
    broken: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, key: str, code: str | None) -> None:
        with self.lock:
            self.answers[kind].append((key, code, time.monotonic()))


def _clients(gw: Any, *, strict: bool = True) -> tuple[Any, Any]:
    transport = Transport(timeout=CALL_TIMEOUT, operation_timeout=CALL_TIMEOUT)
    pafn = zeep.Client(PAFN_WSDL, transport=transport).create_service(PAFN_BINDING, gw.url + "/pa/paForNode")
    ente = zeep.Client(ENTE_WSDL, transport=transport, settings=zeep.Settings(strict=strict)).create_service(
        ENTE_BINDING, gw.url + ENTE_PATH)
    return pafn, ente


def _load(gw: Any, ente: Any, kind: str, work: list[tuple[str, str]], stop: threading.Event,
          out: Outcomes) -> None:
    pafn, sil = _clients(gw)
    for n, (iuv, notice) in enumerate(work):
        if stop.is_set():
            return
        try:
            if kind == "verify":
                answer = pafn.paVerifyPaymentNotice(**ids(ente), qrCode={"fiscalCode": ente.fiscal_code,
                                                                         "noticeNumber": notice})
                key = notice
            elif kind == "receipt":
                key = f"R{iuv}"
                answer = pafn.paSendRTV2(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00", receipt_id=key))
            else:
                key = f"IMP-{n:05d}"
                answer = sil.paaSILImportaDovuto(password=ente.password, dovuto=versamento(iud=key), flagGeneraIuv=True,
                                                 _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
                if answer.fault is None:
                    key = f"{key}|{answer.identificativoUnivocoVersamento}"
        except Exception as exc:  # noqa: BLE001 - a transport error, an HTML page, a SOAP Fault: all wrong here
            out.broken.append(f"{kind}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        out.record(kind, key, answer.fault.faultCode if answer.fault is not None else None)


@pytest.fixture(scope="module")
def pg_gateway(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    admin = Database(cluster.url("postgres"))
    with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("CREATE DATABASE gw")
    admin.dispose()
    url = cluster.url("gw")
    upgrade(url)
    gw = start_gateway(url, tmp_path_factory.mktemp("pg-restart"), workers=2)
    gw.db = Database(url)  # type: ignore[attr-defined]
    yield gw
    gw.db.dispose()  # type: ignore[attr-defined]
    stop_gateway(gw)


def test_gateway_survives_a_postgres_restart_under_load(cluster: Cluster, pg_gateway: Any) -> None:
    gw, db = pg_gateway, pg_gateway.db
    ente = create_ente(db)
    lookups = [add_dovuto(db, ente)[:2] for _ in range(20)]
    to_pay = [add_dovuto(db, ente)[:2] for _ in range(400)]
    out = Outcomes()
    stop = threading.Event()
    threads = [threading.Thread(target=_load, args=(gw, ente, "verify", lookups * 100, stop, out)),
               threading.Thread(target=_load, args=(gw, ente, "receipt", to_pay, stop, out)),
               threading.Thread(target=_load, args=(gw, ente, "importa", [("", "")] * 1000, stop, out))]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    restart_started = time.monotonic()
    cluster.pg_ctl("restart", "-m", "fast", "-w", "-l", str(cluster.base / "log"))
    restarted = time.monotonic()
    time.sleep(4.0)  # the gateway must be back to normal well within this
    stop.set()
    for thread in threads:
        thread.join(timeout=CALL_TIMEOUT + 10)
        assert not thread.is_alive(), "a call hung"

    db.engine.dispose()  # this process's own pooled connections died with the restart
    assert out.broken == [], "\n".join(out.broken)  # every call got a contract answer
    for kind, answers in out.answers.items():
        codes = Counter(code for _, code, _ in answers)
        assert set(codes) <= {None, "PAA_SYSTEM_ERROR"}, (kind, codes)
        assert codes[None] >= 10, (kind, codes)
        # Recovered by itself: every call well after the restart succeeded.
        late = [code for _, code, at in answers if at > restarted + 1.5]
        assert late and set(late) == {None}, (kind, Counter(late))
        before = [code for _, code, at in answers if at < restart_started]
        assert before and set(before) == {None}, (kind, Counter(before))
    assert requests.get(gw.url + "/healthz", timeout=5).status_code == 200
    assert gw.process.poll() is None

    with db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
        stored = Counter(session.scalars(select(Receipt.receipt_id).where(Receipt.ente_id == ente_id)))
        # Every receipt answered OK is stored exactly once, with its payments, its position completed.
        for key, code, _ in out.answers["receipt"]:
            assert stored[key] == 1 if code is None else stored[key] <= 1, key
        paid_iuvs = {key[1:] for key in stored}
        for dovuto in session.scalars(select(Dovuto).where(Dovuto.ente_id == ente_id,
                                                           Dovuto.iuv.in_(paid_iuvs))):
            assert dovuto.state == "COMPLETATO" and dovuto.transitions[-1].to_state == "COMPLETATO"
        assert session.scalar(select(func.count()).select_from(Receipt).where(
            Receipt.ente_id == ente_id, ~Receipt.payments.any())) == 0
        # Every ImportaDovuto answered OK has its dovuto, with the IUV it was told; none without audit row.
        imported = {d.iud: d.iuv for d in session.scalars(select(Dovuto).where(Dovuto.ente_id == ente_id,
                                                                               Dovuto.iud.like("IMP-%")))}
        for key, code, _ in out.answers["importa"]:
            if code is None:
                iud, iuv = key.split("|")
                assert imported.get(iud) == iuv, key
        orphans = session.scalar(select(func.count()).select_from(Dovuto).where(
            Dovuto.ente_id == ente_id, ~select(DovutoTransition.id)
            .where(DovutoTransition.dovuto_id == Dovuto.id).exists()))
        assert orphans == 0
        assert len(set(imported.values())) == len(imported)  # no IUV given twice

    # The node delivers again what it saw refused: now stored, still once (nothing lost).
    pafn, _ = _clients(gw)
    refused = [key for key, code, _ in out.answers["receipt"] if code is not None]
    by_key = {f"R{iuv}": (iuv, notice) for iuv, notice in to_pay}
    for key in refused:
        iuv, notice = by_key[key]
        again = pafn.paSendRTV2(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00", receipt_id=key))
        assert again.outcome == "OK", again.fault
    with db.transaction() as session:
        stored = Counter(session.scalars(select(Receipt.receipt_id).where(Receipt.ente_id == ente_id)))
    sent = {key for key, _, _ in out.answers["receipt"]}
    assert all(stored[key] == 1 for key in sent) and set(stored) == sent


# --- database down: what a client gets, operation by operation -------------------------------------------------
def _ente_envelope(operation: str, children: str) -> bytes:
    return (f"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>"
            f"<ppt:{operation} xmlns:ppt='http://www.regione.veneto.it/pagamenti/ente/'>{children}</ppt:{operation}>"
            f"</soapenv:Body></soapenv:Envelope>").encode()


class _DatabaseDown:
    def __init__(self, cluster: Cluster, gateway: Any) -> None:
        self.cluster = cluster
        self.gateway = gateway

    def __enter__(self) -> None:
        self.cluster.pg_ctl("stop", "-m", "fast", "-w")

    def __exit__(self, *_exc: Any) -> None:
        self.cluster.pg_ctl("start", "-w", "-o", self.cluster.options, "-l", str(self.cluster.base / "log"))
        self.gateway.db.engine.dispose()  # the test's own connections, not the gateway's


def test_database_down_gives_contract_faults_then_recovers(cluster: Cluster, pg_gateway: Any) -> None:
    gw = pg_gateway
    ente = create_ente(gw.db)
    iuv, notice, _ = add_dovuto(gw.db, ente)
    pafn, _ = _clients(gw)
    with _DatabaseDown(cluster, gw):
        qr = {"fiscalCode": ente.fiscal_code, "noticeNumber": notice}
        verify = pafn.paVerifyPaymentNotice(**ids(ente), qrCode=qr)
        sent = pafn.paSendRTV2(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00", receipt_id="R-DOWN"))
        for answer in (verify, sent):
            assert (answer.outcome, answer.fault.faultCode) == ("KO", "PAA_SYSTEM_ERROR")
        for operation, children in (
                ("paaSILChiediPagati", f"<codIpaEnte>{ente.cod_ipa}</codIpaEnte><password>{ente.password}</password>"
                                       f"<idSession>x</idSession>"),
                ("paaSILChiediPosizioniAperte", f"<password>{ente.password}</password><codIpaEnte>{ente.cod_ipa}"
                                                f"</codIpaEnte>")):
            raw = requests.post(gw.url + ENTE_PATH, data=_ente_envelope(operation, children), timeout=CALL_TIMEOUT,
                                headers={"Content-Type": "text/xml"})
            assert raw.status_code == 200 and f"{operation}Risposta".encode() in raw.content
            assert b"<faultCode>PAA_SYSTEM_ERROR</faultCode>" in raw.content
            assert b"Traceback" not in raw.content and b"psycopg" not in raw.content and b"<html" not in raw.content
        assert requests.get(gw.url + "/healthz", timeout=10).status_code == 503
    deadline = time.monotonic() + 10
    while requests.get(gw.url + "/healthz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the gateway did not reconnect"
        time.sleep(0.1)
    # The node retries a refused receipt; a worker whose pool still holds a dead connection may refuse once more
    # (no pre-ping, see the module docstring), never twice.
    outcomes = []
    for _ in range(3):
        again = pafn.paSendRTV2(**ids(ente), receipt=receipt(ente, notice, iuv, "150.00", receipt_id="R-DOWN"))
        outcomes.append(again.outcome)
        if again.outcome == "OK":
            break
    assert outcomes[-1] == "OK" and len(outcomes) <= 3, outcomes
    with gw.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Receipt).where(Receipt.receipt_id == "R-DOWN")) == 1


def test_ente_system_error_is_readable_by_a_strict_client(cluster: Cluster, pg_gateway: Any) -> None:
    gw = pg_gateway
    ente = create_ente(gw.db)
    _, sil = _clients(gw, strict=True)
    with _DatabaseDown(cluster, gw):
        answer = sil.paaSILImportaDovuto(password=ente.password, dovuto=versamento(iud="DOWN-1"), flagGeneraIuv=True,
                                         _soapheaders={"header": {"codIpaEnte": ente.cod_ipa}})
    assert answer.fault.faultCode == "PAA_SYSTEM_ERROR" and answer.fault.id == ente.cod_ipa
