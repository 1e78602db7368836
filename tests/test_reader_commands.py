"""`subscribers list --inactive`, `export --inactive`, `show` and `resubscribe` at the
command line, on both databases, with events applied by the real event code."""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from datetime import timedelta

import pytest
from sqlmodel import select
from typer.testing import CliRunner, Result

from newsletter.cli import app
from newsletter.db import session_scope
from newsletter.limits import CONFIRMATIONS_PER_ADDRESS, hit, key, mailbox
from newsletter.models import MailKind, TransactionalMail
from newsletter.providers.events import EventType
from newsletter.staff.models import AuditEntry
from subscribers.models import Subscriber, SubscriberStatus, utcnow
from subscribers.roster import add_subscriber, forget
from subscribers.status import Actor, change_status
from tests.conftest import SANDBOX_KEY
from tests.readers_support import (
    HOSTILE_NAME,
    active_since,
    add_readers,
    event,
    food_topics,
    send_brief,
)


@pytest.fixture
def cli(db_url, sandbox, monkeypatch, engine):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SENDGRID_API_HOST", sandbox.url)
    monkeypatch.setenv("SENDGRID_API_KEY", SANDBOX_KEY)
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"COLUMNS": "200"})

    food_topics(engine)
    return run


@pytest.fixture
def engaged(cli, engine, settings):
    """Six readers sent one brief long ago: who read it, and when, differs."""
    add_readers(engine, *(f"{n}@example.com" for n in ("ann", "bob", "cy", "dee", "fay")))
    send_id = send_brief(engine, settings)
    now = utcnow()
    for email in ("ann", "bob", "cy", "dee"):
        active_since(engine, f"{email}@example.com", 400)
    event(engine, send_id, "ann@example.com", EventType.OPENED, now - timedelta(days=10))
    # A machine's open (a privacy proxy fetching images) is not a reader's.
    event(
        engine, send_id, "bob@example.com", EventType.OPENED, now - timedelta(days=10), machine=True
    )
    event(
        engine,
        send_id,
        "cy@example.com",
        EventType.CLICKED,
        now - timedelta(days=200),
        url="https://example.com/a",
    )
    event(
        engine,
        send_id,
        "dee@example.com",
        EventType.CLICKED,
        now - timedelta(days=3),
        url="https://example.com/b",
    )
    # fay joined yesterday (active_since not applied): too new to call inactive.
    return send_id


def _emails(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [row["email"] for row in json.loads(result.stdout)]


def test_inactive_lists_active_readers_with_no_open_or_click_in_the_window(cli, engaged):
    assert _emails(cli("subscribers", "list", "--inactive", "90d", "--json")) == [
        "bob@example.com",
        "cy@example.com",
    ]


def test_a_longer_window_counts_an_older_click(cli, engaged):
    assert _emails(cli("subscribers", "list", "--inactive", "300d", "--json")) == [
        "bob@example.com"
    ]


def test_inactive_export_writes_the_same_readers_in_the_import_format(cli, engaged):
    result = cli("subscribers", "export", "--inactive", "12w")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][:5] == ["email", "name", "topics", "cadence", "timezone"]
    assert sorted(row[0] for row in rows[1:]) == ["bob@example.com", "cy@example.com"]


@pytest.mark.parametrize("window", ["soon", "0d", "-5d", "99999d"])
def test_a_window_that_is_not_days_or_weeks_is_one_line_naming_it(cli, window):
    result = cli("subscribers", "list", f"--inactive={window}")
    assert result.exit_code == 1
    assert "inactive window" in result.output and "90d" in result.output
    assert "Traceback" not in result.output


def test_show_gives_status_history_consent_each_delivery_and_its_events(cli, engine, engaged):
    with session_scope(engine) as session:
        person = session.exec(select(Subscriber).where(Subscriber.email == "ann@example.com")).one()
        change_status(
            person, SubscriberStatus.PAUSED, actor=Actor.READER, by="subscriber", session=session
        )
    shown = json.loads(cli("subscribers", "show", "ANN@example.com", "--json").stdout)
    assert (shown["status"], shown["topics"], shown["cadence"]) == ("paused", ["food"], "immediate")
    assert [(c["from"], c["to"], c["by"]) for c in shown["status_history"]] == [
        ("active", "paused", "subscriber")
    ]
    assert shown["consent"]["source"] == "staff"
    [delivery] = shown["deliveries"]
    assert (delivery["brief"], delivery["status"]) == ("Rice prices", "sent")
    assert [e["kind"] for e in delivery["events"]] == ["opened"]
    assert shown["last_open"] is not None and shown["last_click"] is None


