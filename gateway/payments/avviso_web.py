"""GET /avviso/<token>: the notice PDF behind ImportaDovuto's urlFileAvviso (a signed, two-year link)."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from gateway import logs
from gateway.payments import importa, states
from gateway.payments.avviso import AvvisoError, render_avviso_pdf
from gateway.runtime import Runtime
from gateway.urls import InvalidToken
from storage.models import Dovuto, Ente

log = logs.get_logger(__name__)


def _answer(start_response: Callable, status: str, body: bytes, content_type: str = "text/plain; charset=utf-8",
            extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")] + (extra or []))
    return [body]


def avviso_app(runtime: Runtime) -> Callable[[dict[str, Any], Callable], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", b"method not allowed\n", extra=[("Allow", "GET")])
        token = environ.get("PATH_INFO", "")[len(importa.AVVISO_PATH):]
        try:
            dovuto_id = importa.read_avviso_token(runtime.settings, token)
        except (InvalidToken, KeyError, TypeError, ValueError):
            return _answer(start_response, "404 Not Found", b"avviso non trovato\n")
        with runtime.database.transaction() as session:
            dovuto = session.get(Dovuto, dovuto_id)
            if dovuto is None:
                return _answer(start_response, "404 Not Found", b"avviso non trovato\n")
            if dovuto.state == states.ANNULLATO:
                return _answer(start_response, "410 Gone", b"avviso annullato\n")
            try:
                data = importa.dovuto_avviso_data(session.get(Ente, dovuto.ente_id), dovuto)
            except AvvisoError:
                return _answer(start_response, "404 Not Found", b"avviso non trovato\n")
            iuv = dovuto.iuv
        try:
            pdf = render_avviso_pdf(data)
        except AvvisoError as exc:
            log.warning("avviso not printable", dovuto_id=dovuto_id, error=str(exc))
            return _answer(start_response, "422 Unprocessable Entity", b"avviso non stampabile\n")
        disposition = f'inline; filename="avviso_{data.ente_fiscal_code}_{iuv}.pdf"'
        return _answer(start_response, "200 OK", pdf, "application/pdf", [("Content-Disposition", disposition)])

    return app


def routes(runtime: Runtime) -> dict[str, Callable]:
    return {importa.AVVISO_PATH: avviso_app(runtime)}
