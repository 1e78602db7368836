"""A reader's status changes only as the one table allows (subscribers/status.py): every
status meets every actor here, through the surface that actor uses — the preferences page
and the unsubscribe page over HTTP, RFC 8058's one-click POST, the staff command line, a CSV
import and SendGrid's signed Event Webhook. Forgotten is final; bounced and complained
never change from a public page and are never mailed, not even a confirmation."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from newsletter.cli import app as cli_app
from newsletter.db import session_scope
from newsletter.models import Delivery, MailKind, TransactionalMail
from subscribers.importer import import_subscribers
from subscribers.models import (
    Subscriber,
    SubscriberStatus,
    SubscriberStatusChange,
    SubscriberTopic,
)
from subscribers.reader import sign_up
from subscribers.roster import add_subscriber, forget, unsubscribe
from subscribers.status import TRANSITIONS, Actor, may_change
from subscribers.topics import add_topic
from tests.web_support import call, form_csrf, subscribe, token

STATUSES = [s.value for s in SubscriberStatus]
PUBLIC = (Actor.READER, Actor.ONE_CLICK)


def _readers(engine) -> dict[str, int]:
    """One reader in every status, on topic `energy`; status → subscriber id. Made as the
    table's own actors would make them, the forgotten one by `forget`."""
    ids = {}
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        add_topic("food", "Food", session=session)
        for status in STATUSES:
            person = add_subscriber(
                f"{status}@example.com",
                session=session,
                name=status.title(),
                topics=["energy"],
                status=SubscriberStatus.ACTIVE if status == "forgotten" else status,
            )
            ids[status] = person.id
        forget("forgotten@example.com", session=session)
    return ids


def _status(engine, subscriber_id: int) -> str:
    with session_scope(engine) as session:
        return session.get_one(Subscriber, subscriber_id).status


def _topic_count(engine, subscriber_id: int) -> int:
    with session_scope(engine) as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(SubscriberTopic)
            .where(SubscriberTopic.subscriber_id == subscriber_id)
        )


def _confirmations(engine, subscriber_id: int) -> int:
    with session_scope(engine) as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(TransactionalMail)
            .where(
                TransactionalMail.subscriber_id == subscriber_id,
                TransactionalMail.kind == MailKind.CONFIRMATION,
            )
        )


# --- the table itself --------------------------------------------------------------------


def test_forgotten_is_final_for_every_actor():
    for actor in Actor:
        for target in set(SubscriberStatus) - {SubscriberStatus.FORGOTTEN}:
            assert not may_change(actor, SubscriberStatus.FORGOTTEN, target)


@pytest.mark.parametrize("stopped", [SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED])
def test_no_public_page_and_no_import_moves_a_bounced_or_complained_reader(stopped):
    for actor in (*PUBLIC, Actor.IMPORT):
        assert TRANSITIONS[actor].get(stopped, frozenset()) == frozenset()


def test_an_unsubscribed_reader_comes_back_only_as_pending():
    for actor in Actor:
        targets = TRANSITIONS[actor].get(SubscriberStatus.UNSUBSCRIBED, frozenset())
        assert SubscriberStatus.ACTIVE not in targets and SubscriberStatus.PAUSED not in targets


def test_the_subscribe_form_bringing_back_an_unsubscribed_address_is_recorded_as_the_forms(
    engine,
):
    """Anyone may type an address: the history said the reader asked themselves."""
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        person = add_subscriber("ann@example.com", session=session, topics=["energy"])
        unsubscribe(person.email, session=session)
    with session_scope(engine) as session:
        outcome = sign_up(
            "ann@example.com",
            session=session,
            name="",
            topics=["energy"],
            cadence="immediate",
            timezone="UTC",
            ip="203.0.113.9",
        )
        assert outcome.needs_confirmation
        last = session.scalars(
            sa.select(SubscriberStatusChange).order_by(SubscriberStatusChange.id.desc())
        ).first()
    assert (last.old_status, last.new_status, last.by) == ("unsubscribed", "pending", "form")


# --- the reader's pages ------------------------------------------------------------------


def _preferences_post(url, settings, subscriber_id, **fields):
    link = f"{url}/preferences/{token(settings, subscriber_id)}"
    _, page, _ = call(link)
    csrf = form_csrf(page) if 'name="csrf"' in page else ""
    data = [("csrf", csrf), ("cadence", "weekly"), ("timezone", "Asia/Tokyo")]
    data += [(name, value) for name, value in fields.items()]
    return call(link, data=data)


