"""The sandbox answers the real `sendgrid` client as SendGrid's v3 mail/send does."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import asdict
from urllib.parse import urlsplit

import pytest
from python_http_client.exceptions import BadRequestsError, UnauthorizedError
from sendgrid import SendGridAPIClient

from newsletter.devtools.faults import MAX_DELAY_SECONDS, MAX_REFUSED, MAX_RETRY_AFTER
from newsletter.devtools.sandbox import Faults, Sandbox
from newsletter.devtools.sandbox_input import MAX_SEED

KEY = "SG.sandbox-test"


def _body(personalizations):
    return {
        "from": {"email": "briefs@example.com"},
        "subject": "Hello",
        "content": [
            {"type": "text/plain", "value": "Hi -name-"},
            {"type": "text/html", "value": "<p>Hi -name-</p>"},
        ],
        "personalizations": personalizations,
    }


@pytest.fixture
def server():
    with Sandbox(KEY) as sandbox:
        yield sandbox


@pytest.fixture
def client(server):
    return SendGridAPIClient(api_key=KEY, host=server.url)


def test_accepts_with_202_and_a_message_id(client, server):
    response = client.send(
        _body([{"to": [{"email": "a@example.com"}], "substitutions": {"-name-": "Ann"}}])
    )
    assert response.status_code == 202
    assert response.headers["X-Message-Id"]
    [message] = server.messages()
    assert message.to == ["a@example.com"]
    assert message.text == "Hi Ann"
    assert message.message_id == response.headers["X-Message-Id"]


def test_a_delivery_id_accepted_twice_counts_as_a_duplicate_but_zero_does_not(client, server):
    """Confirmations and welcomes carry delivery_id 0 (no ledger row): a reader's two once
    showed as a duplicate delivery."""
    for delivery_id in ("0", "0", "7", "7"):
        to = {"to": [{"email": "a@example.com"}], "custom_args": {"delivery_id": delivery_id}}
        client.send(_body([to]))
    assert server.state.stats.duplicate_deliveries == 1


def test_a_wrong_key_gets_401_with_sendgrids_words(server):
    client = SendGridAPIClient(api_key="SG.wrong", host=server.url)
    with pytest.raises(UnauthorizedError) as caught:
        client.send(_body([{"to": [{"email": "a@example.com"}]}]))
    assert "authorization grant is invalid" in caught.value.body.decode()
    assert server.messages() == []


def test_more_than_1000_personalizations_is_a_400(client, server):
    people = [{"to": [{"email": f"p{i}@example.com"}]} for i in range(1001)]
    with pytest.raises(BadRequestsError) as caught:
        client.send(_body(people))
    errors = json.loads(caught.value.body)["errors"]
    assert {"personalizations"} <= {e["field"] for e in errors}
    assert any("1000 personalizations" in e["message"] for e in errors)
    assert server.messages() == []


def test_exactly_1000_personalizations_is_accepted(client, server):
    people = [{"to": [{"email": f"p{i}@example.com"}]} for i in range(1000)]
    assert client.send(_body(people)).status_code == 202
    assert len(server.messages()) == 1000


def test_a_duplicate_address_within_a_personalization_is_a_400(client):
    duplicate = [{"to": [{"email": "a@example.com"}], "cc": [{"email": "A@example.com"}]}]
    with pytest.raises(BadRequestsError) as caught:
        client.send(_body(duplicate))
    [error] = json.loads(caught.value.body)["errors"]
    assert error["field"] == "personalizations.0"
    assert "should be unique between to, cc, and bcc" in error["message"]


def test_every_broken_rule_is_listed(client):
    body = {
        "personalizations": [{"to": [{"email": "not-an-address"}]}],
        "content": [{"type": "text/html", "value": "x"}, {"type": "text/plain", "value": "y"}],
    }
    with pytest.raises(BadRequestsError) as caught:
        client.send(body)
    fields = {e["field"] for e in json.loads(caught.value.body)["errors"]}
    assert fields == {"from.email", "personalizations.0.to.0.email", "subject", "content"}


def _post_raw(server, content_type):
    body = json.dumps(_body([{"to": [{"email": "a@example.com"}]}])).encode()
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": content_type}
        connection.request("POST", "/v3/mail/send", body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_a_body_not_declared_as_json_is_a_415_with_sendgrids_words(server):
    status, body = _post_raw(server, "text/plain")
    assert status == 415
    assert json.loads(body)["errors"][0]["message"] == "Content-Type should be application/json."
    assert server.messages() == []


def test_json_with_its_charset_named_is_accepted(server):
    assert _post_raw(server, "Application/JSON; charset=utf-8")[0] == 202
    assert len(server.messages()) == 1


def test_stopping_waits_for_a_request_in_flight_and_refuses_a_later_one_printing_nothing(
    capfd,
):
    """A test stopping the sandbox while a request thread still answered closed the inbox
    under it: "Cannot operate on a closed database" tracebacks on stderr. The request in
    hand now finishes first; one arriving on a kept-alive connection meanwhile gets
    SendGrid's 503, which a sender retries."""
    sandbox = Sandbox(KEY, faults=Faults(rate_delay=1.0, delay_seconds=0.5)).start()
    answers: list[int] = []
    idle = http.client.HTTPConnection(urlsplit(sandbox.url).netloc, timeout=10)
    idle.request("GET", "/sandbox/stats")  # keeps its connection (HTTP/1.1)
    assert idle.getresponse().read()
    sending = threading.Thread(
        target=lambda: answers.append(_post_raw(sandbox, "application/json")[0])
    )
    sending.start()
    deadline = time.monotonic() + 5
    while sandbox.state.requests < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # the request is in its thread, waiting out the delay
    sandbox.stop()
    sending.join(timeout=10)
    idle.request("GET", "/sandbox/stats")
    late = idle.getresponse()
    late_body = json.loads(late.read())
    idle.close()
    assert answers == [202]
    assert late.status == 503 and "stopping" in late_body["errors"][0]["message"]
    assert capfd.readouterr().err == ""


