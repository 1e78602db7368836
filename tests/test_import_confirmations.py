"""An import that requires confirmation, on SQLite and PostgreSQL: each new reader starts
pending and is sent a confirmation (a mailbox no more than its daily share), in the same
transaction as the import; nobody is left pending with nothing to confirm."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from newsletter import signup
from newsletter.cli import app
from newsletter.db import session_scope
from newsletter.errors import ConflictError
from newsletter.limits import Rule, hit, hit_many, peek_many
from newsletter.models import MailKind, TransactionalMail
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.readers.importing import import_readers
from newsletter.sending.transactional import MAX_REQUESTS, send_queued_mail
from newsletter.signup import (
    apply_signups,
    check_signup,
    confirm_signup,
    queue_confirmations,
    record_signup,
)
from newsletter.staff.models import AuditEntry
from subscribers.models import Subscriber, utcnow
from subscribers.roster import add_subscriber
from tests.conftest import SANDBOX_KEY
from tests.workers_support import deliver_mail

HEADER = "email,name,topics,cadence,timezone\n"


def _import(engine, tmp_path, text, **options):
    path = tmp_path / "list.csv"
    path.write_text(text, encoding="utf-8")
    with session_scope(engine) as session:
        return import_readers(path, session=session, default_timezone="UTC", **options)


def _confirmations(engine) -> dict[str, int]:
    """Address → confirmations queued for it."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(Subscriber.email, TransactionalMail.kind)
            .join(TransactionalMail, TransactionalMail.subscriber_id == Subscriber.id)
            .where(TransactionalMail.kind == MailKind.CONFIRMATION)
        ).all()
    counts: dict[str, int] = {}
    for address, _ in rows:
        counts[address] = counts.get(address, 0) + 1
    return counts


def test_each_new_reader_of_an_import_requiring_confirmation_is_queued_one(topics, tmp_path):
    outcome = _import(
        topics,
        tmp_path,
        HEADER + "ann@example.com,Ann,japan,,\n" + '"bo, ""b"" 山田 🦊",x,,,\n'
        "cy@example.com,Cy,food,,\n",
        require_confirmation=True,
    )
    assert _confirmations(topics) == {"ann@example.com": 1, "cy@example.com": 1}
    assert outcome.confirmations == 2 and outcome.held == 0
    assert (
        "2 new readers added as pending: a confirmation is queued"
        in (outcome.confirmation_lines()[0])
    )


def test_an_imported_reader_who_confirms_keeps_the_import_in_their_consent_record(topics, tmp_path):
    """Confirming wrote `form` over it: the record no longer said where the address came
    from."""
    _import(topics, tmp_path, HEADER + "ann@example.com,Ann,japan,,\n", require_confirmation=True)
    with session_scope(topics) as session:
        ann_id = session.exec(select(Subscriber.id)).one()
    assert confirm_signup(topics, ann_id, ip="198.51.100.7")
    with session_scope(topics) as session:
        ann = session.exec(select(Subscriber)).one()
    assert (ann.status, ann.consent_source, ann.consent_ip) == (
        "active",
        "import:list.csv (confirmed by email)",
        "198.51.100.7",
    )


def test_a_status_column_overruled_by_required_confirmation_is_said_so(topics, tmp_path):
    """Not for an active reader, who keeps their status (re-importing an export said it of
    every row); and once for an address twice in the file."""
    with session_scope(topics) as session:
        add_subscriber("old@example.com", session=session, topics=["japan"])
    outcome = _import(
        topics,
        tmp_path,
        "email,name,topics,status\nann@example.com,A,japan,active\nbo@example.com,B,japan,\n"
        "cy@example.com,C,japan,paused\ncy@example.com,C,food,paused\n"
        "old@example.com,O,japan,active\n",
        require_confirmation=True,
    )
    assert outcome.report.warnings == [
        f"{tmp_path / 'list.csv'}: for 2 new or pending readers the file says status active "
        "or paused; with confirmation required, they stay pending until they confirm"
    ]


def test_an_import_not_requiring_confirmation_queues_none(topics, tmp_path):
    outcome = _import(topics, tmp_path, HEADER + "ann@example.com,Ann,japan,,\n")
    assert _confirmations(topics) == {}
    assert outcome.confirmation_lines() == []


