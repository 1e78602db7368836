"""Alembic migrations: applied by `newsletter init`, checked before any command runs."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from newsletter.db.engine import make_engine
from newsletter.errors import ConfigurationError, NewerSchemaError


def alembic_config(url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, migrations_dir: Path) -> None:
    """Create or upgrade the schema to the newest migration (never `create_all`)."""
    if not (migrations_dir / "env.py").is_file():
        raise ConfigurationError(f"no Alembic migrations found at {migrations_dir}")
    engine = make_engine(url, create=True)  # a malformed URL is refused here, in one line
    try:
        # Alembic would stop at a revision it cannot find, with a traceback.
        _refuse_newer_schema(engine, database_heads(engine), _scripts(migrations_dir))
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url, migrations_dir), "head")


def schema_is_current(engine: Engine, migrations_dir: Path) -> bool:
    return set(database_heads(engine)) == set(_scripts(migrations_dir).get_heads())


def require_current_schema(engine: Engine, migrations_dir: Path) -> None:
    """Refuse to work on a database that `newsletter init` has not prepared (or that an
    upgrade left behind, or that a newer version migrated): every query would fail later,
    less clearly."""
    heads, scripts = database_heads(engine), _scripts(migrations_dir)
    _refuse_newer_schema(engine, heads, scripts)
    if set(heads) != set(scripts.get_heads()):
        raise ConfigurationError(
            f"the database {_shown(engine)} is not set up or is out of date",
            hint="run `newsletter init`",
        )


def _refuse_newer_schema(engine: Engine, heads: tuple[str, ...], scripts: ScriptDirectory) -> None:
    """A revision the migrations here do not have can only come from a newer version: to
    run `init` would be the wrong advice, and Alembic cannot go down from it."""
    known = {script.revision for script in scripts.walk_revisions()}
    for revision in heads:
        if revision not in known:
            newest = ", ".join(sorted(scripts.get_heads()))
            raise NewerSchemaError(_shown(engine), revision, newest)


def _scripts(migrations_dir: Path) -> ScriptDirectory:
    """The migration files; reading them needs no database."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    return ScriptDirectory.from_config(config)


def migration_heads(migrations_dir: Path) -> tuple[str, ...]:
    """The revisions the migrations in `migrations_dir` end at: the schema the code beside
    them was written for. Read from the files, so a process reading it at start-up keeps
    what its own code expects after an upgrade replaced them."""
    return tuple(sorted(_scripts(migrations_dir).get_heads()))


def database_heads(engine: Engine) -> tuple[str, ...]:
    """The revisions the database says it is at (`alembic_version`)."""
    with engine.connect() as connection:
        return tuple(MigrationContext.configure(connection).get_current_heads())


def recorded_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions `alembic_version` holds, by one SELECT: what a running worker reads
    every tick. (`database_heads` asks Alembic, which first looks the table up in the
    catalogue: right for a database that may never have been migrated, two statements for
    one that was.)"""
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        return tuple(sorted(str(revision) for revision in rows.scalars()))


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
