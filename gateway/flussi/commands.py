"""``ente-gateway flussi``: import a dovuti flow or export pagati from the command line, in-process.

Same code path as the SOAP + upload route: a booking is created, the file copied where uploads go, and the
import (or export) job's function run here with a progress bar.
"""

from __future__ import annotations

import shutil
from datetime import datetime, time, timezone
from pathlib import Path

import click


def _context(ctx: click.Context):  # noqa: ANN202
    from storage.db import Database

    settings = ctx.find_root().obj["settings"]
    return settings, Database(settings.database_url)


def _progress_bar():  # noqa: ANN202
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=False)


@click.group(help="Bulk import of dovuti and export of pagati (MyPay tracciati).")
def flussi() -> None:
    pass


@flussi.command("import", help="Import FILE (<codIpa>-<IUF>-<version>.zip) for an ente and wait for the result.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--cod-ipa", required=True)
@click.option("--batch-size", default=10000, show_default=True, type=int)
@click.pass_context
def import_command(ctx: click.Context, file: Path, cod_ipa: str, batch_size: int) -> None:
    from gateway.enti.registry import RegistryError, get_ente
    from gateway.flussi import bookings, files, importer
    from storage.types import utcnow

    settings, database = _context(ctx)
    try:
        with database.transaction() as session:
            ente = get_ente(session, cod_ipa)
            flow = bookings.new_import(session, ente)
            relative = files.upload_dir(ente.cod_ipa, flow.request_token) / "upload.zip"
            target = files.absolute(settings, relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
            bookings.attach_upload(session, flow, file.name, str(relative), utcnow(), enqueue=False)
            flow_id, token = flow.id, flow.request_token
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"import {flow_id} (requestToken {token})")
    with _progress_bar() as bar:
        task = bar.add_task("righe", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = importer.run_import(database, settings, flow_id, progress=progress, batch_size=batch_size)
    _report_import(settings, summary)


@flussi.command("resume", help="Finish an interrupted import (e.g. after a crash) from its last committed row.")
@click.argument("import_id", type=int)
@click.pass_context
def resume_command(ctx: click.Context, import_id: int) -> None:
    from gateway.flussi import importer

    settings, database = _context(ctx)
    _report_import(settings, importer.run_import(database, settings, import_id))


def _report_import(settings, summary: dict) -> None:  # noqa: ANN001
    from gateway.flussi import files

    click.echo(f"stato: {summary.get('error_code') or summary.get('state')}")
    click.echo(f"righe: {summary.get('rows', 0)}  importate: {summary.get('imported', 0)}  "
               f"scartate: {summary.get('rejected', 0)}  avvisi: {summary.get('pdfs', 0)}")
    if summary.get("output_dir"):
        folder = files.absolute(settings, summary["output_dir"])
        for produced in sorted(folder.glob("*.zip")) if folder.is_dir() else []:
            label = "scarti" if produced.name.endswith("_SCARTI.zip") else "file"
            click.echo(f"{label}: {produced}")
    if summary.get("state") != "IMPORT_ESEGUITO":
        raise SystemExit(1)


def _parse_moment(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO date or date-time: {value}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=_rome())


def _rome():  # noqa: ANN202
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Rome")


@flussi.command("export", help="Export the pagati of an ente to a zipped CSV (MyPay export tracciato).")
@click.option("--cod-ipa", required=True)
@click.option("--from", "date_from", required=True, help="yyyy-mm-dd (or a date-time with --incremental)")
@click.option("--to", "date_to", required=True, help="yyyy-mm-dd, inclusive (exclusive date-time with --incremental)")
@click.option("--version", default="1.0", show_default=True, type=click.Choice(["1.0", "1.1", "1.2", "1.3"]))
@click.option("--receipts", is_flag=True, help="Add the receipt columns (rt in base64...).")
@click.option("--incremental", is_flag=True, help="Select by when receipts were recorded, [from, to).")
@click.option("--tipo-dovuto", default=None,
              help="Only this tipo dovuto; EXPORT_ENTE_SECONDARIO (with --version 1.3): what other enti's "
                   "multi-beneficiary payments credited to this one.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Copy the zip here.")
@click.pass_context
def export_command(ctx: click.Context, cod_ipa: str, date_from: str, date_to: str, version: str, receipts: bool,
                   incremental: bool, tipo_dovuto: str | None, out: Path | None) -> None:
    from gateway.enti.registry import RegistryError, get_ente
    from gateway.flussi import bookings, exporter

    settings, database = _context(ctx)
    start, end = _parse_moment(date_from), _parse_moment(date_to)
    if not incremental:
        start = datetime.combine(start.date(), time(), timezone.utc)
        end = datetime.combine(end.date(), time(), timezone.utc)
    if end < start:
        raise click.BadParameter("--to is before --from")
    try:
        with database.transaction() as session:
            ente = get_ente(session, cod_ipa)
            flow = bookings.new_export(session, ente, kind="incrementale" if incremental else "pagati",
                                       date_from=start, date_to=end, tipi_dovuto=tipo_dovuto, version=version,
                                       with_receipts=receipts, incremental=incremental, enqueue=False)
            flow_id = flow.id
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    with _progress_bar() as bar:
        task = bar.add_task("righe", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        summary = exporter.run_export(database, settings, flow_id, progress=progress)
    if summary.get("state") != bookings.EXPORT_ESEGUITO:
        raise click.ClickException(f"export failed: {summary.get('state')}")
    click.echo(f"righe: {summary['rows']}")
    if not summary["rows"]:
        click.echo("nessun pagamento trovato (EXPORT_ESEGUITO_NESSUN_DOVUTO_TROVATO)")
        return
    produced = Path(summary["file"])
    if out is not None:
        shutil.copyfile(produced, out)
        produced = out
    click.echo(f"file: {produced}")


commands = [flussi]


