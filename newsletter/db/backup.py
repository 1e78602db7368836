"""`newsletter backup FILE`: a consistent copy of a SQLite database while the worker and the
web process keep running.

SQLite's online backup API copies the pages under one read transaction; in WAL mode that
blocks no writer, and the copy is the database as of one moment, WAL content included
(copying the file with `cp` while a worker writes can catch it half-written, and misses
what is still in the WAL). PostgreSQL has its own tool for this, `pg_dump`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from newsletter.errors import ConfigurationError


@dataclass(frozen=True)
class BackupReport:
    source: str
    target: Path
    size: int  # bytes
    revision: str  # the copy's migration revision

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": str(self.target),
            "bytes": self.size,
            "revision": self.revision,
        }


def backup_database(url: str, target: Path) -> BackupReport:
    """Copy the database at `url` to `target` (a new file), checked before it is kept."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        raise ConfigurationError(
            "`newsletter backup` copies SQLite databases; this one is PostgreSQL",
            hint=f"use pg_dump: pg_dump -Fc -f {target} '{_libpq_url(url)}'",
        )
    source = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or source in ("", ":memory:"):
        raise ConfigurationError(f"no database file to back up in DATABASE_URL {url!r}")
    if not Path(source).is_file():
        raise ConfigurationError(f"no database at {source}", hint="check DATABASE_URL")
    if target.exists():
        raise ConfigurationError(f"{target} exists; a backup never overwrites a file")
    if not target.parent.is_dir():
        raise ConfigurationError(f"{target.parent} is not a directory")
    partial = target.with_name(f".{target.name}.partial")
    try:
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(partial)) as copy,
        ):
            src.backup(copy)  # every page in one step: one consistent snapshot
            # One self-contained file: no -wal beside it to forget when copying it on.
            copy.execute("PRAGMA journal_mode=DELETE")
            problems = copy.execute("PRAGMA quick_check").fetchall()
            revision = _revision(copy)
        if problems != [("ok",)]:
            raise ConfigurationError(
                f"the copy of {source} failed its check: {problems[:3]}; nothing was kept"
            )
        partial.replace(target)  # whole or not at all
    except sqlite3.Error as exc:
        raise ConfigurationError(f"backing up {source} failed: {exc}; nothing was kept") from exc
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(source=source, target=target, size=target.stat().st_size, revision=revision)


def _revision(connection: sqlite3.Connection) -> str:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return ""
    return str(row[0]) if row else ""


def _libpq_url(url: str) -> str:
    """The URL as pg_dump reads it: no SQLAlchemy driver suffix, no password shown."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=True)