def _call(server, method, path, payload=None):
    """(status, JSON answer) of one request to the sandbox over HTTP."""
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    try:
        body = None if payload is None else json.dumps(payload)
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def test_a_request_that_meets_a_sandbox_bug_is_answered_not_dropped(server, monkeypatch, capfd):
    """Not a real peer's failure: the inbox page made to raise as it did for a mail nested
    too deep to parse a second time (RecursionError), which left the request unanswered."""

    def too_deep(*_args):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("newsletter.devtools.sandbox.inbox_page", too_deep)
    status, answer = _call(server, "GET", "/inbox/1")
    assert status == 500 and "could not answer" in answer["errors"][0]["message"]
    assert "RecursionError" in capfd.readouterr().err  # reported before the answer


def test_the_faults_set_can_be_read_back_and_put_back_as_they_are(server):
    """A PUT sets every field, so a developer changing one must first see what is set; and
    a rehearsal's faults, read before clearing them, are one PUT from coming back."""
    assert _call(server, "GET", "/sandbox/faults") == (200, asdict(Faults()))
    wanted = {
        "rate_429": 0.25,
        "rate_delay": 1.0,
        "delay_seconds": 0.2,
        "retry_after": 3,
        "seed": 7,
        "refuse_unnamed": ["x@example.com"],
    }
    assert _call(server, "PUT", "/sandbox/faults", wanted)[0] == 200
    status, current = _call(server, "GET", "/sandbox/faults")
    assert status == 200 and current == {**asdict(Faults()), **wanted}
    assert _call(server, "PUT", "/sandbox/faults", {})[0] == 200
    assert _call(server, "GET", "/sandbox/faults") == (200, asdict(Faults()))
    assert _call(server, "PUT", "/sandbox/faults", current) == (200, current)
    assert _call(server, "GET", "/sandbox/faults") == (200, current)
    assert server.state.faults == Faults(**wanted)


# --- PUT /sandbox/faults: every field has a type and a range ----------------------------

# Faults already in force when a bad PUT arrives, so "changes nothing" is not "the defaults".
IN_FORCE = {"rate_503": 0.5, "rate_delay": 0.25, "seed": 4, "refuse_unnamed": ["k@example.com"]}


