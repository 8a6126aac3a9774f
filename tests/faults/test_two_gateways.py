"""Two gateway processes and two workers on one PostgreSQL database: IUVs generated concurrently through both
gateways are never given twice, the same receipt delivered at once to both gateways is stored once, and two
workers racing on many jobs run each job exactly once.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
import zeep
from sqlalchemy import func, select, update

from gateway.payments import iuv as iuv_rules
from storage.db import Database
from storage.models import Carrello, Dovuto, DovutoTransition, Ente, ExportFlow, Job, Receipt
from storage.types import utcnow
from tests.conftest import REFERENCE, create_ente, new_database_url, start_gateway, stop_gateway
from tests.e2e.test_flussi_export import add_dovuto, pay
from tests.e2e.test_importa_dovuto import versamento
from tests.e2e.test_node_side import PAFN_BINDING, add_dovuto as add_payable, ids, receipt
from tests.e2e.test_sessions import dovuti, item
from tests.faults.test_worker_killed import start_worker

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ENTE_WSDL = str(REFERENCE / "mypay" / "wsdl" / "pa-per-ente.wsdl")
ENTE_BINDING = "{http://www.regione.veneto.it/pagamenti/ente/PagamentiTelematiciDovutiPagati}" \
               "PagamentiTelematiciDovutiPagatiBinding"
ENTE_PATH = "/ente/PagamentiTelematiciDovutiPagati"
PAFN_WSDL = str(REFERENCE / "pagopa" / "wsdl" / "paForNode.wsdl")
JOBS = 150
_local = threading.local()


def sil(gw: Any) -> Any:
    cache = _local.__dict__.setdefault("sil", {})
    if gw.url not in cache:
        cache[gw.url] = zeep.Client(ENTE_WSDL).create_service(ENTE_BINDING, gw.url + ENTE_PATH)
    return cache[gw.url]


def pafn(gw: Any) -> Any:
    cache = _local.__dict__.setdefault("pafn", {})
    if gw.url not in cache:
        cache[gw.url] = zeep.Client(PAFN_WSDL).create_service(PAFN_BINDING, gw.url + "/pa/paForNode")
    return cache[gw.url]


@pytest.fixture(scope="module")
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    tmp = tmp_path_factory.mktemp("faults-pair")
    url = new_database_url("postgres", request, tmp)
    shared = str(tmp / "shared-data")  # one data folder, as two hosts would share a volume
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    first = start_gateway(url, tmp / "a", ENTE_GATEWAY_DATA_DIR=shared)
    second = start_gateway(url, tmp / "b", ENTE_GATEWAY_DATA_DIR=shared)
    first.db = Database(url)  # type: ignore[attr-defined]
    yield first, second
    first.db.dispose()  # type: ignore[attr-defined]
    stop_gateway(first)
    stop_gateway(second)


def test_iuvs_generated_through_both_gateways_are_unique(pair: tuple[Any, Any]) -> None:
    db = pair[0].db
    ente = create_ente(db)
    head = {"header": {"codIpaEnte": ente.cod_ipa}}

    def importa(n: int) -> str:
        answer = sil(pair[n % 2]).paaSILImportaDovuto(password=ente.password, dovuto=versamento(iud=f"P-{n:03d}"),
                                                     flagGeneraIuv=True, _soapheaders=head)
        assert answer.fault is None, answer.fault
        return answer.identificativoUnivocoVersamento

    def invia(n: int) -> str:
        answer = sil(pair[n % 2]).paaSILInviaDovuti(password=ente.password, dovuti=dovuti(item(), item()),
                                                   _soapheaders=head)
        assert answer.fault is None, answer.fault
        return answer.idSession

    with ThreadPoolExecutor(8) as pool:
        imported = pool.map(importa, range(60))
        sessions = pool.map(invia, range(20))
        imported, sessions = list(imported), list(sessions)
    with db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
        iuvs = session.scalars(select(Dovuto.iuv).where(Dovuto.ente_id == ente_id)).all()
        in_carts = session.scalar(select(func.count()).select_from(Dovuto).join(Carrello).where(
            Carrello.id_session.in_(sessions)))
    assert len(set(imported)) == 60 and set(imported) <= set(iuvs)
    assert in_carts == 40 and len(iuvs) == 100
    assert len(set(iuvs)) == 100 and all(iuv_rules.is_valid_check_digits(iuv) for iuv in iuvs)


def test_same_receipt_at_both_gateways_is_stored_once(pair: tuple[Any, Any]) -> None:
    db = pair[0].db
    ente = create_ente(db)
    payable = [add_payable(db, ente) for _ in range(8)]
    for iuv, notice, dovuto_id in payable:
        sent = receipt(ente, notice, iuv, "150.00", receipt_id=uuid.uuid4().hex)
        barrier = threading.Barrier(4)

        def deliver(n: int, sent: dict = sent) -> str:
            service = pafn(pair[n % 2])
            barrier.wait()
            return service.paSendRTV2(**ids(ente), receipt=sent).outcome

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(deliver, range(4))) == ["OK"] * 4
        with db.transaction() as session:
            stored = session.scalars(select(Receipt).where(Receipt.receipt_id == sent["receiptId"])).all()
            assert len(stored) == 1 and len(stored[0].payments) == 1
            moves = session.scalars(select(DovutoTransition.to_state).where(
                DovutoTransition.dovuto_id == dovuto_id)).all()
            assert moves.count("COMPLETATO") == 1 and session.get(Dovuto, dovuto_id).state == "COMPLETATO"


def _jobs_done(log: Path) -> list[int]:
    done = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "job done":
            done.append(int(event["job_id"]))
    return done


def test_two_workers_racing_run_each_job_once(pair: tuple[Any, Any], tmp_path: Path) -> None:
    db = pair[0].db
    ente = create_ente(db)
    add_dovuto(db, ente, "W-1", iuv_rules.make_iuv17("01", 424_242), "9.99")
    pay(db, ente, iuv_rules.make_iuv17("01", 424_242), "9.99")
    head = {"header": {"codIpaEnte": ente.cod_ipa}}

    def book(n: int) -> str:
        booking = sil(pair[n % 2]).paaSILPrenotaExportFlusso(password=ente.password, dateFrom=date(2030, 3, 1),
                                                             dateTo=date(2030, 3, 31), _soapheaders=head)
        assert booking.fault is None
        return booking.requestToken

    # Enough jobs that one worker cannot finish them all before the other wakes from its 1 s poll.
    with ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(book, range(JOBS)))
    with db.transaction() as session:
        export_ids = session.scalars(select(ExportFlow.id).where(ExportFlow.request_token.in_(tokens))).all()
        keys = [f"export:{i}" for i in export_ids]
        # Held back until both workers are polling, then released at once.
        session.execute(update(Job).where(Job.dedupe_key.in_(keys)).values(run_after=utcnow() + timedelta(hours=1)))

    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = [start_worker(pair[0], logs[0]), start_worker(pair[1], logs[1])]
    try:
        deadline = time.monotonic() + 30
        while not all(b"worker started" in log.read_bytes() for log in logs):
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.1)
        with db.transaction() as session:
            session.execute(update(Job).where(Job.dedupe_key.in_(keys)).values(run_after=utcnow()))
        deadline = time.monotonic() + 60
        while True:
            with db.transaction() as session:
                pending = session.scalar(select(func.count()).select_from(Job).where(
                    Job.dedupe_key.in_(keys), Job.state != "done"))
            if not pending:
                break
            assert time.monotonic() < deadline, f"{pending} jobs not done"
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=20)

    with db.transaction() as session:
        jobs = session.scalars(select(Job).where(Job.dedupe_key.in_(keys))).all()
        assert Counter((j.state, j.attempts) for j in jobs) == {("done", 1): JOBS}
        flows = session.scalars(select(ExportFlow).where(ExportFlow.id.in_(export_ids))).all()
        assert Counter((f.state, f.row_count) for f in flows) == {("EXPORT_ESEGUITO", 1): JOBS}
    job_ids = {j.id for j in jobs}
    by_worker = [[i for i in _jobs_done(log) if i in job_ids] for log in logs]
    assert sorted(by_worker[0] + by_worker[1]) == sorted(job_ids)  # each job done once, by one worker
    assert by_worker[0] and by_worker[1], "both workers took jobs"
    files = [p for p in Path(pair[0].env["ENTE_GATEWAY_DATA_DIR"]).rglob("*.zip") if ente.cod_ipa in str(p)]
    assert len(files) == JOBS and not list(Path(pair[0].env["ENTE_GATEWAY_DATA_DIR"]).rglob("*.tmp"))
