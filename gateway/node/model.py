"""What the node client needs to open a payment, as plain values (no ORM, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


class NodeError(Exception):
    """The node refused the payment or could not be reached; ``detail`` is safe to log, never shown raw."""

    def __init__(self, detail: str, *, code: str | None = None, transport: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        # True when the outcome is unknown (timeout, connection reset): the node may have accepted it.
        self.transport = transport


@dataclass(frozen=True)
class Payer:
    type: str  # F | G
    code: str
    name: str
    address: str | None = None
    civic: str | None = None
    postal_code: str | None = None
    city: str | None = None
    province: str | None = None
    country: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Notice:
    """One payable position of the cart: one Checkout paymentNotice, or one RPT."""

    dovuto_id: int
    fiscal_code: str  # the creditor ente's
    company_name: str
    notice_number: str
    iuv: str
    amount: Decimal
    description: str
    dati_specifici_riscossione: str
    payer: Payer
    iban: str | None = None
    postal_iban: bool = False
    tipo_versamento: str = "ALL"
    marca_bollo: dict[str, str] | None = None
    secondary: dict | None = None


@dataclass(frozen=True)
class CartInfo:
    id_session: str
    payment_model: str  # checkout | rpt
    return_ok: str
    return_cancel: str
    return_error: str
    email: str | None = None


@dataclass(frozen=True)
class PreparedRpt:
    """An RPT ready to be sent, kept by the caller so an RT can be matched to it later."""

    dovuto_id: int
    fiscal_code: str
    iuv: str
    ccp: str
    request_message_id: str
    xml: bytes


@dataclass(frozen=True)
class OpenedPayment:
    url: str
    cart_id: str | None = None  # identificativoCarrello sent to the node (legacy)
    rpts: list[PreparedRpt] = field(default_factory=list)
    opened_at: datetime | None = None
