"""Jobs of the node client: receipt recovery. ``schedule_recovery`` runs in gateway.worker.PERIODIC.

One job per attempt and check, deduplicated on the attempt id, so several workers never ask the node twice
about the same attempt at the same time; each job makes one check and records when the next one is due.
"""

from __future__ import annotations

from gateway import jobs, logs, worker
from gateway.node import recovery
from gateway.settings import Settings, load_settings
from storage.db import Database

log = logs.get_logger(__name__)

RECOVER = "node.recover_attempt"


@jobs.handler(RECOVER)
def recover_attempt(ctx: jobs.JobContext) -> dict[str, str]:
    settings: Settings = ctx.settings or load_settings()
    return recovery.recover(ctx.database, settings, int(ctx.payload["attempt_id"]))


def schedule_recovery(database: Database, settings: Settings | None = None) -> int:
    """Queue a check for every attempt that is due; returns how many were queued (or already queued)."""
    settings = settings or load_settings()
    due = recovery.due_attempts(database, settings)
    if not due:
        return 0
    with database.transaction() as session:
        for attempt_id in due:
            jobs.enqueue(session, RECOVER, {"attempt_id": attempt_id}, dedupe_key=f"recover:{attempt_id}",
                         max_attempts=3)
    log.info("receipt recovery scheduled", attempts=len(due))
    return len(due)


if schedule_recovery not in worker.PERIODIC:
    worker.PERIODIC.append(schedule_recovery)
