"""Statements run straight on the DBAPI connection: the node's hot calls without SQLAlchemy's per-call machinery.

A ``Statement`` is a Core statement compiled once per dialect. Running it costs what the driver costs
(about a third of a Core execution, a tenth of an ORM query on this machine), and rows come back typed
exactly as SQLAlchemy would type them (its own bind and result processors per column), so SQLite and
PostgreSQL answer alike. Only plain statements qualify: no IN-list expansion, no ORM entities.

``Direct`` wraps a DBAPI connection and its cursor: ``Database.autocommit()`` gives the thread's autocommit
one (a single statement is its own snapshot: no BEGIN, no COMMIT round trips), and ``storage.db.direct_in``
the connection of an ORM session's transaction, so direct statements commit or roll back with it.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement

Row = tuple[Any, ...]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # bind names in order for qmark drivers, None for named ones
    binds: dict[str, Callable[[Any], Any] | None]
    fixed: dict[str, Any]  # binds with a value of their own (literals in .values(), scalar column defaults)
    columns: tuple[Any, ...]  # column types of the result, in order (empty: the statement returns no rows)


class Statement:
    """A Core statement compiled once per dialect, run on a DBAPI cursor."""

    def __init__(self, statement: ClauseElement | Mapping[str, ClauseElement]) -> None:
        # A mapping gives one statement per dialect name ("sqlite", "postgresql") for dialect-only syntax.
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}
        self._results: dict[str, list[Callable[[Any], Any] | None]] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            statement = self.statement[dialect.name] if isinstance(self.statement, Mapping) else self.statement
            done = statement.compile(dialect=dialect)
            if "POSTCOMPILE" in done.string:
                raise ValueError("expanding parameters are not supported by storage.direct")
            # done.binds maps the names the SQL uses (and, again, anonymous keys of literal values) to binds.
            named = {name: bind for name, bind in done.binds.items() if not name.startswith("%(")}
            binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in named.items()}
            # A callable column default (e.g. utcnow) runs in SQLAlchemy's execution context, which is skipped
            # here: such columns must be given explicitly, or the statement fails on the missing parameter.
            fixed = {name: bind.value for name, bind in named.items() if bind.value is not None and not bind.callable}
            columns = tuple(getattr(statement, "selected_columns", ()) or ())
            if not columns and getattr(statement, "_returning", None):
                columns = tuple(statement._returning)  # INSERT/UPDATE ... RETURNING
            compiled = _Compiled(done.string, tuple(done.positiontup) if done.positional else None, binds, fixed,
                                 tuple(column.type for column in columns))
            self._compiled[dialect.name] = compiled
        return compiled

    def _processors(self, dialect: Dialect, compiled: _Compiled, cursor: Any) -> list[Callable[[Any], Any] | None]:
        processors = self._results.get(dialect.name)
        if processors is None:
            # PostgreSQL's numeric processors want the type code the server answers with; a column's type
            # code never changes, and psycopg builds cursor.description anew each time, so read it once.
            processors = [kind.dialect_impl(dialect).result_processor(dialect, column[1])
                          for kind, column in zip(compiled.columns, cursor.description)]
            self._results[dialect.name] = processors
        return processors

    def execute(self, cursor: Any, dialect: Dialect, params: Mapping[str, Any]) -> list[Row] | int:
        """Rows when the statement returns some, else the number of rows it changed."""
        compiled = self._for(dialect)
        values = {}
        for name, process in compiled.binds.items():
            value = params[name] if name in params else compiled.fixed[name]
            values[name] = process(value) if process is not None and value is not None else value
        if compiled.positional is not None:
            cursor.execute(compiled.sql, tuple(values[name] for name in compiled.positional))
        else:
            cursor.execute(compiled.sql, values)
        if not compiled.columns:
            return cursor.rowcount
        rows = cursor.fetchall()
        processors = self._processors(dialect, compiled, cursor)
        if not any(processors):
            return [tuple(row) for row in rows]
        return [tuple(value if process is None or value is None else process(value)
                      for process, value in zip(processors, row)) for row in rows]


class Direct:
    """A DBAPI connection with one cursor, for running Statements."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect
        self._cursor = connection.cursor()

    def rows(self, statement: Statement, **params: Any) -> list[Row]:
        result = statement.execute(self._cursor, self.dialect, params)
        assert isinstance(result, list), "statement returns no rows"
        return result

    def first(self, statement: Statement, **params: Any) -> Row | None:
        rows = self.rows(statement, **params)
        return rows[0] if rows else None

    def run(self, statement: Statement, **params: Any) -> int:
        """Run a statement without RETURNING; the number of rows it changed."""
        result = statement.execute(self._cursor, self.dialect, params)
        return result if isinstance(result, int) else len(result)

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        """Statements whose results nobody reads, sent together: one round trip to PostgreSQL instead of one
        each (psycopg's pipeline mode; an error surfaces when the block ends). Elsewhere they just run."""
        enter = getattr(self.connection, "pipeline", None)
        with enter() if enter is not None else nullcontext():
            yield

    def close(self) -> None:
        self._cursor.close()
