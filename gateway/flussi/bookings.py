"""Import and export bookings ("prenotazioni"): the rows a flow's life hangs on, and their states."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import jobs
from storage.models import Ente, ExportFlow, ImportFlow

# Import booking states (flussi-formats §1.8).
LOAD_IMPORT = "LOAD_IMPORT"
IMPORT_IN_ELAB = "IMPORT_IN_ELAB"
IMPORT_ESEGUITO = "IMPORT_ESEGUITO"
IMPORT_ABORTITO = "IMPORT_ABORTITO"

# Export states (§2.5); NESSUN_DOVUTO is virtual: EXPORT_ESEGUITO without a file.
LOAD_EXPORT = "LOAD_EXPORT"
EXPORT_IN_ELAB = "EXPORT_IN_ELAB"
EXPORT_ESEGUITO = "EXPORT_ESEGUITO"
EXPORT_NESSUN_DOVUTO = "EXPORT_ESEGUITO_NESSUN_DOVUTO_TROVATO"
ERROR_EXPORT = "ERROR_EXPORT"

IMPORT_JOB = "flussi.import"
EXPORT_JOB = "flussi.export"


def new_import(session: Session, ente: Ente) -> ImportFlow:
    flow = ImportFlow(ente_id=ente.id, request_token=str(uuid.uuid4()), state=LOAD_IMPORT)
    session.add(flow)
    session.flush()
    return flow


def attach_upload(session: Session, flow: ImportFlow, file_name: str, upload_path: str, uploaded_at: datetime, *,
                  enqueue: bool = True) -> None:
    """The uploaded zip is on disk: remember it and queue its processing, in the caller's transaction."""
    flow.file_name = file_name[:255]
    flow.upload_path = upload_path
    flow.uploaded_at = uploaded_at
    session.flush()
    if enqueue:
        jobs.enqueue(session, IMPORT_JOB, {"import_id": flow.id}, dedupe_key=f"import:{flow.id}", max_attempts=5)


def new_export(session: Session, ente: Ente, *, kind: str, date_from: datetime | None, date_to: datetime | None,
               tipi_dovuto: str | None, version: str, with_receipts: bool = False,
               incremental: bool = False, enqueue: bool = True) -> ExportFlow:
    flow = ExportFlow(ente_id=ente.id, request_token=str(uuid.uuid4()), kind=kind, state=LOAD_EXPORT,
                      date_from=date_from, date_to=date_to, tipi_dovuto=tipi_dovuto, version=version,
                      with_receipts=with_receipts, incremental=incremental)
    session.add(flow)
    session.flush()
    if enqueue:
        jobs.enqueue(session, EXPORT_JOB, {"export_id": flow.id}, dedupe_key=f"export:{flow.id}", max_attempts=3)
    return flow


def find_import(session: Session, request_token: str | None) -> ImportFlow | None:
    if not request_token:
        return None
    return session.scalar(select(ImportFlow).where(ImportFlow.request_token == request_token.strip()))


def find_export(session: Session, request_token: str | None) -> ExportFlow | None:
    if not request_token:
        return None
    return session.scalar(select(ExportFlow).where(ExportFlow.request_token == request_token.strip()))
