"""Receipt recovery end to end: an RT the simulated node keeps (scenario rt_never) is fetched by
``ente-gateway worker --once`` with nodoChiediStatoRPT + nodoChiediCopiaRT and stored once; an unreachable
node leaves the attempt untouched but for its next check. Both backends."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import requests
from sqlalchemy import select

from gateway.node import recovery
from gateway.settings import Settings
from storage.models import Dovuto, Job, PaymentAttempt
from tests.e2e.test_simulator_legacy import (_clear_scenarios, ask, dovuto_state, gw, legacy_ente,  # noqa: F401
                                             open_legacy_payment, pay, receipts_of)


def run_worker(gw: Any, **env: str) -> None:
    completed = subprocess.run([sys.executable, "-m", "gateway.cli", "worker", "--once"],
                               env={**gw.env, **env}, capture_output=True, timeout=120)
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")[-2000:]


def settings(gw: Any) -> Settings:
    """The worker's settings, for checks made in this process."""
    return Settings(database_url=gw.database_url, node_url=gw.url + "/sim", recovery_after_seconds=0,
                    recovery_slot_seconds=1)


def attempt_row(gw: Any, attempt_id: int) -> PaymentAttempt:
    with gw.db.transaction() as session:
        row = session.get(PaymentAttempt, attempt_id)
        session.expunge(row)
        return row


def test_rt_never_recovered_with_copia_rt(gw: Any) -> None:
    requests.post(gw.url + "/sim/api/scenario", json={"name": "rt_never"}, timeout=10)
    ente = legacy_ente(gw)
    page, attempt = open_legacy_payment(gw, ente)
    assert pay(gw, page)["state"] == "PAID"
    dominio = ente.fiscal_code
    assert ask(gw, "nodoChiediStatoRPT", dominio, attempt.iuv, attempt.ccp).esito.stato == "RT_ACCETTATA_NODO"
    assert receipts_of(gw, attempt) == []

    run_worker(gw)
    stored = receipts_of(gw, attempt)
    assert [(r.source, r.esito_code) for r in stored] == [("copiaRT", "0")]
    assert dovuto_state(gw, attempt) == "COMPLETATO"
    assert attempt_row(gw, attempt.id).state == "PAID"
    with gw.db.transaction() as session:
        jobs = list(session.scalars(select(Job).where(Job.dedupe_key == f"recover:{attempt.id}")))
        assert [(j.state, j.result) for j in jobs] == [("done", {"result": "recovered"})]

    # Nothing left to recover: a further check (as a second worker would make) changes nothing.
    assert recovery.recover(gw.db, settings(gw), attempt.id) == {"result": "nothing_to_do"}
    assert len(receipts_of(gw, attempt)) == 1


def test_node_unreachable_is_retried_later(gw: Any) -> None:
    ente = legacy_ente(gw)
    _, attempt = open_legacy_payment(gw, ente)
    run_worker(gw, ENTE_GATEWAY_NODE_URL="http://127.0.0.1:9/sim")
    row = attempt_row(gw, attempt.id)
    assert row.state == "STARTED" and row.checks == 1
    assert row.next_check_at is not None and "unreachable" in (row.last_error or "")
    assert receipts_of(gw, attempt) == []
    with gw.db.transaction() as session:
        assert session.scalar(select(Dovuto.state).where(Dovuto.ente_id == attempt.ente_id,
                                                         Dovuto.iuv == attempt.iuv)) == "PAGAMENTO_INIZIATO"
    # Node reachable, RPT known but no RT yet: still pending, checked again after slot × (2^k − 1).
    assert recovery.recover(gw.db, settings(gw), attempt.id) == {"result": "pending"}
    row = attempt_row(gw, attempt.id)
    assert row.state == "STARTED" and row.checks == 2 and "PPT_RT_NONDISPONIBILE" in (row.last_error or "")
    assert (row.next_check_at - row.updated_at).total_seconds() >= 2  # slot 1 s × (2² − 1) = 3 s
