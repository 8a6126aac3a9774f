"""CLI of the simulator: ``ente-gateway simulator`` (run it alone) and ``ente-gateway sim ...`` (drive it).

The ``sim`` subcommands reach the simulator over HTTP at ENTE_GATEWAY_SIMULATOR_URL (default
ENTE_GATEWAY_PUBLIC_URL + "/sim"). Other simulator modules add their subcommands to the ``sim`` group
(e.g. ``sim report`` from simulators.reporting: ``from simulators.commands import sim`` then
``@sim.command("report")``); ``EXTRA_COMMAND_MODULES`` are imported here so they are registered.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

import click
import requests

EXTRA_COMMAND_MODULES = ("simulators.reporting",)


def _default_url() -> str:
    explicit = os.environ.get("ENTE_GATEWAY_SIMULATOR_URL")
    if explicit:
        return explicit.rstrip("/")
    return (os.environ.get("ENTE_GATEWAY_PUBLIC_URL") or "http://127.0.0.1:8080").rstrip("/") + "/sim"


def call(ctx: click.Context, method: str, path: str, payload: dict[str, Any] | None = None,
         timeout: float = 90) -> tuple[int, Any]:
    """One control API call; a ClickException when the simulator cannot be reached."""
    url = ctx.obj["sim_url"] + "/api" + path
    try:
        response = requests.request(method, url, json=payload, timeout=timeout)
    except requests.RequestException as exc:
        raise click.ClickException(f"simulator not reachable at {url}: {type(exc).__name__}") from exc
    try:
        return response.status_code, response.json()
    except ValueError as exc:
        raise click.ClickException(f"unexpected answer from {url}: HTTP {response.status_code}") from exc


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.command("simulator", help="Run the pagoPA simulator alone; the gateway is at ENTE_GATEWAY_PUBLIC_URL.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--public-url", default=None, help="The simulator's own URL as browsers see it "
                                                  "(default ENTE_GATEWAY_SIMULATOR_URL or http://HOST:PORT/sim).")
def simulator(host: str, port: int, threads: int, public_url: str | None) -> None:
    from simulators.config import from_environment
    from simulators.server import serve

    url = public_url or os.environ.get("ENTE_GATEWAY_SIMULATOR_URL") or f"http://{host}:{port}/sim"
    settings = from_environment(public_url=url)
    click.echo(f"pagoPA simulator on {url} (gateway {settings.gateway_url})", err=True)
    serve(settings, host=host, port=port, threads=threads)


@click.group("sim", help="Drive a running pagoPA simulator (pay notices, scenarios, calls made).")
@click.option("--url", default=None, help="Simulator base URL (default ENTE_GATEWAY_SIMULATOR_URL, "
                                          "else ENTE_GATEWAY_PUBLIC_URL/sim).")
@click.pass_context
def sim(ctx: click.Context, url: str | None) -> None:
    ctx.ensure_object(dict)
    ctx.obj["sim_url"] = (url or _default_url()).rstrip("/")


@sim.command("pay", help="A simulated PSP pays a notice: verify, activate, outcome, then paSendRTV2 to the gateway.")
@click.option("--fiscal-code", required=True, help="The ente's fiscal code (11 digits).")
@click.option("--notice-number", required=True, help="The 18-digit notice number.")
@click.option("--outcome", default="ok", show_default=True, type=click.Choice(["ok", "ko"]))
@click.option("--psp", "psp_id", default=None, help="idPSP (default the first simulated PSP).")
@click.option("--wait", default=20.0, show_default=True, help="Seconds to wait for the receipt's first delivery.")
@click.pass_context
def sim_pay(ctx: click.Context, fiscal_code: str, notice_number: str, outcome: str, psp_id: str | None,
            wait: float) -> None:
    payload = {"fiscalCode": fiscal_code, "noticeNumber": notice_number, "outcome": outcome, "wait": wait}
    if psp_id:
        payload["psp"] = psp_id
    status, data = call(ctx, "POST", "/pay", payload, timeout=wait + 60)
    _echo(data)
    if status != 200 or not data.get("ok"):
        sys.exit(1)


@sim.command("scenario", help="Set a scenario (see GET /sim/api/scenario); NAME 'clear' removes them all.")
@click.argument("name")
@click.option("--count", type=int, default=None, help="How many uses (default: the scenario's own).")
@click.option("--param", "params", multiple=True, help="k=v, repeatable (e.g. seconds=5, code=PPT_SYSTEM_ERROR).")
@click.pass_context
def sim_scenario(ctx: click.Context, name: str, count: int | None, params: tuple[str, ...]) -> None:
    payload: dict[str, Any] = {"name": name}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected k=v, got {item!r}", param_hint="--param")
        payload[key] = _typed(value)
    if count is not None:
        payload["count"] = count
    status, data = call(ctx, "POST", "/scenario", payload)
    _echo(data)
    if status != 200:
        sys.exit(1)


def _typed(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


@sim.command("calls", help="What the simulator sent to the gateway and what it answered.")
@click.option("--limit", default=50, show_default=True)
@click.option("--operation", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sim_calls(ctx: click.Context, limit: int, operation: str | None, as_json: bool) -> None:
    query = f"/calls?limit={limit}" + (f"&operation={operation}" if operation else "")
    _status, data = call(ctx, "GET", query)
    calls = data.get("calls", [])
    if as_json:
        _echo(calls)
        return
    for item in calls:
        click.echo(f"{item['at']}  {item['direction']:<12} {item['operation']:<24} {item['outcome']:<10} "
                   f"{item.get('fault_code') or '':<28} {item.get('subject') or ''}")


@sim.command("reset", help="Forget carts, tokens, receipts, calls and scenarios.")
@click.pass_context
def sim_reset(ctx: click.Context) -> None:
    status, data = call(ctx, "POST", "/reset")
    _echo(data)
    if status != 200:
        sys.exit(1)


def _register_extra_commands() -> None:
    for name in EXTRA_COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


commands = [simulator, sim]
_register_extra_commands()
