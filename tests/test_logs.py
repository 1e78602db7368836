"""The log an operator reads: one line per event that matters, naming its send and batch;
one JSON object per line with NEWSLETTER_LOG_FORMAT=json; routine lines kept out."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from newsletter.db import session_scope
from newsletter.devtools.sandbox import Faults, Sandbox
from newsletter.events import apply_events
from newsletter.logs import configure_logging, ids, loggable_path
from newsletter.models import Send
from newsletter.providers.base import Batch, Outcome, Recipient
from newsletter.providers.events import EventType, ProviderEvent
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.controls import cancel_send
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.ledger import begin_handoff, claim_batch, recover_expired_batches
from newsletter.sending.plan import start_due_sends
from newsletter.sending.worker import Worker
from subscribers.models import utcnow
from tests.conftest import test_settings
from tests.workers_support import seed_brief


@pytest.fixture
def root_logging():
    """configure_logging changes the process's root logger; put it back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _records(caplog, logger: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == logger]


def test_json_logs_are_one_object_per_line_with_the_ids_as_fields(root_logging, capsys):
    configure_logging(test_settings(NEWSLETTER_LOG_FORMAT="json"))
    logging.getLogger("newsletter.test").warning(
        'send %s batch %s: a line with «ünïcode», "quotes"\nand a break',
        3,
        17,
        extra=ids(3, 17),
    )
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("newsletter.test").exception("it failed")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == 'send 3 batch 17: a line with «ünïcode», "quotes"\nand a break'
    assert (first["send_id"], first["batch_id"], first["level"]) == (3, 17, "warning")
    assert first["logger"] == "newsletter.test" and first["time"].endswith("+00:00")
    assert second["level"] == "error" and "ValueError: boom" in second["exception"]


def test_text_logs_are_one_readable_line_and_setting_up_twice_does_not_double_them(
    root_logging, capsys
):
    for _ in range(2):
        configure_logging(test_settings())
    logging.getLogger("newsletter.test").info("send %s finished", 4, extra=ids(4))
    logging.getLogger("apscheduler.executors.default").info('Running job "tick"')
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("INFO newsletter.test: send 4 finished")


def test_a_batch_the_provider_refuses_is_one_warning_naming_send_and_batch(
    engine, settings, sandbox, caplog
):
    slug = seed_brief(engine, 3)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    wrong = test_settings(**{**settings.model_dump(), "SENDGRID_API_KEY": "SG.revoked"})
    caplog.set_level(logging.INFO)
    Worker.from_settings(wrong).tick()
    refused = [r for r in _records(caplog, "newsletter.dispatch") if "not taken" in r.message]
    assert len(refused) == 1
    record = refused[0]
    assert record.levelno == logging.WARNING and record.send_id == send_id
    assert record.message == (
        f"send {send_id} batch {record.batch_id} not taken: 3 of 3 recipients refused with "
        "the account: 401: The provided authorization grant is invalid, expired, or revoked"
    )
    started = [r.message for r in _records(caplog, "newsletter.dispatch")]
    assert f"send {send_id} started" in started


def test_a_batch_narrowed_around_one_bad_reader_logs_that_reader_alone(
    engine, settings, sandbox, caplog
):
    """A 400 naming no recipient is narrowed by halves, each half its own request and
    message id: the line once counted the readers sent by the other requests as not taken."""
    slug = seed_brief(engine, 20)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    sandbox.state.set_faults(Faults(refuse_unnamed=["reader13@example.com"]))
    one_batch = test_settings(
        **{**settings.model_dump(), "NEWSLETTER_BATCH_SIZE": 20, "NEWSLETTER_CONCURRENCY": 1}
    )
    caplog.set_level(logging.INFO)
    Worker.from_settings(one_batch).tick()
    [line] = [
        r.message for r in _records(caplog, "newsletter.dispatch") if "not taken" in r.message
    ]
    assert (
        line.startswith(f"send {send_id} batch ")
        and " not taken: 1 of 20 recipients failed: 400: " in line
    )


def _started_send(engine, settings, *, readers: int):
    """A send of `readers`, planned into the ledger now: (its id, now)."""
    slug = seed_brief(engine, readers)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    now = utcnow()
    start_due_sends(engine, now=now)
    return send_id, now


