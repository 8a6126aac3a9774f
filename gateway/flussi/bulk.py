"""Many-row writes and lookups in the caller's transaction: COPY and arrays on PostgreSQL, executemany on SQLite.

Multi-row INSERT ... VALUES through SQLAlchemy cost ~0.4 ms a row on PostgreSQL (statement building and
parameter parsing); COPY costs a few µs. Ids are taken from the table's sequence beforehand when needed.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import Column, Table, any_, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

SQLITE_CHUNK = 5000  # bound parameters per IN list: far below SQLite's limit
# ~128 kB of dovuto lines: small enough that the server starts on a batch while the rest is being made.
COPY_LINES = 400


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def member_of(session: Session, column: Column, values: Sequence[str]) -> Iterator[ColumnElement]:
    """Conditions ``column IN values``: one array parameter on PostgreSQL, bounded IN lists on SQLite."""
    if is_postgres(session):
        # One array parameter: no per-value placeholders to build, send and plan.
        yield column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return
    for start in range(0, len(values), SQLITE_CHUNK):
        yield column.in_(values[start:start + SQLITE_CHUNK])


def new_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` fresh ids of ``table``, in increasing order."""
    if not is_postgres(session):
        # SQLite cannot promise RETURNING order for a multi-row insert (SQLAlchemy then inserts row by row).
        # The transaction began IMMEDIATE, so no other writer can take these ids before we commit.
        first = (session.scalar(select(func.max(table.c.id))) or 0) + 1
        return list(range(first, first + count))
    # One array value back instead of ``count`` rows.
    return session.scalar(text(_NEW_IDS), {"t": table.name, "n": count})


# The sequence is looked up once (OFFSET 0 keeps that subquery apart): pg_get_serial_sequence called for each
# id cost seven times what nextval does.
_IDS = ("FROM (SELECT nextval(s.seq) AS i FROM (SELECT CAST(pg_get_serial_sequence(:t, 'id') AS regclass) AS seq "
        "OFFSET 0) AS s, generate_series(1, :n)) AS q")
_NEW_IDS = "SELECT array_agg(i ORDER BY i) " + _IDS
_NEW_ID_TEXTS = "SELECT CAST(array_agg(i ORDER BY i) AS text) " + _IDS


def new_id_texts(session: Session, table: str, count: int) -> list[str]:
    """PostgreSQL: ``count`` fresh ids of ``table`` in increasing order, as the decimal text COPY lines need.

    The array comes back as one text value and is split in C: parsing 10,000 ints and printing them again
    cost more than the ids themselves.
    """
    if not count:
        return []
    array = session.scalar(text(_NEW_ID_TEXTS), {"t": table, "n": count})
    return array[1:-1].split(",")


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of ``values`` (every element quoted and escaped): one text parameter that the
    server casts, much cheaper to build than the driver's per-element array dumping."""
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_value(value: Any) -> str:
    """One value in COPY's text format (None as \\N, specials backslash-escaped)."""
    if value is None:
        return "\\N"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, dict | list):
        value = json.dumps(value)
    elif not isinstance(value, str):
        value = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return value.translate(_COPY_ESCAPES)


# Types whose text form never needs COPY escapes (bool is its own class, so it is not caught by int).
_PLAIN: dict[type, Callable[[Any], str]] = {int: str, Decimal: str, date: date.isoformat,
                                           datetime: datetime.isoformat}


def copy_line(values: Sequence[Any]) -> str:
    """A row of COPY text without its newline; strings, None and plain types take a fast path (runs per row)."""
    plain = _PLAIN
    parts = ["\\N" if v is None else v if v.__class__ is str else plain[v.__class__](v) if v.__class__ in plain
             else copy_value(v) for v in values]
    line = "\t".join(parts)
    # A tab, backslash (beyond the \\N markers of the None values), newline or CR inside a value: escape value
    # by value (counting the Nones, not the "\\N" parts: a text value "\\N" must not pass as NULL).
    if (line.count("\t") != len(parts) - 1 or line.count("\\") != values.count(None) or "\n" in line
            or "\r" in line):
        line = "\t".join([copy_value(v) for v in values])
    return line