def test_a_dry_run_queues_none_and_says_confirmations_would_go(topics, tmp_path):
    outcome = _import(
        topics, tmp_path, HEADER + "ann@example.com,Ann,japan,,\n", require_confirmation=True
    )
    assert _confirmations(topics) == {"ann@example.com": 1}
    dry = _import(
        topics,
        tmp_path,
        HEADER + "bo@example.com,Bo,japan,,\n",
        require_confirmation=True,
        dry_run=True,
    )
    assert _confirmations(topics) == {"ann@example.com": 1}
    assert dry.confirmation_lines() == [
        "1 new reader would be added as pending and sent a confirmation; they would receive "
        "nothing until they confirm"
    ]
    assert outcome.confirmations == 1


def test_a_dry_run_names_who_would_be_held_back_and_the_import_then_does_just_that(
    topics, tmp_path
):
    """The dry run could only say "up to": it did not know the mailboxes' counts. It reads
    them now, and counts its own would-be confirmations across the file, writing nothing."""
    with session_scope(topics) as session:  # one confirmation already today
        queue_confirmations(session, [(0, "victim@example.com")], now=utcnow())
    rows = "".join(f"victim+{n}@example.com,V,japan,,\n" for n in range(4))
    dry = _import(topics, tmp_path, HEADER + rows, require_confirmation=True, dry_run=True)
    assert (dry.confirmations, dry.held) == (2, 2)
    assert dry.held_named == ["victim+2@example.com", "victim+3@example.com"]
    assert dry.confirmation_lines()[1].startswith(
        "2 new readers would be added as pending with no confirmation: their mailbox would "
        "have three today (victim+2@example.com, victim+3@example.com)"
    )
    assert _confirmations(topics) == {}
    real = _import(topics, tmp_path, HEADER + rows, require_confirmation=True)
    assert (real.confirmations, real.held, real.held_named) == (2, 2, dry.held_named)


def test_readers_already_on_the_list_get_no_confirmation_from_an_import(topics, tmp_path):
    with session_scope(topics) as session:
        add_subscriber("old@example.com", session=session, topics=["japan"], status="pending")
    _import(
        topics,
        tmp_path,
        "email,name,topics,status\nold@example.com,Old,japan,pending\nnew@example.com,New,japan,\n",
        require_confirmation=True,
    )
    assert _confirmations(topics) == {"new@example.com": 1}


def test_a_mailbox_gets_no_more_than_its_daily_share_from_one_import(topics, tmp_path):
    """Five `+tag` variants reach one mailbox: it gets three confirmations, as from the
    sign-up form; the other two are named, and stay pending for a later resubscribe."""
    rows = "".join(f"victim+{n}@example.com,V,japan,,\n" for n in range(5))
    outcome = _import(topics, tmp_path, HEADER + rows, require_confirmation=True)
    assert sum(_confirmations(topics).values()) == 3
    assert outcome.confirmations == 3 and outcome.held == 2
    assert outcome.held_named == ["victim+3@example.com", "victim+4@example.com"]
    assert "victim+3@example.com, victim+4@example.com" in outcome.confirmation_lines()[1]


def test_an_import_logs_no_line_per_reader_held_back(topics, tmp_path, caplog):
    """Its report names them; a log line each ("confirmation to subscriber 365 not sent")
    repeated them on the terminal with internal ids."""
    rows = "".join(f"victim+{n}@example.com,V,japan,,\n" for n in range(5))
    with caplog.at_level(logging.INFO, logger="newsletter"):
        outcome = _import(topics, tmp_path, HEADER + rows, require_confirmation=True)
    assert outcome.held == 2
    assert "not sent" not in caplog.text


def test_an_import_whose_every_reader_is_held_back_says_only_that(topics, tmp_path):
    with session_scope(topics) as session:
        queue_confirmations(session, [(0, f"v+{n}@example.com") for n in range(3)], now=utcnow())
    outcome = _import(
        topics, tmp_path, HEADER + "v+9@example.com,V,japan,,\n", require_confirmation=True
    )
    assert [line.split(":")[0] for line in outcome.confirmation_lines()] == [
        "1 new reader added as pending with no confirmation"
    ]