# What the preferences page does with "save, and pause" for each status: status after,
# and the HTTP status of the answer.
PAUSE = {
    "pending": ("pending", 200),
    "active": ("paused", 200),
    "paused": ("paused", 200),
    "unsubscribed": ("unsubscribed", 409),
    "bounced": ("bounced", 409),
    "complained": ("complained", 409),
    "forgotten": ("forgotten", 400),
}


def test_saving_preferences_with_a_pause_for_every_status(web, engine):
    url, settings = web
    readers = _readers(engine)
    for status, subscriber_id in readers.items():
        code, page, _ = _preferences_post(
            url, settings, subscriber_id, action="save", topics="food", paused="yes"
        )
        assert (_status(engine, subscriber_id), code) == PAUSE[status], status
        assert "Traceback" not in page
    # Only the readers who may change anything had their topics changed.
    assert _topic_count(engine, readers["forgotten"]) == 0
    assert _topic_count(engine, readers["complained"]) == 1


UNSUBSCRIBE = {
    "pending": ("unsubscribed", 200),
    "active": ("unsubscribed", 200),
    "paused": ("unsubscribed", 200),
    "unsubscribed": ("unsubscribed", 200),
    "bounced": ("bounced", 409),
    "complained": ("complained", 409),
    "forgotten": ("forgotten", 400),
}


def test_unsubscribe_from_everything_on_the_preferences_page_for_every_status(web, engine):
    url, settings = web
    for status, subscriber_id in _readers(engine).items():
        code, _, _ = _preferences_post(url, settings, subscriber_id, action="unsubscribe")
        assert (_status(engine, subscriber_id), code) == UNSUBSCRIBE[status], status


def test_the_unsubscribe_page_button_for_every_status(web, engine):
    url, settings = web
    for status, subscriber_id in _readers(engine).items():
        link = f"{url}/unsubscribe/{token(settings, subscriber_id)}"
        _, page, _ = call(link)
        csrf = form_csrf(page) if 'name="csrf"' in page else ""
        code, _, _ = call(link, data={"csrf": csrf})
        assert (_status(engine, subscriber_id), code) == UNSUBSCRIBE[status], status


RESUBSCRIBE = {
    "pending": ("pending", 200, 1),
    "active": ("active", 409, 0),
    "paused": ("paused", 409, 0),
    "unsubscribed": ("pending", 200, 1),
    "bounced": ("bounced", 409, 0),
    "complained": ("complained", 409, 0),
    "forgotten": ("forgotten", 400, 0),
}


def test_subscribing_again_from_the_preferences_page_for_every_status(web, engine):
    url, settings = web
    for status, subscriber_id in _readers(engine).items():
        code, _, _ = _preferences_post(
            url, settings, subscriber_id, action="resubscribe", topics="food"
        )
        after = (_status(engine, subscriber_id), code, _confirmations(engine, subscriber_id))
        assert after == RESUBSCRIBE[status], status


ONE_CLICK = {
    "pending": ("unsubscribed", 200),
    "active": ("unsubscribed", 200),
    "paused": ("unsubscribed", 200),
    "unsubscribed": ("unsubscribed", 200),
    "bounced": ("bounced", 200),
    "complained": ("complained", 200),
    "forgotten": ("forgotten", 400),
}


def test_one_click_unsubscribe_for_every_status(web, engine):
    url, settings = web
    for status, subscriber_id in _readers(engine).items():
        code, body, _ = call(
            f"{url}/unsubscribe/{token(settings, subscriber_id)}",
            data={"List-Unsubscribe": "One-Click"},
        )
        assert (_status(engine, subscriber_id), code) == ONE_CLICK[status], status
        if status in ("pending", "active", "paused", "unsubscribed"):
            assert body == "Unsubscribed."


def test_a_sign_up_never_mails_a_bounced_complained_or_forgotten_address(web, engine, sandbox):
    from tests.workers_support import deliver_mail

    url, settings = web
    _readers(engine)
    for status in ("bounced", "complained", "unsubscribed", "pending"):
        assert subscribe(url, email=f"{status}@example.com", topics="energy")[0] == 200
    deliver_mail(engine, settings)
    assert sorted(m.to[0] for m in sandbox.messages()) == [
        "pending@example.com",
        "unsubscribed@example.com",
    ]


# --- staff, on the command line ----------------------------------------------------------


