"""Engine and session factory for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.direct import Direct


def normalise_url(url: str) -> str:
    """postgresql:// and postgres:// URLs use psycopg 3, the only PostgreSQL driver installed."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


def make_engine(url: str, *, pool_size: int = 5, autocommit: bool = False) -> Engine:
    url = normalise_url(url)
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    if is_sqlite(url):
        connect_args: dict[str, Any] = {"timeout": 30, "check_same_thread": False}
        path = make_url(url).database
        if not autocommit and path and path != ":memory:":
            connect_args["factory"] = _writer_queue_connection(path + "-writers.lock")
        engine = create_engine(url, connect_args=connect_args, **options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:  # type: ignore[no-untyped-def]
            # Take the write lock at BEGIN so concurrent writers queue instead of failing on upgrade. The
            # node's reads do not come here: they run in autocommit (Database.autocommit).
            queue = getattr(connection.connection.dbapi_connection, "enter_writer_queue", None)
            if queue is not None:
                queue()
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        # pysqlite's own transaction handling would issue a deferred BEGIN first.
        @event.listens_for(engine, "connect")
        def _sqlite_autocommit_off(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None

        return engine
    # No pre-ping (it costs a round trip on every request): when PostgreSQL restarts, the first statement
    # on a dead connection raises a disconnect error, SQLAlchemy then invalidates the whole pool, that one
    # request answers a contract fault and the next ones reconnect. pool_recycle bounds connection age.
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False,
                         pool_recycle=1800, **options)


def _writer_queue_connection(lock_path: str) -> type[sqlite3.Connection]:
    """A sqlite3 connection class whose transactions first queue on an flock of ``lock_path``.

    SQLite lets one writer in at a time; the others retry in its busy handler, which sleeps 1 to 100 ms
    between tries, so under load a waiting writer often sleeps long after the lock is free (p99 of
    hundreds of ms with a few workers). The kernel wakes an flock waiter as soon as the lock is released,
    so writers of every process on this file queue there instead, and SQLite's own lock is then free
    when BEGIN IMMEDIATE asks for it. A process that dies releases its flock with its descriptors.
    """

    class WriterQueueConnection(sqlite3.Connection):
        _queue_fd: int | None = None

        def enter_writer_queue(self) -> None:
            if self._queue_fd is None:
                self._queue_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._queue_fd, fcntl.LOCK_EX)

        def _leave_writer_queue(self) -> None:
            if self._queue_fd is not None:
                fcntl.flock(self._queue_fd, fcntl.LOCK_UN)

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self._leave_writer_queue()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self._leave_writer_queue()

        def close(self) -> None:
            try:
                super().close()
            finally:
                if self._queue_fd is not None:
                    os.close(self._queue_fd)  # also releases a lock still held
                    self._queue_fd = None

    return WriterQueueConnection


class Database:
    """One engine and session factory per process (gunicorn workers build theirs after the fork)."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, pool_size=pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._pool_size = pool_size
        self._autocommit: Engine | None = None  # made on first autocommit(): most processes never need it
        self._held = threading.local()
        self._all_held: list[_Held] = []
        self._lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Direct]:
        """An autocommit connection: each statement sees its own snapshot, with no BEGIN/COMMIT round trips.
        For single-statement reads (and single-statement writes); several statements here are not one
        consistent view. Each thread keeps its connection and cursor: the node's hot calls skip the pool."""
        held = getattr(self._held, "direct", None)
        if held is None:
            if self._autocommit is None:
                self._autocommit = make_engine(self.url, pool_size=self._pool_size, autocommit=True)
            fairy = self._autocommit.raw_connection()  # checked out for the thread's life
            held = self._held.direct = _Held(fairy, Direct(fairy.dbapi_connection, self._autocommit.dialect))
            with self._lock:
                self._all_held.append(held)
        dialect = held.direct.dialect
        try:
            yield held.direct
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, held.fairy.dbapi_connection, None):
                self._held.direct = None  # the next call reconnects
                with self._lock:
                    self._all_held.remove(held)
                held.fairy.invalidate(exc)
            raise

    def after_fork(self) -> None:
        """In a forked child: forget the parent's pooled connections without closing them (they are its)."""
        self.engine.dispose(close=False)
        self._held = threading.local()
        self._all_held = []
        if self._autocommit is not None:
            self._autocommit.dispose(close=False)

    def dispose(self) -> None:
        with self._lock:
            held, self._all_held = self._all_held, []
        self._held = threading.local()
        for one in held:
            one.direct.close()
            one.fairy.close()  # back to the pool, which dispose() then closes
        self.engine.dispose()
        if self._autocommit is not None:
            self._autocommit.dispose()


def direct_in(session: Session) -> Direct:
    """Direct statements inside an ORM session's transaction (begun here if it was not yet)."""
    connection = session.connection()
    return Direct(connection.connection.dbapi_connection, connection.dialect)


@dataclass
class _Held:
    fairy: Any  # the pool's checked-out connection record
    direct: Direct
