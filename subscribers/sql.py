"""SQL helpers both packages share (newsletter/ may import subscribers/, not the reverse)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
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


def reserve_ids(session: Session, table: sa.Table, count: int) -> list[int] | None:
    """`count` new ids from the table's own sequence on PostgreSQL, for rows written with
    `bulk_insert`: looking each row up again by address afterwards cost an import more
    than taking its id first. None on SQLite, which has no sequence to draw from (the
    rows take their ids as they are inserted)."""
    if not is_postgresql(session):
        return None
    raw: Any = session.connection().connection.driver_connection
    # The driver's own rows: SQLAlchemy's Result would handle each id in Python again.
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            (table.name, count),
        )
        return [row[0] for row in cursor.fetchall()]


def _is_time(column: sa.Column[Any]) -> bool:
    kind = column.type
    return isinstance(kind.impl if isinstance(kind, sa.TypeDecorator) else kind, sa.DateTime)


def bulk_insert(
    session: Session, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Many rows, each its values in `columns`' order, through the driver's fastest path
    inside the session's transaction: COPY on PostgreSQL, one executemany on SQLite.
    SQLAlchemy's per-value type processing would otherwise cost more than the database
    does."""
    # The driver's path skips SQLAlchemy's column defaults: supply the plain ones, so a
    # column added later with a default does not break the import.
    defaults = tuple(
        (column.name, column.default.arg)
        for column in table.columns
        if column.name not in columns
        and column.default is not None
        and default_is_scalar(column.default)
    )
    names = ", ".join([*columns, *(name for name, _ in defaults)])
    constants = tuple(value for _, value in defaults)
    # A chunk's times are nearly all one moment: each is spelt once, as the database reads
    # it. Left to the driver, PostgreSQL's COPY spelt every one again, five a row: 0.91 s of
    # CPU for 200,000 subscriber rows, against 0.15 s with the times spelt.
    times = [i for i, name in enumerate(columns) if _is_time(table.c[name])]
    postgresql = is_postgresql(session)
    spelt: dict[datetime, str] = {}

    def spell(value: datetime | None) -> str | None:
        if value is None:
            return None
        text = spelt.get(value)
        if text is None:
            if value.tzinfo is None:  # as UTCDateTime refuses one: read as local time
                raise ValueError(f"naive datetime {value!r}: store times as aware UTC")
            utc = value.astimezone(UTC)
            # PostgreSQL reads the offset; SQLite keeps naive UTC text, as SQLAlchemy's
            # DateTime writes it.
            text = utc.isoformat() if postgresql else utc.strftime("%Y-%m-%d %H:%M:%S.%f")
            spelt[value] = text
        return text

    def cells(row: Sequence[Any]) -> Sequence[Any]:
        if times:
            row = list(row)
            for i in times:
                row[i] = spell(row[i])
        return (*row, *constants) if constants else row

    raw: Any = session.connection().connection.driver_connection
    if postgresql:
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(cells(row))
        return
    cursor = raw.cursor()
    try:
        cursor.executemany(
            f"INSERT INTO {table.name} ({names}) "
            f"VALUES ({', '.join('?' * (len(columns) + len(constants)))})",
            (cells(row) for row in rows),
        )
    finally:
        cursor.close()
