"""A signed Event Webhook batch with malformed events in it, posted through real HTTP: each
malformed event is recorded as rejected, with why and its payload; the good events in the
same batch apply; the webhook never answers 500 (SendGrid would retry the whole batch)."""

from __future__ import annotations

import json

from sqlmodel import select

from newsletter.db import session_scope
from newsletter.devtools.sandbox import event_for
from newsletter.models import ProviderEventRecord
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
