"""Engines and sessions, tuned for our workload on SQLite and PostgreSQL alike."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlmodel import Session

from newsletter.errors import ConfigurationError


def _lower(text: str | None) -> str | None:
    return text.lower() if isinstance(text, str) else text


def make_engine(url: str, *, create: bool = False) -> Engine:
    """An engine tuned for our workload on either database.

    SQLite: WAL so readers never wait for the worker, a generous busy timeout, foreign keys
    on, and transactions begun by us, so claiming can say `BEGIN IMMEDIATE` (take the write
    lock first, then read) while ordinary work says a plain `BEGIN`. A file that is not
    there is made (with its folder) only when `create` (migrating: `newsletter init`, the
    demo); otherwise it is refused, since connecting would leave an empty database at a
    mistyped path.
    """
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigurationError(
            "DATABASE_URL cannot be read as a database URL: write sqlite:///path/to/file.db "
            "or postgresql+psycopg://user@host/database"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        _sqlite_file(parsed, create=create)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            # SQLite's lower() and LIKE fold ASCII only: `SØREN` would not find Søren.
            dbapi_connection.create_function("unicode_lower", 1, _lower, deterministic=True)

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(connection: sa.Connection) -> None:
            immediate = connection.get_execution_options().get("sqlite_immediate", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, pool_pre_ping=True)

        @sa.event.listens_for(engine, "connect")
        def _postgresql_connect(dbapi_connection: Any, _record: Any) -> None:
            # JIT compiles any statement whose estimated cost passes 100,000, which every
            # pass over a big list does, and ours never run long enough to repay it: 0.3 s
            # of a 3 s audience count, 0.5 s of each digest group's 3 s, saving nothing
            # (EXPLAIN ANALYZE and auto_explain, 1M readers; README "PostgreSQL for a big
            # list").
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET jit = off")
            dbapi_connection.commit()

        return engine
    raise ConfigurationError(
        f"DATABASE_URL {parsed.render_as_string(hide_password=True)!r}: only sqlite:/// and "
        "postgresql+psycopg:// are supported"
    )


def _sqlite_file(url: URL, *, create: bool) -> None:
    """The database file: its folder made when `create`, else it must exist already."""
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("uri"):  # a file: URI's mode decides
        return
    path = Path(database)
    if create:
        _make_folder(path.parent)
    elif not path.is_file():
        raise ConfigurationError(
            f"no database at {url.render_as_string(hide_password=True)}",
            hint="run `newsletter init` (or fix the path)",
        )


def _make_folder(folder: Path) -> None:
    """The SQLite file's folder, made if missing; one that cannot be made (no permission, a
    file in the way) is a setting to fix, not a traceback."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"the folder {folder} for the SQLite database cannot be made ({exc.strerror})",
            hint="create it, writable by this user, or set DATABASE_URL to a path in one that is",
        ) from None


@contextmanager
def single_worker_lock(url: str) -> Iterator[None]:
    """On SQLite, refuse a second worker process: SQLite serializes writers, so a second
    worker adds lock waits, not throughput. The lock is the kernel's (flock on a file next
    to the database), so a worker killed with SIGKILL leaves nothing stale behind.
    PostgreSQL takes any number of workers; there this does nothing."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        yield
        return
    path = Path(f"{parsed.database}.worker-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigurationError(
                f"a worker ({holder}) is already running on the SQLite database "
                f"{parsed.database}; SQLite takes one worker at a time. Stop it first, or use "
                "PostgreSQL to run several"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def session_scope(engine: Engine, *, immediate: bool = False) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error.

    `immediate=True` takes SQLite's write lock at BEGIN (no effect on PostgreSQL), for
    read-then-write sequences that must not interleave with another writer.
    """
    bind = engine.execution_options(sqlite_immediate=True) if immediate else engine
    with Session(bind, expire_on_commit=False) as session, session.begin():
        yield session
