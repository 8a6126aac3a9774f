"""The database job queue and the worker loop.

Jobs are rows of ``job``. A worker claims one with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL
(SQLite serialises writers with BEGIN IMMEDIATE, which gives the same guarantee on one machine) and
holds a lease (``locked_until``); a job whose worker died is claimed again when its lease runs out, so
handlers must be idempotent or resume from their own checkpoint (imports do). A failed job is retried
with exponential back-off up to ``max_attempts``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import logs, metrics
from storage.db import Database
from storage.models import Job
from storage.types import utcnow

log = logs.get_logger(__name__)

LEASE = timedelta(minutes=5)


class RetryLater(Exception):
    """A handler asks to run again later without counting a failure (e.g. the node is still busy)."""

    def __init__(self, delay_seconds: float, reason: str = "") -> None:
        super().__init__(reason)
        self.delay_seconds = delay_seconds


@dataclass
class JobContext:
    database: Database
    job_id: int
    payload: dict[str, Any]
    attempts: int
    settings: Any = None

    def heartbeat(self) -> None:
        """Long handlers call this now and then to keep their lease."""
        with self.database.transaction() as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(locked_until=utcnow() + LEASE))


Handler = Callable[[JobContext], dict[str, Any] | None]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        HANDLERS[kind] = function
        return function
    return register


def enqueue(session: Session, kind: str, payload: dict[str, Any] | None = None, *, dedupe_key: str | None = None,
            run_after: datetime | None = None, max_attempts: int = 10) -> Job | None:
    """Add a job in the caller's transaction; with a dedupe key an equal queued/running job is kept instead."""
    if dedupe_key is not None:
        existing = session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
        if existing is not None:
            if existing.state in ("queued", "running"):
                return existing
            existing.dedupe_key = None  # a finished job frees its key for the next one
            session.flush()
    job = Job(kind=kind, payload=payload or {}, dedupe_key=dedupe_key, run_after=run_after or utcnow(),
              max_attempts=max_attempts)
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        return session.scalar(select(Job).where(Job.dedupe_key == dedupe_key))
    return job


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def claim(database: Database, kinds: list[str] | None = None, name: str | None = None) -> Job | None:
    now = utcnow()
    with database.transaction() as session:
        query = (select(Job)
                 .where(or_(Job.state == "queued", (Job.state == "running") & (Job.locked_until < now)))
                 .where(Job.run_after <= now)
                 .order_by(Job.run_after, Job.id)
                 .limit(1))
        if kinds:
            query = query.where(Job.kind.in_(kinds))
        if not database.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        job = session.scalar(query)
        if job is None:
            return None
        job.state = "running"
        job.attempts += 1
        job.locked_by = name or worker_name()
        job.locked_until = now + LEASE
        session.flush()
        session.expunge(job)
        return job


def _finish(database: Database, job: Job, **values: Any) -> None:
    with database.transaction() as session:
        session.execute(update(Job).where(Job.id == job.id, Job.locked_by == job.locked_by).values(
            locked_by=None, locked_until=None, **values))


def run_one(database: Database, kinds: list[str] | None = None, settings: Any = None) -> bool:
    """Claim and run one job; False when there was nothing to do."""
    job = claim(database, kinds)
    if job is None:
        return False
    function = HANDLERS.get(job.kind)
    bound = log.bind(job_id=job.id, job_kind=job.kind, attempt=job.attempts)
    if function is None:
        _finish(database, job, state="failed", last_error=f"no handler for {job.kind}")
        bound.error("job has no handler")
        return True
    try:
        result = function(JobContext(database, job.id, dict(job.payload or {}), job.attempts, settings))
    except RetryLater as retry:
        _finish(database, job, state="queued", attempts=job.attempts - 1, last_error=str(retry) or None,
                run_after=utcnow() + timedelta(seconds=retry.delay_seconds))
        metrics.JOBS.labels(job.kind, "retry_later").inc()
        return True
    except Exception as exc:  # noqa: BLE001 - a job failure must never stop the worker
        bound.exception("job failed")
        final = job.attempts >= job.max_attempts
        delay = min(3600.0, 2.0 ** job.attempts)
        _finish(database, job, state="failed" if final else "queued", last_error=f"{type(exc).__name__}: {exc}"[:2000],
                run_after=utcnow() + timedelta(seconds=delay))
        metrics.JOBS.labels(job.kind, "failed" if final else "error").inc()
        return True
    _finish(database, job, state="done", result=result, last_error=None)
    metrics.JOBS.labels(job.kind, "done").inc()
    bound.info("job done")
    return True


def run_worker(database: Database, *, stop: threading.Event | None = None, poll_seconds: float = 1.0,
               kinds: list[str] | None = None, periodic: Callable[[Database], None] | None = None,
               periodic_seconds: float = 30.0, settings: Any = None) -> None:
    """Run jobs until ``stop`` is set; ``periodic`` schedules recurring work (recovery, flow fetches)."""
    stop = stop or threading.Event()
    last_periodic = 0.0
    log.info("worker started", kinds=kinds or "all")
    while not stop.is_set():
        if periodic is not None and time.monotonic() - last_periodic >= periodic_seconds:
            last_periodic = time.monotonic()
            try:
                periodic(database)
            except Exception:  # noqa: BLE001
                log.exception("periodic scheduling failed")
        try:
            did_work = run_one(database, kinds, settings)
        except Exception:  # noqa: BLE001 - e.g. database restarting: wait and try again
            log.exception("worker could not claim a job")
            did_work = False
        if not did_work:
            stop.wait(poll_seconds)
    log.info("worker stopped")
