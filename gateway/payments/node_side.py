"""What the pagoPA node asks of the ente: verify and get a notice, deliver receipts (both models).

Every call is first checked against the gateway's identity on the node (idPA served here, idBrokerPA,
idStation), which MyPay does not do but pagoPA's fault codes exist for. Each call is one transaction of one
or two indexed queries (pagoPA's SLA: 98 % within 2 s; the node gives up after 7 s, 15 s for receipts).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Iterator

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from gateway import faults, logs
from gateway.payments import legacy_rt, notices, psp_receipts, receipts
from gateway.payments.legacy_rt import RtHeader
from gateway.payments.notices import PaymentData, PaymentOption, Subject, Transfer
from gateway.runtime import Runtime
from storage.direct import Direct, Statement
from storage.models import Ente, PaymentAttempt
from storage.types import utcnow

__all__ = ["NodeCall", "IncomingReceipt", "RtHeader", "Subject", "Transfer", "PaymentOption", "PaymentData",
           "check_station", "verify_notice", "get_payment", "send_receipt", "demand_notice", "invia_rt"]

log = logs.get_logger(__name__)


@dataclass(frozen=True)
class NodeCall:
    """The identity fields every paForNode request carries."""

    id_pa: str | None
    id_broker: str | None
    id_station: str | None


@dataclass(frozen=True)
class IncomingReceipt:
    """A paSendRT / paSendRTV2 receipt, with the XML of ``<receipt>`` exactly as it arrived."""

    version: str  # paSendRT | paSendRTV2
    receipt_id: str
    notice_number: str
    fiscal_code: str
    outcome: str
    iuv: str
    amount: Decimal
    description: str
    company_name: str
    debtor: Subject
    transfers: list[Transfer]
    psp_id: str
    psp_name: str
    channel_id: str
    raw: bytes
    office_name: str | None = None
    payer: Subject | None = None
    payment_method: str | None = None
    fee: Decimal | None = None
    payment_datetime: datetime | None = None
    application_date: date | None = None
    transfer_date: date | None = None
    stand_in: bool = False
    metadata: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class EnteOnNode:
    """What the node-facing calls read of an ente: a plain snapshot, cheap to keep for a few seconds."""

    id: int
    fiscal_code: str
    cod_ipa: str
    name: str
    office_name: str | None
    enabled: bool
    state: str
    aux_digit: str
    segregation_code: str | None
    application_code: str | None
    demand_payment_notice: bool


_ENTE_TTL_SECONDS = 5.0
_ente_cache: dict[str, tuple[float, EnteOnNode | None]] = {}
_ENTE_COLUMNS = (Ente.id, Ente.fiscal_code, Ente.cod_ipa, Ente.name, Ente.office_name, Ente.enabled, Ente.state,
                 Ente.aux_digit, Ente.segregation_code, Ente.application_code, Ente.demand_payment_notice)
_ENTE_BY_FISCAL_CODE = Statement(select(*_ENTE_COLUMNS).where(Ente.fiscal_code == bindparam("fiscal_code")))
_NEW_ATTEMPT = Statement(insert(PaymentAttempt).values(
    ente_id=bindparam("ente_id"), carrello_id=bindparam("carrello_id"), dovuto_id=bindparam("dovuto_id"),
    model="psp", iuv=bindparam("iuv"), state=receipts.ATTEMPT_STARTED, expires_at=bindparam("expires_at"),
    checks=0, created_at=bindparam("now"), updated_at=bindparam("now")).inline())


def _ente_on_node(db: Direct, fiscal_code: str, *, cached: bool) -> EnteOnNode | None:
    # verify and getPayment come several times per payment and per second; an ente's registration changes
    # rarely, and a change (disabled, renamed) reaches them within the TTL on every process. Receipts and
    # the rare calls read it fresh: switching an ente off stops its receipts at once (the node retries them).
    now = time.monotonic()
    hit = _ente_cache.get(fiscal_code) if cached else None
    if hit is not None and hit[0] > now:
        return hit[1]
    row = db.first(_ENTE_BY_FISCAL_CODE, fiscal_code=fiscal_code)
    snapshot = EnteOnNode(*row) if row is not None else None
    if len(_ente_cache) > 10_000:
        _ente_cache.clear()
    _ente_cache[fiscal_code] = (now + _ENTE_TTL_SECONDS, snapshot)
    return snapshot


def check_station(runtime: Runtime, call: NodeCall, *, cached: bool = False, db: Direct | None = None) -> EnteOnNode:
    """The ente the node is calling about, if this gateway serves it through this broker and station.

    The ente is a registration snapshot read on its own (autocommit) unless ``db`` is given."""
    settings = runtime.settings
    logs.bind_request(id_pa=call.id_pa)
    if db is None:
        with runtime.database.autocommit() as own:
            ente = _ente_on_node(own, call.id_pa or "", cached=cached)
    else:
        ente = _ente_on_node(db, call.id_pa or "", cached=cached)
    if ente is None or not ente.enabled or ente.state == "INSERITO":
        raise faults.Fault(faults.PAA_ID_DOMINIO_ERRATO, id=call.id_pa or "", serial=0,
                           description=f"dominio {call.id_pa} non servito da questa stazione")
    if call.id_broker != settings.broker_id:
        raise faults.Fault(faults.PAA_ID_INTERMEDIARIO_ERRATO, id=ente.fiscal_code, serial=0,
                           description=f"intermediario {call.id_broker} non corrispondente")
    if call.id_station != settings.station_id:
        raise faults.Fault(faults.PAA_STAZIONE_INT_ERRATA, id=ente.fiscal_code, serial=0,
                           description=f"stazione {call.id_station} non corrispondente")
    return ente


@contextmanager
def _system_errors(operation: str, id_pa: str | None) -> Iterator[None]:
    """An unexpected error becomes PAA_SYSTEM_ERROR (the node retries), never a trace."""
    try:
        yield
    except faults.Fault:
        raise
    except Exception as exc:  # noqa: BLE001 - the contract answers PAA_SYSTEM_ERROR
        log.exception("node call failed", operation=operation)
        raise faults.Fault(faults.PAA_SYSTEM_ERROR, description=f"{operation}: errore interno del gateway",
                           id=id_pa or "", serial=0) from exc


@contextmanager
def _node_call(runtime: Runtime, operation: str, id_pa: str | None) -> Iterator[Session]:
    """One transaction per call."""
    with _system_errors(operation, id_pa), runtime.database.transaction() as session:
        yield session


def verify_notice(runtime: Runtime, call: NodeCall, fiscal_code: str, notice_number: str) -> PaymentOption:
    """paVerifyPaymentNotice: describe the payable position, change nothing. One statement (the ente is
    cached): the hottest call of all, several per payment."""
    with _system_errors("paVerifyPaymentNotice", call.id_pa), runtime.database.autocommit() as db:
        ente = check_station(runtime, call, cached=True, db=db)
        dovuto, tipo = notices.find_payable(db, ente, fiscal_code, notice_number, today=_today())
        return notices.payment_option(ente, dovuto, tipo)


def get_payment(runtime: Runtime, call: NodeCall, fiscal_code: str, notice_number: str, *,
                amount: Decimal | None, v2: bool) -> PaymentData:
    """paGetPayment[V2]: the payment data, and a record of the attempt (which does not lock the notice).

    The node owns concurrency through its payment token; a refused or expired payment is payable again at once.
    """
    # Two autocommit statements, no transaction: the read decides the answer, and the attempt is a record
    # of it (a single INSERT is atomic on its own); nothing is locked, so nothing else needs to be atomic.
    with _system_errors("paGetPaymentV2" if v2 else "paGetPayment", call.id_pa), \
            runtime.database.autocommit() as db:
        ente = check_station(runtime, call, cached=True, db=db)
        dovuto, tipo = notices.find_payable(db, ente, fiscal_code, notice_number, today=_today())
        data = notices.payment_data(ente, dovuto, tipo, v2=v2)
        if amount is not None and Decimal(str(amount)) != data.amount:
            # pagopa-node.md 1.3.2: the position's amount is the answer; the PSP's figure is only logged.
            log.info("getPayment amount differs from the position", requested=str(amount), amount=str(data.amount))
        now = utcnow()
        db.run(_NEW_ATTEMPT, ente_id=ente.id, carrello_id=dovuto.carrello_id, dovuto_id=dovuto.id, iuv=dovuto.iuv,
               expires_at=now + timedelta(minutes=runtime.settings.token_minutes), now=now)
        return data


def send_receipt(runtime: Runtime, call: NodeCall, receipt: IncomingReceipt) -> None:
    """paSendRT[V2]: store the receipt once (a repeated one answers OK too) and settle its position."""
    with _node_call(runtime, receipt.version, call.id_pa) as session:
        ente = check_station(runtime, call)
        stored = psp_receipts.store_receipt(session, ente, receipt)
        logs.bind_request(receipt_row=stored.id, duplicate=stored.duplicate)


def demand_notice(runtime: Runtime, call: NodeCall, service_id: str | None, datas: bytes | None) -> None:
    """paDemandPaymentNotice: no service catalogue exists yet, so no notice can be made on demand."""
    with _system_errors("paDemandPaymentNotice", call.id_pa):
        ente = check_station(runtime, call)
        enabled = ente.demand_payment_notice
    if enabled:
        raise faults.Fault(faults.PAA_SYSTEM_ERROR, id=ente.fiscal_code, serial=0,
                           description=f"servizio {service_id or ''} non configurato: nessun catalogo servizi")
    raise faults.Fault(faults.PAA_SYSTEM_ERROR, id=ente.fiscal_code, serial=0,
                       description="paDemandPaymentNotice non abilitato per questo ente")


def invia_rt(runtime: Runtime, header: RtHeader, tipo_firma: str | None, rt: bytes | None) -> None:
    """paaInviaRT: the legacy node delivers an RT (see legacy_rt.receive_rt)."""
    with _node_call(runtime, "paaInviaRT", header.dominio) as session:
        ente = check_station(runtime, NodeCall(header.dominio, header.broker, header.station))
        outcome = legacy_rt.receive_rt(session, ente, rt, tipo_firma=tipo_firma, header=header,
                                       certificate=runtime.settings.rt_signing_cert or None)
        logs.bind_request(receipt_row=outcome.receipt_id, duplicate=outcome.duplicate)


def _today() -> date:
    # Due dates are Italian calendar dates.
    return datetime.now(receipts.NODE_TIMEZONE).date()
