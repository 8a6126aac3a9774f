"""Receipts: the rules every receipt follows, whichever model brought it, and their shared helpers.

A receipt is proof that money was taken: whatever the state of its position it is kept, flagged when
something does not add up, and it completes the position. The helpers here (delivery counting, attempt
closing, carrello settlement) serve the legacy RTs (legacy_rt.py) and recovery; modello 3 receipts are
stored by psp_receipts.py with direct statements, following the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from gateway import logs
from gateway.payments import states
from storage.models import Carrello, Dovuto, PaymentAttempt, Receipt
from storage.types import utcnow

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


def receipts_of(session: Session, fiscal_code: str, iuv: str) -> list[Receipt]:
    return list(session.scalars(select(Receipt).where(Receipt.fiscal_code == fiscal_code, Receipt.iuv == iuv)
                                .order_by(Receipt.id)))
