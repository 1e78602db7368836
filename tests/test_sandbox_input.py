"""What the sandbox takes in over HTTP, and how it refuses the rest: a request body only as
long as its Content-Length says and no longer than its endpoint's limit (SendGrid's 20 MB
for mail/send, 1 MiB for the sandbox's own endpoints), JSON nested too deep for Python's
parser, and `POST /sandbox/engage`'s fields, each with a type and a range. Every refusal is
one answer in SendGrid's error envelope naming what is at fault, and changes nothing.

All over real HTTP against a running sandbox; the malformed requests are written by hand,
since no well-behaved client sends `Content-Length: abc`."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from newsletter.devtools import sandbox_input
from newsletter.devtools.engagement import MAX_REPEATS, Engagement
from newsletter.devtools.sandbox import Faults, Sandbox
from newsletter.devtools.sandbox_input import (
    CONTROL_MAX_BYTES,
    DRAIN_MAX_BYTES,
    MAIL_SEND_MAX_BYTES,
    MAX_SEED,
)

KEY = "SG.input-test"
MAIL = {
    "from": {"email": "briefs@example.com"},
    "subject": "Hello",
    "content": [{"type": "text/plain", "value": "Hi"}],
    "personalizations": [{"to": [{"email": "a@example.com"}]}],
}
# Faults in force before each test, so "changes nothing" is not "back to the defaults".
IN_FORCE = {"retry_after": 9, "seed": 4, "refuse_unnamed": ["k@example.com"]}
BODY_TAKERS = [("POST", "/v3/mail/send"), ("POST", "/sandbox/engage"), ("PUT", "/sandbox/faults")]
DEEP = b"[" * 100_000  # too deep for Python's json: a RecursionError, not a ValueError
SENDGRID_MAIL_SEND_MAX = 20_000_000  # SendGrid's 20 MB, read the strict way: 10**6 bytes each


def _request(method: str, path: str, headers: list[str], body: bytes = b"") -> bytes:
    """A request as it goes on the wire, `headers` written as given."""
    head = [
        f"{method} {path} HTTP/1.1",
        "Host: sandbox",
        f"Authorization: Bearer {KEY}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _sent(method: str, path: str, body: bytes) -> bytes:
    """A well-formed request: `body` and its Content-Length."""
    return _request(method, path, [f"Content-Length: {len(body)}"], body)


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """(status, headers by lower-case name, JSON body or None) of the answer on `sock`; raises
    (RemoteDisconnected, a timeout) when there is none."""
    answer = http.client.HTTPResponse(sock)
    answer.begin()
    headers = {name.lower(): value for name, value in answer.getheaders()}
    data = answer.read()
    return answer.status, headers, json.loads(data) if data else None


def _exchange(server: Sandbox, request: bytes) -> tuple[int, dict[str, str], Any]:
    """Send `request` byte for byte on a new connection, then read the answer."""
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(request)
        return _answer(sock)


def _address(server: Sandbox) -> tuple[str, int]:
    url = urlsplit(server.url)
    assert url.hostname and url.port
    return url.hostname, url.port


@pytest.fixture
def server():
    """A sandbox with faults in force, one message accepted (so engage has a reader) and its
    events held back an hour (so a request that queued any would show in `waiting`)."""
    with Sandbox(KEY, faults=Faults(**IN_FORCE)) as sandbox:
        sandbox.send_events_to("http://127.0.0.1:9/webhooks/sendgrid", delay=3600)
        assert _exchange(sandbox, _sent("POST", "/v3/mail/send", json.dumps(MAIL).encode()))[0]
        assert len(sandbox.messages()) == 1
        yield sandbox


def _unchanged(server: Sandbox) -> None:
    """No message kept, no event queued, the faults in force as they were."""
    assert len(server.messages()) == 1
    assert server.state.events is not None and server.state.events.waiting == 2
    assert server.state.faults == Faults(**IN_FORCE)


def _refused(server: Sandbox, request: bytes, status: int, field: str | None) -> str:
    """One SendGrid-style answer with `status` naming `field` (its message starting with
    it), and nothing changed. The refusal's message."""
    got, _, answer = _exchange(server, request)
    assert got == status, answer
    [refusal] = answer["errors"]
    assert refusal["field"] == field, refusal
    if field is not None:
        assert refusal["message"].startswith(f"{field} "), refusal["message"]
    _unchanged(server)
    return str(refusal["message"])


