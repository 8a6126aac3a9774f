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
from typing import Any, Iterator, Union

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gateway.flussi import bulk
from gateway.flussi import rows as R
from gateway.flussi.iuvs import IuvBlock, IuvReservation
from gateway.flussi.tracciati import ImportTracciato, split_line
from gateway.payments import iuv as iuv_rules
from gateway.payments import states
from storage.models import Dovuto, DovutoTransition, ImportRejection
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


@dataclass(slots=True)
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


def _insert_text(context: BatchContext, row: R.Row, amount: str) -> str:
    """The COPY text of a new dovuto's iud and STATIC_COLUMNS: ``copy_line((row.iud,) + _static(...))``.

    Built straight from the row's strings: every value comes from the raw line (or is a number or date we
    format), so a raw line without backslash or tab needs no escaping at all, which is what nearly every
    line is; the others, and multi-beneficiary rows (a JSON value), go the general way. Amounts passed
    phase B (whole cents), so their two-decimal format is their quantized text; ``amount`` is the row's
    amount in that format (prepare needs it for the IUV file too).
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
        amount, null if fee is None else f"{fee:.2f}", null if due is None else due.isoformat(),
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
                amount = f"{row.amount:.2f}"
                if copy_text and row.azione == "I":
                    item.static_text = _insert_text(context, row, amount)
                else:
                    item.static = _static(context, row)
                fields = row.fields[:width]
                fields[13] = amount
                if row.fee is not None:
                    fields[14] = f"{row.fee:.2f}"
                if '"' in raw:
                    item.iuv_head = _quoted(fields[:1])
                    item.iuv_tail = _quoted(fields[2:])
                else:
                    # Split without quotes: no field holds `;` or `"`, so none needs quoting.
                    item.iuv_head = fields[0]
                    item.iuv_tail = ";".join(fields[2:])
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
    """Apply one batch (raw lines, or what ``prepare`` made of them) in the caller's transaction.

    On PostgreSQL the rows are decided while their COPY streams (see _insert_streamed): the server takes
    in the first lines while Python decides the next ones.
    """
    items: list[Prepared]
    if batch and isinstance(batch[0], Prepared):
        items = batch  # type: ignore[assignment]
    else:
        items = prepare(context, batch)  # type: ignore[arg-type]
    candidates = [item.row for item in items if isinstance(item.row, R.Row)]
    existing = _existing(session, context.ente_id, list({row.iud for row in candidates})) if candidates else {}
    given = list({row.iuv for row in candidates if row.iuv})
    taken = _taken(session, context.ente_id, given) if given else {}
    now = utcnow()
    plan = _Plan()
    if context.copy_text and bulk.is_postgres(session):
        # No query can run while the COPY streams: ids and generated IUVs are reserved before it starts.
        new_rows, new_iuvs = _bounds(items, existing)
        iuvs: IuvBlock | IuvReservation = IuvReservation(session, context.ente_id, new_iuvs)
        _insert_streamed(session, context, _decide(context, items, existing, taken, iuvs, plan, now), new_rows, now)
    else:
        iuvs = IuvBlock(session, context.ente_id)
        inserts = list(_decide(context, items, existing, taken, iuvs, plan, now))
        if inserts:
            _insert(session, context, inserts, now)
    iuvs.close()
    _apply(session, context, plan, now)
    result = plan.result
    result.rejected = len(plan.rejections)
    result.imported = len(items) - len(plan.rejections)
    return result


@dataclass
class _Plan:
    """What _decide made of a batch besides its new dovuti: changes, annulments, rejections, output lines."""

    result: BatchResult = field(default_factory=BatchResult)
    updates: list[dict[str, Any]] = field(default_factory=list)
    annuls: dict[int, int] = field(default_factory=dict)  # dovuto id -> row number
    rejections: list[tuple] = field(default_factory=list)


def _bounds(items: list[Prepared], existing: dict[str, _Existing]) -> tuple[int, int]:
    """Upper bounds of the batch's new dovuti and of its generated IUVs, before any row is decided.

    New dovuti: azione I rows phase B let through whose IUD is not there yet. Generated IUVs: rows phase B
    let through that ask for one and have none, neither in the file nor (azione M) on their dovuto.
    """
    rows = iuvs = 0
    for item in items:
        row = item.row
        if item.checked is not None or not isinstance(row, R.Row):
            continue
        found = existing.get(row.iud)
        if row.azione == "I" and found is None:
            rows += 1
        if row.genera_iuv and not row.iuv and row.azione in ("I", "M") and (found is None or not found.iuv):
            iuvs += 1
    return rows, iuvs


def _decide(context: BatchContext, items: list[Prepared], existing: dict[str, _Existing], taken: dict[str, str],
            iuvs: IuvBlock | IuvReservation, plan: _Plan, now) -> Iterator[tuple]:  # noqa: ANN001
    """Decide every row in file order; yield the new dovuti (row number, iud, iuv, notice, generated, item)
    and put everything else in ``plan``. A generator, so the inserts can stream while it runs."""
    flow_id = context.flow_id
    application_code = context.application_code
    accepted: set[str] = set()
    updates, annuls, rejections = plan.updates, plan.annuls, plan.rejections
    iuv_lines = plan.result.iuv_lines
    avvisi = plan.result.avvisi_iuds

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
                iuv, _ = iuvs.next()
                generated = True
            if iuv:
                taken[iuv] = iud
            notice = _notice(iuv, application_code) if iuv else None
            if row.azione == "I":
                accepted.add(iud)
                _iuv_line(iuv_lines, item, iuv)
                if row.genera_iuv and iuv:
                    avvisi.append(iud)
                yield (row.number, iud, iuv, notice, generated, item)
                continue
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
        _iuv_line(iuv_lines, item, iuv)


def _iuv_line(lines: list[str], item: Prepared, iuv: str | None) -> None:
    # An IUV is digits (or an RF reference): quoting only for anything else.
    lines.append(item.iuv_head + ";" + ("" if not iuv else iuv if iuv.isalnum() else _quoted([iuv])) + ";"
                 + item.iuv_tail)


def _apply(session: Session, context: BatchContext, plan: _Plan, now) -> None:  # noqa: ANN001
    """Write what is not a new dovuto: changed dovuti, annulments, rejections."""
    if plan.updates:
        bulk.update_by_id(session, Dovuto, plan.updates)
    if plan.annuls:
        annuls = plan.annuls
        for dovuto in session.scalars(select(Dovuto).where(Dovuto.id.in_(annuls))):
            states.move_dovuto(session, dovuto, states.ANNULLATO, actor=ACTOR,
                               reason=f"{context.reason} riga {annuls[dovuto.id]}")
            dovuto.import_flow_id = context.flow_id
        session.flush()
    if plan.rejections:
        bulk.copy_rows(session, ImportRejection.__table__, REJECTION_COLUMNS, plan.rejections)


def _insert(session: Session, context: BatchContext, inserts: list[tuple], now) -> None:  # noqa: ANN001
    """New dovuti and their creation audit rows (what states.record_creation writes one at a time)."""
    ente_id, state, reason = context.ente_id, states.INSERIMENTO_DOVUTO, context.reason
    ids = bulk.new_ids(session, Dovuto.__table__, len(inserts))
    bulk.copy_rows(session, Dovuto.__table__, INSERT_COLUMNS, [
        (new_id, ente_id, iud, state, iuv, notice, generated, now, now) + item.static
        for new_id, (_, iud, iuv, notice, generated, item) in zip(ids, inserts)])
    bulk.copy_rows(session, DovutoTransition.__table__, TRANSITION_COLUMNS, [
        (new_id, None, state, now, f"{reason} riga {number}"[:255], ACTOR)
        for new_id, (number, *_) in zip(ids, inserts)])


def _insert_streamed(session: Session, context: BatchContext, decisions: Iterator[tuple], bound: int,
                     now) -> None:  # noqa: ANN001
    """PostgreSQL's _insert, fed by _decide while it runs: the dovuti by COPY, their audit rows by one
    INSERT ... SELECT over the new ids.

    ``bound`` ids are taken up front (the rows are not decided yet; the ones left over are a gap in the
    sequence, as a rollback leaves). Each COPY line is the prepared row text behind four per-row values
    and the batch's constants; the audit rows need no line at all (the server makes them from the ids and
    row numbers, the same values the per-row path writes).
    """
    ids = bulk.new_id_texts(session, "dovuto", bound)
    numbers: list[str] = []
    bulk.copy_text(session, "dovuto", COPY_COLUMNS, _copy_lines(context, decisions, ids, numbers, now))
    if not numbers:
        return
    session.execute(text(
        "INSERT INTO dovuto_transition (dovuto_id, from_state, to_state, at, reason, actor) "
        "SELECT t.id, NULL, :state, :at, left(:reason || t.n, 255), :actor "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:numbers AS integer[])) AS t(id, n)"),
        {"state": states.INSERIMENTO_DOVUTO, "at": now, "reason": f"{context.reason} riga ", "actor": ACTOR,
         "ids": "{" + ",".join(ids[:len(numbers)]) + "}", "numbers": "{" + ",".join(numbers) + "}"})


def _copy_lines(context: BatchContext, decisions: Iterator[tuple], ids: list[str], numbers: list[str],
                now) -> Iterator[str]:  # noqa: ANN001
    """The COPY lines of the new dovuti as _decide yields them; their row numbers go to ``numbers``.

    Runs to the end of ``decisions``, so every row of the batch is decided once the COPY is done.
    """
    null = _NULL
    at = now.isoformat()
    constants = f"\t{context.ente_id}\t{states.INSERIMENTO_DOVUTO}\t{at}\t{at}\t"
    append = numbers.append
    for index, (number, _, iuv, notice, generated, item) in enumerate(decisions):
        if index >= len(ids):
            raise RuntimeError("more new dovuti than ids taken for the batch")  # a bug in _bounds
        append(str(number))
        # The IUV is digits (or an RF reference) when valid; anything else is escaped.
        yield (f"{ids[index]}\t{null if iuv is None else iuv if iuv.isalnum() else bulk.copy_value(iuv)}\t"
               f"{notice or null}\t{'t' if generated else 'f'}{constants}{item.static_text}")
