"""Everything that comes in has a size, and anything past it or malformed gets a 4xx page or
one line from the command line: never a 500, a traceback or a machine's worth of memory.
Web cases go through real HTTP (uvicorn on 127.0.0.1); command-line cases run the real
`newsletter` process, under a 2 GB address-space cap so a regression fails instead of
taking the machine down."""

from __future__ import annotations

import socket
import subprocess
import time
from urllib.parse import urlsplit

import pytest

from newsletter.db import session_scope
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import sqlite_only
from tests.web_support import call, subscribe


@pytest.fixture
def capped(newsletter):
    """`newsletter` under the memory cap: a regression fails instead of eating the machine."""
    return lambda *args, **options: newsletter(*args, memory_capped=True, **options)


def _one_line_refusal(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


# --- the webhook: refused while the body streams in --------------------------------------


def _raw_post(url: str, head: str, chunks, *, read_timeout: float = 20) -> tuple[int, int]:
    """POST with a hand-written head, then `chunks` until the server answers; returns
    (status, bytes we managed to send). A server that reads everything before answering
    makes this run out of chunks (or time)."""
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=read_timeout) as conn:
        conn.sendall(head.encode())
        conn.setblocking(False)
        answer = b""
        deadline = time.monotonic() + read_timeout
        for chunk in chunks:
            try:
                answer += conn.recv(65536)
            except BlockingIOError:
                pass
            except ConnectionError:
                break
            if answer:
                break
            try:
                sent += conn.send(chunk)
            except BlockingIOError:
                time.sleep(0.005)
            except (BrokenPipeError, ConnectionResetError):
                break
            assert time.monotonic() < deadline, "no answer while the body streamed"
        conn.settimeout(read_timeout)
        while b"\r\n" not in answer:
            more = conn.recv(65536)
            if not more:
                break
            answer += more
    return int(answer.split(b" ", 2)[1]), sent


@sqlite_only
def test_a_100_mb_webhook_post_is_refused_before_it_is_read(web):
    url, _ = web
    size = 100 * 2**20
    head = (
        "POST /webhooks/sendgrid HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    status, sent = _raw_post(url, head, (b"[" + b" " * 65535 for _ in range(size // 65536)))
    assert status == 413 and sent < 20 * 2**20


@sqlite_only
def test_a_chunked_webhook_post_is_refused_once_it_passes_the_limit(web):
    url, _ = web
    head = (
        "POST /webhooks/sendgrid HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
    status, sent = _raw_post(url, head, (piece for _ in range(1600)))
    assert status == 413 and sent < 40 * 2**20


@sqlite_only
def test_a_large_form_post_is_refused_with_a_page(web):
    url, _ = web
    code, page, _ = call(f"{url}/subscribe", data={"email": "a@example.com", "name": "x" * 2**20})
    assert code == 413 and "<h1>" in page


def test_a_refused_post_reaches_the_client_as_a_page_not_a_connection_reset(web):
    # Refused unread, a 2 MB body made the client's TCP stack reset the connection before
    # it read the answer, about one time in eight: the reader saw "connection reset".
    url, _ = web
    for _ in range(15):
        code, _, _ = call(f"{url}/subscribe", data={"email": "a@example.com", "name": "x" * 2**21})
        assert code == 413


# --- form fields: lengths and NUL, the same on both databases ----------------------------


@pytest.fixture
def energy(engine):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
    return engine


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "n" * 1000),
        ("name", "Ann\x00Lee"),
        ("email", "ann\x00@example.com"),
        ("email", "a" * 300 + "@example.com"),
        ("timezone", "Asia/Tokyo\x00"),
        ("cadence", "\x00"),
    ],
    ids=["long-name", "nul-name", "nul-email", "long-email", "nul-timezone", "nul-cadence"],
)
def test_a_field_too_long_or_holding_a_nul_is_refused_with_the_form(web, energy, field, value):
    url, _ = web
    fields = {"email": "ann@example.com", "topics": "energy", field: value}
    code, page, _ = subscribe(url, **fields)
    assert code == 400 and 'aria-invalid="true"' in page and "Traceback" not in page


