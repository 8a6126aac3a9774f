"""Receipts of modello 3 (paSendRT / paSendRTV2): stored once however often they come, never dropped.

A receipt is proof that money was taken: whatever the state of its position it is kept, flagged when
something does not add up, and it completes the position. Shared helpers here also serve the legacy
RTs (legacy_rt.py): delivery counting, attempt closing, carrello settlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from gateway import faults, logs
from gateway.payments import notices, states
from storage.models import Carrello, Dovuto, Ente, PaymentAttempt, Receipt, ReceiptPayment
from storage.types import utcnow

if TYPE_CHECKING:
    from gateway.payments.node_side import IncomingReceipt

log = logs.get_logger(__name__)

# PaymentAttempt states written here (STARTED is the default of a new attempt).
ATTEMPT_STARTED = "STARTED"
ATTEMPT_PAID = "PAID"
ATTEMPT_NOT_PAID = "NOT_PAID"
ATTEMPT_EXPIRED = "EXPIRED"

# Receipt.flags
UNKNOWN_POSITION = "unknown_position"
ANNULLED = "annulled"
EXPIRED = "expired"
ALREADY_PAID = "already_paid"
AMOUNT_MISMATCH = "amount_mismatch"
STAND_IN = "stand_in"

# The node writes local Italian time without an offset in many messages.
NODE_TIMEZONE = ZoneInfo("Europe/Rome")


@dataclass(frozen=True)
class StoredReceipt:
    id: int
    duplicate: bool
    flags: tuple[str, ...] = ()


def aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=NODE_TIMEZONE) if value.tzinfo is None else value


def count_delivery(session: Session, fiscal_code: str, receipt_id: str) -> StoredReceipt | None:
    """A receipt already stored: one more delivery counted, nothing else touched."""
    now = utcnow()
    result = session.execute(update(Receipt)
                             .where(Receipt.fiscal_code == fiscal_code, Receipt.receipt_id == receipt_id)
                             .values(deliveries=Receipt.deliveries + 1, last_delivery_at=now, updated_at=now)
                             .returning(Receipt.id, Receipt.flags))
    row = result.first()
    if row is None:
        return None
    return StoredReceipt(id=row[0], duplicate=True, flags=tuple(row[1] or ()))


def insert_once(session: Session, receipt: Receipt) -> StoredReceipt | None:
    """Insert in a savepoint; None when a concurrent delivery of the same receipt won the unique constraint."""
    try:
        with session.begin_nested():
            session.add(receipt)
            session.flush()
    except IntegrityError:
        return None
    return StoredReceipt(id=receipt.id, duplicate=False, flags=tuple(receipt.flags or ()))


def complete(session: Session, dovuto: Dovuto, flags: list[str], *, reason: str, actor: str) -> None:
    """Money was taken for this position: complete it, flagging what it was before when that is odd."""
    if dovuto.state == states.COMPLETATO:
        flags.append(ALREADY_PAID)
        return
    if dovuto.state == states.ANNULLATO:
        flags.append(ANNULLED)
    elif dovuto.state == states.SCADUTO:
        flags.append(EXPIRED)
    states.move_dovuto(session, dovuto, states.COMPLETATO, reason=reason, actor=actor)


def release(session: Session, dovuto: Dovuto, *, reason: str, actor: str) -> None:
    """No money taken: a position held by a payment attempt is payable again."""
    if dovuto.state == states.PAGAMENTO_INIZIATO:
        states.move_dovuto(session, dovuto, states.INSERIMENTO_DOVUTO, reason=reason, actor=actor)


def settle_carrello(session: Session, carrello_id: int | None, *, none_paid: str = states.NON_PAGATO,
                    some_paid: str = states.PARZ_PAGATO, only_when_paid: bool = False) -> None:
    """PAGATO when all the carrello's dovuti are paid, ``some_paid`` when some, ``none_paid`` when none."""
    if carrello_id is None:
        return
    carrello = session.get(Carrello, carrello_id, with_for_update=True)
    if carrello is None:
        return
    dovuti_states = list(session.scalars(select(Dovuto.state).where(Dovuto.carrello_id == carrello_id)))
    paid = sum(1 for state in dovuti_states if state == states.COMPLETATO)
    if dovuti_states and paid == len(dovuti_states):
        target = states.PAGATO
    elif paid:
        target = some_paid
    elif only_when_paid:
        return
    else:
        target = none_paid
    move_carrello(carrello, target)
    if carrello.state == states.PAGATO:
        # Every receipt of a Checkout cart is in: nothing left for recovery to look for.
        session.execute(update(PaymentAttempt)
                        .where(PaymentAttempt.carrello_id == carrello_id, PaymentAttempt.model == "checkout",
                               PaymentAttempt.state == ATTEMPT_STARTED)
                        .values(state=ATTEMPT_PAID, updated_at=utcnow()))