def _length_refused(server: Sandbox, request: bytes, status: int, field: str) -> None:
    """Refused naming the header at fault, and the connection closed after the answer:
    what is left of the body cannot be told from a next request."""
    got, headers, answer = _exchange(server, request)
    assert (got, headers.get("connection")) == (status, "close"), answer
    [refusal] = answer["errors"]
    assert refusal["field"] == field and refusal["message"].startswith(f"{field} "), refusal
    _unchanged(server)


# --- Content-Length: read as declared, for every method that takes a body ---------------


@pytest.mark.parametrize(("method", "path"), BODY_TAKERS)
@pytest.mark.parametrize("length", ["abc", "-1", "1.5", "+2", "0x2", "²", ""])
def test_a_content_length_that_is_not_a_whole_number_is_refused_naming_it(
    server, method, path, length
):
    """Content-Length "abc" once got no answer and a traceback; "-1" read until the
    client gave up."""
    request = _request(method, path, [f"Content-Length: {length}"], b"{}")
    _length_refused(server, request, 400, "Content-Length")


@pytest.mark.parametrize(("method", "path"), BODY_TAKERS)
def test_a_body_with_no_content_length_is_refused_naming_it(server, method, path):
    _length_refused(server, _request(method, path, [], b"{}"), 400, "Content-Length")


@pytest.mark.parametrize(("method", "path"), BODY_TAKERS)
def test_two_content_lengths_that_disagree_are_refused_naming_it(server, method, path):
    request = _request(method, path, ["Content-Length: 2", "Content-Length: 3"], b"{} ")
    _length_refused(server, request, 400, "Content-Length")


@pytest.mark.parametrize(("method", "path"), BODY_TAKERS)
def test_a_chunked_body_is_refused_naming_transfer_encoding(server, method, path):
    """The sandbox reads a body by its Content-Length only; a chunked one was left in the
    connection and read as the next request."""
    request = _request(method, path, ["Transfer-Encoding: chunked"], b"2\r\n{}\r\n0\r\n\r\n")
    _length_refused(server, request, 400, "Transfer-Encoding")


@pytest.mark.parametrize(("method", "path"), BODY_TAKERS)
def test_a_body_that_ends_before_its_content_length_is_refused_naming_it(server, method, path):
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(_request(method, path, ["Content-Length: 100"], b'{"seed": 1}'))
        sock.shutdown(socket.SHUT_WR)
        status, headers, answer = _answer(sock)
    assert (status, headers.get("connection")) == (400, "close"), answer
    assert answer["errors"][0]["field"] == "Content-Length"
    _unchanged(server)


def test_a_body_that_stops_arriving_is_answered_408_once_the_connection_is_idle(
    server, monkeypatch
):
    """A client that declares more than it sends held a thread for as long as it kept
    the connection open, and got no answer."""
    monkeypatch.setattr(sandbox_input, "BODY_IDLE_SECONDS", 0.3)
    with socket.create_connection(_address(server), timeout=5) as sock:
        sock.sendall(_request("PUT", "/sandbox/faults", ["Content-Length: 100"], b'{"seed"'))
        status, headers, answer = _answer(sock)
    assert (status, headers.get("connection")) == (408, "close"), answer
    assert answer["errors"][0]["field"] == "Content-Length"
    _unchanged(server)


# --- the size of a body: SendGrid's 20 MB for mail/send, 1 MiB for the sandbox's own -------


