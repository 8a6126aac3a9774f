"""WSGI composition: SOAP endpoints, contract files, /healthz, /metrics, and the routes later layers add."""

from __future__ import annotations

import importlib
import mimetypes
import time
from typing import Any, Callable, Iterable

from sqlalchemy import text

from gateway import logs
from gateway.runtime import Runtime, attach_runtime
from gateway.settings import XSD_DIR, WSDL_DIR, Settings
from gateway.soap.endpoint import SoapEndpoint
from storage.db import Database

log = logs.get_logger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]

# Capabilities with web routes of their own (payment landing pages, uploads, downloads): each module's
# function takes the Runtime and returns {path prefix: WSGI app}. A module not written yet is skipped.
ROUTE_PROVIDERS = (
    "gateway.payments.web:routes",
    "gateway.payments.avviso_web:routes",
    "gateway.flussi.web:routes",
    "gateway.rendicontazione.web:routes",
)


class GatewayApp:
    """Routes by path prefix; each route is a plain WSGI application."""

    def __init__(self, runtime: Runtime) -> None:
        from gateway.soap import contracts  # late import: contract modules import the domain

        self.runtime = runtime
        self.routes: dict[str, WsgiApp] = {}
        self.prefixes: list[tuple[str, WsgiApp]] = []
        for contract, spyne_app in contracts.build_all():
            attach_runtime(spyne_app, runtime)
            self.routes[contract.path] = SoapEndpoint(contract, spyne_app, runtime)
        self.routes["/healthz"] = self.healthz
        self.routes["/metrics"] = self.metrics
        self.mount("/xsd/", _static(XSD_DIR))
        self.mount("/wsdl/", _static(WSDL_DIR))
        for provider in ROUTE_PROVIDERS:
            module_name, function = provider.split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    raise
                continue
            for prefix, app in getattr(module, function)(runtime).items():
                self.mount(prefix, app)

    def mount(self, prefix: str, app: WsgiApp) -> None:
        self.prefixes.append((prefix, app))
        self.prefixes.sort(key=lambda item: -len(item[0]))

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request_id = logs.new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        path = environ.get("PATH_INFO", "/") or "/"
        logs.start_request(request_id, path=path)
        started = time.perf_counter()

        def with_request_id(status: str, headers: list, exc_info: Any = None) -> Callable:
            log.info("answered", method=environ.get("REQUEST_METHOD"), status=status.split(" ")[0],
                     ms=round((time.perf_counter() - started) * 1000, 2))
            return start_response(status, headers + [("X-Request-ID", request_id)], exc_info)

        app = self.routes.get(path.rstrip("/") or "/")
        if app is None:
            for prefix, candidate in self.prefixes:
                if path.startswith(prefix):
                    app = candidate
                    break
        if app is None:
            return _plain(with_request_id, "404 Not Found", b"not found\n")
        return app(environ, with_request_id)

    def healthz(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            with self.runtime.database.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - health check reports, never raises
            log.warning("health check failed", error=type(exc).__name__)
            return _plain(start_response, "503 Service Unavailable", b'{"status":"unavailable","database":"down"}',
                          "application/json")
        return _plain(start_response, "200 OK", b'{"status":"ok","database":"ok"}', "application/json")

    def metrics(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        from gateway.metrics import render_metrics

        payload, content_type = render_metrics()
        return _plain(start_response, "200 OK", payload, content_type)


def _plain(start_response: Callable, status: str, payload: bytes,
           content_type: str = "text/plain; charset=utf-8") -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload]


def _static(directory) -> WsgiApp:
    """Serve the project's own contract files (flat folder, names only: no traversal possible)."""
    files = {p.name: p for p in directory.glob("*") if p.is_file()}

    def serve(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        name = environ.get("PATH_INFO", "").rsplit("/", 1)[-1]
        path = files.get(name)
        if path is None:
            return _plain(start_response, "404 Not Found", b"not found\n")
        content_type = "text/xml; charset=utf-8" if name.endswith((".xsd", ".wsdl")) else (
            mimetypes.guess_type(name)[0] or "application/octet-stream")
        return _plain(start_response, "200 OK", path.read_bytes(), content_type)

    return serve


def create_app(settings: Settings, database: Database | None = None) -> GatewayApp:
    logs.configure_logging(settings.log_format, settings.log_level)
    runtime = Runtime(settings=settings, database=database or Database(settings.database_url))
    return GatewayApp(runtime)
