"""Worker side of rendicontazione: a periodic scheduler enqueues one fetch job per ente every N minutes."""

from __future__ import annotations

import time

from gateway import jobs, logs
from gateway.settings import Settings, load_settings
from storage.db import Database

from .config import reporting_settings
from .errors import NodeUnavailable
from .fetch import active_enti, fetch_ente

log = logs.get_logger(__name__)

FETCH_JOB = "rendicontazione.fetch"
RETRY_SECONDS = 300.0

_last_scheduled: float | None = None


@jobs.handler(FETCH_JOB)
def fetch_job(context: jobs.JobContext) -> dict:
    settings: Settings = context.settings or load_settings(database_url=context.database.url)
    try:
        report = fetch_ente(context.database, settings, int(context.payload["ente_id"]))
    except NodeUnavailable as exc:
        # The flows stored before the failure stay; the next run carries on from them.
        raise jobs.RetryLater(RETRY_SECONDS, str(exc)) from exc
    return {"new_flows": report.new_flows, "rows": report.rows, "ko_flows": report.ko_flows,
            "rematched": report.rematched, "refused": report.refused[:20]}


def schedule_fetches(database: Database, *, force: bool = False) -> int:
    """Enqueue a fetch per active ente when the interval has passed (a queued one is never doubled)."""
    global _last_scheduled
    minutes = reporting_settings(load_settings()).fetch_minutes
    now = time.monotonic()
    if not force and _last_scheduled is not None and now - _last_scheduled < minutes * 60:
        return 0
    _last_scheduled = now
    enqueued = 0
    ente_ids = active_enti(database)
    with database.transaction() as session:
        for ente_id in ente_ids:
            jobs.enqueue(session, FETCH_JOB, {"ente_id": ente_id}, dedupe_key=f"rendicontazione-fetch:{ente_id}",
                         max_attempts=5)
            enqueued += 1
    log.info("reporting fetches scheduled", enti=enqueued)
    return enqueued


def _register() -> None:
    from gateway import worker

    if schedule_fetches not in worker.PERIODIC:
        worker.PERIODIC.append(schedule_fetches)


_register()
