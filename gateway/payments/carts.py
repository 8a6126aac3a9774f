"""Payment sessions (carrelli): created by the SIL operations, opened with the node from the landing page,
closed by the payer's return. Only receipts ever make a cart paid.

The node is called outside any database transaction (SQLite holds its write lock for a whole transaction):
read and prepare, call, then write the outcome after re-reading the rows.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import logs
from gateway.node.client import NodeClient
from gateway.node.model import CartInfo, NodeError, Notice, Payer, PreparedRpt
from gateway.payments import states
from gateway.runtime import Runtime
from gateway.urls import public_url
from storage.models import Carrello, Dovuto, Ente, PaymentAttempt, Receipt, TipoDovuto
from storage.types import utcnow

log = logs.get_logger(__name__)

MAX_NOTICES = 5  # both a Checkout cart and nodoInviaCarrelloRPT hold at most 5 positions
ESTERNO_ANONIMO = "ESTERNO_ANONIMO"
ESTERNO_ANONIMO_MULTIENTE = "ESTERNO_ANONIMO_MULTIENTE"
AVVISO_ANONIMO_ENTE = "AVVISO_ANONIMO_ENTE"
ROME = ZoneInfo("Europe/Rome")
# How long an opened attempt is expected to take before recovery/expiry look at it.
ATTEMPT_LIFETIME = {"checkout": timedelta(minutes=30), "rpt": timedelta(minutes=60)}
# Attempt states written here: STARTED (accepted by the node, outcome pending), REFUSED (node said KO).
ATTEMPT_STARTED = "STARTED"
ATTEMPT_REFUSED = "REFUSED"


class CartNotPayable(Exception):
    """The session cannot be paid (unknown, already paid, given up, a position no longer payable)."""

    def __init__(self, reason: str, *, state: str | None = None, http_status: int = 409) -> None:
        super().__init__(reason)
        self.reason = reason
        self.state = state
        self.http_status = http_status


# --- creation -------------------------------------------------------------------------------------

def new_id_session(now: datetime | None = None) -> str:
    """MyPay's format: a random UUID whose last group is the time yyMMddHHmmssSSS, read as decimal, in hex.

    MyPay reads the creation time back from it; the gateway keeps the cart row, so it needs not.
    """
    local = (now or utcnow()).astimezone(ROME)
    stamp = int(local.strftime("%y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}")
    return str(uuid.uuid4()).rsplit("-", 1)[0] + "-" + format(stamp, "x")


def id_session_time(id_session: str) -> datetime | None:
    try:
        text = str(int(id_session.rsplit("-", 1)[1], 16))
        return datetime.strptime(text, "%y%m%d%H%M%S%f").replace(tzinfo=ROME)
    except (IndexError, ValueError):
        return None


def create_carrello(session: Session, ente: Ente, *, kind: str, return_url: str | None,
                    show_mypay: str | None = None, payer: dict | None = None) -> Carrello:
    carrello = Carrello(id_session=new_id_session(), ente_id=ente.id, kind=kind, state=states.PREDISPOSTO,
                        payment_model=ente.payment_model or "checkout", return_url=(return_url or "").strip() or None,
                        show_mypay=show_mypay, payer=payer)
    session.add(carrello)
    session.flush()
    return carrello


def landing_url(runtime: Runtime, id_session: str) -> str:
    return public_url(runtime.settings, f"/pagamento/{id_session}")


# --- opening the payment with the node -------------------------------------------------------------

@dataclass(frozen=True)
class _Prepared:
    carrello_id: int
    id_session: str
    model: str
    existing_url: str | None
    cart: CartInfo | None
    notices: list[Notice]


def _prepare(session: Session, runtime: Runtime, carrello: Carrello | None) -> _Prepared:
    if carrello is None:
        raise CartNotPayable("sessione di pagamento sconosciuta / unknown payment session", http_status=404)
    if carrello.state not in (states.PREDISPOSTO, states.PAGAM_IN_CORSO):
        raise CartNotPayable(_closed_reason(carrello.state), state=carrello.state, http_status=410)
    # A legacy cart already accepted by the node keeps its page: a second nodoInviaCarrelloRPT would be refused.
    if carrello.payment_model == "rpt" and carrello.state == states.PAGAM_IN_CORSO and carrello.payment_url:
        return _Prepared(carrello.id, carrello.id_session, "rpt", carrello.payment_url, None, [])
    dovuti = sorted(carrello.dovuti, key=lambda d: d.id)
    if not dovuti:
        raise CartNotPayable("nessuna posizione da pagare / nothing to pay", http_status=410)
    if len(dovuti) > MAX_NOTICES:
        raise CartNotPayable(f"al massimo {MAX_NOTICES} posizioni / at most {MAX_NOTICES} positions")
    for dovuto in dovuti:
        if dovuto.state not in states.PAYABLE or not dovuto.iuv or not dovuto.notice_number:
            raise CartNotPayable("posizione non più pagabile / a position is no longer payable",
                                 state=dovuto.state, http_status=410)
    notices = [_notice(session, dovuto) for dovuto in dovuti]
    settings = runtime.settings
    base = f"/pagamento/{carrello.id_session}/esito"
    cart = CartInfo(id_session=carrello.id_session, payment_model=carrello.payment_model or "checkout",
                    return_ok=public_url(settings, base, esito="ok"),
                    return_cancel=public_url(settings, base, esito="cancel"),
                    return_error=public_url(settings, base, esito="error"),
                    email=next((d.payer_email for d in dovuti if d.payer_email), None))
    return _Prepared(carrello.id, carrello.id_session, cart.payment_model, None, cart, notices)


def _notice(session: Session, dovuto: Dovuto) -> Notice:
    ente = session.get(Ente, dovuto.ente_id)
    tipo = session.get(TipoDovuto, dovuto.tipo_dovuto_id) if dovuto.tipo_dovuto_id else None
    assert ente is not None
    return Notice(
        dovuto_id=dovuto.id, fiscal_code=ente.fiscal_code, company_name=ente.name, notice_number=dovuto.notice_number,
        iuv=dovuto.iuv, amount=dovuto.amount, description=dovuto.causale,
        dati_specifici_riscossione=dovuto.dati_specifici_riscossione,
        payer=Payer(dovuto.payer_type, dovuto.payer_code, dovuto.payer_name, dovuto.payer_address, dovuto.payer_civic,
                    dovuto.payer_postal_code, dovuto.payer_city, dovuto.payer_province, dovuto.payer_country,
                    dovuto.payer_email),
        iban=tipo.iban if tipo else None, postal_iban=bool(tipo and tipo.postal_iban),
        tipo_versamento=dovuto.tipo_versamento or "ALL", marca_bollo=dovuto.marca_bollo, secondary=dovuto.secondary)


def _closed_reason(state: str) -> str:
    if state in (states.PAGATO, states.PARZ_PAGATO):
        return "pagamento già eseguito / payment already made"
    if state == states.ABORT:
        return "pagamento annullato / payment cancelled"
    if state == states.CART_SCADUTO:
        return "sessione scaduta / session expired"
    return "sessione di pagamento chiusa / payment session closed"


def open_payment(runtime: Runtime, client: NodeClient, id_session: str) -> str:
    """The node's page for this session. NodeError leaves every position payable, so a retry works."""
    with runtime.database.transaction() as session:
        carrello = session.scalar(select(Carrello).where(Carrello.id_session == id_session))
        prepared = _prepare(session, runtime, carrello)
    if prepared.existing_url:
        return prepared.existing_url
    assert prepared.cart is not None

    recorded: list[str] = []  # CCPs of the RPTs written for this call

    def record_rpts(cart_id: str, rpts: list[PreparedRpt]) -> None:
        # Written before the RPTs leave: an RT (or the recovery job) can always find its RPT, even if the
        # answer to nodoInviaCarrelloRPT is lost.
        with runtime.database.transaction() as session:
            for item in rpts:
                session.add(PaymentAttempt(
                    ente_id=_ente_id(session, item.fiscal_code), carrello_id=prepared.carrello_id,
                    dovuto_id=item.dovuto_id, model="rpt", iuv=item.iuv, ccp=item.ccp,
                    request_message_id=item.request_message_id, rpt_xml=item.xml, state=ATTEMPT_STARTED,
                    expires_at=utcnow() + ATTEMPT_LIFETIME["rpt"]))
        recorded.extend(item.ccp for item in rpts)

    try:
        opened = client.open_payment(prepared.cart, prepared.notices, on_prepared=record_rpts)
    except NodeError as exc:
        log.warning("node refused payment", id_session=id_session, detail=exc.detail, transport=exc.transport)
        if recorded:
            _mark_rpt_attempts(runtime, prepared.carrello_id, recorded, exc)
        raise
    with runtime.database.transaction() as session:
        carrello = session.get(Carrello, prepared.carrello_id)
        assert carrello is not None
        now = utcnow()
        if prepared.model == "rpt":
            for dovuto in carrello.dovuti:
                if dovuto.state == states.INSERIMENTO_DOVUTO:
                    states.move_dovuto(session, dovuto, states.PAGAMENTO_INIZIATO,
                                       reason=f"nodoInviaCarrelloRPT {opened.cart_id} accettato", actor="landing")
            carrello.node_cart_id = opened.cart_id
        else:
            # Checkout does not lock the positions (the node's paGetPayment does): they stay payable.
            for notice in prepared.notices:
                session.add(PaymentAttempt(ente_id=_ente_id(session, notice.fiscal_code), carrello_id=carrello.id,
                                           dovuto_id=notice.dovuto_id, model="checkout", iuv=notice.iuv,
                                           state=ATTEMPT_STARTED, expires_at=now + ATTEMPT_LIFETIME["checkout"]))
        if carrello.state == states.PREDISPOSTO:
            states.move_carrello(carrello, states.PAGAM_IN_CORSO)
        carrello.payment_url = opened.url
    return opened.url