def _stream(server: Sandbox, head: bytes, size: int) -> tuple[int, int, int]:
    """Send `head`, then `size` bytes of body while watching for an answer, and go on
    sending after it until the server stops taking any; (status, body bytes sent before
    the answer came, body bytes sent in all). A server that reads the whole body before
    answering lets every byte through before its answer; one that reads on after it, every
    byte in all."""
    sent, before, answer, piece = 0, 0, b"", b" " * 65536
    with socket.create_connection(_address(server), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        deadline = time.monotonic() + 30
        while sent < size and time.monotonic() < deadline:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            before = before if answer else sent
            try:
                sent += sock.send(piece[: size - sent])
            except BlockingIOError:
                time.sleep(0.002)
            except ConnectionError:
                break
        sock.settimeout(10)
        while b"\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    return int(answer.split(b" ", 2)[1]), before, sent


def test_a_mail_send_body_declared_past_20_mb_is_refused_before_it_is_read(server):
    """Once, any body was read whole into memory before anything was checked. Declared
    past DRAIN_MAX_BYTES, none of it is read: the 413 comes while it is being sent, and
    then the connection is closed."""
    size = 2 * DRAIN_MAX_BYTES
    head = _request("POST", "/v3/mail/send", [f"Content-Length: {size}"])
    status, before, sent = _stream(server, head, size)
    assert status == 413
    assert before < SENDGRID_MAIL_SEND_MAX
    assert sent < DRAIN_MAX_BYTES  # what the sockets' buffers held, not a read
    _unchanged(server)


def test_a_mail_send_body_just_past_20_mb_reaches_a_client_that_sends_it_all_as_a_413(server):
    """SendGrid refuses a mail/send body over 20 MB, so the sandbox does too. The sendgrid
    client (http.client underneath) sends the whole body before it reads: refused unread,
    it would see its connection reset instead of the 413. So a body up to DRAIN_MAX_BYTES
    is read to its end and thrown away, none of it kept."""
    connection = http.client.HTTPConnection(*_address(server), timeout=30)
    try:
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        raw = json.dumps(MAIL).encode().ljust(SENDGRID_MAIL_SEND_MAX + 1)
        connection.request("POST", "/v3/mail/send", body=raw, headers=headers)
        answer = connection.getresponse()
        status, errors = answer.status, json.loads(answer.read())["errors"]
    finally:
        connection.close()
    assert status == 413
    assert [e["field"] for e in errors] == ["Content-Length"]
    assert f"{MAIL_SEND_MAX_BYTES:,} bytes" in errors[0]["message"]
    _unchanged(server)


def test_a_mail_send_body_of_exactly_20_mb_is_taken(server):
    raw = json.dumps(MAIL).encode().ljust(MAIL_SEND_MAX_BYTES)  # JSON allows the spaces
    status, _, _ = _exchange_slowly(server, _sent("POST", "/v3/mail/send", raw))
    assert status == 202
    assert len(server.messages()) == 2


def _exchange_slowly(server: Sandbox, request: bytes) -> tuple[int, dict[str, str], Any]:
    """`_exchange` with time for 20 MB to be parsed and kept."""
    with socket.create_connection(_address(server), timeout=60) as sock:
        sock.sendall(request)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, dict(answer.getheaders()), answer.read()


@pytest.mark.parametrize(("method", "path"), BODY_TAKERS)
def test_a_content_length_of_forty_digits_is_refused_413_unread(server, method, path):
    request = _request(method, path, [f"Content-Length: {'9' * 40}"], b"{}")
    _length_refused(server, request, 413, "Content-Length")


@pytest.mark.parametrize(("method", "path"), BODY_TAKERS[1:])
def test_a_body_past_1_mib_is_refused_413_by_the_sandboxs_own_endpoints(server, method, path):
    raw = b"{}".ljust(CONTROL_MAX_BYTES + 1)
    _length_refused(server, _sent(method, path, raw), 413, "Content-Length")


def test_a_faults_body_of_exactly_1_mib_is_taken(server):
    raw = json.dumps({**IN_FORCE, "seed": 5}).encode().ljust(CONTROL_MAX_BYTES)
    status, _, answer = _exchange(server, _sent("PUT", "/sandbox/faults", raw))
    assert (status, answer["seed"]) == (200, 5)


# --- JSON nested too deep for Python's parser ---------------------------------------------


def test_json_nested_too_deep_to_parse_is_a_400_in_sendgrids_shape_on_mail_send(server):
    """100,000 "[" once got no answer at all, and a RecursionError's traceback."""
    message = _refused(server, _sent("POST", "/v3/mail/send", DEEP), 400, None)
    assert message.startswith("Invalid JSON in the request body")


@pytest.mark.parametrize("depth", [500, 900, 990, 1000, 2000])
def test_deep_json_that_parses_or_not_is_answered_on_mail_send(server, depth):
    """Nesting near Python's recursion limit, inside a field the rules look into."""
    raw = json.dumps({**MAIL, "custom_args": {"x": "{"}}).replace('"{"', "[" * depth + "]" * depth)
    status, _, answer = _exchange(server, _sent("POST", "/v3/mail/send", raw.encode()))
    assert status == 400, answer
    _unchanged(server)


# --- POST /sandbox/engage: every field has a type and a range ---------------------------


def _engage_refused(server: Sandbox, raw: bytes, field: str | None) -> str:
    return _refused(server, _sent("POST", "/sandbox/engage", raw), 400, field)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"open_rate": true}', "open_rate"),  # True is an int in Python
        (b'{"machine_rate": false}', "machine_rate"),
        (b'{"click_rate": "0.2"}', "click_rate"),
        (b'{"open_rate": null}', "open_rate"),
        (b'{"repeat_opens": true}', "repeat_opens"),
        (b'{"links_per_reader": 2.5}', "links_per_reader"),
        (b'{"repeat_clicks": "1"}', "repeat_clicks"),
        (b'{"seed": "abc"}', "seed"),
        (b'{"seed": null}', "seed"),
        (b'{"seed": true}', "seed"),
        (b'{"seed": 1.5}', "seed"),
        (b'{"seed": [1]}', "seed"),
    ],
)
def test_an_engage_value_of_the_wrong_type_is_refused_naming_its_field(server, raw, field):
    _engage_refused(server, raw, field)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"open_rate": -0.1}', "open_rate"),
        (b'{"machine_rate": 1.5}', "machine_rate"),
        (b'{"click_rate": 2}', "click_rate"),
        (b'{"repeat_opens": -1}', "repeat_opens"),
        (f'{{"repeat_opens": {MAX_REPEATS + 1}}}'.encode(), "repeat_opens"),
        (f'{{"links_per_reader": {MAX_REPEATS + 1}}}'.encode(), "links_per_reader"),
        (f'{{"repeat_clicks": {MAX_REPEATS + 1}}}'.encode(), "repeat_clicks"),
        (b'{"seed": -1}', "seed"),
        (f'{{"seed": {MAX_SEED + 1}}}'.encode(), "seed"),
    ],
)
def test_an_engage_value_out_of_its_range_is_refused_naming_its_field(server, raw, field):
    _engage_refused(server, raw, field)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"open_rate": NaN}', "open_rate"),
        (b'{"click_rate": Infinity}', "click_rate"),
        (b'{"repeat_opens": NaN}', "repeat_opens"),
        (b'{"seed": -Infinity}', "seed"),
    ],
)
def test_nan_and_infinity_on_engage_are_refused_naming_their_field(server, raw, field):
    _engage_refused(server, raw, field)


