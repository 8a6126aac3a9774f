"""Shared fixtures: a throwaway PostgreSQL cluster, migrated databases on both backends, a running gateway.

PostgreSQL tests are skipped only when no server binaries are installed and ENTE_GATEWAY_REQUIRE_POSTGRES
is not set; CI sets it, so there a missing PostgreSQL fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from bench.postgres import Cluster, free_port, pg_bindir, start_cluster  # noqa: F401 - free_port for tests

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference"
REQUIRE_POSTGRES = os.environ.get("ENTE_GATEWAY_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgres"]




# --- PostgreSQL cluster ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A private cluster for the session (bench/postgres.py: initdb + pg_ctl; as root it runs as postgres)."""
    if pg_bindir() is None:
        if REQUIRE_POSTGRES:
            pytest.fail("PostgreSQL server binaries not found but ENTE_GATEWAY_REQUIRE_POSTGRES=1")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


# --- migrated databases ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from storage.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_cluster: Cluster) -> str:
    from storage.migrate import upgrade

    pg_cluster.admin("CREATE DATABASE template_gateway")
    upgrade(pg_cluster.url("template_gateway"))
    from sqlalchemy import create_engine

    create_engine(pg_cluster.url("template_gateway")).dispose()
    return "template_gateway"


def new_database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / f"{uuid.uuid4().hex}.sqlite3"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    template = request.getfixturevalue("pg_template")
    name = "t_" + uuid.uuid4().hex[:16]
    cluster.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    return cluster.url(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_database_url(backend, request, tmp_path)


@pytest.fixture
def database(database_url: str):
    from storage.db import Database

    db = Database(database_url)
    yield db
    db.dispose()


# --- a running gateway -------------------------------------------------------------------------------
@dataclass
class RunningGateway:
    url: str
    database_url: str
    process: subprocess.Popen
    env: dict[str, str]
    log_path: Path

    def endpoint(self, path: str) -> str:
        return self.url + path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def gateway_env(database_url: str, port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ENTE_GATEWAY_DATABASE_URL": database_url,
        "ENTE_GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ENTE_GATEWAY_NODE_URL": f"http://127.0.0.1:{port}/sim",
        "ENTE_GATEWAY_DATA_DIR": str(data_dir),
        "ENTE_GATEWAY_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "ENTE_GATEWAY_LOG_FORMAT": "json",
    })
    env.update(extra)
    return env


def start_gateway(database_url: str, tmp: Path, *, workers: int = 2, args: tuple[str, ...] = (),
                  **extra_env: str) -> RunningGateway:
    port = free_port()
    env = gateway_env(database_url, port, tmp / "data", **extra_env)
    log_path = tmp / f"gateway-{port}.log"
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port),
                                "--workers", str(workers), *args],
                               env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {log_path.read_text(errors='replace')[-3000:]}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return RunningGateway(url, database_url, process, env, log_path)
        except requests.RequestException:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"gateway did not start: {log_path.read_text(errors='replace')[-3000:]}")


def stop_gateway(gateway: RunningGateway) -> None:
    gateway.process.terminate()
    try:
        gateway.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        gateway.process.kill()


@pytest.fixture(scope="session", params=BACKENDS)
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway process per backend for the whole session; tests create their own enti."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    tmp = tmp_path_factory.mktemp(f"gw-{request.param}")
    url = new_database_url(request.param, request, tmp)
    running = start_gateway(url, tmp)
    yield running
    stop_gateway(running)


@pytest.fixture
def gateway_db(gateway: RunningGateway):
    from storage.db import Database

    db = Database(gateway.database_url)
    yield db
    db.dispose()


@dataclass
class DemoEnte:
    cod_ipa: str
    fiscal_code: str
    password: str
    name: str


def unique_fiscal_code() -> str:
    return f"8{uuid.uuid4().int % 10**10:010d}"


def create_ente(database, *, state: str = "ESERCIZIO", tipi: tuple[str, ...] = ("TARI", "MENSA"),
                segregation_code: str = "01") -> DemoEnte:
    from gateway.enti.registry import NewEnte, add_ente, add_tipo_dovuto

    cod_ipa = "C_" + uuid.uuid4().hex[:8].upper()
    fiscal_code = unique_fiscal_code()
    password = "Pw-" + uuid.uuid4().hex[:10]
    with database.transaction() as session:
        add_ente(session, NewEnte(cod_ipa=cod_ipa, fiscal_code=fiscal_code, name=f"Comune {cod_ipa}",
                                  password=password, segregation_code=segregation_code, state=state))
        for code in tipi:
            add_tipo_dovuto(session, cod_ipa, code, f"Tipo {code}", "IT60X0542811101000000123456", "9/0101100IM/")
    return DemoEnte(cod_ipa, fiscal_code, password, f"Comune {cod_ipa}")


@pytest.fixture
def ente(gateway_db) -> DemoEnte:
    return create_ente(gateway_db)
