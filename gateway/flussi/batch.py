"""One batch of import rows inside one transaction: validate, then insert / modify / annul by IUD.

Every row is all-or-nothing: it either changes its dovuto or becomes an ImportRejection, both written in
the caller's transaction. Existing dovuti and IUVs are looked up once per batch, inserts go in one
executemany: that is where the rows/s come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.flussi import bulk
from gateway.flussi import rows as R
from gateway.flussi.tracciati import ImportTracciato, quote_field, split_line
from gateway.payments import iuv as iuv_rules
from gateway.payments import states
from storage.models import Dovuto, DovutoTransition, Ente, ImportRejection, IuvCounter
from storage.types import utcnow

ACTOR = "flussi"


@dataclass(frozen=True)
class BatchContext:
    flow_id: int
    ente_id: int
    application_code: str | None
    version: str
    tracciato: ImportTracciato
    tipi: dict[str, R.Tipo]
    reason: str


@dataclass
class BatchResult:
    imported: int = 0
    rejected: int = 0
    iuv_lines: list[str] = field(default_factory=list)
    avvisi_iuds: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Existing:
    id: int
    state: str
    iuv: str | None
    flow_id: int | None


def _allocator():  # noqa: ANN202
    """gateway.payments.iuv_allocator.allocate_iuv(session, ente) -> (iuv, notice) once it exists."""
    try:
        from gateway.payments.iuv_allocator import allocate_iuv
    except ModuleNotFoundError:
        return _fallback_allocate
    return allocate_iuv


def _fallback_allocate(session: Session, ente: Ente) -> tuple[str, str]:
    # Same counter row and layout the shared allocator uses: one atomic increment in the caller's transaction.
    value = session.scalar(update(IuvCounter).where(IuvCounter.ente_id == ente.id, IuvCounter.kind == "IUV17")
                           .values(value=IuvCounter.value + 1).returning(IuvCounter.value))
    if value is None:
        session.add(IuvCounter(ente_id=ente.id, kind="IUV17", value=1))
        session.flush()
        value = 1
    iuv = iuv_rules.make_iuv17(ente.segregation_code or "01", value)
    return iuv, iuv_rules.notice_number(iuv)


def _notice(iuv: str | None, application_code: str | None) -> str | None:
    if not iuv:
        return None
    try:
        return iuv_rules.notice_number(iuv, application_code)
    except iuv_rules.IuvError:
        return None  # IUV25 (RF) positions have no 18-digit notice number


def _reject(session_rows: list[dict[str, Any]], context: BatchContext, row_number: int, raw: str, code: str,
            description: str) -> None:
    session_rows.append({"import_flow_id": context.flow_id, "row_number": row_number, "raw_line": raw,
                         "code": code[:100], "description": description[:512]})


def _iuv_line(context: BatchContext, row: R.Row, iuv: str | None) -> str:
    fields = list(row.fields[: context.tracciato.width])
    fields[1] = iuv or ""
    fields[13] = f"{row.amount:.2f}"
    if row.fee is not None:
        fields[14] = f"{row.fee:.2f}"
    return ";".join(quote_field(value) for value in fields)


def _values(context: BatchContext, row: R.Row) -> dict[str, Any]:
    secondary = None
    if row.multi and row.secondary:
        secondary = dict(row.secondary, amount=f"{row.secondary['amount']:.2f}")
    return {
        "tipo_dovuto_id": row.tipo.id if row.tipo else None, "import_flow_id": context.flow_id,
        "payer_type": row.payer_type, "payer_code": row.payer_code, "payer_name": row.payer_name,
        "payer_address": row.payer_address, "payer_civic": row.payer_civic, "payer_postal_code": row.payer_postal_code,
        "payer_city": row.payer_city, "payer_province": row.payer_province, "payer_country": row.payer_country,
        "payer_email": row.payer_email, "amount": row.amount.quantize(Decimal("0.01")),
        "fee_ente": row.fee.quantize(Decimal("0.01")) if row.fee is not None else None, "due_date": row.due_date,
        "causale": row.causale, "dati_specifici_riscossione": row.dsr,
        "tipo_versamento": (row.tipo_versamento or "ALL").upper(), "bilancio": row.bilancio, "secondary": secondary,
    }


def process_batch(session: Session, context: BatchContext, batch: list[tuple[int, str]]) -> BatchResult:
    result = BatchResult()
    parsed: list[R.Row | tuple[int, str, R.Rejection]] = []
    for number, raw in batch:
        outcome = R.phase_a(context.tracciato, number, raw, split_line(raw))
        parsed.append(outcome if isinstance(outcome, R.Row) else (number, raw, outcome))
    candidates = [item for item in parsed if isinstance(item, R.Row)]
    iuds = {row.iud for row in candidates}
    existing: dict[str, _Existing] = {}
    if iuds:
        # FOR UPDATE: a payment must not start on a position this batch modifies or annuls.
        query = (select(Dovuto.id, Dovuto.iud, Dovuto.state, Dovuto.iuv, Dovuto.import_flow_id)
                 .where(Dovuto.ente_id == context.ente_id, Dovuto.iud.in_(iuds)).with_for_update())
        existing = {iud: _Existing(i, s, v, f) for i, iud, s, v, f in session.execute(query)}
    given = {row.iuv for row in candidates if row.iuv}
    taken: dict[str, str] = {}
    if given:
        taken = dict(session.execute(select(Dovuto.iuv, Dovuto.iud).where(Dovuto.ente_id == context.ente_id,
                                                                           Dovuto.iuv.in_(given))).all())
    allocate = None
    ente: Ente | None = None
    now = utcnow()
    accepted: set[str] = set()
    inserts: list[dict[str, Any]] = []
    insert_rows: list[R.Row] = []
    updates: list[dict[str, Any]] = []
    annuls: dict[int, int] = {}  # dovuto id -> row number
    rejections: list[dict[str, Any]] = []

    for item in parsed:
        if not isinstance(item, R.Row):
            number, raw, rejection = item
            _reject(rejections, context, number, raw, rejection.code, rejection.description)
            continue
        row = item
        found = existing.get(row.iud)
        if row.iud in accepted or (found is not None and found.flow_id == context.flow_id):
            _reject(rejections, context, row.number, row.raw, R.IUD_DUPLICATO, R.IUD_DUPLICATO_TEXT)
            continue
        if row.azione not in ("I", "M", "A"):
            _reject(rejections, context, row.number, row.raw, R.AZIONE_CODE,
                    "|Errore sintassi CSV campo azione. Valori ammessi: I, M, A")
            continue
        rejection = R.phase_b(row, version=context.version, tipi=context.tipi, application_code=context.application_code)
        if rejection is not None:
            _reject(rejections, context, row.number, row.raw, rejection.code, rejection.description)
            continue
        iuv = row.iuv
        if row.azione == "I":
            if found is not None:
                _reject(rejections, context, row.number, row.raw, R.IMPORT_ERROR,
                        f"|IUD {row.iud} già presente per l'ente")
                continue
        else:
            if found is None:
                _reject(rejections, context, row.number, row.raw, R.IMPORT_ERROR, f"|Dovuto non trovato per IUD {row.iud}")
                continue
            if found.state not in states.PAYABLE:
                _reject(rejections, context, row.number, row.raw, R.IMPORT_ERROR,
                        f"|Dovuto con IUD {row.iud} non modificabile nello stato {found.state}")
                continue
            if row.azione == "M" and iuv and found.iuv and iuv != found.iuv:
                _reject(rejections, context, row.number, row.raw, R.IMPORT_ERROR,
                        f"|IUV del dovuto {row.iud} non modificabile")
                continue
            iuv = iuv or found.iuv
        if row.azione != "A":
            if row.iuv and row.iuv != (found.iuv if found else None) and taken.get(row.iuv, row.iud) != row.iud:
                _reject(rejections, context, row.number, row.raw, R.IMPORT_ERROR, f"|IUV {row.iuv} già presente per l'ente")
                continue
            generated = False
            if not iuv and row.genera_iuv:
                if allocate is None:
                    allocate, ente = _allocator(), session.get(Ente, context.ente_id)
                iuv, _ = allocate(session, ente)
                generated = True
            if iuv:
                taken[iuv] = row.iud
            values = _values(context, row)
            values.update(iuv=iuv, notice_number=_notice(iuv, context.application_code), updated_at=now)
            if row.azione == "I":
                values.update(iud=row.iud, ente_id=context.ente_id, state=states.INSERIMENTO_DOVUTO,
                              iuv_generated=generated, created_at=now)
                inserts.append(values)
                insert_rows.append(row)
            else:
                values["id"] = found.id  # type: ignore[union-attr]
                if generated:
                    values["iuv_generated"] = True
                updates.append(values)
            if row.genera_iuv and iuv:
                result.avvisi_iuds.append(row.iud)
        else:
            annuls[found.id] = row.number  # type: ignore[union-attr]
        accepted.add(row.iud)
        result.iuv_lines.append(_iuv_line(context, row, iuv))

    if inserts:
        ids = bulk.insert_many(session, Dovuto.__table__, inserts, with_ids=True)
        # Creation audit rows in bulk: the same rows states.record_creation writes one at a time.
        bulk.insert_many(session, DovutoTransition.__table__, [
            {"dovuto_id": dovuto_id, "from_state": None, "to_state": states.INSERIMENTO_DOVUTO, "at": now,
             "reason": f"{context.reason} riga {row.number}"[:255], "actor": ACTOR}
            for dovuto_id, row in zip(ids, insert_rows)])
    if updates:
        for keys in {tuple(sorted(u)) for u in updates}:  # executemany needs one key set per statement
            session.execute(update(Dovuto), [u for u in updates if tuple(sorted(u)) == keys])
    if annuls:
        for dovuto in session.scalars(select(Dovuto).where(Dovuto.id.in_(annuls))):
            states.move_dovuto(session, dovuto, states.ANNULLATO, actor=ACTOR,
                               reason=f"{context.reason} riga {annuls[dovuto.id]}")
            dovuto.import_flow_id = context.flow_id
        session.flush()
    if rejections:
        bulk.insert_many(session, ImportRejection.__table__, rejections)
    result.rejected = len(rejections)
    result.imported = len(batch) - len(rejections)
    return result
