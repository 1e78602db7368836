"""Forgetting a reader empties what the provider told us about them (address, payload with
IP address and browser, the receiving server's words) and keeps what happened and when, so
the send's report stands."""

from __future__ import annotations

import sqlalchemy as sa

from newsletter.db import session_scope
from newsletter.devtools.engagement import click_event, open_event
from newsletter.events import apply_events
from newsletter.models import Delivery, ProviderEventRecord
from newsletter.providers.events import EventType, ProviderEvent
from newsletter.readers.actions import staff_forget
from newsletter.reports import send_report
from subscribers.models import Subscriber, utcnow
from tests.reports_support import LINK_A, post, tell_a_known_story


def _events(engine, subscriber_id: int) -> list[tuple[str, str, str, str]]:
    with session_scope(engine) as session:
        return [
            tuple(row)
            for row in session.execute(
                sa.select(
                    ProviderEventRecord.kind,
                    ProviderEventRecord.email,
                    ProviderEventRecord.raw,
                    ProviderEventRecord.detail,
                )
                .join(Delivery, Delivery.id == ProviderEventRecord.delivery_id)
                .where(Delivery.subscriber_id == subscriber_id)
                .order_by(ProviderEventRecord.id)
            ).all()
        ]


def _forget_the_reader_of(engine, kind: str) -> tuple[int, str]:
    with session_scope(engine) as session:
        person = session.execute(
            sa.select(Subscriber)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .join(ProviderEventRecord, ProviderEventRecord.delivery_id == Delivery.id)
            .where(ProviderEventRecord.kind == kind)
            .limit(1)
        ).scalar_one()
        address = person.email
        staff_forget(person, session=session, actor="staff@example.com")
        return int(person.id or 0), address


def test_forgetting_a_reader_empties_their_events_and_keeps_the_report(web, engine, sandbox):
    url, settings = web
    told = tell_a_known_story(engine, settings, sandbox, url)
    with session_scope(engine) as session:
        before = send_report(told.send_id, session=session).as_dict()
    reader, address = _forget_the_reader_of(engine, "bounced")
    events = _events(engine, reader)
    assert events and all(
        (email, raw, detail) == ("", "{}", "") for _, email, raw, detail in events
    )
    with session_scope(engine) as session:
        everything = " ".join(
            f"{e.email} {e.raw} {e.detail}"
            for e in session.execute(sa.select(ProviderEventRecord)).scalars()
        )
        assert address not in everything
        assert send_report(told.send_id, session=session).as_dict() == before


def test_forgetting_one_reader_leaves_the_others_events_whole(web, engine, sandbox):
    url, settings = web
    tell_a_known_story(engine, settings, sandbox, url)
    forgotten, _ = _forget_the_reader_of(engine, "bounced")
    with session_scope(engine) as session:
        others = session.execute(
            sa.select(ProviderEventRecord.email, ProviderEventRecord.raw)
            .join(Delivery, Delivery.id == ProviderEventRecord.delivery_id)
            .where(Delivery.subscriber_id != forgotten)
        ).all()
    assert others and all(email and raw != "{}" for email, raw in others)


def test_forgetting_a_reader_empties_events_of_no_delivery_that_name_them(web, engine, sandbox):
    url, settings = web
    tell_a_known_story(engine, settings, sandbox, url)
    with session_scope(engine) as session:
        person = session.execute(
            sa.select(Subscriber).where(Subscriber.email == "reader5@example.com")
        ).scalar_one()
        stray = ProviderEvent(
            provider="sendgrid",
            type=EventType.BOUNCED,
            provider_type="bounce",
            event_id="stray-1",
            email="reader5@example.com",
            occurred_at=utcnow(),
            reason="550 5.1.1 <reader5@example.com>: no such user",
            raw={"email": "reader5@example.com", "ip": "203.0.113.9"},
        )
        apply_events([stray], session=session)
        staff_forget(person, session=session, actor="staff@example.com")
    with session_scope(engine) as session:
        left = session.execute(
            sa.select(
                ProviderEventRecord.email, ProviderEventRecord.raw, ProviderEventRecord.detail
            ).where(ProviderEventRecord.event_id == "stray-1")
        ).one()
    assert tuple(left) == ("", "{}", "")


def test_events_arriving_after_a_forget_keep_nothing_of_the_reader(web, engine, sandbox):
    """SendGrid posts opens and clicks for days: after `forget`, they once stored the
    address, the IP address and the browser again, in full."""
    url, settings = web
    told = tell_a_known_story(engine, settings, sandbox, url)
    _, address = _forget_the_reader_of(engine, "delivered")
    message = next(m for m in sandbox.messages() if m.to == [address])
    stray = open_event(message, at=told.started + 7300)  # named by address alone
    del stray["delivery_id"]
    later = [
        open_event(message, at=told.started + 7200),
        click_event(message, LINK_A, at=told.started + 7260),
        stray,
    ]
    assert post(sandbox, url, later) == (200, "applied 3, duplicates 0")
    with session_scope(engine) as session:
        records = session.execute(
            sa.select(
                ProviderEventRecord.email, ProviderEventRecord.raw, ProviderEventRecord.detail
            ).where(ProviderEventRecord.event_id.in_([e["sg_event_id"] for e in later]))
        ).all()
        everything = " ".join(
            f"{e.email} {e.raw} {e.detail}"
            for e in session.execute(sa.select(ProviderEventRecord)).scalars()
        )
    assert [tuple(r) for r in records] == [("", "{}", "")] * 3
    assert address not in everything
