"""Alembic environment: the URL comes from the caller (`newsletter init`) or DATABASE_URL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import newsletter.models  # noqa: F401 - registers the tables on SQLModel.metadata
from newsletter.config import get_settings
from newsletter.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().DATABASE_URL


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write our TypeDecorators as the types they wrap: migrations never import app code."""
    if type_ == "type" and isinstance(obj, sa.TypeDecorator):
        autogen_context.imports.add("import sqlalchemy as sa")
        return f"sa.{obj.impl!r}"
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_item=_render_item,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_url(), create=True)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # A batch migration rebuilds a table (copy, DROP, rename). With foreign keys
            # on, the DROP first deletes every row, and the deletes cascade: going back
            # below 0014 emptied `subscriber_topic`. Off while migrating, as Alembic
            # advises; said before any BEGIN, since SQLite ignores it inside one. The
            # engine is disposed of after, so no connection keeps it off.
            driver: Any = connection.connection.driver_connection
            driver.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_item=_render_item,
            render_as_batch=True,
            # One transaction for the whole run, on SQLite too. Alembic takes SQLite for a
            # database without transactional DDL and commits each step alone, so a step
            # that refuses (0015's downgrade while a send carries reader tokens) left the
            # steps before it applied, the database at a revision nobody asked for. SQLite
            # does roll DDL back, and our engine says BEGIN itself (make_engine), so the
            # driver's own transaction handling never commits behind Alembic's back.
            transactional_ddl=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
