"""`newsletter sends report`, `report topics` and `report list`: tables for a person, one
JSON document with --json, one line on stderr for a mistake."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from tests.conftest import sqlite_only
from tests.reports_support import LINK_A, LINK_B, tell_a_known_story


@pytest.fixture
def told(web, engine, sandbox):
    url, settings = web
    return tell_a_known_story(engine, settings, sandbox, url)


def test_sends_report_json_has_the_unique_readers_under_their_keys(told, newsletter):
    done = newsletter("sends", "report", str(told.send_id), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    kinds = ("delivered", "opened", "clicked", "bounced", "unsubscribed", "complained")
    expected = dict(zip(kinds, (5, 2, 2, 1, 1, 1), strict=True))
    assert {kind: report[kind] for kind in kinds} == expected
    assert report["machine_opened"] == 1
    assert report["rates"]["opened"] == 0.4
    assert [(link["url"], link["clicks"], link["readers"]) for link in report["links"]] == [
        (LINK_A, 3, 2),
        (LINK_B, 1, 1),
    ]


@sqlite_only
def test_sends_report_prints_readers_links_and_the_hours_as_tables(told, newsletter):
    done = newsletter("sends", "report", str(told.send_id))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in lines if "│" in line]
    assert ["opened", "2", "40.0%"] in cells and ["clicked", "2", "40.0%"] in cells
    assert "opened by a machine only" in done.stdout
    assert LINK_B in done.stdout and "40.0%" in done.stdout
    assert "hours 0-23" in done.stdout


def test_report_topics_json_lists_each_topic_with_its_rates(told, newsletter):
    done = newsletter("report", "topics", "--since", "2020-01-01", "--json")
    assert done.returncode == 0, done.stderr
    (energy,) = json.loads(done.stdout)["topics"]
    assert (energy["topic"], energy["sends"], energy["readers"], energy["open_rate"]) == (
        "energy",
        1,
        2,
        0.4,
    )


@sqlite_only
def test_report_list_shows_the_weeks_oldest_first(engine, newsletter):
    done = newsletter("report", "list", "--weeks", "3", "--json")
    assert done.returncode == 0, done.stderr
    weeks = [week["week"] for week in json.loads(done.stdout)["weeks"]]
    assert len(weeks) == 3 and weeks == sorted(weeks)
    table = newsletter("report", "list")
    assert table.returncode == 0 and "net" in table.stdout and "on list" in table.stdout


def test_since_year_one_east_of_utc_is_every_send_not_a_traceback(engine, db_url, monkeypatch):
    """Midnight of 0001-01-01 in Tokyo is in year 0 in UTC, which no datetime holds: the
    database driver failed on it and the command ended in a traceback."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("NEWSLETTER_TIMEZONE", "Asia/Tokyo")
    done = CliRunner().invoke(app, ["report", "topics", "--since", "0001-01-01", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["since"] == "0001-01-01T00:00:00+00:00"


@sqlite_only
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sends", "report", "999"), "error: no send 999: see `newsletter sends list`"),
        (("sends", "report", "99999999999999999999"), "error: no send"),
        (("report", "topics", "--since", "last week"), "--since 'last week': write the day as"),
        (("report", "list", "--weeks", "0"), "--weeks 0: give 1 to 520"),
    ],
)
def test_a_mistake_is_one_line_on_stderr_and_exit_1(engine, newsletter, args, message):
    done = newsletter(*args)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
