"""A brief's life at the command line: draft → scheduled → sending → sent (or cancelled).
A draft added again is updated, a draft can be deleted, and a sent brief never changes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner, Result

from newsletter.cli import app
from newsletter.db import session_scope
from newsletter.staff.audit import recent
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import SANDBOX_KEY

BRIEF = """\
---
title: {title}
date: 2026-06-10
topics: [food]
---

Rice prices rose again{extra}.
"""


@pytest.fixture
def cli(engine, db_url, sandbox, monkeypatch):
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        add_subscriber("ann@example.com", session=session, topics=["food"])
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SENDGRID_API_HOST", sandbox.url)
    monkeypatch.setenv("SENDGRID_API_KEY", SANDBOX_KEY)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
        assert (result.exit_code == 0) is ok, result.output
        return result

    return run


def _write(tmp_path, title="Rice prices rise", extra="", name="rice.md"):
    path = tmp_path / name
    path.write_text(BRIEF.format(title=title, extra=extra), encoding="utf-8")
    return path


def _listed(cli, *args):
    return json.loads(cli("briefs", "list", "--json", *args).stdout)


def test_a_corrected_title_added_again_updates_the_draft_instead_of_adding_a_brief(cli, tmp_path):
    first = json.loads(
        cli("briefs", "add", str(_write(tmp_path, "Rice prics rise")), "--json").stdout
    )
    again = json.loads(
        cli("briefs", "add", str(_write(tmp_path, "Rice prices rise")), "--json").stdout
    )
    assert again["id"] == first["id"] and again["updated"] is True
    [only] = _listed(cli)
    assert only["title"] == "Rice prices rise"
    assert only["slug"] == "2026-06-10-rice-prices-rise" and only["status"] == "draft"


def test_a_changed_body_added_again_updates_the_draft(cli, tmp_path):
    cli("briefs", "add", str(_write(tmp_path)))
    result = cli("briefs", "add", str(_write(tmp_path, extra=", by a tenth")))
    assert "draft updated" in result.stderr
    [only] = _listed(cli)
    assert only["id"] == 1


def test_the_same_file_name_on_another_date_is_a_brief_of_its_own(cli, tmp_path):
    cli("briefs", "add", str(_write(tmp_path)))
    path = tmp_path / "rice.md"
    path.write_text(BRIEF.format(title="Rice", extra="").replace("2026-06-10", "2026-06-17"))
    cli("briefs", "add", str(path))
    assert [b["date"] for b in _listed(cli)] == ["2026-06-17", "2026-06-10"]


def test_deleting_a_draft_removes_it_and_the_audit_log_says_who(cli, tmp_path, engine):
    cli("briefs", "add", str(_write(tmp_path)))
    cli("briefs", "delete", "2026-06-10-rice-prices-rise")
    assert _listed(cli) == []
    with session_scope(engine) as session:
        actions = [entry.action for entry in recent(session)]
    assert actions == ["brief.delete", "brief.add"]


def test_the_same_file_with_other_topics_says_so_and_is_audited(cli, tmp_path, engine):
    """It said "already added" and left no audit entry, though the brief's audience
    changed (the console's topic change is audited)."""
    with session_scope(engine) as session:
        add_topic("trade", "Trade", session=session)
    path = _write(tmp_path)
    cli("briefs", "add", str(path))
    result = cli("briefs", "add", str(path), "--topics", "trade")
    assert "brief topics changed: “Rice prices rise” (2026-06-10), topics: trade" in result.stderr
    assert _listed(cli)[0]["topics"] == ["trade"]
    again = cli("briefs", "add", str(path), "--topics", "trade")
    assert "brief already added" in again.stderr
    with session_scope(engine) as session:
        entries = [(entry.action, entry.detail) for entry in recent(session)]
    assert entries[:2] == [("brief.topics", "trade"), ("brief.add", str(path))]


def test_a_sent_brief_cannot_be_changed_or_deleted(cli, tmp_path, sandbox):
    cli("briefs", "add", str(_write(tmp_path)))
    cli("send", "1", "--now")
    cli("worker", "--once")
    [sent] = _listed(cli, "--status", "sent")
    assert sent["when"] is not None and sent["send"] == 1

    changed = cli("briefs", "add", str(_write(tmp_path, extra=", by a tenth")), ok=False)
    assert "a sent brief cannot change" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1
    deleted = cli("briefs", "delete", "1", ok=False)
    assert "a sent brief cannot change" in deleted.stderr
    [still] = _listed(cli)
    assert still["status"] == "sent"
    assert [m.to for m in sandbox.messages()] == [["ann@example.com"]]


def test_a_scheduled_brief_changes_only_after_its_send_is_cancelled(cli, tmp_path):
    cli("briefs", "add", str(_write(tmp_path)))
    cli("send", "1", "--at", "2099-01-01 07:00")
    [scheduled] = _listed(cli, "--status", "scheduled")
    assert scheduled["when"].startswith("2099-01-01T07:00")

    refused = cli("briefs", "add", str(_write(tmp_path, extra=", by a tenth")), ok=False)
    assert "cancel that send" in refused.stderr and "sends cancel 1" in refused.stderr
    cli("sends", "cancel", "1")
    [draft] = _listed(cli, "--status", "draft")
    assert draft["id"] == 1
    cli("briefs", "add", str(_write(tmp_path, extra=", by a tenth")))
    cli("briefs", "delete", "1")
    assert _listed(cli) == []


def test_list_shows_status_and_when_and_refuses_an_unknown_status(cli, tmp_path):
    cli("briefs", "add", str(_write(tmp_path)))
    table = cli("briefs", "list").stdout
    assert "draft" in table and "2026-06-10-rice-prices-rise" in table
    assert _listed(cli, "--status", "sent") == []
    wrong = cli("briefs", "list", "--status", "published", ok=False)
    assert "choose one of draft, scheduled, sending, sent, cancelled" in wrong.stderr


def test_a_deleted_drafts_number_is_never_given_to_the_next_brief_or_send(cli, tmp_path):
    """SQLite numbered a new row one past the highest left: the newest draft deleted, the
    next brief took its id, and "brief 2" in the audit log meant two briefs."""
    cli("briefs", "add", str(_write(tmp_path, "Rice prices rise")))
    cli("briefs", "add", str(_write(tmp_path, "Wheat prices rise", name="wheat.md")))
    cli("send", "2026-06-10-wheat-prices-rise", "--at", "2030-01-01 07:00")
    cli("sends", "cancel", "1")
    cli("briefs", "delete", "2026-06-10-wheat-prices-rise")
    cli("briefs", "add", str(_write(tmp_path, "Barley prices rise", name="barley.md")))
    cli("send", "2026-06-10-barley-prices-rise", "--at", "2030-01-01 07:00")
    [barley, rice] = _listed(cli)
    assert (rice["id"], barley["id"]) == (1, 3)
    sends = json.loads(cli("sends", "list", "--json").stdout)
    assert [s["id"] for s in sends] == [2]
