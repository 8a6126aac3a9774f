"""Reconciliation: each reported payment matched with its receipt on (IUV, IUR[, index]), in batches by IUV set.

Modello 3: IUR = receiptId, index = idTransfer; legacy: IUR from the RT, index = indiceDatiSingoloPagamento.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Sequence

from sqlalchemy import ARRAY, String, and_, any_, cast, literal, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Receipt, ReceiptPayment, RendicontazioneFlow, RendicontazioneRow

MATCHED = "matched"
NO_RECEIPT = "no_receipt"
AMOUNT_MISMATCH = "amount_mismatch"
MATCH_STATES = (MATCHED, NO_RECEIPT, AMOUNT_MISMATCH)

# Large enough to amortise a round trip, small enough for every driver's bound-parameter limit.
BATCH = 2000


@dataclass(frozen=True, slots=True)
class Candidate:
    """A receipt transfer that may be the one a reported payment refers to."""

    id: int
    iuv: str
    iur: str
    index: int | None
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str
    receipt_payment_id: int | None


Index = dict[tuple[str, str], list[Candidate]]


def classify(iuv: str, iur: str, index: int | None, amount: Decimal, index_by_key: Index) -> Outcome:
    """The match of one reported payment among the receipt transfers known for its (IUV, IUR)."""
    candidates = index_by_key.get((iuv, iur), [])
    if not candidates:
        return Outcome(NO_RECEIPT, None)
    chosen: Candidate | None = None
    if index is not None:
        chosen = next((c for c in candidates if c.index == index), None)
    if chosen is None:
        if index is not None and len(candidates) > 1:
            # Several transfers and none with the reported index: say which one we cannot tell.
            return Outcome(NO_RECEIPT, None)
        # No index in the flow (optional in the XSD), or a single transfer numbered differently: by amount.
        chosen = next((c for c in candidates if c.amount == amount), candidates[0])
    return Outcome(MATCHED if chosen.amount == amount else AMOUNT_MISMATCH, chosen.id)


def build_index(candidates: Iterable[Candidate]) -> Index:
    index: Index = {}
    for candidate in candidates:
        index.setdefault((candidate.iuv, candidate.iur), []).append(candidate)
    return index


def lookup(session: Session, ente_id: int, fiscal_code: str, iuvs: Sequence[str]) -> Index:
    """Receipt transfers (positive receipts) of this ente for a set of IUVs, in one query."""
    if not iuvs:
        return {}
    wanted = sorted(set(iuvs))
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter: no 2,000-placeholder statement to build, parse and plan for every batch.
        condition = ReceiptPayment.iuv == any_(cast(literal(wanted, ARRAY(String)), ARRAY(String)))
    else:
        condition = ReceiptPayment.iuv.in_(wanted)
    query = (select(ReceiptPayment.id, ReceiptPayment.iuv, ReceiptPayment.iur, ReceiptPayment.index,
                    ReceiptPayment.amount)
             .join(Receipt, Receipt.id == ReceiptPayment.receipt_id)
             .where(condition, Receipt.outcome == "OK",
                    or_(Receipt.ente_id == ente_id, Receipt.fiscal_code == fiscal_code,
                        ReceiptPayment.fiscal_code_pa == fiscal_code)))
    return build_index(Candidate(*row) for row in session.execute(query))


def rematch(session: Session, ente_id: int, fiscal_code: str) -> int:
    """Match again the rows of current flows still without a receipt (the receipt may have come late)."""
    pending = session.execute(
        select(RendicontazioneRow.id, RendicontazioneRow.iuv, RendicontazioneRow.iur, RendicontazioneRow.index,
               RendicontazioneRow.amount)
        .join(RendicontazioneFlow, RendicontazioneFlow.id == RendicontazioneRow.flow_id)
        .where(RendicontazioneFlow.ente_id == ente_id, RendicontazioneFlow.current.is_(True),
               RendicontazioneRow.match_state == NO_RECEIPT)).all()
    changed = 0
    for start in range(0, len(pending), BATCH):
        batch = pending[start:start + BATCH]
        index_by_key = lookup(session, ente_id, fiscal_code, [row.iuv for row in batch])
        for row in batch:
            outcome = classify(row.iuv, row.iur, row.index, row.amount, index_by_key)
            if outcome.state != NO_RECEIPT:
                session.execute(update(RendicontazioneRow).where(RendicontazioneRow.id == row.id)
                                .values(match_state=outcome.state, receipt_payment_id=outcome.receipt_payment_id))
                changed += 1
    return changed


def reported_filter(ente_id: int):  # noqa: ANN201 - a SQL expression
    """Rows of the ente's current flows (older revisions are kept but no longer count)."""
    return and_(RendicontazioneFlow.ente_id == ente_id, RendicontazioneFlow.current.is_(True),
                RendicontazioneFlow.state == "OK")