def move_carrello(carrello: Carrello, target: str) -> None:
    # A receipt proves the payment started even when the landing page never said so.
    if target not in states.CART_TRANSITIONS.get(carrello.state, frozenset()) \
            and carrello.state in (states.NUOVO_CARRELLO, states.PREDISPOSTO):
        states.move_carrello(carrello, states.PAGAM_IN_CORSO)
    try:
        states.move_carrello(carrello, target)
    except states.IllegalTransition:
        # e.g. already PAGATO: the receipt is stored and flagged on its own row; the cart keeps its truth.
        log.info("carrello state kept", carrello_id=carrello.id, state=carrello.state, wanted=target)


def set_flags(row: Receipt, flags: list[str]) -> None:
    row.flags = list(flags)
    flag_modified(row, "flags")  # a JSON list equal to the loaded one would not be seen as a change


def close_attempt(session: Session, attempts: Iterable[PaymentAttempt], state: str, *, ccp: str | None = None) -> None:
    for attempt in attempts:
        attempt.state = state
        if ccp and not attempt.ccp:
            attempt.ccp = ccp[:35]


def _payer_json(subject) -> dict | None:
    if subject is None:
        return None
    return {"type": subject.type, "code": subject.code, "name": subject.full_name, "address": subject.street,
            "civic": subject.civic, "postal_code": subject.postal_code, "city": subject.city,
            "province": subject.province, "country": subject.country, "email": subject.email}


def _owner(session: Session, ente: Ente, fiscal_code: str) -> Ente | None:
    # A secondary beneficiary's station receives a copy of the primary's receipt: the position is the primary's.
    if fiscal_code == ente.fiscal_code:
        return ente
    return session.scalar(select(Ente).where(Ente.fiscal_code == fiscal_code))