def _put(server, raw: bytes):
    """(status, JSON answer) of `PUT /sandbox/faults` with `raw` as the body, as sent."""
    connection = http.client.HTTPConnection(urlsplit(server.url).netloc, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        connection.request("PUT", "/sandbox/faults", body=raw, headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        connection.close()


def _refused_and_unchanged(server, raw: bytes, field: str | None) -> str:
    """PUT `raw` over IN_FORCE: one SendGrid-style 400 naming `field`, and GET shows the
    faults in force as they were. The refusal's message."""
    assert _call(server, "PUT", "/sandbox/faults", IN_FORCE)[0] == 200
    before = _call(server, "GET", "/sandbox/faults")
    status, answer = _put(server, raw)
    assert status == 400, answer
    [refusal] = answer["errors"]
    assert refusal["field"] == field
    if field is not None:
        assert refusal["message"].startswith(f"{field} "), refusal["message"]
    assert _call(server, "GET", "/sandbox/faults") == before
    assert server.state.faults == Faults(**IN_FORCE)
    return refusal["message"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"delay_seconds": "abc"}', "delay_seconds"),
        (b'{"rate_429": null}', "rate_429"),
        (b'{"seed": null}', "seed"),
        (b'{"refuse_unnamed": null}', "refuse_unnamed"),
        (b'{"rate_drop": true}', "rate_drop"),  # True is an int in Python
        (b'{"retry_after": false}', "retry_after"),
        (b'{"retry_after": 2.5}', "retry_after"),
        (b'{"seed": "7"}', "seed"),
        (b'{"rate_500": [0.5]}', "rate_500"),
        (b'{"refuse_unnamed": "x@example.com"}', "refuse_unnamed"),
        (b'{"refuse_unnamed": [5]}', "refuse_unnamed"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_field_and_changes_nothing(
    server, raw, field
):
    _refused_and_unchanged(server, raw, field)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"rate_delay": -1}', "rate_delay"),
        (b'{"rate_500": 7}', "rate_500"),
        (b'{"delay_seconds": -0.5}', "delay_seconds"),
        (b'{"delay_seconds": 1e9}', "delay_seconds"),
        (f'{{"delay_seconds": {MAX_DELAY_SECONDS + 1}}}'.encode(), "delay_seconds"),
        (b'{"retry_after": -1}', "retry_after"),
        (f'{{"retry_after": {MAX_RETRY_AFTER + 1}}}'.encode(), "retry_after"),
        (b'{"seed": -1}', "seed"),
        (f'{{"seed": {MAX_SEED + 1}}}'.encode(), "seed"),
        (b'{"refuse_unnamed": ["not-an-address"]}', "refuse_unnamed"),
        (json.dumps({"refuse_unnamed": ["a" * 250 + "@example.com"]}).encode(), "refuse_unnamed"),
        (
            json.dumps(
                {"refuse_unnamed": [f"r{i}@example.com" for i in range(MAX_REFUSED + 1)]}
            ).encode(),
            "refuse_unnamed",
        ),
    ],
    ids=lambda value: value[:40].decode() if isinstance(value, bytes) else value,
)
def test_a_value_out_of_its_range_is_refused_naming_its_field_and_changes_nothing(
    server, raw, field
):
    _refused_and_unchanged(server, raw, field)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"rate_429": NaN}', "rate_429"),
        (b'{"delay_seconds": Infinity}', "delay_seconds"),
        (b'{"rate_delay": -Infinity}', "rate_delay"),
        (b'{"retry_after": NaN}', "retry_after"),
    ],
)
def test_nan_and_infinity_which_pythons_json_lets_through_are_refused_naming_their_field(
    server, raw, field
):
    _refused_and_unchanged(server, raw, field)


def test_a_misspelt_field_is_refused_naming_it_and_changes_nothing(server):
    message = _refused_and_unchanged(server, b'{"fail_rate": 7}', "fail_rate")
    assert "rate_500" in message  # the fields it could have meant


def test_failure_shares_adding_up_past_1_are_refused_naming_the_one_that_tips_them_over(
    server,
):
    """Each request draws one failure at most: 0.6 of 429s and 0.6 of 503s would have been
    0.6 and 0.4, not what was asked."""
    _refused_and_unchanged(server, b'{"rate_429": 0.6, "rate_503": 0.6}', "rate_503")


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'["rate_429"]',
        b'[{"rate_429": 0.5}]',
        b"null",
        b"5",
        b'"rate_429"',
        b"rate_429=1",
        b"[" * 100_000,  # too deep for Python's json: a RecursionError, once no answer at all
    ],
    ids=lambda raw: raw[:20].decode(),
)
def test_a_body_that_is_not_a_json_object_is_refused_and_changes_nothing(server, raw):
    message = _refused_and_unchanged(server, raw, None)
    assert "JSON object" in message


def test_a_send_after_a_refused_put_is_answered_as_before(server):
    """A share that was a string once made every later mail/send close its connection
    with no answer at all (a TypeError in the request's thread)."""
    assert _put(server, b'{"rate_429": "abc"}')[0] == 400
    assert _post_raw(server, "application/json")[0] == 202


@pytest.mark.parametrize(
    "edges",
    [
        {
            "rate_429": 0,
            "rate_500": 0,
            "rate_503": 1,  # a whole number is a share too (the README PUTs "rate_delay": 1)
            "rate_drop": 0,
            "rate_delay": 1,
            "delay_seconds": MAX_DELAY_SECONDS,
            "retry_after": MAX_RETRY_AFTER,
            "seed": MAX_SEED,
            "refuse_unnamed": [f"r{i}@example.com" for i in range(MAX_REFUSED)],
        },
        {"rate_429": 0.1, "rate_500": 0.2, "rate_drop": 0.7},  # 1 in all, give or take a bit
        {"delay_seconds": 0, "retry_after": 0, "seed": 0, "refuse_unnamed": []},
    ],
    ids=["largest", "shares-summing-to-1", "smallest"],
)
def test_the_edges_of_every_range_are_accepted(server, edges):
    assert _put(server, json.dumps(edges).encode()) == (200, {**asdict(Faults()), **edges})
    assert _call(server, "GET", "/sandbox/faults") == (200, {**asdict(Faults()), **edges})


def test_a_put_starts_the_draws_again_from_its_seed(server):
    """Documented, not an accident: a PUT sets every field (a seed left out is 0), so what
    fails after it follows from its body alone, as GET shows it, whatever came before."""
    faults = json.dumps({"rate_500": 0.5, "seed": 3}).encode()

    def statuses() -> list[int]:
        assert _put(server, faults)[0] == 200
        return [_post_raw(server, "application/json")[0] for _ in range(12)]

    first = statuses()
    assert set(first) == {202, 500}
    assert statuses() == first
