"""The signed, expiring download URL of a reporting flow: streams the stored FlussoRiversamento XML."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs

from sqlalchemy import func, select

from gateway import logs, urls
from gateway.runtime import Runtime
from gateway.settings import Settings
from storage.models import RendicontazioneFlow

from .clock import rome_naive

log = logs.get_logger(__name__)

DOWNLOAD_PATH = "/rendicontazione/download/"
PURPOSE = "rendicontazione-download"
MAX_AGE_SECONDS = 24 * 3600
TYPE_RENDICONTAZIONE = "FLUSSI_RENDIC"
_CHUNK = 1 << 16


def file_name(flow: RendicontazioneFlow) -> str:
    """MyPay's name: <idPSP>_<idFlusso>_<yyyyMMddHHmmss of dataOraFlusso>.xml."""
    return f"{flow.psp_id}_{flow.flow_id}_{rome_naive(flow.flow_datetime).strftime('%Y%m%d%H%M%S')}.xml"


def download_url(settings: Settings, ente_id: int, flow: RendicontazioneFlow) -> str:
    # The token binds the ente and the flow: a URL made for one ente never serves another's flow.
    token = urls.make_token(settings, PURPOSE, {"e": ente_id, "f": flow.id})
    return urls.public_url(settings, f"{DOWNLOAD_PATH}{ente_id}", type=TYPE_RENDICONTAZIONE,
                           securityToken=token, filename=file_name(flow))


def routes(runtime: Runtime) -> dict[str, Callable]:
    def download(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", b"method not allowed\n")
        ente_part = environ.get("PATH_INFO", "")[len(DOWNLOAD_PATH):].strip("/")
        token = (parse_qs(environ.get("QUERY_STRING", "")).get("securityToken") or [None])[0]
        try:
            payload = urls.read_token(runtime.settings, PURPOSE, token, MAX_AGE_SECONDS)
            if not isinstance(payload, dict) or str(payload.get("e")) != ente_part:
                raise urls.InvalidToken("token for another ente")
        except urls.InvalidToken as exc:
            log.info("flow download refused", reason=str(exc))
            return _plain(start_response, "403 Forbidden", b"link not valid or expired\n")
        with runtime.database.transaction() as session:
            found = session.execute(
                select(RendicontazioneFlow.psp_id, RendicontazioneFlow.flow_id, RendicontazioneFlow.flow_datetime,
                       func.length(RendicontazioneFlow.raw))
                .where(RendicontazioneFlow.id == payload.get("f"), RendicontazioneFlow.ente_id == payload["e"],
                       RendicontazioneFlow.state == "OK")).first()
        if found is None or not found[3]:
            return _plain(start_response, "404 Not Found", b"flow not available\n")
        name = f"{found[0]}_{found[1]}_{rome_naive(found[2]).strftime('%Y%m%d%H%M%S')}.xml"
        start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(found[3])),
                                  ("Content-Disposition", f'attachment; filename="{name}"'),
                                  ("Cache-Control", "no-store")])
        if environ.get("REQUEST_METHOD") == "HEAD":
            return []
        return _chunks(runtime, payload["f"], found[3])

    return {DOWNLOAD_PATH: download}


def _chunks(runtime: Runtime, flow_pk: int, size: int) -> Iterator[bytes]:
    # Slices read by the database: a large flow is never loaded whole in the web worker.
    step = 4 << 20
    for offset in range(0, size, step):
        with runtime.database.transaction() as session:
            piece = session.scalar(select(func.substr(RendicontazioneFlow.raw, offset + 1, step))
                                   .where(RendicontazioneFlow.id == flow_pk))
        data = bytes(piece or b"")
        for start in range(0, len(data), _CHUNK):
            yield data[start:start + _CHUNK]


def _plain(start_response: Callable, status: str, payload: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(payload)))])
    return [payload]
