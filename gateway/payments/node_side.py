"""What the pagoPA node asks of the ente: verify and get a notice, deliver receipts (both models).

Every call is first checked against the gateway's identity on the node (idPA served here, idBrokerPA,
idStation), which MyPay does not do but pagoPA's fault codes exist for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import faults, logs
from gateway.runtime import Runtime
from storage.models import Ente


@dataclass(frozen=True)
class NodeCall:
    """The identity fields every paForNode request carries."""

    id_pa: str | None
    id_broker: str | None
    id_station: str | None


@dataclass(frozen=True)
class Subject:
    type: str
    code: str
    full_name: str
    street: str | None = None
    civic: str | None = None
    postal_code: str | None = None
    city: str | None = None
    province: str | None = None
    country: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Transfer:
    id_transfer: int
    amount: Decimal
    fiscal_code_pa: str
    remittance: str
    category: str
    iban: str | None = None
    company_name: str | None = None
    marca_bollo: dict[str, str] | None = None  # tipoBollo, hashDocumento, provinciaResidenza
    mbd_attachment: bytes | None = None
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PaymentOption:
    amount: Decimal
    due_date: date | None
    description: str
    fiscal_code: str
    company_name: str
    office_name: str | None = None
    all_ccp: bool = False


@dataclass(frozen=True)
class PaymentData:
    iuv: str
    amount: Decimal
    due_date: date
    description: str
    company_name: str
    debtor: Subject
    transfers: list[Transfer]
    office_name: str | None = None
    retention_date: datetime | None = None


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
class RtHeader:
    """intestazionePPT of paaInviaRT."""

    broker: str | None
    station: str | None
    dominio: str | None
    iuv: str | None
    ccp: str | None


def check_station(session: Session, runtime: Runtime, call: NodeCall) -> Ente:
    """The ente the node is calling about, if this gateway serves it through this broker and station."""
    settings = runtime.settings
    logs.bind_request(id_pa=call.id_pa)
    ente = session.scalar(select(Ente).where(Ente.fiscal_code == (call.id_pa or "")))
    if ente is None or not ente.enabled or ente.state == "INSERITO":
        raise faults.Fault(faults.PAA_ID_DOMINIO_ERRATO, id=call.id_pa or "",
                           description=f"dominio {call.id_pa} non servito da questa stazione")
    if call.id_broker != settings.broker_id:
        raise faults.Fault(faults.PAA_ID_INTERMEDIARIO_ERRATO, id=ente.fiscal_code,
                           description=f"intermediario {call.id_broker} non corrispondente")
    if call.id_station != settings.station_id:
        raise faults.Fault(faults.PAA_STAZIONE_INT_ERRATA, id=ente.fiscal_code,
                           description=f"stazione {call.id_station} non corrispondente")
    return ente


def _not_yet(operation: str, fiscal_code: str) -> faults.Fault:
    return faults.system_error(f"{operation} non ancora disponibile su questo gateway", fiscal_code)


def verify_notice(runtime: Runtime, call: NodeCall, fiscal_code: str, notice_number: str) -> PaymentOption:
    with runtime.database.transaction() as session:
        ente = check_station(session, runtime, call)
    raise _not_yet("paVerifyPaymentNotice", ente.fiscal_code)


def get_payment(runtime: Runtime, call: NodeCall, fiscal_code: str, notice_number: str, *,
                amount: Decimal | None, v2: bool) -> PaymentData:
    with runtime.database.transaction() as session:
        ente = check_station(session, runtime, call)
    raise _not_yet("paGetPayment", ente.fiscal_code)


def send_receipt(runtime: Runtime, call: NodeCall, receipt: IncomingReceipt) -> None:
    with runtime.database.transaction() as session:
        ente = check_station(session, runtime, call)
    raise _not_yet(receipt.version, ente.fiscal_code)


def demand_notice(runtime: Runtime, call: NodeCall, service_id: str | None, datas: bytes | None) -> None:
    with runtime.database.transaction() as session:
        ente = check_station(session, runtime, call)
    raise _not_yet("paDemandPaymentNotice", ente.fiscal_code)


def invia_rt(runtime: Runtime, header: RtHeader, tipo_firma: str | None, rt: bytes | None) -> None:
    with runtime.database.transaction() as session:
        ente = check_station(session, runtime, NodeCall(header.dominio, header.broker, header.station))
    raise _not_yet("paaInviaRT", ente.fiscal_code)
