"""Open and click tracking: on for every brief by default, each switchable in settings,
sent to SendGrid as `tracking_settings` (checked by the sandbox as SendGrid documents it),
never on mail outside a send; and the sandbox's own opens and clicks, as SendGrid words
them."""

from __future__ import annotations

import json

import pytest
from sendgrid import SendGridAPIClient

from newsletter.db import session_scope
from newsletter.devtools.engagement import Engagement, click_event, content_links, open_event
from newsletter.devtools.inbox import Accepted
from newsletter.providers.base import Batch, Recipient
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from tests.conftest import sqlite_only, test_settings
from tests.workers_support import seed_brief


def _sent_request(engine, settings, sandbox) -> dict:
    slug = seed_brief(engine, 2)
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    stored = sandbox.state.inbox.get(1)
    assert stored is not None, "the sandbox accepted nothing"
    return json.loads(stored.raw)


@sqlite_only
def test_a_send_asks_sendgrid_to_track_opens_and_clicks_by_default(engine, settings, sandbox):
    body = _sent_request(engine, settings, sandbox)
    assert body["tracking_settings"] == {
        "click_tracking": {"enable": True, "enable_text": False},
        "open_tracking": {"enable": True},
    }


@sqlite_only
@pytest.mark.parametrize(
    ("switch", "setting"),
    [("NEWSLETTER_TRACK_OPENS", "open_tracking"), ("NEWSLETTER_TRACK_CLICKS", "click_tracking")],
)
def test_each_kind_of_tracking_can_be_switched_off_alone(
    engine, settings, sandbox, switch, setting
):
    changed = test_settings(**{**settings.model_dump(), switch: False})
    body = _sent_request(engine, changed, sandbox)
    enabled = {name: value["enable"] for name, value in body["tracking_settings"].items()}
    assert enabled == {
        "click_tracking": setting != "click_tracking",
        "open_tracking": setting != "open_tracking",
    }


def _batch(send_id: int, *, test: bool = False) -> Batch:
    reader = Recipient(delivery_id=1, email="a@example.com", name="", values={}, headers={})
    return Batch(send_id, "Hi", "<p>Hi</p>", "Hi", [reader], test=test)


@pytest.mark.parametrize("batch", [_batch(0), _batch(7, test=True)], ids=["no send", "test copy"])
def test_mail_outside_a_send_and_test_copies_are_never_tracked(batch):
    transport = SendGridTransport.from_settings(test_settings(SENDGRID_API_KEY="SG.x"))
    settings = transport.request_body(batch)["tracking_settings"]
    assert not settings["click_tracking"]["enable"] and not settings["open_tracking"]["enable"]


@pytest.fixture
def client(sandbox):
    return SendGridAPIClient(api_key="SG.test-sandbox-key", host=sandbox.url)


def _refusal(client, tracking) -> list[tuple[str, str]]:
    from python_http_client.exceptions import BadRequestsError

    body = {
        "from": {"email": "briefs@example.com"},
        "subject": "Hello",
        "content": [{"type": "text/plain", "value": "Hi"}],
        "personalizations": [{"to": [{"email": "a@example.com"}]}],
        "tracking_settings": tracking,
    }
    try:
        client.send(body)
    except BadRequestsError as exc:
        return [(e["field"], e["message"]) for e in json.loads(exc.body)["errors"]]
    return []


@pytest.mark.parametrize(
    ("tracking", "field"),
    [
        ({"open_tracking": {"enable": "true"}}, "tracking_settings.open_tracking.enable"),
        ({"click_tracking": {"enable": 1}}, "tracking_settings.click_tracking.enable"),
        ({"click_tracking": {"enable_text": None}}, "tracking_settings.click_tracking.enable_text"),
        (
            {"open_tracking": {"substitution_tag": 5}},
            "tracking_settings.open_tracking.substitution_tag",
        ),
        ({"click_tracking": True}, "tracking_settings.click_tracking"),
        ({"ganalytics": {"utm_source": ["x"]}}, "tracking_settings.ganalytics.utm_source"),
        ([{"open_tracking": {}}], "tracking_settings"),
    ],
)
def test_the_sandbox_refuses_tracking_settings_of_the_wrong_shape_naming_the_field(
    client, tracking, field
):
    assert [f for f, _ in _refusal(client, tracking)] == [field]


def test_the_sandbox_takes_tracking_settings_as_sendgrid_documents_them(client):
    documented = {
        "click_tracking": {"enable": True, "enable_text": False},
        "open_tracking": {"enable": True, "substitution_tag": "%open-track%"},
        "subscription_tracking": {"enable": False},
        "ganalytics": {"enable": False, "utm_source": "briefs"},
    }
    assert _refusal(client, documented) == []


@sqlite_only
def test_the_sandbox_words_opens_and_clicks_as_sendgrid_does(engine, settings, sandbox):
    _sent_request(engine, settings, sandbox)
    message = sandbox.messages()[0]
    links = content_links(message)
    assert links and not any("/unsubscribe/" in link for link in links)
    opened = open_event(message, machine=True)
    clicked = click_event(message, links[0])
    assert (opened["event"], opened["sg_machine_open"]) == ("open", True)
    assert (clicked["event"], clicked["url"]) == ("click", links[0])
    assert opened["delivery_id"] == clicked["delivery_id"] == message.custom_args["delivery_id"]


def test_the_sandbox_clicks_a_link_as_a_browser_follows_it_not_as_the_html_escapes_it():
    """Its click events carried `?page=52&amp;ref=brief`, and the reports showed it so."""
    html = '<a href="https://example.org/report/52?page=52&amp;ref=brief">the report</a>'
    message = Accepted("m1", ["ann@example.com"], "S", {}, {}, [], content={"text/html": html})
    assert content_links(message) == ["https://example.org/report/52?page=52&ref=brief"]


def test_engagement_refuses_shares_outside_zero_to_one():
    with pytest.raises(ValueError, match="open_rate"):
        Engagement.from_dict({"open_rate": 1.5})


def test_the_sandbox_plays_readers_through_the_webhook_on_request(web, engine, sandbox):
    import time

    from newsletter.reports import send_report
    from tests.web_support import call

    url, settings = web
    status, body, _ = call(f"{sandbox.url}/sandbox/engage", raw=b"{}")
    assert status == 400 and "no webhook" in body
    slug = seed_brief(engine, 4)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    sandbox.send_events_to(f"{url}/webhooks/sendgrid")
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    everyone_twice = {"open_rate": 1, "machine_rate": 0, "click_rate": 0, "repeat_opens": 2}
    status, body, _ = call(f"{sandbox.url}/sandbox/engage", raw=json.dumps(everyone_twice).encode())
    assert (status, json.loads(body)) == (202, {"events": 8})
    poster = sandbox.state.events
    deadline = time.monotonic() + 20
    while (
        poster.waiting or poster.in_flight or poster.posted < 16
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    with session_scope(engine) as session:
        report = send_report(send_id, session=session)
    assert (report.readers["delivered"], report.readers["opened"], report.opens) == (4, 4, 8)


@sqlite_only
def test_a_readers_own_links_are_kept_out_of_click_tracking(engine, settings, sandbox):
    """SendGrid rewrites every link through its redirect unless the anchor says
    clicktracking="off": the unsubscribe and preferences links carry the reader's key."""
    import re

    _sent_request(engine, settings, sandbox)
    html = sandbox.messages()[0].html
    own = re.findall(r'<a [^>]*href="[^"]*/(?:unsubscribe|preferences)/[^"]*"[^>]*>', html)
    assert len(own) == 2 and all('clicktracking="off"' in anchor for anchor in own)
