"""One batch of import rows inside one transaction: validate, then insert / modify / annul by IUD.

Every row is all-or-nothing: it either changes its dovuto or becomes an ImportRejection, both written in
the caller's transaction. ``prepare`` does everything that needs no database (split, phase A and B, the
row's column values), so the importer can run it for the next batch while this one is being written;
``process_batch`` then looks existing dovuti and IUVs up once per batch and writes in bulk (COPY on
PostgreSQL): that is where the rows/s come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Union

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gateway.flussi import bulk
from gateway.flussi import rows as R
from gateway.flussi.iuvs import IuvBlock
from gateway.flussi.tracciati import ImportTracciato, split_line
from gateway.payments import iuv as iuv_rules
from gateway.payments import states
from storage.models import Dovuto, DovutoTransition, Ente, ImportRejection
from storage.types import utcnow

ACTOR = "flussi"
_CENT = Decimal("0.01")
_ACTIONS = frozenset(("I", "M", "A"))

# The row's own columns, in this order in every prepared tuple (see _static).
STATIC_COLUMNS = ("tipo_dovuto_id", "import_flow_id", "payer_type", "payer_code", "payer_name", "payer_address",
                  "payer_civic", "payer_postal_code", "payer_city", "payer_province", "payer_country",
                  "payer_email", "amount", "fee_ente", "due_date", "causale", "dati_specifici_riscossione",
                  "tipo_versamento", "bilancio", "secondary")
INSERT_COLUMNS = ("id", "ente_id", "iud", "state", "iuv", "notice_number", "iuv_generated", "created_at",
                  "updated_at") + STATIC_COLUMNS
# PostgreSQL's COPY text of a new dovuto: what only process_batch knows (id, IUV), the batch's constants, then
# the row's own text made by prepare (iud and STATIC_COLUMNS).
COPY_COLUMNS = ("id", "iuv", "notice_number", "iuv_generated", "ente_id", "state", "created_at", "updated_at",
                "iud") + STATIC_COLUMNS
TRANSITION_COLUMNS = ("dovuto_id", "from_state", "to_state", "at", "reason", "actor")
_NULL = "\\N"
REJECTION_COLUMNS = ("import_flow_id", "row_number", "raw_line", "code", "description")


@dataclass(frozen=True)
class BatchContext:
    flow_id: int
    ente_id: int
    application_code: str | None
    version: str
    tracciato: ImportTracciato
    tipi: dict[str, R.Tipo]
    reason: str
    copy_text: bool = False  # PostgreSQL: prepare the rows' COPY text too (in the read-ahead thread)

    @property
    def flow_text(self) -> str:
        return str(self.flow_id)


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


@dataclass
class Prepared:
    """A row after the checks that need no database.

    ``checked`` is phase B's verdict (None: no problem), or the exception it raised, re-raised only where
    process_batch would have run phase B. ``static`` holds the STATIC_COLUMNS values of a row that passed
    (on PostgreSQL an azione I row has ``static_text`` instead: its iud and STATIC_COLUMNS as COPY text);
    ``iuv_head`` / ``iuv_tail`` its IUV-file line around the codIuv field, which is only known later.
    """

    number: int
    raw: str
    row: R.Row | R.Rejection
    checked: Union[R.Rejection, Exception, None] = None
    static: tuple | None = None
    static_text: str = ""
    iuv_head: str = ""
    iuv_tail: str = ""


def _quoted(values: list[str]) -> str:
    """The fields of an IUV-file line, each quoted (MyPay's backslash escape) only when it holds `;` or `"`."""
    joined = ";".join(values)
    if '"' not in joined and joined.count(";") == len(values) - 1:
        return joined  # the common case, decided in C: nothing to quote
    # quote_field inlined: this runs for every field of a row that needs it.
    return ";".join(['"' + v.replace('"', '\\"') + '"' if (";" in v or '"' in v) else v for v in values])


def _static(context: BatchContext, row: R.Row) -> tuple:
    secondary = None
    if row.multi and row.secondary:
        secondary = dict(row.secondary, amount=f"{row.secondary['amount']:.2f}")
    return (row.tipo.id if row.tipo else None, context.flow_id, row.payer_type, row.payer_code, row.payer_name,
            row.payer_address, row.payer_civic, row.payer_postal_code, row.payer_city, row.payer_province,
            row.payer_country, row.payer_email, row.amount.quantize(_CENT),
            row.fee.quantize(_CENT) if row.fee is not None else None, row.due_date, row.causale, row.dsr,
            (row.tipo_versamento or "ALL").upper(), row.bilancio, secondary)


def _insert_text(context: BatchContext, row: R.Row) -> str:
    """The COPY text of a new dovuto's iud and STATIC_COLUMNS: ``copy_line((row.iud,) + _static(...))``.

    Built straight from the row's strings: every value comes from the raw line (or is a number or date we
    format), so a raw line without backslash or tab needs no escaping at all, which is what nearly every
    line is; the others, and multi-beneficiary rows (a JSON value), go the general way. Amounts passed
    phase B (whole cents), so their two-decimal format is their quantized text.
    """
    raw = row.raw
    if "\\" in raw or "\t" in raw or (row.multi and row.secondary):
        return bulk.copy_line((row.iud,) + _static(context, row))
    null = _NULL
    fee = row.fee
    due = row.due_date
    return "\t".join((
        row.iud, str(row.tipo.id) if row.tipo else null, context.flow_text, row.payer_type, row.payer_code,
        row.payer_name, row.payer_address or null, row.payer_civic or null, row.payer_postal_code or null,
        row.payer_city or null, row.payer_province or null, row.payer_country or null, row.payer_email or null,
        f"{row.amount:.2f}", null if fee is None else f"{fee:.2f}", null if due is None else due.isoformat(),
        row.causale, row.dsr, (row.tipo_versamento or "ALL").upper(), row.bilancio or null, null))


def prepare(context: BatchContext, batch: list[tuple[int, str]]) -> list[Prepared]:
    """Split and check every row of ``batch``; pure (no database), so it may run in another thread."""
    out: list[Prepared] = []
    tracciato, version, tipi, code = context.tracciato, context.version, context.tipi, context.application_code
    width = tracciato.width
    copy_text = context.copy_text
    for number, raw in batch:
        row = R.phase_a(tracciato, number, raw, split_line(raw))
        item = Prepared(number, raw, row)
        out.append(item)
        if not isinstance(row, R.Row) or row.azione not in _ACTIONS:
            continue
        try:
            item.checked = R.phase_b(row, version=version, tipi=tipi, application_code=code)
            if item.checked is None:
                if copy_text and row.azione == "I":
                    item.static_text = _insert_text(context, row)
                else:
                    item.static = _static(context, row)
                fields = row.fields[:width]
                fields[13] = f"{row.amount:.2f}"
                if row.fee is not None:
                    fields[14] = f"{row.fee:.2f}"
                item.iuv_head = _quoted(fields[:1])
                item.iuv_tail = _quoted(fields[2:])
                # A few batches are alive at once: keep only what process_batch still reads.
                row.fields = []
        except Exception as exc:  # noqa: BLE001 - kept for the moment phase B would have raised it
            item.checked = exc
    return out


def _notice(iuv: str | None, application_code: str | None) -> str | None:
    if not iuv:
        return None
    try:
        return iuv_rules.notice_number(iuv, application_code)
    except iuv_rules.IuvError:
        return None  # IUV25 (RF) positions have no 18-digit notice number


def _existing(session: Session, ente_id: int, iuds: list[str]) -> dict[str, _Existing]:
    # FOR UPDATE: a payment must not start on a position this batch modifies or annuls.
    columns = (Dovuto.id, Dovuto.iud, Dovuto.state, Dovuto.iuv, Dovuto.import_flow_id)
    found: dict[str, _Existing] = {}
    if bulk.is_postgres(session):
        # The IUDs as one array literal (see bulk.text_array), not a driver-dumped list. The parameter goes
        # untyped, so the server reads it as text[] and plans with its 10,000 values: typed as text and cast,
        # it would be an unknown array, planned as a filter over the ente's rows (quadratic over a flow).
        query = text("SELECT id, iud, state, iuv, import_flow_id FROM dovuto "
                     "WHERE ente_id = :ente AND iud = ANY(CAST(:iuds AS text[])) FOR UPDATE")
        rows = session.execute(query, {"ente": ente_id, "iuds": bulk.text_array(iuds)})
        return {iud: _Existing(i, s, v, f) for i, iud, s, v, f in rows}
    for condition in bulk.member_of(session, Dovuto.iud, iuds):
        query = select(*columns).where(Dovuto.ente_id == ente_id, condition).with_for_update()
        found.update({iud: _Existing(i, s, v, f) for i, iud, s, v, f in session.execute(query)})
    return found


def _taken(session: Session, ente_id: int, iuvs: list[str]) -> dict[str, str]:
    taken: dict[str, str] = {}
    for condition in bulk.member_of(session, Dovuto.iuv, iuvs):
        taken.update(session.execute(select(Dovuto.iuv, Dovuto.iud).where(Dovuto.ente_id == ente_id, condition)).all())
    return taken


def process_batch(session: Session, context: BatchContext,
                  batch: list[tuple[int, str]] | list[Prepared]) -> BatchResult:
    """Apply one batch (raw lines, or what ``prepare`` made of them) in the caller's transaction."""
    items: list[Prepared]
    if batch and isinstance(batch[0], Prepared):
        items = batch  # type: ignore[assignment]
    else:
        items = prepare(context, batch)  # type: ignore[arg-type]
    result = BatchResult()
    candidates = [item.row for item in items if isinstance(item.row, R.Row)]
    existing = _existing(session, context.ente_id, list({row.iud for row in candidates})) if candidates else {}
    given = list({row.iuv for row in candidates if row.iuv})
    taken = _taken(session, context.ente_id, given) if given else {}
    block: IuvBlock | None = None
    now = utcnow()
    flow_id = context.flow_id
    accepted: set[str] = set()
    inserts: list[tuple] = []  # (row number, iud, iuv, notice, generated, static)
    updates: list[dict[str, Any]] = []
    annuls: dict[int, int] = {}  # dovuto id -> row number
    rejections: list[tuple] = []
    iuv_lines = result.iuv_lines
    avvisi = result.avvisi_iuds

    def reject(number: int, raw: str, code: str, description: str) -> None:
        rejections.append((flow_id, number, raw, code[:100], description[:512]))

    for item in items:
        row = item.row
        if not isinstance(row, R.Row):
            reject(item.number, item.raw, row.code, row.description)
            continue
        iud = row.iud
        found = existing.get(iud)
        if iud in accepted or (found is not None and found.flow_id == flow_id):
            reject(row.number, row.raw, R.IUD_DUPLICATO, R.IUD_DUPLICATO_TEXT)
            continue
        if row.azione not in _ACTIONS:
            reject(row.number, row.raw, R.AZIONE_CODE, "|Errore sintassi CSV campo azione. Valori ammessi: I, M, A")
            continue
        checked = item.checked
        if isinstance(checked, Exception):
            raise checked
        if checked is not None:
            reject(row.number, row.raw, checked.code, checked.description)
            continue
        iuv = row.iuv
        if row.azione == "I":
            if found is not None:
                reject(row.number, row.raw, R.IMPORT_ERROR, f"|IUD {iud} già presente per l'ente")
                continue
        else:
            if found is None:
                reject(row.number, row.raw, R.IMPORT_ERROR, f"|Dovuto non trovato per IUD {iud}")
                continue
            if found.state not in states.PAYABLE:
                reject(row.number, row.raw, R.IMPORT_ERROR,
                       f"|Dovuto con IUD {iud} non modificabile nello stato {found.state}")
                continue
            if row.azione == "M" and iuv and found.iuv and iuv != found.iuv:
                reject(row.number, row.raw, R.IMPORT_ERROR, f"|IUV del dovuto {iud} non modificabile")
                continue
            iuv = iuv or found.iuv
        if row.azione != "A":
            if row.iuv and row.iuv != (found.iuv if found else None) and taken.get(row.iuv, iud) != iud:
                reject(row.number, row.raw, R.IMPORT_ERROR, f"|IUV {row.iuv} già presente per l'ente")
                continue
            generated = False
            if not iuv and row.genera_iuv:
                if block is None:
                    ente = session.get(Ente, context.ente_id)
                    assert ente is not None
                    block = IuvBlock(session, ente)
                iuv, _ = block.next()
                generated = True
            if iuv:
                taken[iuv] = iud
            notice = _notice(iuv, context.application_code)
            if row.azione == "I":
                inserts.append((row.number, iud, iuv, notice, generated, item))
            else:
                values = dict(zip(STATIC_COLUMNS, item.static))  # type: ignore[arg-type]
                values.update(iuv=iuv, notice_number=notice, updated_at=now, id=found.id)  # type: ignore[union-attr]
                if generated:
                    values["iuv_generated"] = True
                updates.append(values)
            if row.genera_iuv and iuv:
                avvisi.append(iud)
        else:
            annuls[found.id] = row.number  # type: ignore[union-attr]
        accepted.add(iud)
        # An IUV is digits (or an RF reference): quoting only for anything else.
        iuv_text = "" if not iuv else iuv if iuv.isalnum() else _quoted([iuv])
        iuv_lines.append(item.iuv_head + ";" + iuv_text + ";" + item.iuv_tail)

    if block is not None:
        block.close()
    if inserts:
        _insert(session, context, inserts, now)
    if updates:
        bulk.update_by_id(session, Dovuto, updates)
    if annuls:
        for dovuto in session.scalars(select(Dovuto).where(Dovuto.id.in_(annuls))):
            states.move_dovuto(session, dovuto, states.ANNULLATO, actor=ACTOR,
                               reason=f"{context.reason} riga {annuls[dovuto.id]}")
            dovuto.import_flow_id = flow_id
        session.flush()
    if rejections:
        bulk.copy_rows(session, ImportRejection.__table__, REJECTION_COLUMNS, rejections)
    result.rejected = len(rejections)
    result.imported = len(items) - len(rejections)
    return result


def _insert(session: Session, context: BatchContext, inserts: list[tuple], now) -> None:  # noqa: ANN001
    """New dovuti and their creation audit rows (what states.record_creation writes one at a time)."""
    ente_id, state, reason = context.ente_id, states.INSERIMENTO_DOVUTO, context.reason
    if context.copy_text and bulk.is_postgres(session):
        _insert_copy(session, context, inserts, now)
        return
    ids = bulk.new_ids(session, Dovuto.__table__, len(inserts))
    bulk.copy_rows(session, Dovuto.__table__, INSERT_COLUMNS, [
        (new_id, ente_id, iud, state, iuv, notice, generated, now, now) + item.static
        for new_id, (_, iud, iuv, notice, generated, item) in zip(ids, inserts)])
    bulk.copy_rows(session, DovutoTransition.__table__, TRANSITION_COLUMNS, [
        (new_id, None, state, now, f"{reason} riga {number}"[:255], ACTOR)
        for new_id, (number, *_) in zip(ids, inserts)])


def _insert_copy(session: Session, context: BatchContext, inserts: list[tuple], now) -> None:  # noqa: ANN001
    """PostgreSQL's _insert: the dovuti by COPY, their audit rows by one INSERT ... SELECT over the new ids.

    Each COPY line is the prepared row text behind four per-row values and the batch's constants; the
    audit rows need no line at all (the server makes them from the ids and row numbers, the same values
    the per-row path writes).
    """
    ids = bulk.new_id_texts(session, "dovuto", len(inserts))
    state, null = states.INSERIMENTO_DOVUTO, _NULL
    at = now.isoformat()
    constants = f"\t{context.ente_id}\t{state}\t{at}\t{at}\t"
    # A generator: lines are made while the server works on the chunks already sent. The IUV is digits
    # (or an RF reference) when valid; anything else is escaped.
    bulk.copy_text(session, "dovuto", COPY_COLUMNS, (
        f"{new_id}\t{null if iuv is None else iuv if iuv.isalnum() else bulk.copy_value(iuv)}\t"
        f"{notice or null}\t{'t' if generated else 'f'}{constants}{item.static_text}"
        for new_id, (_, _, iuv, notice, generated, item) in zip(ids, inserts)))
    session.execute(text(
        "INSERT INTO dovuto_transition (dovuto_id, from_state, to_state, at, reason, actor) "
        "SELECT t.id, NULL, :state, :at, left(:reason || t.n, 255), :actor "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:numbers AS integer[])) AS t(id, n)"),
        {"state": state, "at": now, "reason": f"{context.reason} riga ", "actor": ACTOR,
         "ids": "{" + ",".join(ids) + "}", "numbers": "{" + ",".join([str(item[0]) for item in inserts]) + "}"})
