"""The guards on `send`, `sends resolve` and `worker --once`, as staff and cron meet them:
each refusal is one line on stderr and exit status 1, and says what to do instead."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.cli.common import EX_CONFIG
from newsletter.db import session_scope
from newsletter.devtools.sandbox import Faults
from newsletter.models import Delivery
from subscribers.models import utcnow
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import SANDBOX_KEY, clean_env

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def cli(engine, db_url, sandbox, monkeypatch):
    """`newsletter …` in-process, on a list where three readers follow shipping (one of
    them daily) and one follows food; the brief (id 1) is on shipping."""
    with session_scope(engine) as session:
        for slug in ("shipping", "food"):
            add_topic(slug, slug.title(), session=session)
        add_subscriber("ann@example.com", session=session, topics=["shipping"])
        add_subscriber("bob@example.com", session=session, topics=["shipping"])
        add_subscriber("dee@example.com", session=session, topics=["shipping"], cadence="daily")
        add_subscriber("eve@example.com", session=session, topics=["food"])
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SENDGRID_API_HOST", sandbox.url)
    monkeypatch.setenv("SENDGRID_API_KEY", SANDBOX_KEY)
    monkeypatch.setenv("NEWSLETTER_RESOLVE_WAIT_SECONDS", "600")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(app, list(args), env={"COLUMNS": "200"})

    assert (
        run("briefs", "add", str(FIXTURES / "firm-layout.txt"), "--topics", "shipping").exit_code
        == 0
    )
    return run


def _refused(result, *words):
    assert result.exit_code == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0]
    return lines[0]


def _recipients(sandbox):
    return sorted(a for m in sandbox.messages() for a in m.to)


def test_send_says_how_many_readers_it_reaches_now_and_through_digests(cli):
    result = cli("send", "1", "--now")
    assert result.exit_code == 0, result.stderr
    assert "it reaches 2 readers now and 1 through their digests" in result.stdout
    document = json.loads(cli("sends", "status", "1", "--json").stdout)
    assert document["status"] == "scheduled"


def test_send_json_carries_the_audience(cli):
    document = json.loads(cli("send", "1", "--now", "--json").stdout)
    assert document["audience"] == {"now": 2, "digests": 1, "received": 0}


def test_a_second_send_of_a_brief_is_refused_naming_the_first(cli, sandbox):
    assert cli("send", "1", "--now").exit_code == 0
    line = _refused(cli("send", "1", "--now"), "already has send 1", "wait for send 1")
    assert "scheduled" in line
    assert cli("worker", "--once").exit_code == 0
    assert _recipients(sandbox) == ["ann@example.com", "bob@example.com"]


def test_a_second_send_of_a_finished_brief_does_not_advise_cancelling_it(cli, sandbox):
    """It advised `sends cancel 1`, which then refused: a finished send cannot be cancelled."""
    assert cli("send", "1", "--now").exit_code == 0
    assert cli("worker", "--once").exit_code == 0
    result = cli("send", "1", "--now")
    assert result.exit_code != 0 and "finished" in result.stderr and "--again" in result.stderr
    assert "sends cancel" not in result.stderr


def test_a_second_send_of_a_brief_not_yet_started_advises_waiting_or_cancelling_not_again(cli):
    """It advised --again, which then refused: the first send will reach every reader."""
    assert cli("send", "1", "--now").exit_code == 0
    refused = cli("send", "1", "--now").stderr
    assert "wait for send 1, or `newsletter sends cancel 1` first to replace it" in refused
    assert "--again" not in refused


def test_again_sends_only_to_readers_who_do_not_have_it(cli, engine, sandbox):
    assert cli("send", "1", "--now").exit_code == 0
    assert cli("worker", "--once").exit_code == 0
    with session_scope(engine) as session:
        add_subscriber("cy@example.com", session=session, topics=["shipping"])
    result = cli("send", "1", "--now", "--again")
    assert "it reaches 1 reader now and 0 through their digests" in result.stdout
    assert cli("worker", "--once").exit_code == 0
    assert _recipients(sandbox) == ["ann@example.com", "bob@example.com", "cy@example.com"]


def test_again_while_the_first_send_has_not_started_is_refused(cli):
    assert cli("send", "1", "--now").exit_code == 0
    _refused(cli("send", "1", "--now", "--again"), "send 1 has not started yet")


def test_include_received_sends_a_second_copy_on_purpose(cli, sandbox):
    assert cli("send", "1", "--now").exit_code == 0
    assert cli("worker", "--once").exit_code == 0
    _refused(cli("send", "1", "--now", "--again"), "would reach no reader", "2 already have it")
    assert cli("send", "1", "--now", "--include-received").exit_code == 0
    assert cli("worker", "--once").exit_code == 0
    assert _recipients(sandbox) == ["ann@example.com"] * 2 + ["bob@example.com"] * 2


def test_a_send_that_reaches_nobody_is_refused_unless_allowed(cli, sandbox):
    assert cli("topics", "add", "ports", "--name", "Ports").exit_code == 0
    assert (
        cli("briefs", "add", str(FIXTURES / "front-matter.md"), "--topics", "ports").exit_code == 0
    )
    _refused(cli("send", "2", "--now"), "would reach no reader", "--allow-empty")
    assert cli("sends", "list", "--json").stdout.strip() == "[]"
    assert cli("send", "2", "--now", "--allow-empty").exit_code == 0


def test_a_time_in_the_past_is_refused(cli):
    _refused(cli("send", "1", "--at", "2020-01-01 07:00", "--tz", "Asia/Tokyo"), "in the past")
    assert cli("sends", "list", "--json").stdout.strip() == "[]"


def test_a_time_the_clocks_skip_is_refused_naming_the_hour_after(cli):
    """01:30 on the night London's clocks go forward was taken as 02:30 without a word."""
    line = _refused(
        cli("send", "1", "--at", "2099-03-29 01:30", "--tz", "Europe/London"), "does not exist"
    )
    assert "choose 02:30" in line
    assert cli("sends", "list", "--json").stdout.strip() == "[]"


