"""Job handlers of the flussi: run an uploaded import, produce a booked export; stale exports swept."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import update

from gateway import jobs, worker
from gateway.flussi import bookings, exporter, importer
from gateway.settings import load_settings
from storage.db import Database
from storage.models import ExportFlow
from storage.types import utcnow

STALE_EXPORT = timedelta(hours=12)
# Rows per committed batch; smaller batches resume sooner after a crash, larger ones import faster.
BATCH_SIZE = int(os.environ.get("ENTE_GATEWAY_FLUSSI_BATCH_SIZE") or importer.BATCH_SIZE)


@jobs.handler(bookings.IMPORT_JOB)
def run_import_job(ctx: jobs.JobContext) -> dict:
    return importer.run_import(ctx.database, ctx.settings or load_settings(), int(ctx.payload["import_id"]),
                               heartbeat=ctx.heartbeat, batch_size=BATCH_SIZE)


@jobs.handler(bookings.EXPORT_JOB)
def run_export_job(ctx: jobs.JobContext) -> dict:
    return exporter.run_export(ctx.database, ctx.settings or load_settings(), int(ctx.payload["export_id"]),
                               heartbeat=ctx.heartbeat)


def sweep_stale_exports(database: Database) -> None:
    """MyPay forces EXPORT_IN_ELAB older than 12 h to ERROR_EXPORT (flussi-formats §2.5)."""
    with database.transaction() as session:
        session.execute(update(ExportFlow).where(ExportFlow.state == bookings.EXPORT_IN_ELAB,
                                                 ExportFlow.updated_at < utcnow() - STALE_EXPORT)
                        .values(state=bookings.ERROR_EXPORT, error="stale: worker lost"))


if sweep_stale_exports not in worker.PERIODIC:
    worker.PERIODIC.append(sweep_stale_exports)