def store_receipt(session: Session, ente: Ente, receipt: IncomingReceipt) -> StoredReceipt:
    """Store a paSendRT[V2] receipt once and settle its position; a repeated receipt only counts a delivery."""
    if not receipt.receipt_id or len(receipt.receipt_id) > 35:
        raise faults.Fault(faults.PAA_SEMANTICA, id=ente.fiscal_code, serial=0,
                           description="receiptId deve essere il payment token (1-35 caratteri)")
    if len(receipt.fiscal_code or "") != 11:
        raise faults.Fault(faults.PAA_SEMANTICA, id=ente.fiscal_code, serial=0,
                           description="fiscalCode della ricevuta di 11 cifre richiesto")
    if not receipt.iuv or len(receipt.iuv) > 35:
        raise faults.Fault(faults.PAA_SEMANTICA, id=ente.fiscal_code, serial=0,
                           description="creditorReferenceId di 1-35 caratteri richiesto")
    indexes = [t.id_transfer for t in receipt.transfers]
    if len(set(indexes)) != len(indexes):
        raise faults.Fault(faults.PAA_SEMANTICA, id=ente.fiscal_code, serial=0,
                           description="idTransfer ripetuto nella transferList")
    owner = _owner(session, ente, receipt.fiscal_code)
    flags: list[str] = []
    dovuto = None
    if owner is not None:
        iuv = notices.decode_notice(owner, receipt.notice_number or "") or receipt.iuv
        # The position is locked before the duplicate check: two receipts for one notice settle one by one.
        chosen = notices.pick(notices.positions_for_iuv(session, owner.id, iuv, for_update=True))
        dovuto = chosen[0] if chosen else None
    known = count_delivery(session, receipt.fiscal_code, receipt.receipt_id)
    if known is not None:
        log.info("receipt delivered again", receipt_id=receipt.receipt_id)
        return known

    if dovuto is None:
        flags.append(UNKNOWN_POSITION)
    elif receipt.outcome == "OK" and (receipt.iuv != dovuto.iuv or receipt.amount != notices.total_amount(dovuto)):
        flags.append(AMOUNT_MISMATCH)
    if receipt.stand_in:
        flags.append(STAND_IN)
    paid_at = aware(receipt.payment_datetime) or utcnow()
    row = Receipt(
        ente_id=(owner or ente).id, dovuto_id=dovuto.id if dovuto else None,
        carrello_id=dovuto.carrello_id if dovuto else None, fiscal_code=receipt.fiscal_code,
        receipt_id=receipt.receipt_id, iuv=receipt.iuv, notice_number=(receipt.notice_number or "")[:18] or None,
        ccp=receipt.receipt_id, source=receipt.version, outcome="OK" if receipt.outcome == "OK" else "KO",
        esito_code="0" if receipt.outcome == "OK" else "1", amount=receipt.amount, fee=receipt.fee,
        paid_at=paid_at, psp_id=(receipt.psp_id or "")[:35] or None, psp_name=(receipt.psp_name or "")[:140] or None,
        payer=_payer_json(receipt.payer or receipt.debtor), raw=receipt.raw or b"", flags=list(flags))
    outcome_date = (receipt.payment_datetime and aware(receipt.payment_datetime).date()) or date.today()
    for transfer in receipt.transfers:
        row.payments.append(ReceiptPayment(
            index=transfer.id_transfer, iuv=receipt.iuv, iur=receipt.receipt_id, amount=transfer.amount,
            fiscal_code_pa=(transfer.fiscal_code_pa or "")[:11] or None, iban=(transfer.iban or "")[:34] or None,
            causale=transfer.remittance, dati_specifici_riscossione=(transfer.category or "")[:140] or None,
            outcome_date=outcome_date))

    stored = insert_once(session, row)
    if stored is None:
        # A concurrent delivery stored it between our check and our insert: it is a duplicate.
        known = count_delivery(session, receipt.fiscal_code, receipt.receipt_id)
        if known is None:  # pragma: no cover - the constraint that failed names this very row
            raise faults.system_error("ricevuta non memorizzata", ente.fiscal_code)
        return known
    if dovuto is not None:
        _apply(session, dovuto, receipt, flags)
        set_flags(row, flags)  # the state-dependent flags are known only now
    if flags:
        log.warning("receipt stored with flags", receipt_id=receipt.receipt_id, flags=flags)
    return StoredReceipt(id=stored.id, duplicate=False, flags=tuple(flags))


def _apply(session: Session, dovuto: Dovuto, receipt: IncomingReceipt, flags: list[str]) -> None:
    actor = receipt.version
    attempt = session.scalar(select(PaymentAttempt).where(PaymentAttempt.dovuto_id == dovuto.id,
                                                          PaymentAttempt.model == "psp")
                             .order_by(PaymentAttempt.id.desc()).limit(1))
    if receipt.outcome == "OK":
        complete(session, dovuto, flags, reason=f"ricevuta {receipt.receipt_id} ({receipt.version})", actor=actor)
        close_attempt(session, [attempt] if attempt else [], ATTEMPT_PAID, ccp=receipt.receipt_id)
        settle_carrello(session, dovuto.carrello_id, only_when_paid=True)
    else:
        release(session, dovuto, reason=f"ricevuta negativa {receipt.receipt_id}", actor=actor)
        close_attempt(session, [attempt] if attempt and attempt.state == ATTEMPT_STARTED else [], ATTEMPT_NOT_PAID,
                      ccp=receipt.receipt_id)


def receipts_of(session: Session, fiscal_code: str, iuv: str) -> list[Receipt]:
    return list(session.scalars(select(Receipt).where(Receipt.fiscal_code == fiscal_code, Receipt.iuv == iuv)
                                .order_by(Receipt.id)))
