"""The SMTP and outbox transports, behind the same interface as SendGrid's.

SMTP is tested against a real SMTP server (aiosmtpd) on loopback, through the dispatcher
and the ledger on both databases.
"""

from __future__ import annotations

import email
import socket
from email.message import Message
from email.policy import default
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlmodel import select

from newsletter.briefs import add_brief, parse_brief_file
from newsletter.db import session_scope
from newsletter.models import Delivery
from newsletter.providers.base import Batch, Outcome, make_transport
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import test_settings

FIXTURES = Path(__file__).parent / "fixtures"


class Mailbox:
    """An aiosmtpd handler: keeps each message, refuses the addresses it is told to."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse: dict[str, str] = {}  # address → SMTP reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted for delivery"


class _BoundController(Controller):
    """aiosmtpd's Controller on a socket bound here first (port 0): no window in which
    another process can take a port found free a moment before."""

    def __init__(self, handler: Mailbox) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._socket.getsockname()[1])

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._socket)


@pytest.fixture
def mailbox():
    handler = Mailbox()
    controller = _BoundController(handler)
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def closed_port():
    """A port bound but never listening: connections to it are refused, and no other
    process can start listening there while the test runs."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.fixture
def brief(engine):
    with session_scope(engine) as session:
        add_topic("shipping", "Shipping", session=session)
        add_subscriber("ann@example.com", session=session, name="Ann", topics=["shipping"])
        add_subscriber("bob@example.com", session=session, name='<b>Bob & "Co"</b>', topics=["all"])
        add_subscriber("cy@example.com", session=session, name="Cy", topics=["shipping"])
        return add_brief(
            parse_brief_file(FIXTURES / "firm-layout.txt"), session=session, topics=["shipping"]
        ).brief.slug


def _run(engine, settings, slug, **changes):
    settings = test_settings(**{**settings.model_dump(), **changes})
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    Dispatcher(engine, settings, make_transport(settings)).work_due()
    with session_scope(engine) as session:
        rows = session.exec(select(Delivery).where(Delivery.send_id == send_id)).all()
    return {row.id: row for row in rows}


