"""SQL helpers both packages share (newsletter/ may import subscribers/, not the reverse)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
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