def copy_text(session: Session, table: str, columns: Sequence[str], lines: Iterable[str]) -> None:
    """COPY lines already in text format (see copy_line) into ``table``, sent in chunks of COPY_LINES lines."""
    driver = session.connection().connection.driver_connection
    quoted = ", ".join('"' + name + '"' for name in columns)
    statement = f"COPY {table} ({quoted}) FROM STDIN"
    source = iter(lines)
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        while True:
            # islice + join pull the lines in C: no per-line bookkeeping in Python.
            chunk = "\n".join(islice(source, COPY_LINES))
            if not chunk:
                return
            copy.write((chunk + "\n").encode())


def _json_positions(table: Table, columns: Sequence[str]) -> list[int]:
    return [i for i, name in enumerate(columns) if table.c[name].type.__class__.__name__ == "JSON"]


def copy_rows(session: Session, table: Table, columns: Sequence[str], rows: list[tuple], *,
              target: str | None = None) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` (or the temporary ``target`` shaped like it)."""
    if not rows:
        return
    if not is_postgres(session):
        session.execute(insert(table), [dict(zip(columns, row)) for row in rows])
        return
    json_at = _json_positions(table, columns)
    driver = session.connection().connection.driver_connection
    quoted = ", ".join('"' + name + '"' for name in columns)
    statement = f"COPY {target or table.name} ({quoted}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        write = copy.write_row
        if not json_at:
            for row in rows:
                write(row)
            return
        for row in rows:
            if any(row[i] is not None for i in json_at):
                row = tuple(json.dumps(value) if i in json_at and value is not None else value
                            for i, value in enumerate(row))
            write(row)


def insert_many(session: Session, table: Table, rows: list[dict[str, Any]], *, with_ids: bool = False) -> list[int]:
    """Insert ``rows`` (dicts with the same keys); with ``with_ids``, return the new ids in row order."""
    if not rows:
        return []
    ids: list[int] = []
    if with_ids:
        ids = new_ids(session, table, len(rows))
        rows = [dict(row, id=new_id) for row, new_id in zip(rows, ids)]
    columns = list(rows[0])
    copy_rows(session, table, columns, [tuple(row[name] for name in columns) for row in rows])
    return ids


def update_by_id(session: Session, model: type, rows: list[dict[str, Any]]) -> None:
    """UPDATE the mapped ``model``'s table by primary key ``id``; each dict gives the columns it changes.

    PostgreSQL: the rows are copied into a temporary table and applied with one UPDATE ... FROM; a column
    that only some rows give (a NULL in the others) keeps its value where it was not given.
    """
    if not is_postgres(session):
        # The ORM's bulk UPDATE by primary key (a Core update() with these dicts would have no WHERE).
        for keys in {tuple(sorted(u)) for u in rows}:  # executemany needs one key set per statement
            session.execute(update(model), [u for u in rows if tuple(sorted(u)) == keys])
        return
    table: Table = model.__table__  # type: ignore[attr-defined]
    columns = sorted({name for row in rows for name in row})
    partial = {name for name in columns if any(name not in row for row in rows)}
    temporary = f"_flussi_update_{table.name}"
    quoted = ", ".join('"' + name + '"' for name in columns)
    session.execute(text(f"CREATE TEMPORARY TABLE {temporary} ON COMMIT DROP AS "
                         f"SELECT {quoted} FROM {table.name} WITH NO DATA"))
    copy_rows(session, table, columns, [tuple(row.get(name) for name in columns) for row in rows], target=temporary)
    assignments = ", ".join(
        f'"{name}" = COALESCE(t."{name}", d."{name}")' if name in partial else f'"{name}" = t."{name}"'
        for name in columns if name != "id")
    session.execute(text(f"UPDATE {table.name} AS d SET {assignments} FROM {temporary} AS t WHERE d.id = t.id"))
    session.execute(text(f"DROP TABLE {temporary}"))
