"""A worker SIGKILLed in the middle of an export job and of a rendicontazione fetch, restarted after its lease:
the final state equals an uninterrupted run's and no row is written twice. PostgreSQL.

The kill point is made deterministic with the database itself: a lock the test holds parks the worker at a
known statement inside the job (pg_stat_activity shows it waiting), then the process is killed there.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest
import requests
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from gateway.payments import iuv as iuv_rules
from storage.db import Database
from storage.models import Ente, ExportFlow, Job, RendicontazioneFlow, RendicontazioneRow
from storage.types import utcnow
from tests.conftest import ROOT, create_ente, new_database_url, start_gateway, stop_gateway
from tests.e2e.test_flussi_export import add_dovuto, pay as store_paid
from tests.e2e.test_flussi_import import header, service
from tests.e2e.test_rendicontazione import pay as pay_at_psp, sim

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


# --- shared with the other fault files ---------------------------------------------------------------------
def worker_once(gw: Any, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "worker", "--once"], env={**gw.env, **env},
                          cwd=ROOT, capture_output=True, timeout=180)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done


def start_worker(gw: Any, log_path: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "worker"], env={**gw.env, **env}, cwd=ROOT,
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


def pg_connect(database_url: str) -> psycopg.Connection:
    url = make_url(database_url)
    return psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database)


def wait_for_lock_wait(database_url: str, query_fragment: str, timeout: float = 60.0) -> None:
    """Until some backend of this database waits on a lock while running a statement containing the fragment."""
    deadline = time.monotonic() + timeout
    with pg_connect(database_url) as watcher:
        watcher.autocommit = True
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE %s", (f"%{query_fragment}%",)).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError(f"no backend waited on a lock in {query_fragment!r}")


def kill(process: subprocess.Popen) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def expire_leases(db: Database) -> int:
    """What the passing of time does to a dead worker's jobs: their lease runs out."""
    with db.transaction() as session:
        return session.execute(update(Job).where(Job.state == "running").values(locked_until=utcnow())).rowcount


# --- fixture -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def simgw(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("faults-kill")
    url = new_database_url("postgres", request, tmp)
    running = start_gateway(url, tmp, args=("--with-simulator", "--threads", "8"))
    running.db = Database(url)  # type: ignore[attr-defined]
    yield running
    running.db.dispose()  # type: ignore[attr-defined]
    stop_gateway(running)


# --- export ------------------------------------------------------------------------------------------------------
_LEFTOVERS: dict[str, list[Path]] = {}


def _book_export(gw: Any, ente: Any) -> str:
    booking = service(gw).paaSILPrenotaExportFlusso(password=ente.password, dateFrom=date(2030, 3, 1),
                                                    dateTo=date(2030, 3, 31), versioneTracciato="1.3",
                                                    _soapheaders=header(ente))
    assert booking.fault is None, booking.fault
    return booking.requestToken


def _exported_csv(gw: Any, ente: Any, token: str) -> bytes:
    status = service(gw).paaSILChiediStatoExportFlusso(password=ente.password, requestToken=token,
                                                       _soapheaders=header(ente))
    assert (status.fault, status.stato) == (None, "EXPORT_ESEGUITO"), status
    archive = zipfile.ZipFile(io.BytesIO(requests.get(status.downloadUrl, timeout=30).content))
    (member,) = archive.namelist()
    return archive.read(member)


def test_worker_killed_during_an_export_resumes_to_the_same_file(simgw: Any) -> None:
    db = simgw.db
    ente = create_ente(db)
    for n in range(40):
        iuv = iuv_rules.make_iuv17("01", 700_000 + n)
        add_dovuto(db, ente, f"K-{n:03d}", iuv, f"{n + 1}.25", causale=f"Causale {n}")
        store_paid(db, ente, iuv, f"{n + 1}.25", causale=f"Causale {n}")

    first = _book_export(simgw, ente)
    worker_once(simgw)
    uninterrupted = _exported_csv(simgw, ente, first)
    assert uninterrupted.count(b"\n") == 41

    second = _book_export(simgw, ente)
    with db.transaction() as session:
        export_id = session.scalar(select(ExportFlow.id).where(ExportFlow.request_token == second))
    export_dir = Path(simgw.env["ENTE_GATEWAY_DATA_DIR"])
    with pg_connect(simgw.database_url) as blocker:
        # The export's SELECT needs receipt_payment: the worker claims the job, marks the export
        # EXPORT_IN_ELAB, opens its temporary zip and then waits here.
        blocker.execute("LOCK TABLE receipt_payment IN ACCESS EXCLUSIVE MODE")
        worker = start_worker(simgw, simgw.log_path.with_name("worker-export.log"))
        try:
            # Any statement of the worker waiting on a lock waits on ours (the only lock held); on PostgreSQL the
            # export is one COPY (SELECT ...) whose text pg_stat_activity may not show as it was sent.
            wait_for_lock_wait(simgw.database_url, "")
        finally:
            kill(worker)
        with db.transaction() as session:
            flow = session.get(ExportFlow, export_id)
            job = session.scalar(select(Job).where(Job.dedupe_key == f"export:{export_id}"))
            assert (flow.state, job.state, job.attempts) == ("EXPORT_IN_ELAB", "running", 1)
        assert list(export_dir.rglob("*.zip.tmp")), "the worker died with its temporary file open"
        blocker.rollback()

    assert expire_leases(db) >= 1
    worker_once(simgw)
    assert _exported_csv(simgw, ente, second) == uninterrupted  # byte for byte
    with db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
        flows = session.scalars(select(ExportFlow).where(ExportFlow.ente_id == ente_id)).all()
        assert sorted((f.state, f.row_count) for f in flows) == [("EXPORT_ESEGUITO", 40)] * 2
        jobs = session.scalars(select(Job).where(Job.dedupe_key == f"export:{export_id}")).all()
        assert [(j.state, j.attempts) for j in jobs] == [("done", 2)]
    _LEFTOVERS["export"] = list(export_dir.rglob("*.zip.tmp"))
    finished = [p for p in export_dir.rglob("*.zip") if ente.cod_ipa in p.name]
    assert len(finished) == 2  # one file per booking, none written twice


