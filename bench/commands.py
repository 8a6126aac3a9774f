"""``ente-gateway bench`` / ``python -m bench``: the SOAP benchmark (options below; see docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path

import click

from bench.runner import OPERATIONS, VARIANTS, Options


def _list(kind: type, allowed: tuple[str, ...] | None = None):
    def convert(_ctx: click.Context, param: click.Parameter, value: str | None):
        if value is None:
            return None
        items = [kind(v.strip()) for v in value.split(",") if v.strip()]
        if allowed is not None:
            unknown = [v for v in items if v not in allowed]
            if unknown:
                raise click.BadParameter(f"unknown {', '.join(map(str, unknown))}; choose from {', '.join(allowed)}")
        if not items:
            raise click.BadParameter("empty list")
        return items

    return convert


@click.command("bench", help="Benchmark the SOAP operations under gunicorn with wrk against an lxml echo baseline, "
                             "on SQLite and PostgreSQL; write docs/benchmarks.md and docs/benchmarks.json.")
@click.option("--quick", is_flag=True,
              help="Short run: SQLite, 1 worker, 2 s per point, 2,000 dovuti (other flags still apply).")
@click.option("--backends", callback=_list(str, ("sqlite", "postgres")), help="Default sqlite,postgres.")
@click.option("--workers", callback=_list(int), help="gunicorn worker counts. Default 1,2,4.")
@click.option("--duration", type=float, help="Seconds of load per point. Default 5.")
@click.option("--operations", callback=_list(str, OPERATIONS), help=f"Default {','.join(OPERATIONS)}.")
@click.option("--db-size", "db_sizes", callback=_list(int),
              help="Payable dovuti seeded. Default 10000; several sizes (e.g. 10000,1000000) add the scaling table.")
@click.option("--variants", callback=_list(str, tuple(VARIANTS)),
              help="Server variants: fast (ENTE_GATEWAY_FAST_PATH=1, the production default), spyne (=0). Default fast.")
@click.option("--threads", type=int,
              help="Threads per gunicorn worker for the gateway and the echo alike (>1: gthread workers). Default 1.")
@click.option("--rate-workers", type=int, help="Worker count of the p99-at-80%-of-peak pass. Default 2.")
@click.option("--profile/--no-profile", default=None, help="cProfile each operation in-process. Default on.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Markdown report; the JSON goes next to it. Default docs/benchmarks.md.")
@click.option("--keep", is_flag=True, help="Keep the temporary folder (logs, Lua scripts, SQLite file).")
def bench(quick: bool, **options) -> None:
    chosen = {key: value for key, value in options.items() if value is not None and value is not False}
    if options.get("profile") is False:
        chosen["profile"] = False
    settings = Options.quick_defaults(**chosen) if quick else Options(**chosen)
    from bench.runner import run

    try:
        run(settings, echo=lambda line: click.echo(line, err=True))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


commands = [bench]
