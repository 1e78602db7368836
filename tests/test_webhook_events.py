"""A signed Event Webhook batch with malformed events in it, posted through real HTTP: each
malformed event is recorded as rejected, with why and its payload; the good events in the
same batch apply; the webhook never answers 500 (SendGrid would retry the whole batch)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.devtools.sandbox import event_for
from newsletter.models import ProviderEventRecord
from subscribers.models import Subscriber
from subscribers.models import SubscriberStatus as S
from subscribers.roster import forget
from subscribers.status import Actor, change_status
from tests.test_web import _dispatch_with_drops, _ledger, _post


def test_malformed_events_are_recorded_as_rejected_and_the_rest_of_the_batch_applies(
    web, engine, sandbox
):
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=3)
    good = [event_for(m, "delivered") for m in sandbox.messages()]
    malformed = [
        {**good[0], "sg_event_id": "bad-time", "timestamp": "yesterday"},
        {**good[0], "sg_event_id": "huge-id", "delivery_id": "9" * 30},
        {**good[0], "sg_event_id": "long-mail", "email": "x" * 400 + "@example.com"},
        {"sg_event_id": "no-name", "timestamp": 1},
        "not an object",
        {**good[0], "sg_event_id": "x" * 300},
    ]
    status, body, _ = _post(sandbox, url, [malformed[0], *good, *malformed[1:]])
    assert (status, body) == (200, "applied 3, duplicates 0, rejected 6")
    assert set(_ledger(engine, send_id)) == {"sent"}
    with session_scope(engine) as session:
        rejected = session.exec(
            select(ProviderEventRecord).where(ProviderEventRecord.kind == "rejected")
        ).all()
    assert len(rejected) == 6
    assert any("timestamp 'yesterday' is not a time" in r.detail for r in rejected)
    assert any(json.loads(r.raw) == {"event": "not an object"} for r in rejected)
    # SendGrid redelivers the same batch: nothing is applied or recorded twice.
    status, body, _ = _post(sandbox, url, [malformed[0], *good, *malformed[1:]])
    assert (status, body) == (200, "applied 0, duplicates 9")


def test_a_batch_that_is_not_a_list_of_events_is_refused_without_a_500(web, sandbox):
    url, _ = web
    status, body, _ = _post(sandbox, url, {"event": "delivered"})
    assert status == 403 and "not a JSON array" in body


def test_clicks_keep_their_link_and_send_and_machine_opens_are_marked(web, engine, sandbox):
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=2)
    first, second = sandbox.messages()
    events = [
        event_for(first, "click", url="https://example.com/a?b=1"),
        event_for(first, "open", sg_machine_open=True),
        event_for(second, "open", sg_machine_open=False),
    ]
    status, body, _ = _post(sandbox, url, events)
    assert (status, body) == (200, "applied 3, duplicates 0")
    with session_scope(engine) as session:
        rows = session.exec(select(ProviderEventRecord).order_by(ProviderEventRecord.id)).all()
    assert [(r.kind, r.send_id, r.url, r.machine) for r in rows] == [
        ("clicked", send_id, "https://example.com/a?b=1", False),
        ("opened", send_id, "", True),
        ("opened", send_id, "", False),
    ]


# --- a batch is applied set-based: what several events in one batch do ----------------------


def _people(engine):
    with session_scope(engine) as session:
        return {s.email: s for s in session.exec(select(Subscriber))}


def test_a_bounce_after_a_delivery_in_the_same_batch_fails_it_whichever_comes_first(
    web, engine, sandbox
):
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=2)
    first, second = sandbox.messages()
    bounce = {"type": "bounce", "reason": "550 no such user"}
    events = [
        event_for(first, "delivered"),
        event_for(first, "bounce", **bounce),
        event_for(second, "bounce", **bounce),
        event_for(second, "delivered"),
    ]
    assert _post(sandbox, url, events)[:2] == (200, "applied 4, duplicates 0")
    assert _ledger(engine, send_id) == ["failed", "failed"]


def test_an_event_twice_in_one_batch_is_applied_once(web, engine, sandbox):
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=1)
    [message] = sandbox.messages()
    bounce = event_for(message, "bounce", type="blocked", reason="451 later")
    renamed = {**bounce, "sg_event_id": bounce["sg_event_id"] + "x"}
    assert _post(sandbox, url, [bounce, bounce, renamed])[1] == "applied 1, duplicates 2"
    assert _people(engine)["reader0@example.com"].soft_bounces == 1


def test_soft_bounces_in_one_batch_count_to_the_limit_and_a_delivery_resets_them(
    web, engine, sandbox
):
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=2)
    first, second = sandbox.messages()

    def soft(message, second_offset):
        event = event_for(message, "bounce", type="blocked", reason="451 later")
        event["timestamp"] += second_offset
        return event

    events = [soft(first, 0), soft(first, 1), soft(first, 2)]
    events += [soft(second, 0), soft(second, 1), event_for(second, "delivered"), soft(second, 3)]
    assert _post(sandbox, url, events)[0] == 200
    people = _people(engine)
    assert (people["reader0@example.com"].status, people["reader0@example.com"].soft_bounces) == (
        "bounced",
        3,
    )
    assert people["reader0@example.com"].status_changed_by == "sendgrid:bounce"
    assert (people["reader1@example.com"].status, people["reader1@example.com"].soft_bounces) == (
        "active",
        1,
    )


def test_a_complaint_outranks_an_unsubscribe_in_the_same_batch_in_either_order(
    web, engine, sandbox
):
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=2)
    first, second = sandbox.messages()
    events = [
        event_for(first, "unsubscribe"),
        event_for(first, "spamreport"),
        event_for(second, "spamreport"),
        event_for(second, "unsubscribe"),
    ]
    assert _post(sandbox, url, events)[0] == 200
    people = _people(engine)
    assert {people[m.to[0]].status for m in (first, second)} == {"complained"}


def _story(engine, email: str, *steps: tuple[str, Actor, str]) -> datetime:
    """Move a reader through `steps` (status, actor, by) as the code would; returns when
    the last happened."""
    with session_scope(engine) as session:
        person = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        for status, actor, by in steps:
            change_status(person, S(status), actor=actor, by=by, session=session)
        return person.status_changed_at


LEFT = ("unsubscribed", Actor.READER, "subscriber")
ASKED = ("pending", Actor.READER, "subscriber")
CONFIRMED = ("active", Actor.READER, "subscriber")


def test_a_late_unsubscribe_from_before_a_readers_return_leaves_them_subscribed(
    web, engine, sandbox
):
    """SendGrid posts late: an unsubscribe clicked before the reader came back (confirmed
    again) once unsubscribed them again, and their latest choice was lost."""
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=2)
    back, later = sandbox.messages()
    returned = _story(engine, back.to[0], LEFT, ASKED, CONFIRMED)
    clicked = int(returned.timestamp()) - 600
    events = [
        event_for(back, "unsubscribe", timestamp=clicked),
        event_for(later, "unsubscribe", timestamp=int(returned.timestamp()) + 1),
    ]
    assert _post(sandbox, url, events)[:2] == (200, "applied 2, duplicates 0")
    people = _people(engine)
    assert (people[back.to[0]].status, people[later.to[0]].status) == ("active", "unsubscribed")


def test_a_late_unsubscribe_from_before_a_readers_return_is_answered_whatever_came_after(
    web, engine, sandbox
):
    """Having come back, the reader paused: the late unsubscribe was weighed against that
    pause, not against their return, and they were unsubscribed after all."""
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=1)
    [message] = sandbox.messages()
    returned = _story(engine, message.to[0], LEFT, ASKED, CONFIRMED)
    _story(engine, message.to[0], ("paused", Actor.READER, "subscriber"))
    events = [event_for(message, "unsubscribe", timestamp=int(returned.timestamp()) - 600)]
    assert _post(sandbox, url, events)[:2] == (200, "applied 1, duplicates 0")
    assert _people(engine)[message.to[0]].status == "paused"


LEFT_BY_STAFF = ("unsubscribed", Actor.STAFF, "ed@example.com")


@pytest.mark.parametrize(
    "restored",
    [
        [("paused", Actor.IMPORT, "import:a.csv"), ("active", Actor.IMPORT, "import:b.csv")],
        [LEFT_BY_STAFF, ("pending", Actor.STAFF, "ed@example.com")],  # resubscribed by staff
        [LEFT_BY_STAFF, ASKED],  # a sign-up form: anyone may type an address into it
    ],
    ids=["import", "staff", "sign-up"],
)
def test_a_late_unsubscribe_still_applies_when_the_reader_did_not_come_back_themselves(
    web, engine, sandbox, restored
):
    """Only the reader's own return answers an unsubscribe they clicked: a list imported
    again, staff, or someone's sign-up since once left them subscribed against their word."""
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=1)
    [message] = sandbox.messages()
    changed = _story(engine, message.to[0], *restored)
    events = [event_for(message, "unsubscribe", timestamp=int(changed.timestamp()) - 600)]
    assert _post(sandbox, url, events)[:2] == (200, "applied 1, duplicates 0")
    assert _people(engine)[message.to[0]].status == "unsubscribed"


