"""A send whose readers did known things, told through the real Event Webhook (signed
batches over HTTP, as SendGrid posts them): the reports' tests, CLI tests and console tests
share it, so each checks its surface against the same exact figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from newsletter.db import session_scope
from newsletter.devtools.engagement import click_event, open_event
from newsletter.devtools.sandbox import event_for
from newsletter.models import Send
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from tests.web_support import call
from tests.workers_support import seed_brief

LINK_A = "https://example.com/analysis?id=1&lang=ja"
LINK_B = "https://example.com/データ/チャート"


@dataclass(frozen=True)
class Told:
    send_id: int
    started: float  # the send's start, in Unix seconds


def post(sandbox, url: str, events: list[dict]) -> tuple[int, str]:
    body = json.dumps(events).encode()
    status, text, _ = call(
        f"{url}/webhooks/sendgrid", raw=body, headers=sandbox.events.headers(body)
    )
    return status, text


def tell_a_known_story(engine, settings, sandbox, web_url: str) -> Told:
    """Six readers of one send:

    0. delivered; opens 3 times (hours 0, 0, 5); clicks LINK_A twice and LINK_B once
    1. delivered; only Apple's proxy opens it (twice): a machine, not a reader
    2. delivered; a machine open and a real one (hour 5); clicks LINK_A once
    3. bounces
    4. delivered; unsubscribes and reports spam
    5. delivered; does nothing

    delivered 5, opened 2, machine_opened 1, clicked 2, bounced 1, unsubscribed 1,
    complained 1; LINK_A 3 clicks by 2 readers, LINK_B 1 by 1; 4 opens by people and 3
    by machines; opens by hour: 2 in hour 0, 2 in hour 5. Sent as two batches, the first
    posted twice (SendGrid redelivers): nothing counts twice.
    """
    slug = seed_brief(engine, 6)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    with session_scope(engine) as session:
        # Sent six hours ago, so the story's events (up to hour 5) have happened by now:
        # the webhook takes an event dated after its arrival as happening on arrival.
        send = session.get_one(Send, send_id)
        assert send.started_at is not None
        send.started_at -= timedelta(hours=6)
        session.add(send)
        started_at = send.started_at
    start = started_at.timestamp() + 60
    readers = sorted(sandbox.messages(), key=lambda m: int(m.custom_args["delivery_id"]))
    assert len(readers) == 6
    hour = 3600
    r0, r1, r2, r3, r4, r5 = readers
    first = [
        *(event_for(r, "delivered", timestamp=int(start)) for r in (r0, r1, r2, r4, r5)),
        event_for(r3, "bounce", timestamp=int(start), reason="550 no such user"),
        open_event(r0, at=start + 10),
        open_event(r0, at=start + 20),
        open_event(r0, at=start + 5 * hour),
        open_event(r1, machine=True, at=start + 1),
        open_event(r1, machine=True, at=start + 2 * hour),
        open_event(r2, machine=True, at=start + 2),
    ]
    second = [
        open_event(r2, at=start + 5 * hour + 30),
        click_event(r0, LINK_A, at=start + 30),
        click_event(r0, LINK_A, at=start + 40),
        click_event(r0, LINK_B, at=start + 50),
        click_event(r2, LINK_A, at=start + 5 * hour + 60),
        event_for(r4, "unsubscribe", timestamp=int(start + 100)),
        event_for(r4, "spamreport", timestamp=int(start + 200)),
    ]
    assert post(sandbox, web_url, first) == (200, f"applied {len(first)}, duplicates 0")
    assert post(sandbox, web_url, second) == (200, f"applied {len(second)}, duplicates 0")
    assert post(sandbox, web_url, first) == (200, f"applied 0, duplicates {len(first)}")
    return Told(send_id, start)