def test_the_confirmation_shows_the_time_in_the_zone_given_and_in_utc(cli):
    year = utcnow().year + 1
    result = cli("send", "1", "--at", f"{year}-06-11 07:00", "--tz", "Asia/Tokyo")
    assert result.exit_code == 0, result.stderr
    assert f"for {year}-06-11 07:00 Asia/Tokyo ({year}-06-10 22:00 UTC)" in result.stdout


def _unknown_rows(engine, cli, sandbox, age: timedelta):
    """A send whose every answer was lost: its rows are unknown, `age` old."""
    assert cli("send", "1", "--now").exit_code == 0
    sandbox.state.set_faults(Faults(rate_drop=1.0))
    cli("worker", "--once")
    sandbox.state.set_faults(Faults())
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery).where(Delivery.status == "unknown")).all()
        for row in rows:
            row.updated_at = utcnow() - age
            session.add(row)
    return len(rows)


def test_status_says_how_old_the_unknown_rows_are(cli, engine, sandbox):
    assert _unknown_rows(engine, cli, sandbox, timedelta(minutes=3)) == 2
    out = cli("sends", "status", "1").stdout
    assert "2 deliveries are unknown" in out and "the newest for 3 min" in out
    document = json.loads(cli("sends", "status", "1", "--json").stdout)
    assert document["unknown_newest_at"] is not None


def test_resolve_resend_refuses_rows_younger_than_the_wait_unless_now(cli, engine, sandbox):
    _unknown_rows(engine, cli, sandbox, timedelta(seconds=30))
    _refused(cli("sends", "resolve", "1", "--resend"), "events may still show", "--now")
    assert json.loads(cli("sends", "status", "1", "--json").stdout)["counts"]["unknown"] == 2
    assert (
        "2 unknown deliveries queued again"
        in cli("sends", "resolve", "1", "--resend", "--now").stdout
    )


def test_resolve_resend_goes_ahead_once_the_wait_is_over(cli, engine, sandbox):
    _unknown_rows(engine, cli, sandbox, timedelta(minutes=11))
    result = cli("sends", "resolve", "1", "--resend")
    assert "2 unknown deliveries queued again" in result.stdout, result.stderr


# --- the worker's exit status, from a real process, as cron sees it --------------------------


@pytest.fixture
def newsletter(db_url, sandbox, tmp_path):
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        variables = {
            "DATABASE_URL": db_url,
            "SENDGRID_API_HOST": sandbox.url,
            "SENDGRID_API_KEY": SANDBOX_KEY,
            "NEWSLETTER_MAX_RETRIES": "1",
            **env,
        }
        return subprocess.run(
            [sys.executable, "-m", "newsletter", *args],
            env=clean_env(**variables),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "error" in line.lower()]


def test_worker_once_fails_in_one_line_when_the_provider_is_unreachable(cli, newsletter, sandbox):
    assert cli("send", "1", "--now").exit_code == 0
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        host = f"http://127.0.0.1:{closed.getsockname()[1]}"
        result = newsletter("worker", "--once", SENDGRID_API_HOST=host)
    assert result.returncode == 1
    [line] = _errors(result)
    assert "could not be handed off and stays queued" in line and "connection failed" in line
    assert "the provider accepted 0 deliveries" in result.stderr  # what the provider took
    status = json.loads(cli("sends", "status", "1", "--json").stdout)
    assert status["counts"]["queued"] == 2


def test_worker_once_logs_what_the_provider_accepted_and_exits_0(cli, newsletter, sandbox):
    assert cli("send", "1", "--now").exit_code == 0
    result = newsletter("worker", "--once")
    assert result.returncode == 0, result.stderr
    assert "the provider accepted 2 deliveries (0 failed" in result.stderr


def test_a_worker_without_an_api_key_is_refused_at_start(cli, newsletter, sandbox):
    assert cli("send", "1", "--now").exit_code == 0
    for args in (("worker", "--once"), ("worker",)):
        result = newsletter(*args, SENDGRID_API_KEY="")
        assert result.returncode == EX_CONFIG  # a setting to fix: systemd does not restart it
        assert result.stderr.strip().splitlines() == [
            "error: SENDGRID_API_KEY is not set, so nothing can be handed to SendGrid: set it "
            "(or NEWSLETTER_TRANSPORT=smtp or outbox), then start again"
        ]
    assert sandbox.messages() == []
