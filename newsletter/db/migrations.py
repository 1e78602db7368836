"""Alembic migrations: applied by `newsletter init`, checked before any command runs."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine, make_url

from newsletter.errors import ConfigurationError


def alembic_config(url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, migrations_dir: Path) -> None:
    """Create or upgrade the schema to the newest migration (never `create_all`)."""
    if not (migrations_dir / "env.py").is_file():
        raise ConfigurationError(f"no Alembic migrations found at {migrations_dir}")
    make_url(url)  # a malformed URL fails here with SQLAlchemy's own message
    command.upgrade(alembic_config(url, migrations_dir), "head")


def schema_is_current(engine: Engine, migrations_dir: Path) -> bool:
    url = engine.url.render_as_string(hide_password=False)
    script = ScriptDirectory.from_config(alembic_config(url, migrations_dir))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(script.get_heads())


def require_current_schema(engine: Engine, migrations_dir: Path) -> None:
    """Refuse to work on a database that `newsletter init` has not prepared (or that an
    upgrade left behind): every query would fail later, less clearly."""
    if not schema_is_current(engine, migrations_dir):
        raise ConfigurationError(
            f"the database {engine.url.render_as_string(hide_password=True)} is not set up "
            "or is out of date",
            hint="run `newsletter init`",
        )
