"""SQLite write transactions queue on a lock file, across connections and processes, and always leave it."""

from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.db import Database


def _counter_database(path: Path) -> Database:
    database = Database(f"sqlite:///{path}")
    with database.transaction() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        session.execute(text("INSERT OR IGNORE INTO counter (id, n) VALUES (1, 0)"))
    return database


def _increment(database: Database, times: int) -> None:
    for _ in range(times):
        with database.transaction() as session:
            # Read, then write: two writers interleaving here would lose increments.
            value = session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
            session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": value + 1})


def _increment_in_process(path: str, times: int) -> None:
    database = Database(f"sqlite:///{path}")
    _increment(database, times)
    database.dispose()


def _count(database: Database) -> int:
    with database.transaction() as session:
        return int(session.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one())


def test_writers_of_several_processes_and_threads_all_get_in(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    database = _counter_database(path)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_increment_in_process, args=(str(path), 40)) for _ in range(2)]
    threads = [threading.Thread(target=_increment, args=(database, 40)) for _ in range(3)]
    for worker in [*processes, *threads]:
        worker.start()
    for thread in threads:
        thread.join(60)
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert _count(database) == 5 * 40
    assert (tmp_path / "queue.sqlite3-writers.lock").exists()
    database.dispose()


def test_a_rolled_back_transaction_leaves_the_queue(tmp_path: Path) -> None:
    database = _counter_database(tmp_path / "rollback.sqlite3")
    with pytest.raises(RuntimeError):
        with database.transaction() as session:
            session.execute(text("UPDATE counter SET n = 99 WHERE id = 1"))
            raise RuntimeError("abandoned")
    # Another thread's writer must get in at once, not wait for a lock the failed transaction kept.
    started = time.monotonic()
    thread = threading.Thread(target=_increment, args=(database, 1), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2
    assert _count(database) == 1
    database.dispose()
