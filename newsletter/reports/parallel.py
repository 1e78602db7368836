"""Queries of one report side by side on PostgreSQL, on one snapshot.

A send's report is three independent aggregates over millions of events; PostgreSQL runs
one query on one core, so run one after the other they take the sum of their times, side
by side about the longest. Each helper query runs on a connection of its own, in a
REPEATABLE READ transaction that imports the caller's snapshot (`pg_export_snapshot`), so
all three see exactly the same events, as one query would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from newsletter.reports.sql import without_jit

T = TypeVar("T")
U = TypeVar("U")
_SNAPSHOT = re.compile(r"^[0-9A-F]+-[0-9A-F]+(?:-[0-9]+)?$")


def _on_snapshot(engine: Engine, snapshot: str, query: Callable[[Session], T]) -> T:
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            # SET TRANSACTION takes no bound parameter; the id is checked above.
            connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            with Session(bind=connection) as session:
                without_jit(session)
                return query(session)


def side_by_side(
    session: Session, first: Callable[[Session], T], second: Callable[[Session], U]
) -> tuple[Future[T], Future[U]]:
    """Start `first` and `second` on connections of their own, seeing what `session`
    sees; the caller runs its own query meanwhile, then reads the futures' results."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    snapshot = str(session.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one())
    if not _SNAPSHOT.match(snapshot):
        raise RuntimeError(f"unexpected snapshot id {snapshot[:40]!r}")
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="report")
    try:
        return (
            pool.submit(_on_snapshot, engine, snapshot, first),
            pool.submit(_on_snapshot, engine, snapshot, second),
        )
    finally:
        pool.shutdown(wait=False)
