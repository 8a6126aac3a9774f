"""The import of one uploaded flow: flow-level checks, then rows in committed batches, then the output files.

Resumable: each batch commits its dovuti, its rejections and ``ImportFlow.last_row_done`` together, so a
worker killed at any point resumes after the last committed row without losing or doubling one.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gateway import logs
from gateway.flussi import archive, bookings, csvlines, files, outputs
from gateway.flussi.batch import BatchContext, Prepared, prepare, process_batch
from gateway.flussi.readahead import gc_paused, read_ahead
from gateway.flussi.rows import Tipo
from gateway.flussi.tracciati import IMPORT_VERSIONS, TRACCIATI, split_line
from gateway.settings import Settings
from storage.db import Database
from storage.models import Ente, ImportFlow, TipoDovuto
from storage.types import utcnow

log = logs.get_logger(__name__)

# Rows per committed transaction: large enough that per-batch round trips vanish, small enough that a
# crash loses little work and memory stays a few batches (the next one is prepared while this one is written).
BATCH_SIZE = 10000
IN_PROGRESS_WINDOW = timedelta(hours=24)
CODIFICA_ERR = "PAA_IMPORT_CODIFICA_ERR"
INTESTAZIONE_ERR = "PAA_IMPORT_INTESTAZIONE_ERR"

Progress = Callable[[int, int], None]


class FlowError(Exception):
    """A flow-level failure: the booking ends IMPORT_ABORTITO with ``code`` and no row is touched."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code[:255]


@dataclass(frozen=True)
class FlowName:
    name: str
    iuf: str
    version: str


def parse_name(file_name: str, cod_ipa: str) -> FlowName:
    """`<codIpa>-<IUF>-<version>.zip` (flussi-formats §1.2) with MyPay's error codes."""
    name = file_name[:-4] if file_name.lower().endswith(".zip") else None
    if not name:
        raise FlowError(f"PAA_IMPORT_NOME_FILE_ERR({file_name})")
    parts = name.split("-")
    if len(parts) > 3:
        raise FlowError("PAA_IMPORT_NOME_FILE_ERR")
    if len(parts) < 3 or not parts[1]:
        raise FlowError(f"PAA_IMPORT_NOME_FILE_ERR({file_name})")
    if parts[0].lower() != cod_ipa.lower():
        raise FlowError(f"PAA_IMPORT_ENTE_ERR({parts[0]},{cod_ipa})")
    if parts[2].lower() not in IMPORT_VERSIONS:
        raise FlowError(f"PAA_IMPORT_FILE_VERSIONE_ERR({parts[2]})")
    return FlowName(name, parts[1], parts[2].lower())


def _blocks(path: Path, member: str) -> Iterator[list[str]]:
    """The CSV's lines in blocks, decoded strictly as UTF-8 (BOM dropped), line ends \\n, \\r\\n or \\r."""
    with archive.open_member(path, member) as stream:
        try:
            yield from csvlines.line_blocks(stream)
        except UnicodeDecodeError as exc:
            raise FlowError(CODIFICA_ERR) from exc


def _lines(path: Path, member: str) -> Iterator[str]:
    """The CSV's lines one by one (see _blocks)."""
    for block in _blocks(path, member):
        yield from block


def scan(path: Path, member: str, width: int) -> tuple[str, int]:
    """First full pass: encoding, zip limits and header width checked before any row is imported."""
    header: str | None = None
    count = 0
    try:
        for block in _blocks(path, member):
            if header is None:
                header = block[0]
                block = block[1:]
            # Non-blank lines, counted in C.
            count += len(block) - list(map(str.strip, block)).count("")
    except archive.ArchiveError as exc:
        raise FlowError(exc.code) from exc
    if header is None or len(split_line(header)) != width:
        found = 0 if header is None else len(split_line(header))
        raise FlowError(f"{INTESTAZIONE_ERR}({found},{width})")
    return header, count


def read_header(path: Path, member: str) -> str:
    lines = _lines(path, member)
    try:
        return next(lines, "")
    finally:
        lines.close()


