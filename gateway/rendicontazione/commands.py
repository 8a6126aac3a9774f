"""``ente-gateway flows``: fetch the PSPs' reporting flows now, and the reconciliation report of a day."""

from __future__ import annotations

import sys
from datetime import date

import click

from gateway.settings import load_settings


def _database(ctx: click.Context):  # noqa: ANN202
    from storage.db import Database

    settings = (ctx.find_root().obj or {}).get("settings") or load_settings()
    return settings, Database(settings.database_url)


@click.group(help="Reporting flows (rendicontazione): fetch from the node, reconcile, report.")
def flows() -> None:
    pass


@flows.command("fetch", help="Fetch the new reporting flows of every active ente (or one) and reconcile them.")
@click.option("--cod-ipa", default=None, help="Only this ente.")
@click.pass_context
def flows_fetch(ctx: click.Context, cod_ipa: str | None) -> None:
    from .fetch import fetch_all

    settings, database = _database(ctx)
    try:
        reports, unavailable = fetch_all(database, settings, cod_ipa)
    finally:
        database.dispose()
    if cod_ipa and not reports and not unavailable:
        raise click.ClickException(f"no active ente with cod IPA {cod_ipa}")
    for report in reports:
        click.echo(f"{report.cod_ipa}: {report.new_flows} new flows, {report.rows} payments, "
                   f"{report.ko_flows} invalid, {report.rematched} late receipts matched")
        for refused in report.refused:
            click.echo(f"  refused: {refused}")
    for line in unavailable:
        click.echo(f"node unavailable for {line}", err=True)
    if unavailable:
        sys.exit(1)


@flows.command("report", help="Reconciliation of the flows of one settlement date: summary, details as CSV.")
@click.option("--cod-ipa", required=True)
@click.option("--date", "day", required=True, type=click.DateTime(formats=["%Y-%m-%d"]))
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the detail rows to this CSV file.")
@click.option("--unreported-days", type=int, default=None,
              help="Receipts this many days old and still not reported are listed (default from settings).")
@click.pass_context
def flows_report(ctx: click.Context, cod_ipa: str, day, out_path: str | None,  # noqa: ANN001
                 unreported_days: int | None) -> None:
    from sqlalchemy import select

    from storage.models import Ente

    from . import report
    from .config import reporting_settings

    settings, database = _database(ctx)
    days = unreported_days if unreported_days is not None else reporting_settings(settings).unreported_days
    when: date = day.date()
    try:
        with database.transaction() as session:
            ente = session.scalar(select(Ente).where(Ente.cod_ipa == cod_ipa))
            if ente is None:
                raise click.ClickException(f"no ente with cod IPA {cod_ipa}")
            result = report.summary(session, ente, when, days)
            for line in result.lines():
                click.echo(line)
            if out_path:
                with open(out_path, "w", newline="", encoding="utf-8") as out:
                    written = report.write_csv(out, report.details(session, ente, when, days))
                click.echo(f"{written} detail rows written to {out_path}")
    finally:
        database.dispose()


commands = [flows]
