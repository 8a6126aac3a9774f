"""The simulator's WSGI application, served under /sim, alone or mounted in the gateway's process.

Routes: /sim/checkout/v1|v2/carts (Checkout), /sim/pagamento/<id> (payment page), /sim/nodeForPsp
(node for PSPs), /sim/api/... (control API), plus those of ``ROUTE_PROVIDERS``: each "module:function"
takes the ``Simulator`` and returns {path prefix (under /sim/, the prefix is added if missing): WSGI app}; a module not written yet
is skipped. ``SETTLERS`` (see ``simulators.settlement``) maps a cart kind to the function the payment page
calls when the payer pays, refuses or abandons.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from simulators import api, checkout, node_for_psp, page
from simulators.config import SimSettings, from_gateway_settings
from simulators.receipts import Deliverer
from simulators.settlement import SETTLERS  # noqa: F401 - re-exported: SETTLERS["rpt"] = ... from legacy
from simulators.store import Store

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]
ROUTE_PROVIDERS = ["simulators.legacy:routes", "simulators.fdr:routes", "simulators.reporting:routes"]


@dataclass
class Simulator:
    """Everything a simulator module needs: settings (registry, timers), the store, the receipt deliverer."""

    settings: SimSettings
    store: Store
    deliverer: Deliverer = field(init=False)

    def __post_init__(self) -> None:
        self.deliverer = Deliverer(self)


class SimulatorApp:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.prefixes: list[tuple[str, WsgiApp]] = []
        self.mount("/sim/checkout/v1/carts", checkout.carts_app(sim, 1))
        self.mount("/sim/checkout/v2/carts", checkout.carts_app(sim, 2))
        self.mount(page.PREFIX, page.app_for(sim))
        self.mount("/sim/nodeForPsp", node_for_psp.wsgi(sim))
        self.mount(api.PREFIX + "/", api.app_for(sim))
        for provider in ROUTE_PROVIDERS:
            module_name, function = provider.split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                continue
            if hasattr(module, function):
                for prefix, app in getattr(module, function)(sim).items():
                    # Providers may give their paths with or without the /sim prefix.
                    self.mount(prefix if prefix.startswith("/sim/") else "/sim" + prefix, app)

    def mount(self, prefix: str, app: WsgiApp) -> None:
        self.prefixes.append((prefix, app))
        self.prefixes.sort(key=lambda item: -len(item[0]))

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        self.sim.deliverer.ensure_started()  # one delivery thread per worker process, after the fork
        path = environ.get("PATH_INFO", "") or "/"
        for prefix, app in self.prefixes:
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                try:
                    return app(environ, start_response)
                except Exception:  # noqa: BLE001 - never a stack trace to a client
                    log.exception("simulator route %s failed", prefix)
                    payload = b'{"error":"simulator internal error"}'
                    start_response("500 Internal Server Error", [("Content-Type", "application/json"),
                                                                 ("Content-Length", str(len(payload)))],
                                   sys.exc_info())
                    return [payload]
        payload = b"not found\n"
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(payload)))])
        return [payload]


def create_app(settings: SimSettings) -> SimulatorApp:
    """Build the simulator; creates its tables (the store connects lazily in each worker process)."""
    store = Store(settings.effective_database_url)
    sim = Simulator(settings, store)
    app = SimulatorApp(sim)  # route providers may define tables: create them afterwards
    store.create_all()
    store.dispose()  # no connection may cross gunicorn's fork
    return app


def mount_into(gateway_app: Any, settings: Any) -> SimulatorApp:
    """Mount under /sim/ in the gateway's WSGI app (``serve --with-simulator``, the demo)."""
    app = create_app(from_gateway_settings(settings))
    gateway_app.mount("/sim/", app)
    return app
