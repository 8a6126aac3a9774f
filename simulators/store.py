"""The simulator's own database (its own MetaData, never the gateway's tables) and its internal API.

Internal API for the other simulator modules (legacy node, reporting, FdR):

- ``METADATA``: define extra tables on it; ``Store.create_all`` creates them and ``Store.reset`` empties
  every table of it (the control API's ``POST /sim/api/reset``).
- ``sim_cart`` / ``sim_cart_notice``: a payment session shown on ``/sim/pagamento/<cart id>``.
  ``kind`` is "checkout" (POST /carts) or "rpt" (nodoInviaRPT/Carrello); ``state`` goes
  CREATED → PROCESSING → PAID | REFUSED | ABANDONED | ERROR. Create one with ``Store.create_cart``;
  the page calls ``settlement.SETTLERS[kind]`` when the payer acts.
- ``sim_token``: modello-3 payment tokens (activatePaymentNotice), with expiry.
- ``sim_receipt``: modello-3 receipts (paSendRTV2) with their delivery state; ``Store.receipts`` lists them
  (the reporting module builds its flows from the DELIVERED/HELD ones: ``transfers`` holds
  idTransfer, amount, fiscalCodePA, IBAN of each transfer).
- ``sim_call``: every exchange with the gateway (``Store.record_call``), shown by ``GET /sim/api/calls``.
- ``sim_scenario``: the behaviour flags of ``simulators.scenarios``.

Several gunicorn workers share the database: rows are claimed with conditional UPDATEs, never with
in-memory locks. The engine is created per process (after the fork), never shared across a fork.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Iterator

from sqlalchemy import (Column, Float, ForeignKey, Integer, LargeBinary, MetaData, String, Table, Text, create_engine,
                        delete, event, insert, select, update)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import TypeDecorator

METADATA = MetaData()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Instant(TypeDecorator):
    """An aware UTC datetime stored as epoch seconds: comparable in SQL on every backend."""

    impl = Float
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> float | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.timestamp()

    def process_result_value(self, value: float | None, dialect: Any) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, timezone.utc)


class Cents(TypeDecorator):
    """A Decimal euro amount stored as integer cents (exact on SQLite too)."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Any) -> int | None:
        if value is None:
            return None
        return int((Decimal(value) * 100).to_integral_exact())

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        return None if value is None else (Decimal(value) / 100).quantize(Decimal("0.01"))


sim_cart = Table(
    "sim_cart", METADATA,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),  # checkout | rpt
    Column("state", String(16), nullable=False, default="CREATED"),
    Column("return_ok_url", Text),
    Column("return_cancel_url", Text),
    Column("return_error_url", Text),
    Column("return_waiting_url", Text),
    Column("id_cart", String(64)),  # the ente's idCart / identificativoCarrello
    Column("email", String(256)),
    Column("psp_id", String(35)),
    Column("message", Text),  # what the page told the payer at the end
    Column("result_url", Text),  # where the browser was sent
    Column("extra", Text),  # JSON, free for the cart's kind (e.g. legacy header data)
    Column("created_at", Instant, nullable=False),
    Column("updated_at", Instant, nullable=False),
)

sim_cart_notice = Table(
    "sim_cart_notice", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cart_id", String(32), ForeignKey("sim_cart.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("fiscal_code", String(11), nullable=False),
    Column("notice_number", String(18)),
    Column("iuv", String(35)),
    Column("ccp", String(35)),
    Column("amount", Cents, nullable=False),
    Column("company_name", String(140)),
    Column("description", String(140)),
    Column("rpt", LargeBinary),  # legacy: the RPT as received
    Column("state", String(16), nullable=False, default="OPEN"),
    Column("payment_token", String(35)),
    Column("fault_code", String(64)),
)

sim_token = Table(
    "sim_token", METADATA,
    Column("token", String(35), primary_key=True),
    Column("psp_id", String(35), nullable=False),
    Column("channel_id", String(35), nullable=False),
    Column("fiscal_code", String(11), nullable=False),
    Column("notice_number", String(18), nullable=False, index=True),
    Column("iuv", String(35)),
    Column("amount", Cents, nullable=False),
    Column("state", String(16), nullable=False),  # ACTIVE | PAID | KO | CANCELLED
    Column("version", String(4), nullable=False),  # V1 | V2 (of activatePaymentNotice)
    Column("idempotency_key", String(40)),
    Column("payment_data", Text, nullable=False),  # the <data> of paGetPaymentV2, as XML
    Column("cart_id", String(32)),
    Column("created_at", Instant, nullable=False),
    Column("expires_at", Instant, nullable=False),
)

