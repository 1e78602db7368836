"""Telling a database that does not answer from a bug: the first is the operator's to mend
and passes (a server restarting, a network blip, SQLite's write lock held too long), so a
stranger gets "try again shortly" (503) and the log one line, not a traceback and a 500."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLite's codes for a database that is there but cannot take the work now. SQLite raises
# the same OperationalError for "no such column" and a syntax error (SQLITE_ERROR): a bug,
# which must stay a 500 with its traceback, as PostgreSQL's ProgrammingError does.
_SQLITE_OUTAGES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_FULL")


def is_outage(exc: BaseException) -> bool:
    """The database could not be reached or would not take the work now: the driver's
    OperationalError (refused, closed, gone; on SQLite, locked, busy, unreadable or full),
    a connection found dead, or no connection free in the pool in time."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, OperationalError):
        if isinstance(exc.orig, sqlite3.Error):
            return str(getattr(exc.orig, "sqlite_errorname", "")).startswith(_SQLITE_OUTAGES)
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def outage_words(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's wrapping and its web link."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
