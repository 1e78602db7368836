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

from newsletter.devtools.sandbox import Faults, Sandbox

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