sim_receipt = Table(
    "sim_receipt", METADATA,
    Column("receipt_id", String(35), primary_key=True),
    Column("kind", String(16), nullable=False),  # checkout | psp
    Column("cart_id", String(32)),
    Column("fiscal_code", String(11), nullable=False),
    Column("notice_number", String(18), nullable=False, index=True),
    Column("iuv", String(35), index=True),
    Column("psp_id", String(35), nullable=False),
    Column("channel_id", String(35), nullable=False),
    Column("amount", Cents, nullable=False),
    Column("fee", Cents),
    Column("outcome", String(2), nullable=False),
    Column("payment_datetime", Instant, nullable=False),
    Column("transfers", Text, nullable=False),  # JSON list: idTransfer, amount, fiscalCodePA, iban
    Column("body", Text, nullable=False),  # the complete paSendRTV2Request element, as sent
    Column("state", String(16), nullable=False),  # PENDING | HELD | DELIVERED | FAILED
    Column("attempts", Integer, nullable=False, default=0),
    Column("deliveries_wanted", Integer, nullable=False, default=1),
    Column("deliveries_done", Integer, nullable=False, default=0),
    Column("next_attempt_at", Instant, nullable=False),
    Column("claimed_until", Instant),
    Column("claim_id", String(32)),
    Column("last_result", String(80)),
    Column("created_at", Instant, nullable=False),
    Column("delivered_at", Instant),
)

sim_call = Table(
    "sim_call", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Instant, nullable=False),
    Column("direction", String(16), nullable=False),  # to_gateway | from_gateway
    Column("operation", String(64), nullable=False),
    Column("subject", String(80)),  # fiscal code / notice number / cart id
    Column("outcome", String(16), nullable=False),  # OK | KO | TIMEOUT | ERROR | HTTP status
    Column("fault_code", String(64)),
    Column("duration_ms", Integer),
    Column("detail", Text),
)

sim_scenario = Table(
    "sim_scenario", METADATA,
    Column("name", String(32), primary_key=True),
    Column("params", Text, nullable=False),
    Column("remaining", Integer),  # None: until cleared
    Column("set_at", Instant, nullable=False),
)


@dataclass(frozen=True)
class Cart:
    id: str
    kind: str
    state: str
    return_ok_url: str | None
    return_cancel_url: str | None
    return_error_url: str | None
    return_waiting_url: str | None
    id_cart: str | None
    email: str | None
    psp_id: str | None
    message: str | None
    result_url: str | None
    extra: dict[str, Any]
    created_at: datetime
    notices: tuple["CartNotice", ...]

    @property
    def total(self) -> Decimal:
        return sum((n.amount for n in self.notices), Decimal("0.00"))


@dataclass(frozen=True)
class CartNotice:
    id: int
    position: int
    fiscal_code: str
    notice_number: str | None
    iuv: str | None
    ccp: str | None
    amount: Decimal
    company_name: str | None
    description: str | None
    rpt: bytes | None
    state: str
    payment_token: str | None
    fault_code: str | None


