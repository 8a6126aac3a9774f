"""Receiving a flow upload: multipart streamed to disk, token checked, booking bound to the file, job queued.

The authorizationToken (from paaSILAutorizzaImportFlusso) is accepted in the query string or as a form
field; it works once: the booking must still be LOAD_IMPORT with no file. Nothing is changed on refusal.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs

from sqlalchemy import select
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import FileTarget, ValueTarget

from gateway import logs, urls
from gateway.flussi import archive, bookings, files
from gateway.settings import Settings
from storage.db import Database
from storage.models import Ente, ImportFlow
from storage.types import utcnow

log = logs.get_logger(__name__)

FILE_FIELDS = ("file", "uploadFile", "flusso", "zip")
TOKEN_FIELD = "authorizationToken"
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class UploadResult:
    status: int
    message: str
    request_token: str | None = None


class _TooLarge(Exception):
    pass


def _grant(settings: Settings, token: str | None) -> dict[str, Any]:
    payload = urls.read_token(settings, "upload", token, files.UPLOAD_MAX_AGE)
    if not isinstance(payload, dict) or not isinstance(payload.get("e"), int) or not isinstance(payload.get("r"), str):
        raise urls.InvalidToken("bad payload")
    return payload


def _stream_body(stream: IO[bytes], length: int | None, limit: int, parser: StreamingFormDataParser) -> None:
    received = 0
    while True:
        want = _CHUNK if length is None else min(_CHUNK, length - received)
        if want <= 0:
            break
        chunk = stream.read(want)
        if not chunk:
            break
        received += len(chunk)
        if received > limit:
            raise _TooLarge()
        parser.data_received(chunk)


def receive(database: Database, settings: Settings, environ: dict[str, Any]) -> UploadResult:
    query_token = (parse_qs(environ.get("QUERY_STRING", "")).get(TOKEN_FIELD) or [None])[0]
    if query_token is not None:
        try:
            _grant(settings, query_token)  # refuse a bad token before reading a byte of the body
        except urls.InvalidToken:
            return UploadResult(401, "authorizationToken non valido o scaduto")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0) or None
    except ValueError:
        return UploadResult(400, "Content-Length non valido")
    if length is not None and length > settings.max_upload_bytes:
        return UploadResult(413, "file troppo grande")
    content_type = environ.get("CONTENT_TYPE", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return UploadResult(400, "attesa una richiesta multipart/form-data")

    incoming = files.absolute(settings, "flussi/.incoming")
    incoming.mkdir(parents=True, exist_ok=True)
    stem = uuid.uuid4().hex
    targets = {name: FileTarget(str(incoming / f"{stem}-{index}.part")) for index, name in enumerate(FILE_FIELDS)}
    token_target = ValueTarget()
    try:
        parser = StreamingFormDataParser(headers={"Content-Type": content_type})
        for name, target in targets.items():
            parser.register(name, target)
        parser.register(TOKEN_FIELD, token_target)
        _stream_body(environ["wsgi.input"], length, settings.max_upload_bytes, parser)
        uploaded = [(name, t) for name, t in targets.items() if t.multipart_filename is not None]
        if not uploaded:
            return UploadResult(400, "nessun file nella richiesta (campo 'file')")
        _, target = uploaded[0]
        part = incoming / f"{stem}-{FILE_FIELDS.index(uploaded[0][0])}.part"
        token = query_token or (token_target.value.decode("utf-8", "replace") if token_target.value else None)
        try:
            grant = _grant(settings, token)
        except urls.InvalidToken:
            return UploadResult(401, "authorizationToken non valido o scaduto")
        try:
            archive.quick_check(part)
        except archive.ArchiveError as exc:
            return UploadResult(400, f"file non accettato: {exc}")
        return _bind(database, settings, grant, os.path.basename((target.multipart_filename or "").replace("\\", "/")),
                     part)
    except _TooLarge:
        return UploadResult(413, "file troppo grande")
    except ParseFailedException:
        return UploadResult(400, "richiesta multipart non valida")
    finally:
        for index in range(len(FILE_FIELDS)):
            (incoming / f"{stem}-{index}.part").unlink(missing_ok=True)


def _bind(database: Database, settings: Settings, grant: dict[str, Any], file_name: str, part: Path) -> UploadResult:
    with database.transaction() as session:
        flow = session.scalar(select(ImportFlow).where(ImportFlow.request_token == grant["r"]).with_for_update())
        ente = session.get(Ente, grant["e"])
        if flow is None or ente is None or flow.ente_id != ente.id or not ente.enabled:
            return UploadResult(401, "authorizationToken non valido")
        if flow.state != bookings.LOAD_IMPORT or flow.upload_path:
            return UploadResult(409, "authorizationToken già utilizzato")
        relative = files.upload_dir(ente.cod_ipa, flow.request_token) / "upload.zip"
        target = files.absolute(settings, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(part), target)
        bookings.attach_upload(session, flow, file_name or "upload.zip", str(relative), utcnow())
        log.info("flow uploaded", import_id=flow.id, cod_ipa_ente=ente.cod_ipa, bytes=target.stat().st_size)
        return UploadResult(200, "OK", flow.request_token)
