"""The PostgreSQL floor under the ledger, in the same run as our figures (the machine is
noisy): raw SQL on a ledger-shaped table with the indexes ours has (the unique pair and the
partial claim index), no application code. INSERT … SELECT is planning's floor; one
UPDATE per 1,000-row id range is the floor of writing every row's outcome once."""

from __future__ import annotations

import time

import sqlalchemy as sa

SETUP = """
CREATE TABLE d (id bigserial PRIMARY KEY, send_id int NOT NULL, subscriber_id bigint NOT NULL,
  status text NOT NULL, not_before timestamptz, batch_id bigint, updated_at timestamptz,
  error text) WITH (fillfactor = {fillfactor});
CREATE UNIQUE INDEX d_u ON d (send_id, subscriber_id);
CREATE INDEX d_claim ON d (send_id, not_before, id) WHERE status = 'queued';
"""
OUTCOMES = """
DO $$ BEGIN FOR b IN 0..{batches} LOOP
  UPDATE d SET status = 'sent', batch_id = b, updated_at = now()
    WHERE id > b * 1000 AND id <= (b + 1) * 1000;
END LOOP; END $$;
"""


def bench_floor(url: str, *, rows: int, fillfactor: int = 100) -> dict[str, float]:
    """`fillfactor` below 100 leaves room on each page for the rows' next versions (the
    README's PostgreSQL settings quote the difference)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("SET jit = off")  # as on the code's own connections
        connection.exec_driver_sql(SETUP.format(fillfactor=fillfactor))
        start = time.perf_counter()
        connection.exec_driver_sql(
            "INSERT INTO d (send_id, subscriber_id, status, not_before, updated_at) "
            f"SELECT 1, g, 'queued', now(), now() FROM generate_series(1, {rows}) g"
        )
        insert = time.perf_counter() - start
        start = time.perf_counter()
        connection.exec_driver_sql(OUTCOMES.format(batches=rows // 1000))
        update = time.perf_counter() - start
        connection.exec_driver_sql("DROP TABLE d")
    engine.dispose()
    print(
        f"[postgresql floor, fillfactor {fillfactor}] {rows:,} rows: "
        f"INSERT … SELECT {insert:.2f} s; one outcome "
        f"UPDATE per 1,000 rows {update:.2f} s ({rows / update:,.0f} rows/s)"
    )
    return {"insert": insert, "update": update}
