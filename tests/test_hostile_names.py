"""A list full of the world's names, through the real path on both databases: SendGrid (the
sandbox enforcing SendGrid's documented rules, over HTTP, with the real client), SMTP (a real
server on loopback) and the outbox. Every matching reader gets the brief exactly once, no
name injects a header, and categories are ASCII even for a brief titled in Japanese."""

from __future__ import annotations

import email
import json
from email.policy import default

import pytest
from sqlmodel import select

from newsletter.briefs import add_brief, parse_brief
from newsletter.db import session_scope
from newsletter.models import Delivery
from newsletter.providers.base import Batch, Recipient, make_transport
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.providers.sendgrid.body import encode_body
from newsletter.render import token
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import test_settings
from tests.test_transports import Mailbox, _BoundController

# The subscriber table holds names of up to 200 characters; the 300-character one is cut to
# that by the test (the database would refuse it on PostgreSQL) and sent whole below, where
# no database stands between it and the provider.
LONG = "Ωmega-" * 50
NAMES = [
    "O'Brien, Pat",
    "Kim; Lee",
    "Line\nbreak",
    "Carriage\r\nBcc: evil@example.com",
    "Tab\there",
    'Quote "The Boss" Smith',
    "<b>Bold</b> & <script>alert(1)</script>",
    LONG[:200],
    "🦊 Fox 🚀",
    "高市早苗",
    "이재명, 대통령",
    "Back\\slash <angle@example.com>",
    "Separator\u2028line",
    "",
]
TITLE = "日本の米価格、上昇"
BRIEF = f"---\ntitle: {TITLE}\ndate: 2026-06-10\n---\n\nRice prices rose again.\n"


@pytest.fixture
def hostile_list(engine):
    """One reader per name, all on `japan`, one more on `food` only; the brief's slug."""
    with session_scope(engine) as session:
        add_topic("japan", "Japan", session=session)
        add_topic("food", "Food", session=session)
        for index, name in enumerate(NAMES):
            add_subscriber(
                f"reader{index}@example.com", session=session, name=name, topics=["japan"]
            )
        add_subscriber("other@example.com", session=session, name="Other, Reader", topics=["food"])
        return add_brief(parse_brief(BRIEF), session=session, topics=["japan"]).brief.slug


EXPECTED = sorted(f"reader{i}@example.com" for i in range(len(NAMES)))


def _send(engine, settings, slug):
    with session_scope(engine) as session:
        return create_send(slug, session=session, settings=settings).id


def _statuses(engine, send_id):
    with session_scope(engine) as session:
        return {d.status for d in session.exec(select(Delivery).where(Delivery.send_id == send_id))}


def _no_line_breaks(text: str) -> bool:
    return not any(c in text for c in "\r\n\u2028\x00")


def test_every_reader_gets_it_once_through_sendgrid_with_safe_headers(
    engine, settings, sandbox, hostile_list
):
    assert hostile_list.isascii()
    send_id = _send(engine, settings, hostile_list)
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    messages = sandbox.messages()
    assert sorted(m.to[0] for m in messages) == EXPECTED  # everyone, once, and only them
    assert _statuses(engine, send_id) == {"sent"}
    by_address = {m.to[0]: m for m in messages}
    for index in range(len(NAMES)):
        message = by_address[f"reader{index}@example.com"]
        assert set(message.headers) == {"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"}
        assert all(_no_line_breaks(v) for v in message.headers.values())
        assert all(c.isascii() for c in message.categories)
        assert message.subject == TITLE
        # A brief shows the reader's address, not their name: only what it shows is sent.
        assert message.substitutions[token("email", "text")] == f"reader{index}@example.com"
        assert token("name", "text") not in message.substitutions


def test_a_300_character_name_and_every_other_reaches_the_sandbox_whole(settings, sandbox):
    transport = SendGridTransport.from_settings(settings)
    recipients = [
        Recipient(i, f"r{i}@example.com", name, {token("name", "text"): name}, {})
        for i, name in enumerate([*NAMES, LONG])
    ]
    result = transport.send_batch(
        Batch(1, "Subject\r\nBcc: x@example.com", "<p>h</p>", token("name", "text"), recipients)
    )
    assert result.outcome.value == "sent" and not result.exceptions
    assert sorted(m.text for m in sandbox.messages()) == sorted([*NAMES, LONG])
    assert {m.subject for m in sandbox.messages()} == {"Subject Bcc: x@example.com"}


def test_text_orjson_refuses_still_leaves_as_json():
    """Half a surrogate pair cannot come from either database, but if it ever reached the
    transport, the request would still be made (json's escapes) rather than raise."""
    half = "Half \ud800 pair"
    body = {"personalizations": [{"to": [{"email": "a@example.com", "name": half}]}]}
    assert json.loads(encode_body(body)) == body
    assert json.loads(encode_body({"name": NAMES[9]})) == {"name": NAMES[9]}
    encoded = encode_body({"name": NAMES[9]})
    assert NAMES[9].encode() in encoded  # UTF-8 as it is, not \\u-escaped
    assert encoded.encode("utf-8") is encoded  # what the client sends: no copy made


def _check_mime(messages, addresses):
    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == addresses
    for message in messages:
        assert message["Bcc"] is None and message["Cc"] is None
        display = message["To"].addresses[0].display_name
        assert not any(c in display for c in ',;\r\n"<>\\')
        assert message["Date"].endswith("+0000")
        assert message["List-Id"]


def test_every_reader_gets_it_once_through_smtp(engine, settings, hostile_list):
    handler = Mailbox()
    controller = _BoundController(handler)
    controller.start()
    try:
        changes = {"NEWSLETTER_TRANSPORT": "smtp", "SMTP_PORT": controller.port}
        settings = test_settings(**{**settings.model_dump(), **changes})
        send_id = _send(engine, settings, hostile_list)
        Dispatcher(engine, settings, make_transport(settings)).work_due()
    finally:
        controller.stop()
    assert _statuses(engine, send_id) == {"sent"}
    _check_mime(handler.messages, EXPECTED)


def test_every_reader_gets_it_once_through_the_outbox(engine, settings, hostile_list, tmp_path):
    outbox = tmp_path / "outbox"
    changes = {"NEWSLETTER_TRANSPORT": "outbox", "NEWSLETTER_OUTBOX_DIR": outbox}
    settings = test_settings(**{**settings.model_dump(), **changes})
    send_id = _send(engine, settings, hostile_list)
    Dispatcher(engine, settings, make_transport(settings)).work_due()
    assert _statuses(engine, send_id) == {"sent"}
    messages = [
        email.message_from_bytes(f.read_bytes(), policy=default) for f in outbox.rglob("*.eml")
    ]
    _check_mime(messages, EXPECTED)
