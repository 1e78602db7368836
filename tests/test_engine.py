"""The engine's own settings on each database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

_SETTING = sa.text("SELECT pg_backend_pid(), current_setting('jit')")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_connections_never_jit_compile(engine):
    """Every pass over a big list costs past JIT's threshold and none runs long enough to
    repay its compiling (README "PostgreSQL for a big list"): off on every connection,
    whatever the server's default, and still off when the pool hands it out again."""
    with engine.connect() as connection:
        first = connection.execute(_SETTING).one()
        connection.rollback()
    with engine.connect() as connection:
        again = connection.execute(_SETTING).one()
    assert first[1] == again[1] == "off"
    assert first[0] == again[0]  # the same session, checked out twice
