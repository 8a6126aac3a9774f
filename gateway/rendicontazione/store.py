"""Store one fetched flow, whichever transport brought it: header, reconciled rows and raw XML in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway import logs
from gateway.payments.documents import DocumentInvalid, parse_flusso
from storage.db import Database
from storage.models import RendicontazioneFlow, RendicontazioneRow

from . import reconcile
from .clock import rome_date

log = logs.get_logger(__name__)


@dataclass(frozen=True)
class FetchedFlow:
    """What a transport found: identity on the node plus the FlussoRiversamento XML on disk."""

    transport: str  # fdr | soap
    psp_id: str
    flow_id: str
    flow_datetime: datetime  # aware UTC: the version of the flow (dataOraFlusso / fdrDate)
    revision: int | None  # FdR's; None for SOAP: the next one after those stored
    published_at: datetime | None
    path: Path


@dataclass(frozen=True)
class StoredFlow:
    id: int
    rows: int
    state: str
    counts: dict[str, int]


def flow_date(flow_id: str, flow_datetime: datetime) -> date:
    """The settlement date: the yyyy-MM-dd the flow id starts with, else dataOraFlusso's Rome date."""
    try:
        return date.fromisoformat(flow_id[:10])
    except ValueError:
        return rome_date(flow_datetime)


def psp_from_flow_id(flow_id: str) -> str:
    """MyPay's rule: the text between position 10 and the first '-' after it (yyyy-MM-dd<idPSP>-<n>)."""
    rest = flow_id[10:]
    return rest.split("-", 1)[0] if "-" in rest else rest


def store_flow(database: Database, ente_id: int, fiscal_code: str, fetched: FetchedFlow,
               invalid: str | None = None) -> StoredFlow | None:
    """Parse, reconcile and insert; None when another process stored the same version first.

    ``invalid`` (the validation error) stores the flow as KO with its raw bytes and no rows, so it is
    not fetched again and an operator can see why.
    """
    try:
        with database.transaction() as session:
            revision = fetched.revision
            if revision is None:
                revision = (session.scalar(select(func.max(RendicontazioneFlow.revision)).where(
                    RendicontazioneFlow.ente_id == ente_id, RendicontazioneFlow.psp_id == fetched.psp_id,
                    RendicontazioneFlow.flow_id == fetched.flow_id)) or 0) + 1
            flow = RendicontazioneFlow(
                ente_id=ente_id, psp_id=fetched.psp_id, flow_id=fetched.flow_id,
                flow_datetime=fetched.flow_datetime, flow_date=flow_date(fetched.flow_id, fetched.flow_datetime),
                revision=revision, kind="R", transport=fetched.transport, published_at=fetched.published_at,
                raw=fetched.path.read_bytes(), state="IN_CARICAMENTO", current=False, total_amount=Decimal("0"))
            session.add(flow)
            session.flush()
            counts = {state: 0 for state in reconcile.MATCH_STATES}
            rows = 0
            if invalid is None:
                try:
                    rows = _insert_rows(session, flow, ente_id, fiscal_code, fetched.path, counts)
                except DocumentInvalid as exc:
                    invalid = str(exc)
            if invalid is not None:
                session.execute(RendicontazioneRow.__table__.delete().where(RendicontazioneRow.flow_id == flow.id))
                flow.state, flow.error = "KO", invalid[:2000]
                counts = {}
                rows = 0
            else:
                flow.state = "OK"
                _make_current(session, ente_id, flow)
            return StoredFlow(flow.id, rows, flow.state, counts)
    except IntegrityError:
        log.info("flow already stored by another run", flow_id=fetched.flow_id, psp_id=fetched.psp_id)
        return None


def _insert_rows(session, flow: RendicontazioneFlow, ente_id: int, fiscal_code: str, path: Path,  # noqa: ANN001
                 counts: dict[str, int]) -> int:
    header, payments = parse_flusso(path)
    flow.regulation_id = header.identificativo_univoco_regolamento
    flow.regulation_date = header.data_regolamento
    flow.sender_name = header.denominazione_mittente
    if header.ricevente != fiscal_code:
        raise DocumentInvalid(f"istitutoRicevente {header.ricevente} is not this ente ({fiscal_code})")
    total = Decimal("0")
    rows = 0
    while True:
        batch = list(islice(payments, reconcile.BATCH))
        if not batch:
            break
        index_by_key = reconcile.lookup(session, ente_id, fiscal_code, [p.iuv for p in batch])
        values = []
        for payment in batch:
            outcome = reconcile.classify(payment.iuv, payment.iur, payment.indice, payment.importo, index_by_key)
            counts[outcome.state] += 1
            total += payment.importo
            values.append((flow.id, payment.iuv, payment.iur, payment.indice, payment.importo, payment.codice_esito,
                           payment.data_esito, outcome.state, outcome.receipt_payment_id))
        _bulk_insert(session, values)
        rows += len(batch)
    flow.total_payments = rows
    flow.total_amount = total
    if header.numero_totale_pagamenti != rows or header.importo_totale_pagamenti != total:
        # Kept, not refused: the rows are what the PSP paid; the header mismatch is for the operator to see.
        flow.error = (f"header says {header.numero_totale_pagamenti} payments / {header.importo_totale_pagamenti}, "
                      f"rows are {rows} / {total}")
    return rows


_ROW_COLUMNS = ("flow_id", "iuv", "iur", "index", "amount", "outcome_code", "outcome_date", "match_state",
                "receipt_payment_id")


def _bulk_insert(session, values: list[tuple]) -> None:  # noqa: ANN001
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # COPY: ~10x faster than an executemany of INSERTs for a 100,000-row flow.
        columns = ", ".join(f'"{name}"' for name in _ROW_COLUMNS)
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy(f"COPY {RendicontazioneRow.__tablename__} ({columns}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        return
    session.execute(insert(RendicontazioneRow), [dict(zip(_ROW_COLUMNS, row)) for row in values])


def _make_current(session, ente_id: int, flow: RendicontazioneFlow) -> None:  # noqa: ANN001
    """The newest valid version of a (PSP, flow id) is the current one; older ones are kept."""
    versions = session.execute(
        select(RendicontazioneFlow.id, RendicontazioneFlow.revision, RendicontazioneFlow.flow_datetime)
        .where(RendicontazioneFlow.ente_id == ente_id, RendicontazioneFlow.psp_id == flow.psp_id,
               RendicontazioneFlow.flow_id == flow.flow_id, RendicontazioneFlow.state == "OK")).all()
    newest = max(versions, key=lambda v: (v.revision, v.flow_datetime))
    session.execute(update(RendicontazioneFlow).where(
        RendicontazioneFlow.ente_id == ente_id, RendicontazioneFlow.psp_id == flow.psp_id,
        RendicontazioneFlow.flow_id == flow.flow_id).values(current=False))
    session.execute(update(RendicontazioneFlow).where(RendicontazioneFlow.id == newest.id).values(current=True))