def test_a_dry_run_counts_its_own_confirmations_from_one_chunk_to_the_next(engine):
    """A dry run stores nothing: what one chunk of the file would have queued must weigh
    on the next, as the stored counts do in the real import."""
    rule, now, earlier = signup.CONFIRMATIONS_PER_ADDRESS, utcnow(), Counter()
    with session_scope(engine) as session:
        assert peek_many(session, ["k"] * 2, rule, now=now, earlier=earlier) == [True, True]
        assert peek_many(session, ["k"] * 2, rule, now=now, earlier=earlier) == [True, False]
        assert hit_many(session, ["k"], rule, now=now) == [True]  # nothing was stored


def test_a_mailbox_held_back_by_an_import_can_sign_up_the_next_morning(engine):
    """Refused attempts counted: an import's five `+tag` variants kept their owner from
    getting a confirmation until the afternoon of the next day (two hundred: all of it).
    An import counts only the confirmations it queued."""
    rule = signup.CONFIRMATIONS_PER_ADDRESS
    noon = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    with session_scope(engine) as session:
        assert hit_many(session, ["k"] * 5, rule, now=noon, bulk=True) == [True] * 3 + [False] * 2
        assert hit(session, "k", rule, now=noon + timedelta(hours=21))


def test_confirmations_are_queued_chunk_by_chunk_without_losing_any(topics, tmp_path, monkeypatch):
    monkeypatch.setattr(signup, "CONFIRMATION_CHUNK", 2)
    rows = "".join(f"r{n}@example.com,R,japan,,\n" for n in range(7))
    outcome = _import(topics, tmp_path, HEADER + rows, require_confirmation=True)
    assert _confirmations(topics) == {f"r{n}@example.com": 1 for n in range(7)}
    assert outcome.confirmations == 7


def test_many_attempts_at_once_are_allowed_exactly_as_one_at_a_time(engine):
    """`hit_many` is what an import counts with; `hit` what the sign-up form does. The
    same attempts, across a sliding window's boundary, get the same answers."""
    rule = Rule(limit=3, window=timedelta(minutes=10))
    start = utcnow().replace(minute=9, second=30, microsecond=0)
    later = start + timedelta(minutes=1, seconds=30)
    batches = [(start, ["a", "b", "a", "a", "a"]), (later, ["a", "b", "b", "c", "b", "b"])]
    with session_scope(engine) as session:
        one_by_one = [
            [hit(session, f"1-{k}", rule, now=when) for k in keys] for when, keys in batches
        ]
        at_once = [
            hit_many(session, [f"m-{k}" for k in keys], rule, now=when) for when, keys in batches
        ]
    assert at_once == one_by_one
    assert one_by_one[0] == [True, True, True, True, False]
    # A minute and a half on, 90% of the last window still counts: a's 4 keep it shut.
    assert one_by_one[1] == [False, True, True, True, False, False]