def test_an_event_naming_our_delivery_but_another_address_marks_nobody(web, engine, sandbox):
    """Another database of ours has the same delivery ids (a restored backup, a second
    install posting to this webhook): its readers' bounces and complaints are not ours."""
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=1)
    [message] = sandbox.messages()
    elsewhere = {"email": "someone.else@example.org"}
    events = [
        event_for(message, "bounce", type="bounce", reason="550 no such user", **elsewhere),
        event_for(message, "spamreport", **elsewhere),
    ]
    assert _post(sandbox, url, events)[:2] == (200, "applied 2, duplicates 0")
    assert _people(engine)["reader0@example.com"].status == "active"
    assert _ledger(engine, send_id) == ["unknown"]  # not settled by what is not about it
    with session_scope(engine) as session:
        records = list(session.exec(select(ProviderEventRecord)))
    assert [(r.email, r.delivery_id) for r in records] == [(elsewhere["email"], None)] * 2


def test_a_late_event_about_a_forgotten_readers_delivery_still_settles_it(web, engine, sandbox):
    """Forgetting erased their address, so the event's cannot match it: the delivery is
    ours all the same, and its row leaves `unknown`."""
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=1)
    [message] = sandbox.messages()
    with session_scope(engine) as session:
        forget("reader0@example.com", session=session)
    assert _post(sandbox, url, [event_for(message, "delivered")])[:2] == (
        200,
        "applied 1, duplicates 0",
    )
    assert _ledger(engine, send_id) == ["sent"]