@pytest.fixture
def staff(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli_app, list(args), env={"COLUMNS": "200"})


STAFF_UNSUBSCRIBE = {
    "pending": ("unsubscribed", 0),
    "active": ("unsubscribed", 0),
    "paused": ("unsubscribed", 0),
    "unsubscribed": ("unsubscribed", 0),
    "bounced": ("bounced", 1),
    "complained": ("complained", 1),
}


def test_staff_unsubscribe_for_every_status(engine, staff):
    readers = _readers(engine)
    for status, subscriber_id in readers.items():
        if status == "forgotten":
            continue
        result = staff("subscribers", "unsubscribe", f"{status}@example.com")
        assert (_status(engine, subscriber_id), result.exit_code) == STAFF_UNSUBSCRIBE[status]
        assert "Traceback" not in result.output
    result = staff(
        "subscribers", "unsubscribe", f"forgotten-{readers['forgotten']}@forgotten.invalid"
    )
    assert result.exit_code == 1 and _status(engine, readers["forgotten"]) == "forgotten"


def test_staff_can_forget_a_reader_in_any_status(engine, staff):
    for status, subscriber_id in _readers(engine).items():
        if status != "forgotten":
            assert staff("subscribers", "forget", f"{status}@example.com").exit_code == 0
            assert _status(engine, subscriber_id) == "forgotten", status


# --- an import ---------------------------------------------------------------------------


@pytest.mark.parametrize("row_status", ["", "active"])
def test_an_import_changes_only_readers_still_on_the_list(engine, tmp_path, row_status):
    readers = _readers(engine)
    sheet = tmp_path / "list.csv"
    rows = [f"{status}@example.com,{status},food,,,{row_status}" for status in STATUSES]
    sheet.write_text("email,name,topics,cadence,timezone,status\n" + "\n".join(rows) + "\n")
    with session_scope(engine) as session:
        report = import_subscribers(sheet, session=session)
    after = {status: _status(engine, readers[status]) for status in STATUSES}
    expected_pending = "active" if row_status else "pending"
    expected_paused = "active" if row_status else "paused"
    assert after == {
        "pending": expected_pending,
        "active": "active",
        "paused": expected_paused,
        "unsubscribed": "unsubscribed",
        "bounced": "bounced",
        "complained": "complained",
        "forgotten": "forgotten",
    }
    skipped = {note.email for note in report.skipped}
    assert {f"{s}@example.com" for s in ("unsubscribed", "bounced", "complained")} <= skipped
    for status in ("bounced", "complained", "unsubscribed"):
        assert _topic_count(engine, readers[status]) == 1  # their topics untouched too


# --- provider events ---------------------------------------------------------------------

EVENTS = {
    # SendGrid event → status after, for each status before.
    "spamreport": {
        "pending": "complained",
        "active": "complained",
        "paused": "complained",
        "unsubscribed": "complained",
        "bounced": "complained",
        "complained": "complained",
        "forgotten": "forgotten",
    },
    "bounce": {
        "pending": "bounced",
        "active": "bounced",
        "paused": "bounced",
        "unsubscribed": "unsubscribed",
        "bounced": "bounced",
        "complained": "complained",
        "forgotten": "forgotten",
    },
    "unsubscribe": {
        "pending": "unsubscribed",
        "active": "unsubscribed",
        "paused": "unsubscribed",
        "unsubscribed": "unsubscribed",
        "bounced": "bounced",
        "complained": "complained",
        "forgotten": "forgotten",
    },
}


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_provider_events_for_every_status(web, engine, sandbox, event):
    url, _ = web
    readers = _readers(engine)
    with session_scope(engine) as session:
        deliveries = {}
        for status, subscriber_id in readers.items():
            row = Delivery(send_id=1, subscriber_id=subscriber_id, status="sent")
            session.add(row)
            session.flush()
            deliveries[status] = row.id
    items = [
        {
            "email": f"{status}@example.com",
            "timestamp": int(time.time()),
            "event": event,
            "type": "bounce",
            "sg_event_id": uuid.uuid4().hex,
            "delivery_id": str(deliveries[status]),
        }
        for status in STATUSES
    ]
    body = json.dumps(items).encode()
    code, _, _ = call(f"{url}/webhooks/sendgrid", raw=body, headers=sandbox.events.headers(body))
    assert code == 200
    after = {status: _status(engine, readers[status]) for status in STATUSES}
    assert after == EVENTS[event]