def _ente_id(session: Session, fiscal_code: str) -> int:
    return session.scalar(select(Ente.id).where(Ente.fiscal_code == fiscal_code))  # type: ignore[return-value]


def _mark_rpt_attempts(runtime: Runtime, carrello_id: int, ccps: list[str], error: NodeError) -> None:
    """A refused cart's RPTs are closed; after a lost answer they stay open for the recovery job to ask."""
    with runtime.database.transaction() as session:
        attempts = session.scalars(select(PaymentAttempt).where(
            PaymentAttempt.carrello_id == carrello_id, PaymentAttempt.model == "rpt", PaymentAttempt.ccp.in_(ccps)))
        for attempt in attempts:
            attempt.last_error = error.detail[:2000]
            if not error.transport:
                attempt.state = ATTEMPT_REFUSED


# --- a notice paid from its IUV (PosizioniAperte's urlPagamento, VerificaAvviso) --------------------

def carrello_for_notice(session: Session, ente: Ente, dovuti: list[Dovuto], *, return_url: str | None) -> Carrello:
    """A new AVVISO_ANONIMO_ENTE cart for existing positions; the positions follow the newest cart."""
    carrello = create_carrello(session, ente, kind=AVVISO_ANONIMO_ENTE, return_url=return_url, show_mypay="SHORT",
                               payer=payer_of(dovuti[0]))
    for dovuto in dovuti:
        dovuto.carrello_id = carrello.id
    session.flush()
    return carrello