@dataclass(frozen=True)
class NewNotice:
    fiscal_code: str
    amount: Decimal
    notice_number: str | None = None
    iuv: str | None = None
    ccp: str | None = None
    company_name: str | None = None
    description: str | None = None
    rpt: bytes | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    """Access to the simulator database; safe to share between threads, re-created after a fork."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None or self._pid != os.getpid():
            with self._lock:
                if self._engine is None or self._pid != os.getpid():
                    if self._engine is not None:
                        self._engine.dispose(close=False)  # the parent's connections stay the parent's
                    self._engine = self._make_engine()
                    self._pid = os.getpid()
        return self._engine

    def _make_engine(self) -> Engine:
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            engine = create_engine(self.url, connect_args={"check_same_thread": False, "timeout": 15})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(self.url, pool_pre_ping=True)

    def begin(self):  # noqa: ANN201 - a context manager yielding a Connection
        return self.engine.begin()

    def create_all(self) -> None:
        METADATA.create_all(self.engine)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def reset(self) -> None:
        with self.begin() as conn:
            for table in reversed(METADATA.sorted_tables):
                conn.execute(delete(table))

    # --- carts -------------------------------------------------------------------------------------
    def create_cart(self, kind: str, notices: Iterable[NewNotice], *, return_ok_url: str | None = None,
                    return_cancel_url: str | None = None, return_error_url: str | None = None,
                    return_waiting_url: str | None = None, id_cart: str | None = None, email: str | None = None,
                    extra: dict[str, Any] | None = None, conn: Connection | None = None) -> str:
        """Store a cart and its notices (in ``conn``'s transaction when given); returns the cart id."""
        cart_id = uuid.uuid4().hex
        now = utcnow()

        def write(c: Connection) -> None:
            c.execute(insert(sim_cart).values(
                id=cart_id, kind=kind, state="CREATED", return_ok_url=return_ok_url,
                return_cancel_url=return_cancel_url, return_error_url=return_error_url,
                return_waiting_url=return_waiting_url, id_cart=id_cart, email=email,
                extra=json.dumps(extra or {}), created_at=now, updated_at=now))
            for position, notice in enumerate(notices, start=1):
                c.execute(insert(sim_cart_notice).values(
                    cart_id=cart_id, position=position, fiscal_code=notice.fiscal_code,
                    notice_number=notice.notice_number, iuv=notice.iuv, ccp=notice.ccp, amount=notice.amount,
                    company_name=notice.company_name, description=notice.description, rpt=notice.rpt,
                    state="OPEN"))

        if conn is not None:
            write(conn)
        else:
            with self.begin() as c:
                write(c)
        return cart_id

    def cart(self, cart_id: str, conn: Connection | None = None) -> Cart | None:
        if conn is None:
            with self.begin() as c:
                return self.cart(cart_id, c)
        row = conn.execute(select(sim_cart).where(sim_cart.c.id == cart_id)).mappings().first()
        if row is None:
            return None
        notices = conn.execute(select(sim_cart_notice).where(sim_cart_notice.c.cart_id == cart_id)
                               .order_by(sim_cart_notice.c.position)).mappings().all()
        return Cart(
            id=row["id"], kind=row["kind"], state=row["state"], return_ok_url=row["return_ok_url"],
            return_cancel_url=row["return_cancel_url"], return_error_url=row["return_error_url"],
            return_waiting_url=row["return_waiting_url"], id_cart=row["id_cart"], email=row["email"],
            psp_id=row["psp_id"], message=row["message"], result_url=row["result_url"],
            extra=json.loads(row["extra"] or "{}"), created_at=row["created_at"],
            notices=tuple(CartNotice(
                id=n["id"], position=n["position"], fiscal_code=n["fiscal_code"], notice_number=n["notice_number"],
                iuv=n["iuv"], ccp=n["ccp"], amount=n["amount"], company_name=n["company_name"],
                description=n["description"], rpt=n["rpt"], state=n["state"], payment_token=n["payment_token"],
                fault_code=n["fault_code"]) for n in notices))

    def claim_cart(self, cart_id: str, psp_id: str | None) -> bool:
        """CREATED → PROCESSING, for exactly one caller (double clicks, two workers)."""
        with self.begin() as conn:
            result = conn.execute(update(sim_cart).where(sim_cart.c.id == cart_id, sim_cart.c.state == "CREATED")
                                  .values(state="PROCESSING", psp_id=psp_id, updated_at=utcnow()))
            return result.rowcount == 1

    def finish_cart(self, cart_id: str, state: str, *, result_url: str | None, message: str | None) -> None:
        with self.begin() as conn:
            conn.execute(update(sim_cart).where(sim_cart.c.id == cart_id)
                         .values(state=state, result_url=result_url, message=message, updated_at=utcnow()))

    def update_notice(self, notice_id: int, **values: Any) -> None:
        with self.begin() as conn:
            conn.execute(update(sim_cart_notice).where(sim_cart_notice.c.id == notice_id).values(**values))

    # --- receipts ----------------------------------------------------------------------------------
    def receipts(self, *, fiscal_code: str | None = None, notice_number: str | None = None, iuv: str | None = None,
                 states: Iterable[str] | None = None, receipt_id: str | None = None) -> list[dict[str, Any]]:
        query = select(sim_receipt).order_by(sim_receipt.c.created_at)
        if fiscal_code:
            query = query.where(sim_receipt.c.fiscal_code == fiscal_code)
        if notice_number:
            query = query.where(sim_receipt.c.notice_number == notice_number)
        if iuv:
            query = query.where(sim_receipt.c.iuv == iuv)
        if receipt_id:
            query = query.where(sim_receipt.c.receipt_id == receipt_id)
        if states:
            query = query.where(sim_receipt.c.state.in_(list(states)))
        with self.begin() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        for row in rows:
            row["transfers"] = json.loads(row["transfers"])
        return rows

    # --- calls -------------------------------------------------------------------------------------
    def record_call(self, direction: str, operation: str, outcome: str, *, subject: str | None = None,
                    fault_code: str | None = None, duration_ms: int | None = None, detail: str | None = None) -> None:
        with self.begin() as conn:
            conn.execute(insert(sim_call).values(at=utcnow(), direction=direction, operation=operation,
                                                 subject=(subject or "")[:80] or None, outcome=outcome[:16],
                                                 fault_code=fault_code, duration_ms=duration_ms,
                                                 detail=(detail or "")[:2000] or None))

    def calls(self, limit: int = 200, operation: str | None = None) -> list[dict[str, Any]]:
        query = select(sim_call).order_by(sim_call.c.id.desc()).limit(limit)
        if operation:
            query = query.where(sim_call.c.operation == operation)
        with self.begin() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
        return list(reversed(rows))


def rows(conn: Connection, query: Any) -> Iterator[dict[str, Any]]:
    for row in conn.execute(query).mappings():
        yield dict(row)
