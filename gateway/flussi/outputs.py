"""The files an import leaves for the ente (flussi-formats §1.9): scarti, IUV and avvisi zips.

Each is written to a temporary name and renamed, so a worker killed while writing leaves nothing half-done;
the IUV lines are kept in per-batch part files written before their batch commits (see importer).
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

from sqlalchemy import select

from gateway.flussi import files
from gateway.payments import avviso
from gateway.settings import Settings
from storage.db import Database
from storage.models import Dovuto, Ente, ImportFlow, ImportRejection, TipoDovuto

KINDS = {"scarti": "_SCARTI.zip", "iuv": "_IUV.zip", "avvisi": "_AVVISI_PDF.zip"}
PARTS = ".parts"


def base_name(flow: ImportFlow) -> str:
    name = flow.file_name or "flusso.zip"
    return name[:-4] if name.lower().endswith(".zip") else name


def import_outputs(settings: Settings, flow: ImportFlow) -> dict[str, str]:
    """kind -> path relative to data_dir, for the output files of ``flow`` that exist."""
    if not flow.output_dir:
        return {}
    found = {}
    for kind, suffix in KINDS.items():
        relative = f"{flow.output_dir}/{base_name(flow)}{suffix}"
        if files.absolute(settings, relative).is_file():
            found[kind] = relative
    return found


class _ZipText:
    """One text entry streamed into a new zip at a temporary path, renamed into place on success."""

    def __init__(self, final: Path, entry: str) -> None:
        self.final = final
        self.temporary = final.with_name(final.name + ".tmp")
        self.entry = entry

    def __enter__(self) -> io.TextIOWrapper:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        # Level 1: the IUV file compresses in about half of level 5's time (it is written after the last
        # batch, with nothing to overlap it), for a zip about a fifth larger.
        self.archive = zipfile.ZipFile(self.temporary, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self.binary = self.archive.open(self.entry, "w", force_zip64=True)
        self.text = io.TextIOWrapper(self.binary, encoding="utf-8", newline="", write_through=False)
        return self.text

    def __exit__(self, kind, value, traceback) -> None:  # noqa: ANN001
        self.text.close()
        self.archive.close()
        if kind is None:
            os.replace(self.temporary, self.final)
        else:
            self.temporary.unlink(missing_ok=True)


def write_scarti(database: Database, flow_id: int, header: str, target: Path) -> None:
    with _ZipText(target, target.name[:-4] + ".csv") as out:
        out.write(header + ";cod_rifiuto;de_rifiuto\n")
        with database.sessions() as session:
            rows = session.execute(select(ImportRejection.raw_line, ImportRejection.code, ImportRejection.description)
                                   .where(ImportRejection.import_flow_id == flow_id)
                                   .order_by(ImportRejection.row_number)
                                   .execution_options(yield_per=5000))
            for raw, code, description in rows:
                out.write(f"{raw};{code};{description}\n")


def part_files(parts: Path, suffix: str) -> list[Path]:
    return sorted(parts.glob(f"*{suffix}")) if parts.is_dir() else []


def write_iuv(header: str, parts: Path, target: Path) -> None:
    with _ZipText(target, target.name[:-4] + ".csv") as out:
        out.write(header + "\n")
        for part in part_files(parts, ".iuv"):
            with open(part, encoding="utf-8", newline="") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), ""):
                    out.write(chunk)


def _iuds(parts: Path) -> Iterator[list[str]]:
    for part in part_files(parts, ".avv"):
        iuds = [line for line in part.read_text(encoding="utf-8").split("\n") if line]
        for start in range(0, len(iuds), 500):
            yield iuds[start:start + 500]


def write_avvisi(database: Database, flow: ImportFlow, parts: Path, target: Path) -> int:
    """One PDF per row that asked flagGeneraIuv (and was not an annulment); returns how many."""
    count = 0
    temporary = target.with_name(target.name + ".tmp")
    target.parent.mkdir(parents=True, exist_ok=True)
    with database.sessions() as session:
        ente = session.get(Ente, flow.ente_id)
        assert ente is not None
        sectors = dict(session.execute(select(TipoDovuto.id, TipoDovuto.description)
                                       .where(TipoDovuto.ente_id == ente.id)).all())
        printed = dict(session.execute(select(TipoDovuto.id, TipoDovuto.print_due_date)
                                       .where(TipoDovuto.ente_id == ente.id)).all())
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for chunk in _iuds(parts):
                dovuti = session.scalars(select(Dovuto).where(Dovuto.ente_id == ente.id, Dovuto.iud.in_(chunk),
                                                              Dovuto.notice_number.is_not(None)))
                for dovuto in dovuti:
                    pdf = _render(ente, dovuto, sectors.get(dovuto.tipo_dovuto_id),
                                  bool(printed.get(dovuto.tipo_dovuto_id)))
                    if pdf is None:
                        continue
                    archive.writestr(avviso.avviso_entry_name(ente.fiscal_code, dovuto.iuv or ""), pdf)
                    count += 1
                session.expunge_all()
    if count:
        os.replace(temporary, target)
    else:
        temporary.unlink(missing_ok=True)
    return count


def _render(ente: Ente, dovuto: Dovuto, sector: str | None, print_due: bool) -> bytes | None:
    address = " ".join(p for p in (dovuto.payer_address, dovuto.payer_civic, dovuto.payer_postal_code) if p)
    place = " ".join(p for p in (dovuto.payer_city, f"({dovuto.payer_province})" if dovuto.payer_province else None,
                                 f"- {dovuto.payer_country}" if dovuto.payer_country else None) if p)
    total = dovuto.amount + (_secondary_amount(dovuto) or 0)
    try:
        return avviso.render_avviso_pdf(avviso.AvvisoData(
            ente_name=ente.name, ente_fiscal_code=ente.fiscal_code, notice_number=dovuto.notice_number or "",
            amount=total, causale=dovuto.causale, payer_name=dovuto.payer_name, payer_fiscal_code=dovuto.payer_code,
            payer_address="\n".join(p for p in (address, place) if p) or None, ente_sector=sector,
            due_date=dovuto.due_date if print_due else None, cbill=ente.cbill))
    except avviso.AvvisoError:
        return None


def _secondary_amount(dovuto: Dovuto):  # noqa: ANN202
    from decimal import Decimal

    if dovuto.secondary and dovuto.secondary.get("amount"):
        return Decimal(str(dovuto.secondary["amount"]))
    return None


def remove_parts(parts: Path) -> None:
    for path in part_files(parts, ""):
        path.unlink(missing_ok=True)
    if parts.is_dir():
        parts.rmdir()


def write_part(parts: Path, start: int, suffix: str, lines: Iterable[str]) -> None:
    parts.mkdir(parents=True, exist_ok=True)
    path = parts / f"{start:012d}{suffix}"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        text = "\n".join(lines)  # one write of the whole part: a write per line cost 4 µs a row
        if text:
            handle.write(text + "\n")
