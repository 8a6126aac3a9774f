"""The ``ente-gateway`` command: database, enti and tipi dovuto, server, worker, demo.

Every option also reads an ENTE_GATEWAY_* environment variable (see README); flags win.
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from typing import Any

import click

from gateway.settings import Settings, load_settings


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def _database(ctx: click.Context):
    from storage.db import Database

    if "database" not in ctx.obj:
        ctx.obj["database"] = Database(_settings(ctx).database_url)
    return ctx.obj["database"]


@click.group(help=__doc__)
@click.option("--db", "database_url", envvar="ENTE_GATEWAY_DATABASE_URL",
              help="SQLAlchemy URL; default sqlite:///ente-gateway.sqlite3 in the working directory.")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    ctx.ensure_object(dict)
    ctx.obj["settings"] = load_settings(database_url=database_url)
    from gateway import logs

    settings = ctx.obj["settings"]
    logs.configure_logging(settings.log_format, settings.log_level)


# --- database ----------------------------------------------------------------------------------------
@main.group(help="Database schema.")
def db() -> None:
    pass


@db.command("upgrade", help="Apply every pending migration (idempotent).")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    from storage.migrate import upgrade

    upgrade(_settings(ctx).database_url, revision)
    click.echo(f"database at {revision}")


# --- enti --------------------------------------------------------------------------------------------
@main.group(help="Enti served by the gateway.")
def ente() -> None:
    pass


@ente.command("add", help="Register an ente and its SIL password (stored hashed).")
@click.option("--cod-ipa", required=True)
@click.option("--fiscal-code", required=True, help="11-digit fiscal code (idDominio).")
@click.option("--name", required=True)
@click.option("--password", required=True, help="SIL password; prefer the ENTE_GATEWAY_ENTE_PASSWORD variable.",
              envvar="ENTE_GATEWAY_ENTE_PASSWORD")
@click.option("--aux-digit", default="3", show_default=True, type=click.Choice(["0", "3"]))
@click.option("--segregation-code", default=None, help="2 digits; required with aux digit 3.")
@click.option("--application-code", default=None, help="2 digits; defaults to the segregation code.")
@click.option("--state", default="ESERCIZIO", show_default=True,
              type=click.Choice(["INSERITO", "PRE-ESERCIZIO", "ESERCIZIO"]))
@click.option("--payment-model", default="checkout", show_default=True, type=click.Choice(["checkout", "rpt"]))
@click.pass_context
def ente_add(ctx: click.Context, **options: Any) -> None:
    from gateway.enti.registry import NewEnte, RegistryError, add_ente

    if options["aux_digit"] == "3" and not options["segregation_code"]:
        options["segregation_code"] = "01"
    try:
        with _database(ctx).transaction() as session:
            created = add_ente(session, NewEnte(**options))
            click.echo(f"ente {created.cod_ipa} ({created.fiscal_code}) added")
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc


@ente.command("list", help="List enti (no secrets).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ente_list(ctx: click.Context, as_json: bool) -> None:
    from sqlalchemy import select

    from storage.models import Ente

    with _database(ctx).transaction() as session:
        rows = [dict(cod_ipa=e.cod_ipa, fiscal_code=e.fiscal_code, name=e.name, state=e.state, enabled=e.enabled,
                     aux_digit=e.aux_digit, segregation_code=e.segregation_code, payment_model=e.payment_model)
                for e in session.scalars(select(Ente).order_by(Ente.cod_ipa))]
    _print_rows(rows, as_json)


def _set_ente_enabled(ctx: click.Context, cod_ipa: str, enabled: bool) -> None:
    from gateway.enti.registry import RegistryError, get_ente

    try:
        with _database(ctx).transaction() as session:
            get_ente(session, cod_ipa).enabled = enabled
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"ente {cod_ipa} {'enabled' if enabled else 'disabled'}")


@ente.command("disable", help="Refuse every call of this ente (its data stay).")
@click.option("--cod-ipa", required=True)
@click.pass_context
def ente_disable(ctx: click.Context, cod_ipa: str) -> None:
    _set_ente_enabled(ctx, cod_ipa, False)


@ente.command("enable")
@click.option("--cod-ipa", required=True)
@click.pass_context
def ente_enable(ctx: click.Context, cod_ipa: str) -> None:
    _set_ente_enabled(ctx, cod_ipa, True)


@ente.command("set-password", help="Change the SIL password of an ente.")
@click.option("--cod-ipa", required=True)
@click.option("--password", required=True, envvar="ENTE_GATEWAY_ENTE_PASSWORD")
@click.pass_context
def ente_set_password(ctx: click.Context, cod_ipa: str, password: str) -> None:
    from gateway.enti.registry import RegistryError, set_ente_password

    try:
        with _database(ctx).transaction() as session:
            set_ente_password(session, cod_ipa, password)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"password of {cod_ipa} changed")


# --- tipi dovuto -------------------------------------------------------------------------------------
@main.group("tipo-dovuto", help="Kinds of debt an ente collects.")
def tipo_dovuto() -> None:
    pass


@tipo_dovuto.command("add")
@click.option("--cod-ipa", required=True)
@click.option("--code", required=True)
@click.option("--description", required=True)
@click.option("--iban", default=None, help="Account credited; not needed for MARCA_BOLLO_DIGITALE.")
@click.option("--taxonomy", default=None, help="pagoPA taxonomy code, e.g. 9/0101100IM/.")
@click.option("--cf-anonimo", is_flag=True, help="Accept the payer code ANONIMO.")
@click.option("--due-date-required", is_flag=True, help="Positions expire at their due date.")
@click.option("--fixed-amount", default=None, help="Fixed amount (MARCA_BOLLO_DIGITALE).")
@click.pass_context
def tipo_add(ctx: click.Context, cod_ipa: str, code: str, description: str, iban: str | None, taxonomy: str | None,
             cf_anonimo: bool, due_date_required: bool, fixed_amount: str | None) -> None:
    from gateway.enti.registry import RegistryError, add_tipo_dovuto

    try:
        with _database(ctx).transaction() as session:
            add_tipo_dovuto(session, cod_ipa, code, description, iban, taxonomy, cf_anonimo=cf_anonimo,
                            due_date_required=due_date_required,
                            fixed_amount=Decimal(fixed_amount) if fixed_amount else None)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"tipo dovuto {code} added to {cod_ipa}")


@tipo_dovuto.command("list")
@click.option("--cod-ipa", required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tipo_list(ctx: click.Context, cod_ipa: str, as_json: bool) -> None:
    from gateway.enti.registry import RegistryError, get_ente

    try:
        with _database(ctx).transaction() as session:
            rows = [dict(code=t.code, description=t.description, iban=t.iban, taxonomy=t.taxonomy_code,
                         enabled=t.enabled) for t in sorted(get_ente(session, cod_ipa).tipi_dovuto, key=lambda t: t.code)]
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_rows(rows, as_json)


@tipo_dovuto.command("disable")
@click.option("--cod-ipa", required=True)
@click.option("--code", required=True)
@click.pass_context
def tipo_disable(ctx: click.Context, cod_ipa: str, code: str) -> None:
    _set_tipo_enabled(ctx, cod_ipa, code, False)


@tipo_dovuto.command("enable")
@click.option("--cod-ipa", required=True)
@click.option("--code", required=True)
@click.pass_context
def tipo_enable(ctx: click.Context, cod_ipa: str, code: str) -> None:
    _set_tipo_enabled(ctx, cod_ipa, code, True)


def _set_tipo_enabled(ctx: click.Context, cod_ipa: str, code: str, enabled: bool) -> None:
    from gateway.enti.registry import RegistryError, set_tipo_dovuto_enabled

    try:
        with _database(ctx).transaction() as session:
            set_tipo_dovuto_enabled(session, cod_ipa, code, enabled)
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"tipo dovuto {code} of {cod_ipa} {'enabled' if enabled else 'disabled'}")


# --- processes ---------------------------------------------------------------------------------------
@main.command(help="Serve the gateway under gunicorn (sync workers, app preloaded).")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="ENTE_GATEWAY_HOST")
@click.option("--port", default=8080, show_default=True, envvar="ENTE_GATEWAY_PORT", type=int)
@click.option("--workers", default=None, type=int, envvar="ENTE_GATEWAY_WORKERS",
              help="Default: one per core.")
@click.option("--threads", default=1, show_default=True, type=int,
              help="Threads per worker (>1 uses gthread workers).")
@click.option("--with-simulator", is_flag=True, help="Mount the embedded pagoPA simulator under /sim.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int | None, threads: int, with_simulator: bool) -> None:
    from gateway.server import serve as run_server

    run_server(_settings(ctx), host=host, port=port, workers=workers or (os.cpu_count() or 1), threads=threads,
               with_simulator=with_simulator)


@main.command(help="Run asynchronous jobs (imports, exports, flow fetches, receipt recovery) until stopped.")
@click.option("--once", is_flag=True, help="Run the jobs due now, then exit.")
@click.pass_context
def worker(ctx: click.Context, once: bool) -> None:
    from gateway.worker import run

    run(_settings(ctx), once=once)


@main.command(help="One-command demo: migrate, create a demo ente, start gateway + worker + simulator.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.pass_context
def demo(ctx: click.Context, host: str, port: int) -> None:
    from gateway.demo import run_demo

    run_demo(_settings(ctx), host=host, port=port)


# Command groups owned by capabilities (flussi, flows, sim, bench...): each module exposes ``commands``,
# a list of click commands. A module not written yet is skipped.
COMMAND_PROVIDERS = ("gateway.flussi.commands", "gateway.rendicontazione.commands", "simulators.commands",
                     "bench.commands")


def _register_commands() -> None:
    import importlib

    for module_name in COMMAND_PROVIDERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name and not module_name.startswith(str(exc.name) + "."):
                raise
            continue
        for command in module.commands:
            main.add_command(command)


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("(none)")
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    click.echo("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        click.echo("  ".join(str(row[k]).ljust(widths[k]) for k in keys))


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