def row_batches(path: Path, member: str, skip: int, size: int) -> Iterator[list[tuple[int, str]]]:
    """(row number, raw line) after the header in lists of ``size`` (the last one shorter): blank lines skipped
    and not counted, rows <= ``skip`` dropped. Numbered in C (a block with a blank line is filtered first)."""
    number = 0
    batch: list[tuple[int, str]] = []
    header = True
    for block in _blocks(path, member):
        if header:
            header = False
            block = block[1:]
        if "" in map(str.strip, block):
            block = [line for line in block if line.strip()]
        rows = list(zip(range(number + 1, number + 1 + len(block)), block))
        number += len(block)
        if skip:
            dropped = min(skip - (number - len(block)), len(rows))
            if dropped > 0:
                rows = rows[dropped:]
        while rows:
            room = size - len(batch)
            batch += rows[:room]
            rows = rows[room:]
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _abort(database: Database, flow_id: int, code: str) -> None:
    with database.transaction() as session:
        session.execute(update(ImportFlow).where(ImportFlow.id == flow_id)
                        .values(state=bookings.IMPORT_ABORTITO, error_code=code[:255]))
    log.info("import aborted", import_id=flow_id, code=code)


def _start(database: Database, settings: Settings, flow_id: int) -> bool:
    """LOAD_IMPORT -> IMPORT_IN_ELAB after the flow-level checks; False when the flow was aborted."""
    with database.sessions() as session:
        flow = session.get(ImportFlow, flow_id)
        ente = session.get(Ente, flow.ente_id) if flow else None
        if flow is None or ente is None or not flow.upload_path:
            return False
        file_name, upload, cod_ipa, token = flow.file_name or "", flow.upload_path, ente.cod_ipa, flow.request_token
    try:
        parsed = parse_name(file_name, cod_ipa)
        header, total = scan(files.absolute(settings, upload), parsed.name + ".csv", TRACCIATI[parsed.version].width)
    except FlowError as error:
        _abort(database, flow_id, error.code)
        return False
    with database.transaction() as session:
        # The ente row lock serialises the duplicate-IUF check between concurrent workers.
        session.execute(select(Ente.id).where(Ente.id == ente.id).with_for_update())
        others = session.execute(select(ImportFlow.state, ImportFlow.updated_at)
                                 .where(ImportFlow.ente_id == ente.id, ImportFlow.id != flow_id,
                                        func.lower(ImportFlow.iuf) == parsed.iuf.lower(),
                                        ImportFlow.state.in_((bookings.IMPORT_ESEGUITO, bookings.IMPORT_IN_ELAB))))
        code = None
        for state, updated in others:
            if state == bookings.IMPORT_ESEGUITO:
                code = "PAA_IMPORT_FLUSSO_DUPLICATO"
                break
            if updated > utcnow() - IN_PROGRESS_WINDOW:
                code = "PAA_IMPORT_FLUSSO_IN_CARICAMENTO"
        month = utcnow().strftime("%Y_%m")
        values = dict(iuf=parsed.iuf, version=parsed.version, rows_total=total)
        if code:
            values.update(state=bookings.IMPORT_ABORTITO, error_code=code)
        else:
            values.update(state=bookings.IMPORT_IN_ELAB, last_row_done=0, rows_imported=0, rows_rejected=0,
                          output_dir=str(files.output_dir(cod_ipa, month, token)))
        changed = session.execute(update(ImportFlow).where(ImportFlow.id == flow_id,
                                                           ImportFlow.state == bookings.LOAD_IMPORT).values(**values))
    if code:
        log.info("import aborted", import_id=flow_id, code=code)
    return changed.rowcount == 1 and not code


def _context(session: Session, flow: ImportFlow) -> BatchContext:
    ente = session.get(Ente, flow.ente_id)
    assert ente is not None
    tipi = {t.code: Tipo(t.id, t.code, t.enabled, t.cf_anonimo_allowed, t.due_date_required)
            for t in session.scalars(select(TipoDovuto).where(TipoDovuto.ente_id == ente.id))}
    return BatchContext(flow_id=flow.id, ente_id=ente.id, application_code=ente.application_code,
                        version=flow.version or "1_0", tracciato=TRACCIATI[flow.version or "1_0"], tipi=tipi,
                        reason=f"import flusso {flow.iuf}",
                        copy_text=session.get_bind().dialect.name == "postgresql")


