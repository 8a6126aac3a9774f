"""The database job queue: one claim per job even with concurrent workers, retries with back-off, leases."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select, update

from gateway import jobs
from storage.models import Job
from storage.types import utcnow


def test_concurrent_workers_run_each_job_exactly_once(database):
    ran: list[int] = []
    lock = threading.Lock()

    @jobs.handler("test.count")
    def _count(ctx: jobs.JobContext):
        with lock:
            ran.append(ctx.payload["n"])
        return {"ok": True}

    with database.transaction() as session:
        for n in range(40):
            jobs.enqueue(session, "test.count", {"n": n})

    def work() -> None:
        while jobs.run_one(database, ["test.count"]):
            pass

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(ran) == list(range(40))
    with database.transaction() as session:
        assert {j.state for j in session.scalars(select(Job))} == {"done"}


def test_failure_is_retried_later_then_given_up(database):
    @jobs.handler("test.fail")
    def _fail(ctx: jobs.JobContext):
        raise RuntimeError("boom")

    with database.transaction() as session:
        job = jobs.enqueue(session, "test.fail", max_attempts=2)
        job_id = job.id
    assert jobs.run_one(database, ["test.fail"])
    with database.transaction() as session:
        job = session.get(Job, job_id)
        assert job.state == "queued" and job.attempts == 1 and "boom" in job.last_error
        assert job.run_after > utcnow()
        session.execute(update(Job).where(Job.id == job_id).values(run_after=utcnow()))
    assert jobs.run_one(database, ["test.fail"])
    with database.transaction() as session:
        assert session.get(Job, job_id).state == "failed"


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(database):
    with database.transaction() as session:
        job_id = jobs.enqueue(session, "test.lease").id
    claimed = jobs.claim(database, ["test.lease"], name="dead-worker")
    assert claimed is not None and jobs.claim(database, ["test.lease"]) is None
    with database.transaction() as session:
        session.execute(update(Job).where(Job.id == job_id).values(locked_until=utcnow() - timedelta(seconds=1)))
    again = jobs.claim(database, ["test.lease"], name="new-worker")
    assert again is not None and again.id == job_id and again.attempts == 2


def test_dedupe_key_keeps_one_pending_job(database):
    with database.transaction() as session:
        first = jobs.enqueue(session, "test.dedupe", dedupe_key="k1")
        second = jobs.enqueue(session, "test.dedupe", dedupe_key="k1")
        assert first.id == second.id