def test_the_preferences_form_refuses_a_nul_in_a_field(web, energy):
    from tests.web_support import form_csrf, token

    url, settings = web
    with session_scope(energy) as session:
        person = add_subscriber("ann@example.com", session=session, topics=["energy"])
    link = f"{url}/preferences/{token(settings, person.id)}"
    csrf = form_csrf(call(link)[1])
    code, page, _ = call(
        link, data={"csrf": csrf, "action": "save", "topics": "energy", "timezone": "UTC\x00"}
    )
    assert code == 400 and "Traceback" not in page


# --- tokens and webhook headers that are not what they claim -----------------------------


@sqlite_only
@pytest.mark.parametrize("path", ["unsubscribe", "preferences", "confirm"])
def test_a_token_with_a_non_ascii_signature_is_a_polite_400(web, path):
    url, _ = web
    for forged in ("MQ.%C3%A9t%C3%A9", "MQ.%F0%9F%98%80", "%C3%A9.abc", "MQ." + "A" * 5000):
        code, page, _ = call(f"{url}/{path}/{forged}")
        assert code == 400 and "This link does not work" in page, forged
    code, _, _ = call(f"{url}/unsubscribe/MQ.%C3%A9", data={"List-Unsubscribe": "One-Click"})
    assert code == 400


@sqlite_only
@pytest.mark.parametrize("timestamp", ["²", "³¹", "9" * 5000, "-1", ""])
def test_a_webhook_timestamp_that_is_not_a_plain_number_is_refused(web, sandbox, timestamp):
    url, _ = web
    body = b"[]"
    headers = {**sandbox.events.headers(body), "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}
    code, text, _ = call(f"{url}/webhooks/sendgrid", raw=body, headers=headers)
    assert code == 403 and "refused" in text


# --- files and ids on the command line ---------------------------------------------------

ALIAS_BOMB = """---
title: Bomb
date: 2026-06-01
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
topics: [*g,*g,*g,*g,*g,*g,*g,*g,*g]
---
Body.
"""


@sqlite_only
def test_front_matter_with_yaml_aliases_is_refused_fast(capped, tmp_path):
    bomb = tmp_path / "bomb.md"
    bomb.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 600
    _one_line_refusal(capped("briefs", "add", str(bomb), timeout=30), "bomb.md", "alias")


@sqlite_only
def test_deeply_nested_front_matter_is_refused(capped, tmp_path):
    deep = tmp_path / "deep.md"
    deep.write_text("---\ntitle: " + "[" * 50000 + "\n---\nBody.\n")
    _one_line_refusal(capped("briefs", "add", str(deep)), "deep.md")


@sqlite_only
def test_briefs_add_refuses_a_device_without_reading_it(capped):
    _one_line_refusal(capped("briefs", "add", "/dev/zero", timeout=30), "/dev/zero")


@sqlite_only
def test_briefs_add_refuses_a_file_over_the_size_limit(capped, tmp_path):
    big = tmp_path / "big.md"
    with big.open("wb") as stream:
        stream.truncate(50 * 2**20)
    _one_line_refusal(capped("briefs", "add", str(big)), "big.md", "MB")


@sqlite_only
def test_subscribers_import_refuses_a_device_without_reading_it(capped):
    result = capped("subscribers", "import", "/dev/zero", timeout=30)
    _one_line_refusal(result, "/dev/zero")


@sqlite_only
def test_subscribers_import_refuses_a_line_without_end(capped, tmp_path):
    sheet = tmp_path / "one-line.csv"
    sheet.write_bytes(b"email,name\n" + b"a" * (8 * 2**20))
    _one_line_refusal(capped("subscribers", "import", str(sheet)), "one-line.csv:2")


@sqlite_only
def test_briefs_preview_onto_a_file_is_one_line(capped, tmp_path):
    brief = tmp_path / "brief.md"
    brief.write_text("---\ntitle: A title\ndate: 2026-06-01\n---\nBody text.\n")
    assert capped("briefs", "add", str(brief)).returncode == 0
    target = tmp_path / "taken"
    target.write_text("a file, not a folder")
    _one_line_refusal(capped("briefs", "preview", "1", "--out", str(target)), "taken")


@pytest.mark.parametrize(
    "args",
    [
        ("sends", "status", str(2**64)),
        ("sends", "resolve", str(2**70), "--drop"),
        ("briefs", "preview", str(2**64)),
        ("send", str(2**64), "--now"),
        ("briefs", "preview", "²"),
    ],
    ids=lambda args: " ".join(args)[:30],
)
def test_an_id_larger_than_64_bits_is_one_line(capped, args):
    _one_line_refusal(capped(*args))