def test_show_says_which_confirmations_went_and_that_none_did_for_one_held_back(cli, engine):
    """A reader an import held back looked like any other pending reader: staff could not
    tell that no confirmation ever went."""
    add_readers(engine, "ann@example.com")
    assert cli("subscribers", "unsubscribe", "ann@example.com").exit_code == 0
    before = cli("subscribers", "show", "ann@example.com")
    assert "confirmations and welcomes\n  none\n" in before.stdout
    assert cli("subscribers", "resubscribe", "ann@example.com").exit_code == 0
    shown = json.loads(cli("subscribers", "show", "ann@example.com", "--json").stdout)
    assert [(m["kind"], m["status"], m["sent"]) for m in shown["mail"]] == [
        ("confirmation", "queued", None)
    ]
    assert "  confirmation  queued" in cli("subscribers", "show", "ann@example.com").stdout


def test_show_prints_a_hostile_name_as_written(cli, engine):
    with session_scope(engine) as session:
        add_subscriber("zoe@example.com", session=session, name=HOSTILE_NAME, topics=["food"])
    result = cli("subscribers", "show", "zoe@example.com")
    assert result.exit_code == 0, result.output
    assert "山田 🚀" in result.stdout and '"Zoë" <b>&amp;</b>' in result.stdout


def _mail(engine) -> list[tuple[str, int | None]]:
    with session_scope(engine) as session:
        return [(m.kind, m.subscriber_id) for m in session.exec(select(TransactionalMail))]