def test_a_misspelt_engage_field_is_refused_naming_it(server):
    message = _engage_refused(server, b'{"opens_rate": 0.5}', "opens_rate")
    assert "open_rate" in message  # the fields it could have meant


def test_machine_and_human_opens_past_1_in_all_are_refused_naming_machine_rate(server):
    """A reader opens by machine, opens, or neither: 0.95 and 0.1 would have been 0.9 and
    0.1, not what was asked."""
    _engage_refused(server, b'{"open_rate": 0.95, "machine_rate": 0.1}', "machine_rate")


def test_more_clicks_than_opens_are_refused_naming_click_rate(server):
    """Only a reader who opens clicks: 0.3 of readers clicking when 0.2 open would have
    been 0.2."""
    _engage_refused(server, b'{"open_rate": 0.2, "click_rate": 0.3}', "click_rate")


@pytest.mark.parametrize(
    "raw",
    [b"[]", b'[{"seed": 1}]', b"null", b"5", b'"open_rate"', b"open_rate=1", DEEP],
    ids=lambda raw: raw[:20].decode(),
)
def test_an_engage_body_that_is_not_a_json_object_is_refused_in_words_not_pythons(server, raw):
    """A list was refused with "Engagement() argument after ** must be a mapping", null
    with "'NoneType' object is not iterable"; 100,000 "[" got no answer at all."""
    message = _engage_refused(server, raw, None)
    assert "JSON object" in message


@pytest.mark.parametrize(
    "edges",
    [
        {
            "open_rate": 1,
            "machine_rate": 0,
            "click_rate": 1,
            "repeat_opens": MAX_REPEATS,
            "links_per_reader": MAX_REPEATS,
            "repeat_clicks": MAX_REPEATS,
            "seed": MAX_SEED,
        },
        {"open_rate": 0.9, "machine_rate": 0.1, "click_rate": 0.9},  # 1 in all
        {
            "open_rate": 0,
            "machine_rate": 0,
            "click_rate": 0,
            "repeat_opens": 0,
            "links_per_reader": 0,
            "repeat_clicks": 0,
            "seed": 0,
        },
    ],
    ids=["largest", "opens-summing-to-1", "smallest"],
)
def test_the_edges_of_every_engage_range_are_accepted(server, edges):
    status, _, answer = _exchange(
        server, _sent("POST", "/sandbox/engage", json.dumps(edges).encode())
    )
    assert status == 202, answer
    assert server.state.events is not None
    assert server.state.events.waiting == 2 + answer["events"]


def test_an_engagement_made_in_code_is_checked_too():
    """The demo makes its Engagement directly, not from JSON."""
    with pytest.raises(ValueError, match=r"^seed "):
        Engagement(seed="abc")
