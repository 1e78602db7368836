"""`newsletter demo` (what `make demo` runs) shows readers opening and clicking, through the
real webhook, and the first send's report."""

from __future__ import annotations

import re

from tests.conftest import sqlite_only


@sqlite_only
def test_the_demo_posts_opens_and_clicks_and_prints_a_send_report(newsletter, tmp_path):
    done = newsletter("demo", "--workdir", str(tmp_path / "demo"), timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "[bold]" not in out and "\\[" not in out  # styled, not markup shown as text
    posted = re.search(r"the sandbox posted (\d+) signed events", out)
    assert posted and int(posted.group(1)) > 0
    assert "Unique readers" in out and "opened by a machine only" in out
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    delivered = next(int(row[1]) for row in cells if row and row[0] == "delivered")
    opened = next(int(row[1]) for row in cells if row and row[0] == "opened")
    assert delivered > 0 and 0 < opened <= delivered