def test_resubscribe_makes_an_unsubscribed_reader_pending_queues_a_confirmation_and_audits(
    cli, engine
):
    add_readers(engine, "ann@example.com")
    assert cli("subscribers", "unsubscribe", "ann@example.com").exit_code == 0
    result = cli("subscribers", "resubscribe", "ann@example.com")
    assert result.exit_code == 0, result.output
    with session_scope(engine) as session:
        person = session.exec(select(Subscriber)).one()
        actions = [e.action for e in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert person.status == "pending"
    assert _mail(engine) == [(MailKind.CONFIRMATION, person.id)]
    assert actions == ["subscriber.unsubscribe", "subscriber.resubscribe"]


def test_resubscribe_exits_3_when_the_mailbox_had_its_days_confirmations(cli, engine):
    """It said so in words but exited 0: a script could not tell that no email went."""
    add_readers(engine, "ann@example.com")
    with session_scope(engine) as session:  # three sign-ups' worth today
        for _ in range(CONFIRMATIONS_PER_ADDRESS.limit):
            hit(
                session,
                key("confirm", mailbox("ann@example.com")),
                CONFIRMATIONS_PER_ADDRESS,
                now=utcnow(),
            )
    assert cli("subscribers", "unsubscribe", "ann@example.com").exit_code == 0
    result = cli("subscribers", "resubscribe", "ann@example.com")
    assert result.exit_code == 3 and "no confirmation went" in result.output
    with session_scope(engine) as session:
        assert session.exec(select(Subscriber)).one().status == "pending"
    assert _mail(engine) == []


@pytest.mark.parametrize(
    ("status", "why"),
    [("complained", "spam"), ("bounced", "does not take mail")],
)
def test_resubscribe_refuses_a_reader_whose_mailbox_said_no_naming_why(cli, engine, status, why):
    add_readers(engine, "ann@example.com")
    with session_scope(engine) as session:
        person = session.exec(select(Subscriber)).one()
        change_status(person, SubscriberStatus(status), actor=Actor.PROVIDER, session=session)
    result = cli("subscribers", "resubscribe", "ann@example.com")
    assert result.exit_code == 1
    assert status in result.output and why in result.output
    assert _mail(engine) == []


def test_resubscribe_refuses_a_forgotten_address_saying_it_was_forgotten(cli, engine):
    add_readers(engine, "ann@example.com")
    with session_scope(engine) as session:
        forget("ann@example.com", session=session)
    result = cli("subscribers", "resubscribe", "ann@example.com")
    assert result.exit_code == 1
    assert "forgotten" in result.output
    assert _mail(engine) == []


def test_resubscribe_refuses_a_reader_already_on_the_list(cli, engine):
    add_readers(engine, "ann@example.com")
    result = cli("subscribers", "resubscribe", "ann@example.com")
    assert result.exit_code == 1 and "already on the list" in result.output
    assert _mail(engine) == []


def test_a_test_copy_to_a_malformed_address_is_refused_before_it_is_recorded(cli, engine, tmp_path):
    brief = tmp_path / "brief.md"
    brief.write_text("---\ntitle: Grain\ndate: 2026-06-01\n---\n\nBody.\n", encoding="utf-8")
    assert cli("briefs", "add", str(brief)).exit_code == 0
    refused = cli("briefs", "test-send", "1", "--to", "not-an-address")
    assert refused.exit_code == 1 and "must have an @-sign" in refused.output
    with session_scope(engine) as session:
        actions = [e.action for e in session.exec(select(AuditEntry))]
    assert "brief.test_send" not in actions


def test_list_and_send_commands_at_a_terminal_are_audited_as_in_the_console(cli, engine, tmp_path):
    sheet = tmp_path / "list.csv"
    sheet.write_text("email,name,topics\nzed@example.com,Zed,food\n", encoding="utf-8")
    brief = tmp_path / "brief.md"
    brief.write_text(
        "---\ntitle: Grain\ndate: 2026-06-01\ntopics: [food]\n---\n\nBody.\n", encoding="utf-8"
    )
    for command in (
        ("subscribers", "add", "amy@example.com", "--topics", "food"),
        ("subscribers", "import", str(sheet), "--dry-run"),  # changes nothing: not audited
        ("subscribers", "import", str(sheet)),
        ("subscribers", "export", str(tmp_path / "out.csv")),
        ("briefs", "add", str(brief)),
        ("send", "1", "--at", "2099-01-01 07:00"),
        ("briefs", "test-send", "1", "--to", "outside@example.net"),
        ("sends", "pause", "1"),
        ("sends", "resume", "1"),
        ("sends", "cancel", "1"),
        ("subscribers", "unsubscribe", "zed@example.com"),
        ("subscribers", "unsubscribe", "zed@example.com"),  # changes nothing: not audited
    ):
        result = cli(*command)
        assert result.exit_code == 0, (command, result.output)
    with session_scope(engine) as session:
        entries = list(session.exec(select(AuditEntry).order_by(AuditEntry.id)))
    audited = [
        e.action
        for e in entries
        if e.action.startswith(("subscriber.", "send.", "brief.schedule", "brief.test_send"))
    ]
    assert audited == [
        "subscriber.add",
        "subscriber.import",
        "subscriber.export",
        "brief.schedule",
        "brief.test_send",
        "send.pause",
        "send.resume",
        "send.cancel",
        "subscriber.unsubscribe",
    ]
    assert all(e.actor.startswith("cli:") for e in entries)
    [scheduled] = [e for e in entries if e.action == "brief.schedule"]
    assert scheduled.detail == "send 1, 2099-01-01 07:00 UTC; reaches 2 now and 0 through digests"
    assert not [e for e in entries if "amy@example.com" in e.target + e.detail]  # ids only


def test_links_prints_the_readers_own_pages_and_they_open_as_that_reader(
    cli, engine, web, monkeypatch
):
    """For a reader who lost every email: staff had no way to give them their links."""
    url, served = web
    monkeypatch.setenv("NEWSLETTER_BASE_URL", url)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", served.NEWSLETTER_SECRET_KEY.get_secret_value())
    add_readers(engine, "ann@example.com")
    result = cli("subscribers", "links", "Ann@Example.com")
    assert result.exit_code == 0, result.output
    printed = dict(line.split() for line in result.stdout.splitlines())
    assert set(printed) == {"preferences", "unsubscribe"}
    assert printed["preferences"].startswith(f"{url}/preferences/")
    with urllib.request.urlopen(printed["preferences"], timeout=10) as page:  # noqa: S310
        assert "ann@example.com" in page.read().decode()
    with session_scope(engine) as session:
        entry = session.exec(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert (entry.action, entry.target) == ("subscriber.links", "subscriber 1")
    answer = cli("subscribers", "links", "ann@example.com", "--json")
    assert answer.exit_code == 0, answer.output
    as_json = json.loads(answer.stdout)
    assert as_json == printed


def test_links_for_a_forgotten_reader_is_refused_in_one_line(cli, engine):
    add_readers(engine, "gone@example.com")
    with session_scope(engine) as session:
        forget("gone@example.com", session=session)
    result = cli("subscribers", "links", "gone@example.com")
    assert result.exit_code == 1 and "asked to be forgotten" in result.stderr
    assert "Traceback" not in result.output
