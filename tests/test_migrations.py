"""The schema comes from Alembic, and the migrations match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

import newsletter.models  # noqa: F401 - registers every table
from newsletter.db import migrate, schema_is_current
from tests.conftest import test_settings


def test_migrations_leave_no_difference_from_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_a_migrated_database_is_current(engine):
    assert schema_is_current(engine, test_settings().NEWSLETTER_MIGRATIONS_DIR)


def test_migrating_twice_changes_nothing(db_url, engine):
    migrate(db_url, test_settings().NEWSLETTER_MIGRATIONS_DIR)
    assert schema_is_current(engine, test_settings().NEWSLETTER_MIGRATIONS_DIR)
