"""Many-row inserts in the caller's transaction: COPY on PostgreSQL, executemany on SQLite.

Multi-row INSERT ... VALUES through SQLAlchemy cost ~0.4 ms a row on PostgreSQL (statement building and
parameter parsing); COPY costs a few µs. Ids are taken from the table's sequence beforehand when needed.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def insert_many(session: Session, table: Table, rows: list[dict[str, Any]], *, with_ids: bool = False) -> list[int]:
    """Insert ``rows`` (dicts with the same keys); with ``with_ids``, return the new ids in row order."""
    if not rows:
        return []
    if not _is_postgres(session):
        ids = []
        if with_ids:
            # SQLite cannot promise RETURNING order for a multi-row insert (SQLAlchemy then inserts row by row).
            # The transaction began IMMEDIATE, so no other writer can take these ids before we commit.
            first = (session.scalar(select(func.max(table.c.id))) or 0) + 1
            ids = list(range(first, first + len(rows)))
            rows = [dict(row, id=new_id) for row, new_id in zip(rows, ids)]
        session.execute(insert(table), rows)
        return ids
    ids: list[int] = []
    if with_ids:
        ids = list(session.scalars(text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
                                   {"t": table.name, "n": len(rows)}))
        rows = [dict(row, id=new_id) for row, new_id in zip(rows, ids)]
    columns = list(rows[0])
    json_columns = {name for name in columns if table.c[name].type.__class__.__name__ == "JSON"}
    driver = session.connection().connection.driver_connection
    quoted = ", ".join('"' + name + '"' for name in columns)
    statement = f"COPY {table.name} ({quoted}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row([json.dumps(row[name]) if name in json_columns and row[name] is not None else row[name]
                            for name in columns])
    return ids