def test_killed_export_leaves_no_temporary_file(simgw: Any) -> None:
    if "export" not in _LEFTOVERS:
        pytest.skip("needs test_worker_killed_during_an_export_resumes_to_the_same_file")
    assert _LEFTOVERS["export"] == []


# --- rendicontazione fetch -------------------------------------------------------------------------------------
PLAN = [("10.00", "SIMPSP01"), ("20.00", "SIMPSP01"), ("30.50", "POSTSIM1")]


def _pay_and_publish(gw: Any, ente: Any, tag: str) -> list[dict[str, Any]]:
    for n, (amount, psp) in enumerate(PLAN):
        pay_at_psp(gw, gw.db, ente, f"{tag}-{n}", amount, psp)
    published = []
    for psp in ("SIMPSP01", "POSTSIM1"):  # one after the other: the fetch stores them in this order
        (flow,) = sim(gw, "report", {"dominio": ente.fiscal_code, "psp": psp, "transport": "fdr"})["flows"]
        published.append(flow)
    return published


def _flows_state(db: Database, ente: Any) -> list[tuple]:
    """The ente's stored flows, without ids and names: comparable between two enti."""
    with db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
        out = []
        for flow in session.scalars(select(RendicontazioneFlow).where(RendicontazioneFlow.ente_id == ente_id)):
            rows = session.scalars(select(RendicontazioneRow.match_state)
                                   .where(RendicontazioneRow.flow_id == flow.id)).all()
            assert len(rows) == flow.total_payments  # no row twice, none missing
            out.append((flow.psp_id, flow.revision, flow.state, flow.current, flow.total_payments,
                        str(flow.total_amount), sorted(Counter(rows).items())))
        return sorted(out)


def test_worker_killed_during_a_flow_fetch_resumes_without_duplicates(simgw: Any) -> None:
    db = simgw.db
    quiet = create_ente(db)
    _pay_and_publish(simgw, quiet, "Q")
    worker_once(simgw)
    expected = _flows_state(db, quiet)
    assert [(psp, rows) for psp, _, _, _, rows, _, _ in expected] == [("POSTSIM1", 1), ("SIMPSP01", 2)]
    assert all(state == "OK" and current for _, _, state, current, _, _, _ in expected)

    ente = create_ente(db)
    published = _pay_and_publish(simgw, ente, "K")
    second = published[1]
    with db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
    with pg_connect(simgw.database_url) as blocker:
        # An uncommitted row with the second flow's key: the worker's INSERT of that flow waits on it,
        # after the first flow has been committed.
        blocker.execute(
            "INSERT INTO rendicontazione_flow (ente_id, psp_id, flow_id, flow_datetime, revision, kind, transport, "
            "total_payments, total_amount, state, current, created_at, updated_at) "
            "VALUES (%s, %s, %s, now(), %s, 'R', 'fdr', 0, 0, 'IN_CARICAMENTO', false, now(), now())",
            (ente_id, second["psp"], second["flowId"], second["revision"]))
        worker = start_worker(simgw, simgw.log_path.with_name("worker-fetch.log"))
        try:
            wait_for_lock_wait(simgw.database_url, "INSERT INTO rendicontazione_flow")
        finally:
            kill(worker)
        with db.transaction() as session:
            stored = session.scalar(select(func.count()).select_from(RendicontazioneFlow)
                                    .where(RendicontazioneFlow.ente_id == ente_id))
            running = session.scalar(select(Job.state).where(Job.dedupe_key == f"rendicontazione-fetch:{ente_id}"))
        assert (stored, running) == (1, "running")  # killed between the two flows
        blocker.rollback()

    assert expire_leases(db) >= 1
    worker_once(simgw)
    assert _flows_state(db, ente) == expected
    with db.transaction() as session:
        jobs = session.scalars(select(Job).where(Job.kind == "rendicontazione.fetch",
                                                 Job.payload["ente_id"].as_integer() == ente_id)).all()
        assert [j.state for j in jobs if j.attempts == 2] == ["done"]  # the killed one, finished by the restart
    # A further run (as the periodic scheduler makes) stores nothing more.
    worker_once(simgw)
    assert _flows_state(db, ente) == expected
