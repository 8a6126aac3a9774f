"""Modello 3 receipts (paSendRT / paSendRTV2): stored once however often they come, never dropped.

The node delivers one per payment and retries until it gets OK, so this is the hot write of the gateway.
It runs as a handful of direct statements (storage.direct) inside the call's transaction, in this order:
lock the position, insert the receipt with its final flags (a repeated one only counts a delivery), settle
the position and its payment attempt. The rarer cart settlement reuses the ORM helpers of receipts.py in the same
transaction. The rules are those of receipts.py, which also serves the legacy RTs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from gateway import faults, logs
from gateway.payments import notices, states
from gateway.payments.receipts import (ALREADY_PAID, AMOUNT_MISMATCH, ANNULLED, ATTEMPT_NOT_PAID, ATTEMPT_PAID,
                                       ATTEMPT_STARTED, EXPIRED, STAND_IN, UNKNOWN_POSITION, StoredReceipt, aware,
                                       settle_carrello)
from storage.db import direct_in
from storage.direct import Direct, Statement
from storage.models import Dovuto, DovutoTransition, Ente, PaymentAttempt, Receipt, ReceiptPayment
from storage.types import utcnow

if TYPE_CHECKING:
    from gateway.payments.node_side import IncomingReceipt

log = logs.get_logger(__name__)

_OWNER = Statement(select(Ente.id, Ente.fiscal_code, Ente.aux_digit, Ente.segregation_code, Ente.application_code)
                   .where(Ente.fiscal_code == bindparam("fiscal_code")))
_COUNT_DELIVERY = Statement(
    update(Receipt).where(Receipt.fiscal_code == bindparam("fiscal_code"), Receipt.receipt_id == bindparam("rid"))
    .values(deliveries=Receipt.deliveries + 1, last_delivery_at=bindparam("now"), updated_at=bindparam("now"))
    .returning(Receipt.id, Receipt.flags))
_RECEIPT_VALUES: dict[str, Any] = {name: bindparam(name) for name in (
    "ente_id", "dovuto_id", "carrello_id", "fiscal_code", "receipt_id", "iuv", "notice_number", "ccp", "source",
    "outcome", "esito_code", "amount", "fee", "paid_at", "psp_id", "psp_name", "payer", "raw", "flags")}
_RECEIPT_VALUES.update(deliveries=1, last_delivery_at=bindparam("now"), created_at=bindparam("now"),
                       updated_at=bindparam("now"))
# A receipt already stored (a repeated or concurrent delivery) hits the unique constraint: no row comes back.
_INSERT_RECEIPT = Statement({
    name: dialect.insert(Receipt).values(**_RECEIPT_VALUES)
    .on_conflict_do_nothing(index_elements=["fiscal_code", "receipt_id"]).returning(Receipt.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))})
_INSERT_PAYMENT = Statement(ReceiptPayment.__table__.insert().values(**{name: bindparam(name) for name in (
    "receipt_id", "index", "iuv", "iur", "amount", "fiscal_code_pa", "iban", "causale", "dati_specifici_riscossione",
    "outcome_date")}).inline())
_MOVE_DOVUTO = Statement(
    update(Dovuto).where(Dovuto.id == bindparam("dovuto_id"), Dovuto.state == bindparam("from_state"))
    .values(state=bindparam("to_state"), updated_at=bindparam("now"),
            paid_at=func.coalesce(Dovuto.paid_at, bindparam("paid_at", type_=Dovuto.paid_at.type))))
_AUDIT = Statement(DovutoTransition.__table__.insert().values(
    dovuto_id=bindparam("dovuto_id"), from_state=bindparam("from_state"), to_state=bindparam("to_state"),
    at=bindparam("now"), reason=bindparam("reason"), actor=bindparam("actor")).inline())
_LATEST_ATTEMPT = (select(PaymentAttempt.id).where(PaymentAttempt.dovuto_id == bindparam("dovuto_id"),
                                                   PaymentAttempt.model == "psp")
                   .order_by(PaymentAttempt.id.desc()).limit(1).scalar_subquery())
_CLOSE_ATTEMPT = (update(PaymentAttempt).where(PaymentAttempt.id == _LATEST_ATTEMPT)
                  .values(state=bindparam("state"), updated_at=bindparam("now"),
                          ccp=func.coalesce(func.nullif(PaymentAttempt.ccp, ""), bindparam("ccp"))))
_CLOSE_LATEST = Statement(_CLOSE_ATTEMPT)
_CLOSE_LATEST_STARTED = Statement(_CLOSE_ATTEMPT.where(PaymentAttempt.state == ATTEMPT_STARTED))


def _payer_json(subject) -> dict | None:
    if subject is None:
        return None
    return {"type": subject.type, "code": subject.code, "name": subject.full_name, "address": subject.street,
            "civic": subject.civic, "postal_code": subject.postal_code, "city": subject.city,
            "province": subject.province, "country": subject.country, "email": subject.email}


def _check(ente: Ente, receipt: IncomingReceipt) -> None:
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


def _owner(db: Direct, ente: Ente, fiscal_code: str) -> Any:
    # A secondary beneficiary's station receives a copy of the primary's receipt: the position is the primary's.
    if fiscal_code == ente.fiscal_code:
        return ente
    row = db.first(_OWNER, fiscal_code=fiscal_code)
    return _OwnerRow(*row) if row is not None else None


@dataclass(frozen=True)
class _OwnerRow:
    """The fields of an ente that decode_notice reads."""

    id: int
    fiscal_code: str
    aux_digit: str
    segregation_code: str | None
    application_code: str | None


def _count_delivery(db: Direct, fiscal_code: str, receipt_id: str) -> StoredReceipt | None:
    row = db.first(_COUNT_DELIVERY, fiscal_code=fiscal_code, rid=receipt_id, now=utcnow())
    if row is None:
        return None
    return StoredReceipt(id=row[0], duplicate=True, flags=tuple(row[1] or ()))


def _target(dovuto: notices.Position, outcome_ok: bool, flags: list[str]) -> str | None:
    """The state a receipt moves its position to (None: it stays), adding the flags its state deserves."""
    if outcome_ok:
        if dovuto.state == states.COMPLETATO:
            flags.append(ALREADY_PAID)
            return None
        if dovuto.state == states.ANNULLATO:
            flags.append(ANNULLED)
        elif dovuto.state == states.SCADUTO:
            flags.append(EXPIRED)
        target = states.COMPLETATO
    elif dovuto.state == states.PAGAMENTO_INIZIATO:
        target = states.INSERIMENTO_DOVUTO  # no money taken: payable again
    else:
        return None
    if target not in states.DOVUTO_TRANSITIONS.get(dovuto.state, frozenset()):
        raise states.IllegalTransition(f"dovuto {dovuto.id}: {dovuto.state} -> {target} not allowed")
    return target


def store_receipt(session: Session, ente: Ente, receipt: IncomingReceipt) -> StoredReceipt:
    """Store a paSendRT[V2] receipt once and settle its position; a repeated receipt only counts a delivery."""
    _check(ente, receipt)
    db = direct_in(session)
    owner = _owner(db, ente, receipt.fiscal_code)
    dovuto = None
    if owner is not None:
        iuv = notices.decode_notice(owner, receipt.notice_number or "") or receipt.iuv
        # The position is locked before the insert: two receipts for one notice settle one by one.
        chosen = notices.pick(notices.positions_for_iuv(db, owner.id, iuv, for_update=True))
        dovuto = chosen[0] if chosen else None

    ok = receipt.outcome == "OK"
    flags: list[str] = []
    if dovuto is None:
        flags.append(UNKNOWN_POSITION)
    elif ok and (receipt.iuv != dovuto.iuv or receipt.amount != notices.total_amount(dovuto)):
        flags.append(AMOUNT_MISMATCH)
    if receipt.stand_in:
        flags.append(STAND_IN)
    target = _target(dovuto, ok, flags) if dovuto is not None else None

    now = utcnow()
    paid_at = aware(receipt.payment_datetime) or now
    stored = db.first(
        _INSERT_RECEIPT, ente_id=(owner or ente).id, dovuto_id=dovuto.id if dovuto else None,
        carrello_id=dovuto.carrello_id if dovuto else None, fiscal_code=receipt.fiscal_code,
        receipt_id=receipt.receipt_id, iuv=receipt.iuv, notice_number=(receipt.notice_number or "")[:18] or None,
        ccp=receipt.receipt_id, source=receipt.version, outcome="OK" if ok else "KO", esito_code="0" if ok else "1",
        amount=receipt.amount, fee=receipt.fee, paid_at=paid_at, psp_id=(receipt.psp_id or "")[:35] or None,
        psp_name=(receipt.psp_name or "")[:140] or None, payer=_payer_json(receipt.payer or receipt.debtor),
        raw=receipt.raw or b"", flags=list(flags), now=now)
    if stored is None:
        # Stored before (the node repeats a receipt until it has our OK): only the delivery is counted. The
        # insert tells, not a lookup first: most receipts are new, and this saves them a round trip.
        known = _count_delivery(db, receipt.fiscal_code, receipt.receipt_id)
        if known is None:  # pragma: no cover - the constraint that failed names this very row
            raise faults.system_error("ricevuta non memorizzata", ente.fiscal_code)
        log.info("receipt delivered again", receipt_id=receipt.receipt_id)
        return known
    outcome_date = paid_at.date() if receipt.payment_datetime else date.today()
    with db.pipeline():  # nothing below is read back: one round trip for all of it
        for transfer in receipt.transfers:
            db.run(_INSERT_PAYMENT, receipt_id=stored[0], index=transfer.id_transfer, iuv=receipt.iuv,
                   iur=receipt.receipt_id, amount=transfer.amount,
                   fiscal_code_pa=(transfer.fiscal_code_pa or "")[:11] or None,
                   iban=(transfer.iban or "")[:34] or None, causale=transfer.remittance,
                   dati_specifici_riscossione=(transfer.category or "")[:140] or None, outcome_date=outcome_date)
        if dovuto is not None:
            _settle(db, dovuto, receipt, target, now)
    if dovuto is not None and dovuto.carrello_id is not None and ok:
        settle_carrello(session, dovuto.carrello_id, only_when_paid=True)
    if flags:
        log.warning("receipt stored with flags", receipt_id=receipt.receipt_id, flags=flags)
    return StoredReceipt(id=stored[0], duplicate=False, flags=tuple(flags))


def _settle(db: Direct, dovuto: notices.Position, receipt: IncomingReceipt, target: str | None, now: Any) -> None:
    ok = receipt.outcome == "OK"
    if target is not None:
        reason = (f"ricevuta {receipt.receipt_id} ({receipt.version})" if ok
                  else f"ricevuta negativa {receipt.receipt_id}")
        db.run(_MOVE_DOVUTO, dovuto_id=dovuto.id, from_state=dovuto.state, to_state=target, now=now,
               paid_at=now if target == states.COMPLETATO else None)
        db.run(_AUDIT, dovuto_id=dovuto.id, from_state=dovuto.state, to_state=target, now=now,
               reason=reason[:255], actor=receipt.version[:64])
    # The latest PSP attempt on the position: paid whatever its state, not paid only while it was running.
    db.run(_CLOSE_LATEST if ok else _CLOSE_LATEST_STARTED, dovuto_id=dovuto.id,
           state=ATTEMPT_PAID if ok else ATTEMPT_NOT_PAID, now=now, ccp=receipt.receipt_id[:35])