def test_an_event_the_database_cannot_store_is_rejected_and_the_rest_applies(web, engine, sandbox):
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=2)
    first, second = sandbox.messages()
    events = [
        event_for(first, "dropped", reason="bad\x00byte"),
        event_for(second, "delivered"),
    ]
    assert _post(sandbox, url, events)[1] == "applied 1, duplicates 0, rejected 1"
    assert sorted(_ledger(engine, send_id)) == ["sent", "unknown"]
    with session_scope(engine) as session:
        [rejected] = session.exec(
            select(ProviderEventRecord).where(ProviderEventRecord.kind == "rejected")
        ).all()
    assert rejected.detail.startswith("could not be applied")


def test_an_event_with_half_a_surrogate_pair_is_rejected_alone(web, engine, sandbox):
    """JSON can spell half of a surrogate pair, which no UTF-8 text holds: that one event
    is refused, kept escaped, and the rest apply (the database would otherwise refuse the
    whole batch, and SendGrid post it again for ever). A whole pair (an emoji) is text."""
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=2)
    first, second = sandbox.messages()
    events = [
        event_for(first, "click", url="https://example.com/\ud800"),
        event_for(first, "delivered"),
        event_for(second, "click", url="https://example.com/\U0001f600"),
    ]
    assert _post(sandbox, url, events)[1] == "applied 2, duplicates 0, rejected 1"
    assert set(_ledger(engine, send_id)) == {"sent", "unknown"}
    with session_scope(engine) as session:
        [rejected] = session.exec(
            select(ProviderEventRecord).where(ProviderEventRecord.kind == "rejected")
        ).all()
    assert "surrogate" in rejected.detail and "\\ud800" in rejected.raw


def test_an_event_dated_in_the_future_is_taken_as_happening_when_it_arrived(web, engine, sandbox):
    """The sandbox's engagement once dated opens up to 36 hours ahead: a reader's "last
    open" stood a day in the future, and the report's hours with it."""
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=1)
    [message] = sandbox.messages()
    ahead = int(time.time()) + 36 * 3600
    opened = event_for(message, "open", sg_machine_open=False, timestamp=ahead)
    again = {**opened, "sg_event_id": opened["sg_event_id"] + "x"}  # redelivered, renamed
    before = datetime.now(UTC)
    assert _post(sandbox, url, [opened])[1] == "applied 1, duplicates 0"
    assert _post(sandbox, url, [again])[1] == "applied 0, duplicates 1"
    with session_scope(engine) as session:
        [row] = session.exec(select(ProviderEventRecord)).all()
    occurred = row.occurred_at.replace(tzinfo=row.occurred_at.tzinfo or UTC)
    assert before - timedelta(seconds=5) <= occurred <= datetime.now(UTC)
    assert json.loads(row.raw)["timestamp"] == ahead  # as it came


def test_a_payload_holding_what_fast_json_refuses_or_cannot_spell_is_applied_and_kept(
    web, engine, sandbox
):
    """The batch's records go to the database as one document written by orjson, which
    refuses an integer past 64 bits (Python's json reads any size). Without the json
    module to fall back on, such a payload fails its whole post with a 503, and SendGrid
    posts it again for ever."""
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=2)
    first, second = sandbox.messages()
    huge = 2**70
    events = [
        event_for(first, "delivered", asm_group_id=huge),
        event_for(second, "delivered", score=float("nan")),  # json.dumps writes NaN
    ]
    assert _post(sandbox, url, events)[:2] == (200, "applied 2, duplicates 0")
    with session_scope(engine) as session:
        kept = [json.loads(row.raw) for row in session.exec(select(ProviderEventRecord)).all()]
    assert any(raw.get("asm_group_id") == huge for raw in kept)  # as it came
    assert any("score" in raw and raw["score"] is None for raw in kept)  # JSON has no NaN
