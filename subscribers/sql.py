"""SQL helpers both packages share (newsletter/ may import subscribers/, not the reverse)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.schema import default_is_scalar
from sqlmodel import Session


def is_postgresql(bind: Connection | Session | sa.Engine) -> bool:
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "postgresql"


def any_of(bind: Connection | Session, column: Any, values: Iterable[Any]) -> Any:
    """`column IN values` as one bound value, not thousands: an array on PostgreSQL, a JSON
    array unpacked by `json_each` on SQLite. Rendering and parsing a five-thousand-item
    IN list costs more than the query it filters."""
    items = list(values)
    if is_postgresql(bind):
        item_type = sa.BigInteger if items and isinstance(items[0], int) else sa.Text
        return column == sa.any_(sa.literal(items, type_=postgresql.ARRAY(item_type)))
    each = sa.func.json_each(sa.literal(json.dumps(items))).table_valued("value")
    return column.in_(sa.select(each.c.value).scalar_subquery())


def bulk_insert(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Many rows through the driver's fastest path, inside the session's transaction:
    COPY on PostgreSQL, one executemany on SQLite. SQLAlchemy's per-value type processing
    would otherwise cost more than the database does."""
    if not rows:
        return
    # The driver's path skips SQLAlchemy's column defaults: supply the plain ones, so a
    # column added later with a default does not break the import.
    defaults = {
        column.name: column.default.arg
        for column in table.columns
        if column.name not in rows[0]
        and column.default is not None
        and default_is_scalar(column.default)
    }
    if defaults:
        rows = [{**defaults, **row} for row in rows]
    columns = list(rows[0])
    raw: Any = session.connection().connection.driver_connection
    names = ", ".join(columns)
    if session.get_bind().dialect.name == "postgresql":
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([row[c] for c in columns])
        return

    # SQLite keeps times as naive UTC text, as SQLAlchemy's DateTime writes them. A chunk's
    # times are nearly all one moment: each is spelt once (strftime was a tenth of an import).
    spelt: dict[datetime, str] = {}

    def cell(value: Any) -> Any:
        if isinstance(value, datetime):
            text = spelt.get(value)
            if text is None:
                text = spelt[value] = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return text
        return value

    cursor = raw.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO {table.name} ({names}) VALUES ({', '.join('?' * len(columns))})",
            ([cell(row[c]) for c in columns] for row in rows),
        )
    finally:
        cursor.close()
