"""The reconciliation report of one ente and settlement date: summary counts and the detail rows for a CSV."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import IO, Iterator

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from storage.models import Ente, Receipt, ReceiptPayment, RendicontazioneFlow, RendicontazioneRow
from storage.types import utcnow

from . import reconcile
from .clock import day_bounds

NOT_REPORTED = "not_reported"
CSV_COLUMNS = ("record", "flow_id", "psp_id", "revision", "transport", "iuv", "iur", "index", "reported_amount",
               "receipt_amount", "outcome_code", "outcome_date", "paid_at", "match_state")


@dataclass
class Summary:
    cod_ipa: str
    day: date
    flows: int = 0
    payments: int = 0
    amount: Decimal = Decimal("0")
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in reconcile.MATCH_STATES})
    not_reported: int = 0

    def lines(self) -> list[str]:
        return [f"ente {self.cod_ipa}, flows of {self.day.isoformat()}",
                f"flows: {self.flows}", f"payments: {self.payments} ({self.amount:.2f} EUR)",
                *(f"{state}: {count}" for state, count in self.counts.items()),
                f"receipts not yet reported: {self.not_reported}"]


def _current_flows_of(ente_id: int, day: date):  # noqa: ANN202
    return (reconcile.reported_filter(ente_id), RendicontazioneFlow.flow_date == day)


def summary(session: Session, ente: Ente, day: date, unreported_days: int,
            now: datetime | None = None) -> Summary:
    result = Summary(ente.cod_ipa, day)
    result.flows = session.scalar(select(func.count()).select_from(RendicontazioneFlow)
                                  .where(*_current_flows_of(ente.id, day))) or 0
    for state, count, amount in session.execute(
            select(RendicontazioneRow.match_state, func.count(), func.sum(RendicontazioneRow.amount))
            .join(RendicontazioneFlow, RendicontazioneFlow.id == RendicontazioneRow.flow_id)
            .where(*_current_flows_of(ente.id, day)).group_by(RendicontazioneRow.match_state)):
        key = state or reconcile.NO_RECEIPT
        result.counts[key] = result.counts.get(key, 0) + count
        result.payments += count
        result.amount += Decimal(amount or 0)
    result.not_reported = session.scalar(select(func.count()).select_from(
        _unreported(ente, day, unreported_days, now).subquery())) or 0
    return result


def _unreported(ente: Ente, day: date, unreported_days: int, now: datetime | None):  # noqa: ANN202
    """Transfers of this ente's positive receipts paid on ``day``, at least N days ago, that no row of a
    current flow (of any date: a PSP may settle on a later day) refers to."""
    start, end = day_bounds(day, day)
    cutoff = min((now or utcnow()) - timedelta(days=unreported_days), end)
    reported = (select(RendicontazioneRow.id)
                .join(RendicontazioneFlow, RendicontazioneFlow.id == RendicontazioneRow.flow_id)
                .where(RendicontazioneRow.receipt_payment_id == ReceiptPayment.id,
                       reconcile.reported_filter(ente.id)))
    return (select(ReceiptPayment.id, ReceiptPayment.iuv, ReceiptPayment.iur, ReceiptPayment.index,
                   ReceiptPayment.amount, Receipt.paid_at, Receipt.psp_id)
            .join(Receipt, Receipt.id == ReceiptPayment.receipt_id)
            .where(Receipt.ente_id == ente.id, Receipt.outcome == "OK", Receipt.paid_at >= start,
                   Receipt.paid_at < cutoff,
                   or_(ReceiptPayment.fiscal_code_pa.is_(None), ReceiptPayment.fiscal_code_pa == ente.fiscal_code),
                   ~exists(reported))
            .order_by(Receipt.paid_at, ReceiptPayment.iuv, ReceiptPayment.index))


def details(session: Session, ente: Ente, day: date, unreported_days: int,
            now: datetime | None = None) -> Iterator[dict[str, object]]:
    """Reported payments of the day's current flows, then the receipts not yet reported; streamed."""
    rows = (select(RendicontazioneFlow.flow_id, RendicontazioneFlow.psp_id, RendicontazioneFlow.revision,
                   RendicontazioneFlow.transport, RendicontazioneRow.iuv, RendicontazioneRow.iur,
                   RendicontazioneRow.index, RendicontazioneRow.amount, ReceiptPayment.amount,
                   RendicontazioneRow.outcome_code, RendicontazioneRow.outcome_date, RendicontazioneRow.match_state)
            .join(RendicontazioneFlow, RendicontazioneFlow.id == RendicontazioneRow.flow_id)
            .outerjoin(ReceiptPayment, ReceiptPayment.id == RendicontazioneRow.receipt_payment_id)
            .where(*_current_flows_of(ente.id, day))
            .order_by(RendicontazioneFlow.psp_id, RendicontazioneFlow.flow_id, RendicontazioneRow.id))
    for (flow_id, psp_id, revision, transport, iuv, iur, index, amount, receipt_amount, code, outcome_date,
         state) in session.execute(rows.execution_options(yield_per=5000)):
        yield {"record": "reported", "flow_id": flow_id, "psp_id": psp_id, "revision": revision,
               "transport": transport, "iuv": iuv, "iur": iur, "index": index, "reported_amount": amount,
               "receipt_amount": receipt_amount, "outcome_code": code, "outcome_date": outcome_date,
               "paid_at": None, "match_state": state}
    for _, iuv, iur, index, amount, paid_at, psp_id in session.execute(_unreported(ente, day, unreported_days, now)):
        yield {"record": "receipt", "flow_id": None, "psp_id": psp_id, "revision": None, "transport": None,
               "iuv": iuv, "iur": iur, "index": index, "reported_amount": None, "receipt_amount": amount,
               "outcome_code": None, "outcome_date": None, "paid_at": paid_at, "match_state": NOT_REPORTED}


def write_csv(out: IO[str], records: Iterator[dict[str, object]]) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, delimiter=";", lineterminator="\n")
    writer.writeheader()
    count = 0
    for record in records:
        writer.writerow({key: _cell(value) for key, value in record.items()})
        count += 1
    return count


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)
