"""The database: engines and sessions, migrations, and the SQL that differs by dialect."""

from newsletter.db.engine import make_engine, session_scope, single_worker_lock
from newsletter.db.migrations import (
    database_heads,
    migrate,
    migration_heads,
    recorded_revisions,
    require_current_schema,
    schema_is_current,
)
from newsletter.db.sql import (
    BULK_ROWS,
    MAX_ROW_ID,
    any_of,
    dialect_insert,
    fits_row_id,
    is_postgresql,
    is_row_id,
    vacuum_after_bulk_load,
)

__all__ = [
    "BULK_ROWS",
    "MAX_ROW_ID",
    "any_of",
    "database_heads",
    "dialect_insert",
    "fits_row_id",
    "is_postgresql",
    "is_row_id",
    "make_engine",
    "migrate",
    "migration_heads",
    "recorded_revisions",
    "require_current_schema",
    "schema_is_current",
    "session_scope",
    "single_worker_lock",
    "vacuum_after_bulk_load",
]
