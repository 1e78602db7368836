"""SQL helpers that depend on the dialect, in one place.

`is_postgresql` and `any_of` live in `subscribers/sql.py` (which may not import this
package) and are re-exported here so `newsletter/` has one place to import them from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from subscribers.sql import any_of, is_postgresql

__all__ = [
    "BULK_ROWS",
    "MAX_ROW_ID",
    "any_of",
    "dialect_insert",
    "fits_row_id",
    "is_postgresql",
    "is_row_id",
    "vacuum_after_bulk_load",
]

# The largest id a row can have (PostgreSQL BIGINT, SQLite INTEGER): a bigger number is no
# row's, and handing it to either database is an error, not "not found".
MAX_ROW_ID = 2**63 - 1


def dialect_insert(bind: Connection | Session, table: Any) -> Any:
    """This database's INSERT construct, which has `on_conflict_do_nothing()`: both
    dialects spell it alike, but SQLAlchemy builds it from different modules."""
    insert = postgresql.insert if is_postgresql(bind) else sqlite.insert
    return insert(table)


def fits_row_id(value: int) -> bool:
    """Whether some row could have this id. Asked before any lookup: past 64 bits a
    database driver raises (SQLite's OverflowError) instead of finding nothing."""
    return 0 < value <= MAX_ROW_ID


def is_row_id(text: str) -> bool:
    """Whether `text` names a row by id: plain ASCII digits within MAX_ROW_ID ("²" is a
    digit to str.isdigit(), not to int())."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and fits_row_id(int(text))


# Rows written at once past which a table's upkeep is done straight away, not left to
# autovacuum (`vacuum_after_bulk_load`).
BULK_ROWS = 20_000


def vacuum_after_bulk_load(engine: Engine, tables: Sequence[str]) -> None:
    """PostgreSQL: VACUUM (ANALYZE) tables a bulk load has just filled, as autovacuum does
    a minute or so later. Until then the first statement to read each new row also marks it
    committed (writing its page again), and an index-only scan reads the table itself: the
    first send planned straight after importing 500,000 readers took 7.69 / 7.23 s, and
    5.78 / 6.01 s after this, which took 0.5 s. SQLite: nothing to do."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        # VACUUM cannot run inside a transaction block; the names are ours, not input.
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(tables)}")