def reusable_carrello(dovuti: list[Dovuto]) -> Carrello | None:
    """The notice's own open landing cart, so that reloading the payment link does not pile up carts."""
    carts = {d.carrello_id for d in dovuti}
    first = dovuti[0].carrello
    if len(carts) == 1 and first is not None and first.kind == AVVISO_ANONIMO_ENTE \
            and first.state in (states.PREDISPOSTO, states.PAGAM_IN_CORSO) and first.payment_model != "rpt" \
            and len(first.dovuti) == len(dovuti):
        return first
    return None


def payer_of(dovuto) -> dict:  # type: ignore[no-untyped-def]
    return {"type": dovuto.payer_type, "code": dovuto.payer_code, "name": dovuto.payer_name,
            "email": dovuto.payer_email}


# --- the payer comes back from the node -------------------------------------------------------------

# Checkout returns ok|error|cancel; the legacy node OK|ERROR|ANNULLO (case-insensitive here).
ESITI = {"ok": "OK", "error": "KO", "cancel": "ANNULLATO", "annullo": "ANNULLATO", "ko": "KO"}


@dataclass(frozen=True)
class Return:
    id_session: str
    esito: str  # OK | KO | ANNULLATO, as the ente's return URL receives it
    return_url: str | None
    state: str


def payer_returned(runtime: Runtime, id_session: str, esito: str) -> Return | None:
    """Record the payer's return. Never proof of payment: only a cancel with no receipt gives the cart up."""
    outcome = ESITI.get((esito or "").lower(), "KO")
    with runtime.database.transaction() as session:
        carrello = session.scalar(select(Carrello).where(Carrello.id_session == id_session))
        if carrello is None:
            return None
        if outcome == "ANNULLATO" and carrello.state in (states.PREDISPOSTO, states.PAGAM_IN_CORSO) \
                and not _has_receipts(session, carrello):
            states.move_carrello(carrello, states.ABORT)
            log.info("payer cancelled", id_session=id_session)
        return Return(carrello.id_session, outcome, carrello.return_url, carrello.state)


def _has_receipts(session: Session, carrello: Carrello) -> bool:
    ids = [d.id for d in carrello.dovuti]
    query = select(Receipt.id).where((Receipt.carrello_id == carrello.id) | (Receipt.dovuto_id.in_(ids))).limit(1)
    return session.scalar(query) is not None