def _body(message: Message, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return part.get_content()


def test_smtp_delivers_each_recipient_with_tokens_filled_and_one_click_unsubscribe(
    engine, settings, brief, mailbox
):
    handler, port = mailbox
    ledger = _run(engine, settings, brief, NEWSLETTER_TRANSPORT="smtp", SMTP_PORT=port)
    assert {row.status for row in ledger.values()} == {"sent"}
    assert sorted(m["To"].addresses[0].addr_spec for m in handler.messages) == [
        "ann@example.com",
        "bob@example.com",
        "cy@example.com",
    ]
    for message in handler.messages:
        html, text = _body(message, "html"), _body(message, "plain")
        assert "%%nl:" not in html and "%%nl:" not in text
        unsubscribe = message["List-Unsubscribe"].strip().strip("<>")
        assert unsubscribe.startswith("https://news.example.com/unsubscribe/")
        assert unsubscribe in html and unsubscribe in text
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert int(message["X-Newsletter-Delivery"]) in ledger


def test_a_name_full_of_html_is_escaped_in_the_html_part_and_plain_in_the_text_part():
    from newsletter.fields import recipient_values, token
    from newsletter.providers.base import Recipient
    from newsletter.providers.mime import build_message

    name = '<b>Bob & "Co"</b>'
    values = recipient_values({"name": name, "email": "bob@example.com", "reader_token": "t"})
    batch = Batch(
        1,
        "Subject",
        f"<p>Dear {token('name', 'html')}</p>",
        f"Dear {token('name', 'text')}",
        [Recipient(9, "bob@example.com", name, values, {})],
    )
    message = build_message(batch, batch.recipients[0], from_header="B <b@example.com>")
    assert "<p>Dear &lt;b&gt;Bob &amp; &quot;Co&quot;&lt;/b&gt;</p>" in _body(message, "html")
    assert 'Dear <b>Bob & "Co"</b>' in _body(message, "plain")


def test_smtp_fails_only_the_recipient_the_server_refuses(engine, settings, brief, mailbox):
    handler, port = mailbox
    handler.refuse["bob@example.com"] = "550 5.1.1 No such mailbox"
    ledger = _run(engine, settings, brief, NEWSLETTER_TRANSPORT="smtp", SMTP_PORT=port)
    by_status = sorted((row.status, row.error) for row in ledger.values())
    assert by_status == [("failed", "550 5.1.1 No such mailbox"), ("sent", ""), ("sent", "")]


def test_smtp_puts_a_temporarily_refused_recipient_back_in_the_queue(
    engine, settings, brief, mailbox
):
    handler, port = mailbox
    handler.refuse["bob@example.com"] = "451 4.3.0 Try again later"
    ledger = _run(engine, settings, brief, NEWSLETTER_TRANSPORT="smtp", SMTP_PORT=port)
    assert sorted((row.status, row.error) for row in ledger.values()) == [
        ("queued", "451 4.3.0 Try again later"),
        ("sent", ""),
        ("sent", ""),
    ]
    del handler.refuse["bob@example.com"]
    changes = {"NEWSLETTER_TRANSPORT": "smtp", "SMTP_PORT": port}
    settings = test_settings(**{**settings.model_dump(), **changes})
    Dispatcher(engine, settings, make_transport(settings)).work_due()
    assert len(handler.messages) == 3


def test_a_recipient_deferred_too_often_is_failed_not_tried_forever(
    engine, settings, brief, mailbox
):
    handler, port = mailbox
    handler.refuse["bob@example.com"] = "451 4.3.0 Try again later"
    ledger = _run(
        engine,
        settings,
        brief,
        NEWSLETTER_TRANSPORT="smtp",
        SMTP_PORT=port,
        NEWSLETTER_MAX_ATTEMPTS=2,
    )
    [bob] = [row for row in ledger.values() if row.status != "sent"]
    assert bob.status == "failed"
    assert bob.error == "451 4.3.0 Try again later (gave up after 2 attempts)"


def test_smtp_unreachable_leaves_every_row_queued(engine, settings, brief, closed_port):
    ledger = _run(engine, settings, brief, NEWSLETTER_TRANSPORT="smtp", SMTP_PORT=closed_port)
    assert {row.status for row in ledger.values()} == {"queued"}
    assert all("cannot reach 127.0.0.1" in row.error for row in ledger.values())


def test_the_outbox_writes_one_complete_eml_per_recipient(engine, settings, brief, tmp_path):
    outbox = tmp_path / "outbox"
    ledger = _run(
        engine, settings, brief, NEWSLETTER_TRANSPORT="outbox", NEWSLETTER_OUTBOX_DIR=outbox
    )
    files = sorted(outbox.rglob("*.eml"))
    assert [f.stem for f in files] == sorted(str(i) for i in ledger)
    assert not list(outbox.rglob("*.partial"))
    message = email.message_from_bytes(files[0].read_bytes(), policy=default)
    assert message["Subject"] == "Port congestion returns to the Strait of Malacca"
    assert "%%nl:" not in _body(message, "html")
    assert {row.status for row in ledger.values()} == {"sent"}


def test_a_test_copy_is_marked_in_subject_and_headers(tmp_path):
    from newsletter.providers.base import Recipient
    from newsletter.providers.outbox import OutboxTransport

    transport = OutboxTransport(directory=tmp_path, from_header="Briefs <b@example.com>")
    recipient = Recipient(1, "staff@example.com", "Staff", {}, {})
    result = transport.send_batch(Batch(0, "Title", "<p>x</p>", "x", [recipient], test=True))
    assert result.outcome is Outcome.SENT
    message = email.message_from_bytes((tmp_path / "test" / "1.eml").read_bytes(), policy=default)
    assert message["Subject"] == "[TEST] Title" and message["X-Newsletter-Test"] == "yes"
