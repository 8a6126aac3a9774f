"""HTTP routes of the flussi: the upload URL given by paaSILAutorizzaImportFlusso and signed file downloads."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import select

from gateway import logs, urls
from gateway.flussi import files, upload
from gateway.runtime import Runtime
from storage.models import Ente

log = logs.get_logger(__name__)

_STATUS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 404: "404 Not Found",
           405: "405 Method Not Allowed", 409: "409 Conflict", 413: "413 Payload Too Large"}
_CHUNK = 256 * 1024


def _json(start_response: Callable, status: int, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    start_response(_STATUS[status], [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def _file_chunks(path) -> Iterator[bytes]:  # noqa: ANN001
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def routes(runtime: Runtime) -> dict[str, Callable]:
    settings, database = runtime.settings, runtime.database

    def upload_app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return _json(start_response, 405, {"esito": "KO", "messaggio": "usare POST multipart/form-data"})
        result = upload.receive(database, settings, environ)
        body: dict[str, Any] = {"esito": "OK" if result.status == 200 else "KO", "messaggio": result.message}
        if result.request_token:
            body["requestToken"] = result.request_token
        return _json(start_response, result.status, body)

    def cod_ipa_of(ente_id: int) -> str | None:
        with database.sessions() as session:
            return session.scalar(select(Ente.cod_ipa).where(Ente.id == ente_id, Ente.enabled.is_(True)))

    def download_app(environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start_response, 405, {"esito": "KO", "messaggio": "usare GET"})
        token = environ.get("PATH_INFO", "")[len(files.DOWNLOAD_PATH):]
        try:
            path = files.resolve_download(settings, token, cod_ipa_of)
        except urls.InvalidToken:
            return _json(start_response, 404, {"esito": "KO", "messaggio": "link non valido o scaduto"})
        start_response("200 OK", [("Content-Type", "application/zip"), ("Content-Length", str(path.stat().st_size)),
                                  ("Content-Disposition", f'attachment; filename="{path.name}"')])
        if environ.get("REQUEST_METHOD") == "HEAD":
            return [b""]
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(open(path, "rb"), _CHUNK) if wrapper else _file_chunks(path)

    return {files.UPLOAD_PATH: upload_app, files.DOWNLOAD_PATH: download_app}