def test_a_recovered_lease_is_logged_per_batch_with_what_became_of_its_rows(
    engine, settings, caplog
):
    send_id, now = _started_send(engine, settings, readers=5)
    lease = timedelta(seconds=30)

    def claim(limit: int):
        return claim_batch(
            engine, send_id=send_id, worker_id="dead", limit=limit, lease=lease, now=now
        )

    never_sent, on_the_wire = claim(2), claim(3)
    assert begin_handoff(engine, on_the_wire, now=now)
    caplog.set_level(logging.INFO)
    recover_expired_batches(engine, now=now + timedelta(minutes=1))
    assert sorted(r.message for r in _records(caplog, "newsletter.ledger")) == [
        f"send {send_id} batch {never_sent.batch_id}: lease expired; 2 deliveries requeued: "
        "its request never began",
        f"send {send_id} batch {on_the_wire.batch_id}: lease expired; 3 deliveries unknown: "
        "its worker stopped mid-request",
    ]
    assert {(r.send_id, r.levelname) for r in _records(caplog, "newsletter.ledger")} == {
        (send_id, "WARNING")
    }
    caplog.clear()
    recover_expired_batches(engine, now=now + timedelta(minutes=2))  # nothing left to say
    assert _records(caplog, "newsletter.ledger") == []


def test_a_recovered_lease_of_a_cancelled_send_says_its_rows_were_cancelled_not_requeued(
    engine, settings, caplog
):
    send_id, now = _started_send(engine, settings, readers=2)
    lease = timedelta(seconds=30)
    dead = claim_batch(engine, send_id=send_id, worker_id="dead", limit=2, lease=lease, now=now)
    with session_scope(engine) as session:
        cancel_send(send_id, session=session, now=now)
    caplog.set_level(logging.INFO)
    recovery = recover_expired_batches(engine, now=now + timedelta(minutes=1))
    assert recovery.released == 0
    assert [r.message for r in _records(caplog, "newsletter.ledger")] == [
        f"send {send_id} batch {dead.batch_id}: lease expired; 2 deliveries cancelled with "
        "their send"
    ]


def _event(kind: EventType, n: int) -> ProviderEvent:
    return ProviderEvent(
        provider="sendgrid",
        type=kind,
        provider_type=kind.value,
        event_id=f"log-test-{kind.value}-{n}",
        email=f"reader{n}@example.com",
        occurred_at=utcnow(),
    )


def _applied(kind: EventType) -> float:
    labels = {"provider": "sendgrid", "type": kind.value}
    return REGISTRY.get_sample_value("newsletter_events_applied_total", labels) or 0.0


def test_events_are_logged_and_counted_once_committed_and_not_when_rolled_back(engine, caplog):
    caplog.set_level(logging.INFO)
    opened = _applied(EventType.OPENED)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        apply_events([_event(EventType.OPENED, 1)], session=session)
        raise RuntimeError("the transaction fails after the events were applied")
    assert _applied(EventType.OPENED) == opened
    assert _records(caplog, "newsletter.events") == []

    with session_scope(engine) as session:
        events = [_event(EventType.OPENED, 1), _event(EventType.CLICKED, 2)]
        apply_events([*events, events[0]], session=session)
    assert _applied(EventType.OPENED) == opened + 1
    assert [r.message for r in _records(caplog, "newsletter.events")] == [
        "provider events applied: 2 (clicked 1, opened 1); duplicates ignored: 1; rejected: 0"
    ]


def test_a_refused_hand_off_before_the_request_says_why_the_batch_was_not_sent(
    engine, settings, caplog
):
    send_id, now = _started_send(engine, settings, readers=2)
    claim = claim_batch(
        engine, send_id=send_id, worker_id="w", limit=5, lease=timedelta(seconds=1), now=now
    )
    recover_expired_batches(engine, now=now + timedelta(seconds=5))  # another took it back
    caplog.set_level(logging.INFO)
    dispatcher = Dispatcher(engine, settings, Worker.from_settings(settings).transport)
    with session_scope(engine) as session:
        send = session.get_one(Send, send_id)
    recorded, answer = dispatcher.hand_off(send, claim, [])
    assert recorded.rows == {} and answer is None  # nothing sent, nothing recorded
    assert [r.message for r in _records(caplog, "newsletter.dispatch")] == [
        f"send {send_id} batch {claim.batch_id} not sent: the send stopped or the lease was "
        "taken back"
    ]