def run_import(database: Database, settings: Settings, flow_id: int, *, progress: Progress | None = None,
               heartbeat: Callable[[], None] | None = None, batch_size: int = BATCH_SIZE) -> dict:
    """Process (or resume) one import booking to its final state; returns its counters."""
    with database.sessions() as session:
        flow = session.get(ImportFlow, flow_id)
        if flow is None:
            return {"missing": flow_id}
        state = flow.state
    if state == bookings.LOAD_IMPORT and not _start(database, settings, flow_id):
        return _summary(database, flow_id)
    with database.sessions() as session:
        flow = session.get(ImportFlow, flow_id)
        assert flow is not None
        if flow.state != bookings.IMPORT_IN_ELAB:
            return _summary(database, flow_id)
        context = _context(session, flow)
        upload = files.absolute(settings, flow.upload_path or "")
        member = outputs.base_name(flow) + ".csv"
        output = files.absolute(settings, flow.output_dir or "")
        done, total = flow.last_row_done, flow.rows_total
    parts = output / outputs.PARTS
    for stale in outputs.part_files(parts, ""):
        if int(stale.name[:12]) > done:  # written by a batch that never committed
            stale.unlink()
    beat = time.monotonic()
    # The next batch is split and checked in a thread while this one is written (see readahead).
    prepared = read_ahead(prepare(context, batch) for batch in row_batches(upload, member, done, batch_size))
    try:
        with gc_paused():
            for number, items in enumerate(prepared, 1):
                done = _commit(database, context, items, done, parts)
                if number % 20 == 0:
                    gc.collect()  # now and then, for what cycles the sessions leave
                if progress:
                    progress(done, total)
                if heartbeat and time.monotonic() - beat > 30:
                    heartbeat()
                    beat = time.monotonic()
    except FlowError as error:  # the file changed under us since the scan: stop where we are
        _abort(database, flow_id, error.code)
        return _summary(database, flow_id)
    finally:
        prepared.close()
    _finish(database, settings, flow_id, output, parts, upload, member)
    return _summary(database, flow_id)


def _commit(database: Database, context: BatchContext, items: list[Prepared], done: int, parts: Path) -> int:
    with database.transaction() as session:
        result = process_batch(session, context, items)
        start = items[0].number
        outputs.write_part(parts, start, ".iuv", result.iuv_lines)
        outputs.write_part(parts, start, ".avv", result.avvisi_iuds)
        last = items[-1].number
        # Compare-and-set on the resume point: a second worker on the same flow makes this batch roll back.
        changed = session.execute(update(ImportFlow).where(ImportFlow.id == context.flow_id,
                                                           ImportFlow.last_row_done == done).values(
            last_row_done=last, rows_imported=ImportFlow.rows_imported + result.imported,
            rows_rejected=ImportFlow.rows_rejected + result.rejected))
        if changed.rowcount != 1:
            raise RuntimeError(f"import {context.flow_id}: another worker moved past row {done}")
    return last


def _finish(database: Database, settings: Settings, flow_id: int, output: Path, parts: Path, upload: Path,
            member: str) -> None:
    with database.sessions() as session:
        flow = session.get(ImportFlow, flow_id)
        assert flow is not None
        session.expunge(flow)
    header = read_header(upload, member)
    name = outputs.base_name(flow)
    if flow.rows_rejected:
        outputs.write_scarti(database, flow_id, header, output / f"{name}_SCARTI.zip")
    if flow.rows_imported:
        outputs.write_iuv(header, parts, output / f"{name}_IUV.zip")
    pdfs = 0
    if flow.version in ("1_3", "1_4"):
        pdfs = outputs.write_avvisi(database, flow, parts, output / f"{name}_AVVISI_PDF.zip")
    with database.transaction() as session:
        session.execute(update(ImportFlow).where(ImportFlow.id == flow_id).values(
            state=bookings.IMPORT_ESEGUITO, pdf_count=pdfs))
    outputs.remove_parts(parts)
    log.info("import done", import_id=flow_id, rows=flow.rows_total, imported=flow.rows_imported,
             rejected=flow.rows_rejected, pdfs=pdfs)


def _summary(database: Database, flow_id: int) -> dict:
    with database.sessions() as session:
        flow = session.get(ImportFlow, flow_id)
        if flow is None:
            return {"missing": flow_id}
        return {"import_id": flow.id, "state": flow.state, "error_code": flow.error_code, "rows": flow.rows_total,
                "imported": flow.rows_imported, "rejected": flow.rows_rejected, "pdfs": flow.pdf_count,
                "output_dir": flow.output_dir}

