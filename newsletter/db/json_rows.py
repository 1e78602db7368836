"""Many rows into one statement as one JSON document, on both databases.

A batch of rows bound as one parameter keeps a statement's text and its parameter count
fixed whatever the batch's size, the document is written by orjson in C and read by the
database in C. (SQLAlchemy's multi-row VALUES splits and escapes every row in
Python, which cost more than the database's work for the webhook's batches.)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.engine import Connection
from sqlmodel import Session

from subscribers.sql import is_postgresql

# The column types a document's rows may carry, as PostgreSQL's json_to_recordset names them.
KINDS = frozenset({"bigint", "integer", "text", "boolean", "timestamptz", "json"})


def rows_from_json(bind: Connection | Session, columns: dict[str, str]) -> str:
    """`SELECT <columns> FROM` the JSON array bound as `:rows` (each element an object
    with those keys): `json_to_recordset` on PostgreSQL, `json_each` on SQLite. Ends in a
    WHERE, so SQLite can tell an upsert's ON CONFLICT that follows from a join."""
    unknown = set(columns.values()) - KINDS
    if unknown:
        raise ValueError(f"column types {sorted(unknown)} are not JSON row types")
    names = ", ".join(columns)
    if is_postgresql(bind):
        typed = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        return (
            f"SELECT {names} FROM json_to_recordset(CAST(:rows AS json)) AS r({typed}) WHERE true"
        )
    picked = ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name in columns)
    return f"SELECT {picked} FROM json_each(:rows) WHERE true"


def json_text(value: Any) -> str:
    """`value` as JSON text (a batch's rows: the one document `rows_from_json` reads), keys
    sorted and compact (a payload kept as text reads the same whichever way it was
    written), times as ISO 8601, non-ASCII as itself.

    orjson writes a webhook batch's document in a tenth of the json module's time, which
    was a fifth of the webhook's. It refuses what a provider's payload may still hold (an
    integer past 64 bits, parsed by `json.loads` as any size): then the json module writes
    it. orjson writes NaN as null, which PostgreSQL's json type, unlike NaN, accepts."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(
            value, default=_isoformat, ensure_ascii=False, sort_keys=True, separators=(",", ":")
        )


def _isoformat(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")