def test_the_cli_import_tells_staff_and_the_worker_sends_each_confirmation(
    topics, db_url, sandbox, settings, tmp_path, monkeypatch
):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SENDGRID_API_HOST", sandbox.url)
    monkeypatch.setenv("SENDGRID_API_KEY", SANDBOX_KEY)
    sheet = tmp_path / "fair.csv"
    sheet.write_text(HEADER + "ann@example.com,Ann,japan,,\nzoe@example.com,Zoë,food,,\n")
    runner = CliRunner()
    result = runner.invoke(
        app, ["subscribers", "import", str(sheet), "--require-confirmation"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "2 new readers added as pending: a confirmation is queued for each" in result.stdout
    deliver_mail(topics, settings)
    assert sorted(m.to[0] for m in sandbox.messages()) == ["ann@example.com", "zoe@example.com"]
    listed = runner.invoke(app, ["subscribers", "list", "--json"], env={"COLUMNS": "200"})
    assert {p["status"] for p in json.loads(listed.stdout)} == {"pending"}


@pytest.mark.parametrize("flag", [[], ["--require-confirmation"]])
def test_the_cli_json_report_counts_the_confirmations(topics, db_url, tmp_path, monkeypatch, flag):
    monkeypatch.setenv("DATABASE_URL", db_url)
    sheet = tmp_path / "fair.csv"
    sheet.write_text(HEADER + "ann@example.com,Ann,japan,,\n")
    result = CliRunner().invoke(app, ["subscribers", "import", str(sheet), "--json", *flag])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["confirmations_queued"] == (1 if flag else 0)
    assert report["confirmations_held"] == 0


@pytest.mark.parametrize("flag", [[], ["--require-confirmation"]])
def test_the_audit_log_says_whether_an_import_required_confirmation_and_how_many_went(
    topics, db_url, tmp_path, monkeypatch, flag
):
    monkeypatch.setenv("DATABASE_URL", db_url)
    sheet = tmp_path / "fair.csv"
    sheet.write_text(HEADER + "ann@example.com,Ann,japan,,\n")
    assert CliRunner().invoke(app, ["subscribers", "import", str(sheet), *flag]).exit_code == 0
    with session_scope(topics) as session:
        entry = session.exec(select(AuditEntry)).one()
    assert entry.detail.startswith("1 added, 0 updated")
    assert entry.detail.endswith(
        "; confirmation required: 1 queued, 0 held back (their mailbox had three today)"
        if flag
        else "0 merged"
    )


def test_a_sign_ups_confirmation_goes_before_an_imports_backlog(
    topics, tmp_path, settings, sandbox
):
    """A re-permission import queues thousands of confirmations; someone signing up on the
    website meanwhile waited behind all of them (oldest first, fifty a tick). One reader a
    request here, so that a tick's claim is MAX_REQUESTS messages and the backlog is more."""
    rows = "".join(f"r{n}@example.com,R,japan,,\n" for n in range(MAX_REQUESTS + 10))
    _import(topics, tmp_path, HEADER + rows, require_confirmation=True)
    form = check_signup(
        engine=topics,
        email="web@example.com",
        name="",
        topics=["japan"],
        cadence="immediate",
        timezone="UTC",
    )
    assert record_signup(topics, form, ip="127.0.0.1", now=utcnow())
    apply_signups(topics, now=utcnow() + timedelta(seconds=5))
    transport = SendGridTransport.from_settings(settings)
    transport.max_batch_size = 1
    send_queued_mail(topics, settings, transport, now=utcnow() + timedelta(seconds=5))
    sent = [m.to[0] for m in sandbox.messages()]
    assert len(sent) == MAX_REQUESTS and "web@example.com" in sent


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_same_import_twice_at_once_refuses_the_second_in_words(topics, tmp_path):
    """A double-clicked Apply, or two terminals: the second answered 500, or printed a
    traceback ending in UniqueViolation."""
    path = tmp_path / "list.csv"
    path.write_text(HEADER + "ann@example.com,Ann,japan,,\n", encoding="utf-8")
    outcome: list[object] = []

    def second() -> None:
        try:
            with session_scope(topics) as session:
                import_readers(path, session=session, default_timezone="UTC")
        except ConflictError as exc:
            outcome.append(exc)

    with session_scope(topics) as first:
        import_readers(path, session=first, default_timezone="UTC")
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(1)  # waits on the first one's new row
    thread.join(30)
    assert len(outcome) == 1 and "run it again" in str(outcome[0])
    assert _people_count(topics) == 1


def _people_count(engine) -> int:
    with session_scope(engine) as session:
        return len(session.exec(select(Subscriber)).all())


def test_with_confirmation_required_a_files_status_neither_adds_nor_activates_the_unconfirmed(
    topics, tmp_path
):
    """The file's `status=active` won over the checkbox: new readers went in active with no
    confirmation, and a pending reader who never confirmed was activated."""
    with session_scope(topics) as session:
        add_subscriber("old@example.com", session=session, topics=["japan"], status="pending")
        add_subscriber("left@example.com", session=session, topics=["japan"], status="unsubscribed")
    _import(
        topics,
        tmp_path,
        "email,name,topics,status\nnew@example.com,N,japan,active\nold@example.com,O,japan,active\n"
        "gone@example.com,G,japan,unsubscribed\n",
        require_confirmation=True,
    )
    with session_scope(topics) as session:
        statuses = dict(session.exec(select(Subscriber.email, Subscriber.status)).all())
    assert statuses == {
        "new@example.com": "pending",
        "old@example.com": "pending",
        "left@example.com": "unsubscribed",
        "gone@example.com": "unsubscribed",  # the file says they left: kept so, never mailed
    }
    assert _confirmations(topics) == {"new@example.com": 1}