def test_debug_logs_never_carry_the_api_key_or_the_readers_of_a_request(root_logging, capsys):
    """The sendgrid client logs each request's headers (the API key) and payload (every
    reader's address and link tokens) at debug: NEWSLETTER_LOG_LEVEL=debug must not."""
    key = "SG.debug-secret-key"
    configure_logging(test_settings(NEWSLETTER_LOG_LEVEL="debug"))
    with Sandbox(key) as sandbox:
        transport = SendGridTransport(
            api_key=key, host=sandbox.url, timeout=5, from_header="Briefs <b@example.com>"
        )
        reader = Recipient(1, "private.reader@example.com", "Private Reader", {}, {})
        result = transport.send_batch(Batch(7, "Subject", "<p>hello</p>", "hello", [reader]))
        assert result.outcome is Outcome.SENT and len(sandbox.messages()) == 1
    logging.getLogger("newsletter.test").debug("debug lines of our own still show")
    err = capsys.readouterr().err
    assert "debug lines of our own still show" in err
    assert key not in err and "private.reader@example.com" not in err


def test_the_clients_own_debug_lines_name_neither_the_api_key_nor_the_readers(caplog):
    """Were the client's logger let through (another program's logging set up, not ours),
    its HEADERS line masks the key and its PAYLOAD line says how big the request was."""
    key = "SG.debug-secret-key"
    caplog.set_level(logging.DEBUG, logger="python_http_client")
    with Sandbox(key) as sandbox:
        transport = SendGridTransport(
            api_key=key, host=sandbox.url, timeout=5, from_header="Briefs <b@example.com>"
        )
        reader = Recipient(1, "private.reader@example.com", "Private Reader", {}, {})
        result = transport.send_batch(Batch(7, "Subject", "<p>hello</p>", "hello", [reader]))
        assert result.outcome is Outcome.SENT  # the sandbox checked the real key
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("python_http_client")]
    payload = [line for line in lines if line.startswith("PAYLOAD")]
    assert len(payload) == 1 and payload[0].endswith("bytes of JSON>")
    assert any(line.startswith("HEADERS") and "'***'" in line for line in lines)
    assert key not in caplog.text and "private.reader@example.com" not in caplog.text


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/unsubscribe/MTIz.c2VjcmV0", "/unsubscribe/…"),
        ("/preferences/MTIz.c2VjcmV0/", "/preferences/…/"),
        ("//Confirm/MTIz.c2VjcmV0?x=1", "//Confirm/…?x=1"),
        ("/archive/a-brief?t=MTIz.c2VjcmV0&x=1", "/archive/a-brief?t=…&x=1"),
        ("/archive/a-brief?x=1&%74=MTIz.c2VjcmV0", "/archive/a-brief?x=1&%74=…"),
        ("/subscribe", "/subscribe"),
        # What staff typed into the console: a searched address, a reader for a preview.
        ("/admin/subscribers?q=ann%40example.com&topic=food", "/admin/subscribers?q=…&topic=…"),
        ("//ADMIN/briefs/3/preview?reader=ann@example.com", "//ADMIN/briefs/3/preview?reader=…"),
        ("/admin?q=x&flag&=y", "/admin?q=…&…&=…"),
        ("/admin/subscribers?ann@example.com", "/admin/subscribers?…"),
        ("/administrators?q=kept", "/administrators?q=kept"),
    ],
)
def test_a_logged_path_keeps_no_link_token_and_no_console_query(path, kept):
    """What the access log and the web process's error lines write of a request's path."""
    assert loggable_path(path) == kept


def test_a_paths_control_characters_are_written_escaped():
    """A NUL or line break from a request's path went into the log as it came."""
    assert loggable_path("/archive/a\x00b\nc") == "/archive/a\\x00b\\nc"
