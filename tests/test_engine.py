"""The engine's own settings on each database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_connections_never_jit_compile(engine):
    """Every pass over a big list costs past JIT's threshold and none runs long enough to
    repay its compiling (README "PostgreSQL for a big list"): off on every connection,
    whatever the server's default."""
    with engine.connect() as first, engine.connect() as second:
        assert first.execute(sa.text("SHOW jit")).scalar_one() == "off"
        assert second.execute(sa.text("SHOW jit")).scalar_one() == "off"
