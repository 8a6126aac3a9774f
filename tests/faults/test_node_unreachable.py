"""The pagoPA node unreachable (closed port) or slow (answers after the client's timeout): the payer's landing page
answers an error page and writes nothing, the cart stays payable and opens once the node is back; receipt
recovery and the FdR fetch keep their work and try again later. PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from sqlalchemy import select, update

from storage.db import Database
from storage.models import Carrello, Dovuto, DovutoTransition, Ente, Job, PaymentAttempt
from storage.types import utcnow
from tests.conftest import create_ente, free_port, new_database_url, start_gateway, stop_gateway
from tests.e2e.test_sessions import dovuti, invia, item, landing
from tests.faults.test_worker_killed import worker_once

pytestmark = [pytest.mark.postgres]

CHECKOUT_PAGE = "https://checkout.test/pay/1"
SLOW_SECONDS = 21.0  # the node client's read timeout is 20 s (gateway/node/client.py)


class Node:
    """A node on a fixed port that can be down (nothing listening), slow, or answering."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/sim"
        self.delay = 0.0
        self.server: ThreadingHTTPServer | None = None

    def up(self, delay: float = 0.0) -> None:
        self.delay = delay
        if self.server is not None:
            return
        node = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                time.sleep(node.delay)
                if self.path.startswith("/sim/checkout/v1/carts"):
                    self.send_response(302)
                    self.send_header("Location", CHECKOUT_PAGE)
                    body = b""
                elif self.path.startswith("/sim/fdr-org/"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    body = b'{"count": 0, "data": [], "metadata": {"pageSize": 1000, "pageNumber": 1, "totPage": 0}}'
                else:
                    self.send_response(404)
                    body = b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting
                    pass

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    fake = Node(free_port())
    yield fake
    fake.down()


@pytest.fixture(scope="module")
def gw(request: pytest.FixtureRequest, node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("faults-node")
    url = new_database_url("postgres", request, tmp)
    running = start_gateway(url, tmp, ENTE_GATEWAY_NODE_URL=node.url, ENTE_GATEWAY_RECOVERY_AFTER_SECONDS="0")
    running.db = Database(url)  # type: ignore[attr-defined]
    yield running
    running.db.dispose()  # type: ignore[attr-defined]
    stop_gateway(running)


def _cart(gw: Any, id_session: str) -> tuple[Carrello, list[Dovuto], list[PaymentAttempt], int]:
    with gw.db.transaction() as session:
        carrello = session.scalar(select(Carrello).where(Carrello.id_session == id_session))
        rows = sorted(carrello.dovuti, key=lambda d: d.id)
        attempts = session.scalars(select(PaymentAttempt).where(PaymentAttempt.carrello_id == carrello.id)).all()
        transitions = len(session.scalars(select(DovutoTransition).where(
            DovutoTransition.dovuto_id.in_([d.id for d in rows]))).all())
        return carrello, rows, list(attempts), transitions


def _assert_untouched(gw: Any, id_session: str) -> None:
    carrello, rows, attempts, transitions = _cart(gw, id_session)
    assert (carrello.state, carrello.payment_url, carrello.node_cart_id) == ("PREDISPOSTO", None, None)
    assert {d.state for d in rows} == {"INSERIMENTO_DOVUTO"} and transitions == len(rows)  # creation only
    assert attempts == []


def _assert_error_page(response: Any) -> None:
    assert response.status_code == 502 and response.headers["Content-Type"].startswith("text/html")
    assert "pagoPA" in response.text and "Traceback" not in response.text and "Error:" not in response.text


@pytest.mark.slow
def test_landing_with_the_node_down_or_slow_writes_nothing_and_works_later(gw: Any, node: Node) -> None:
    node.down()
    ente = create_ente(gw.db)
    answer = invia(gw, ente, dovuti(item(), item(tipo="MENSA")))
    assert answer.fault is None

    _assert_error_page(landing(answer.url))  # connection refused
    _assert_untouched(gw, answer.idSession)

    node.up(delay=SLOW_SECONDS)  # accepts, then answers after the client gave up
    started = time.monotonic()
    _assert_error_page(landing(answer.url))  # 30 s client timeout > the gateway's 20 s towards the node
    assert 19 < time.monotonic() - started < 40
    _assert_untouched(gw, answer.idSession)

    node.up(delay=0.0)  # back to normal: the same link now opens the payment
    opened = landing(answer.url)
    assert opened.status_code == 302 and opened.headers["Location"] == CHECKOUT_PAGE
    carrello, rows, attempts, _ = _cart(gw, answer.idSession)
    assert (carrello.state, carrello.payment_url) == ("PAGAM_IN_CORSO", CHECKOUT_PAGE)
    assert sorted(a.iuv for a in attempts) == sorted(d.iuv for d in rows)
    assert {(a.model, a.state) for a in attempts} == {("checkout", "STARTED")}


def test_recovery_and_flow_fetch_retry_later_when_the_node_is_down(gw: Any, node: Node) -> None:
    node.up()
    ente = create_ente(gw.db)
    answer = invia(gw, ente, dovuti(item()))
    assert landing(answer.url).status_code == 302
    _, rows, (attempt,), _ = _cart(gw, answer.idSession)
    with gw.db.transaction() as session:
        ente_id = session.scalar(select(Ente.id).where(Ente.cod_ipa == ente.cod_ipa))
    node.down()

    worker_once(gw)
    with gw.db.transaction() as session:
        after = session.get(PaymentAttempt, attempt.id)
        # A Checkout attempt is never asked to the node (modello 3 has no receipt to pull: the node pushes
        # paSendRT and retries it): it is kept and looked at again later; its position is untouched.
        assert (after.state, after.checks) == ("STARTED", 1)
        assert after.next_check_at > utcnow() and after.last_error == "no receipt yet"
        assert session.get(Dovuto, rows[0].id).state == "INSERIMENTO_DOVUTO"
        recover = session.scalar(select(Job).where(Job.dedupe_key == f"recover:{attempt.id}"))
        assert (recover.state, recover.result) == ("done", {"result": "pending"})
        fetch = session.scalar(select(Job).where(Job.dedupe_key == f"rendicontazione-fetch:{ente_id}"))
        # The flow fetch is not failed: queued again for later, no attempt counted.
        assert (fetch.state, fetch.attempts) == ("queued", 0) and "not reachable" in fetch.last_error
        assert fetch.run_after > utcnow() + timedelta(seconds=60)
        fetch_id = fetch.id

    # A slow FdR (answers after the configured timeout) is the same: retried later, nothing stored.
    node.up(delay=3.0)
    with gw.db.transaction() as session:
        session.execute(update(Job).where(Job.id == fetch_id).values(run_after=utcnow()))
    worker_once(gw, ENTE_GATEWAY_REPORTING_TIMEOUT="1")
    with gw.db.transaction() as session:
        fetch = session.get(Job, fetch_id)
        assert (fetch.state, fetch.attempts) == ("queued", 0) and "Timeout" in fetch.last_error

    # The node back: the fetch completes (nothing published) and recovery asks again.
    node.up(delay=0.0)
    with gw.db.transaction() as session:
        session.execute(update(Job).where(Job.id == fetch_id).values(run_after=utcnow()))
        session.execute(update(PaymentAttempt).where(PaymentAttempt.id == attempt.id).values(next_check_at=utcnow()))
    worker_once(gw)
    with gw.db.transaction() as session:
        assert session.get(Job, fetch_id).state == "done"
        again = session.get(PaymentAttempt, attempt.id)
        assert again.state == "STARTED" and again.checks == 2
