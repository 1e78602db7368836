"""The web side through real HTTP (uvicorn on 127.0.0.1): one-click unsubscribe per RFC 8058,
the unsubscribe page, and SendGrid's signed Event Webhook posted by the sandbox."""

from __future__ import annotations

import json
import re
import time

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.devtools.sandbox import EventSigner, Faults, Sandbox, event_for
from newsletter.errors import ConfigurationError
from newsletter.models import Delivery
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from newsletter.sending.testsend import send_test_copy
from subscribers.models import Subscriber
from subscribers.roster import add_subscriber, followed_topics, get_subscriber
from subscribers.topics import add_topic
from tests.conftest import SANDBOX_KEY, serve_app, sqlite_only
from tests.web_support import call as _call
from tests.web_support import form_csrf as _form_csrf
from tests.web_support import link_in as _link
from tests.web_support import subscribe as _subscribe
from tests.web_support import token as _token
from tests.workers_support import deliver_mail, seed_brief


@pytest.fixture
def ann(engine):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        return add_subscriber("ann@example.com", session=session, topics=["energy"]).id


def _status(engine, email="ann@example.com"):
    with session_scope(engine) as session:
        person = get_subscriber(email, session=session)
        return person.status, person.status_changed_by


def test_one_click_unsubscribe_needs_no_page_and_no_confirmation(web, engine, ann):
    url, settings = web
    status, body, _ = _call(
        f"{url}/unsubscribe/{_token(settings, ann)}", data={"List-Unsubscribe": "One-Click"}
    )
    assert (status, body) == (200, "Unsubscribed.")
    assert _status(engine) == ("unsubscribed", "subscriber")


def test_the_unsubscribe_page_asks_first_and_links_to_preferences(web, engine, ann):
    url, settings = web
    token = _token(settings, ann)
    status, page, headers = _call(f"{url}/unsubscribe/{token}")
    assert status == 200 and "Unsubscribe ann@example.com?" in page
    assert f'href="/preferences/{token}"' in page
    assert "default-src 'none'" in headers["content-security-policy"]
    assert _status(engine)[0] == "active"  # looking is not unsubscribing
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    status, page, _ = _call(f"{url}/unsubscribe/{token}", data={"csrf": csrf})
    assert status == 200 and "You are unsubscribed" in page
    assert _status(engine)[0] == "unsubscribed"


def test_a_tampered_token_changes_nothing_and_gets_a_polite_page(web, engine, ann):
    url, settings = web
    token = _token(settings, ann)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    status, page, _ = _call(f"{url}/unsubscribe/{forged}", data={"List-Unsubscribe": "One-Click"})
    assert status == 400 and "This link does not work" in page and "Traceback" not in page
    assert _status(engine)[0] == "active"


def test_a_form_post_without_its_csrf_token_changes_nothing(web, engine, ann):
    url, settings = web
    status, _, _ = _call(f"{url}/unsubscribe/{_token(settings, ann)}", data={"csrf": "x"})
    assert status == 400 and _status(engine)[0] == "active"


def _post(sandbox, url, events, signer=None, timestamp=None):
    body = json.dumps(events).encode()
    headers = (signer or sandbox.events).headers(body, timestamp)
    return _call(f"{url}/webhooks/sendgrid", raw=body, headers=headers)


def _dispatch_with_drops(engine, settings, sandbox, readers=6):
    slug = seed_brief(engine, readers)
    with session_scope(engine) as session:
        send_id = create_send(slug, session=session, settings=settings).id
    sandbox.state.set_faults(Faults(rate_drop=1.0))
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    sandbox.state.set_faults(Faults())
    return send_id


def _ledger(engine, send_id):
    with session_scope(engine) as session:
        return [d.status for d in session.exec(select(Delivery).where(Delivery.send_id == send_id))]


def test_delivered_events_settle_unknown_deliveries(web, engine, sandbox):
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox)
    assert set(_ledger(engine, send_id)) == {"unknown"}
    events = [event_for(m, "delivered") for m in sandbox.messages()]
    status, body, _ = _post(sandbox, url, events)
    assert status == 200 and body == "applied 6, duplicates 0"
    assert set(_ledger(engine, send_id)) == {"sent"}


def test_a_forged_signature_changes_nothing(web, engine, sandbox):
    url, settings = web
    send_id = _dispatch_with_drops(engine, settings, sandbox)
    events = [event_for(m, "delivered") for m in sandbox.messages()]
    status, body, _ = _post(sandbox, url, events, signer=EventSigner())
    assert status == 403 and "bad signature" in body
    assert set(_ledger(engine, send_id)) == {"unknown"}


@sqlite_only
def test_a_restarted_sandbox_signs_with_the_key_the_web_app_was_given(
    engine, settings, sandbox, tmp_path
):
    """The README's way: start the sandbox with a webhook URL, give the web app the public
    key it prints. A new key at each start had the web app refuse every event after the
    sandbox restarted, until someone noticed the 403s and reconfigured it."""
    kept = tmp_path / "sandbox" / "webhook-key.pem"
    with Sandbox(SANDBOX_KEY, webhook_key=kept) as first:
        given = first.events.public_key
    assert kept.stat().st_mode & 0o777 == 0o600  # it signs what the web app believes
    send_id = _dispatch_with_drops(engine, settings, sandbox, readers=2)
    events = [event_for(m, "delivered") for m in sandbox.messages()]
    with serve_app(settings, SENDGRID_WEBHOOK_PUBLIC_KEY=given) as (url, _):
        webhook = f"{url}/webhooks/sendgrid"
        with Sandbox(SANDBOX_KEY) as keeping_nothing:
            assert keeping_nothing.post_events(webhook, events) == 403
        with Sandbox(SANDBOX_KEY, webhook_key=kept) as restarted:
            assert restarted.events.public_key == given
            assert restarted.post_events(webhook, events) == 200
    assert set(_ledger(engine, send_id)) == {"sent"}


def test_a_webhook_key_file_the_sandbox_cannot_use_is_refused_naming_it(tmp_path):
    kept = tmp_path / "webhook-key.pem"
    kept.write_text("SENDGRID_WEBHOOK_PUBLIC_KEY=MFkwEwYH...\n")  # a public key pasted in
    with pytest.raises(ConfigurationError, match=re.escape(str(kept))) as refused:
        Sandbox(SANDBOX_KEY, webhook_key=kept)
    assert "delete it for a new one" in refused.value.hint


def test_a_stale_timestamp_is_refused(web, engine, sandbox):
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=1)
    events = [event_for(m, "spamreport") for m in sandbox.messages()]
    status, body, _ = _post(sandbox, url, events, timestamp=int(time.time()) - 3600)
    assert status == 403 and "stale timestamp" in body


def test_replayed_and_redelivered_events_are_applied_once(web, engine, sandbox):
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=2)
    events = [event_for(m, "delivered") for m in sandbox.messages()]
    assert _post(sandbox, url, events)[1] == "applied 2, duplicates 0"
    assert _post(sandbox, url, events)[1] == "applied 0, duplicates 2"
    # SendGrid may redeliver the same event under a new sg_event_id.
    renamed = [{**event, "sg_event_id": event["sg_event_id"] + "x"} for event in events]
    assert _post(sandbox, url, renamed)[1] == "applied 0, duplicates 2"


def test_spam_reports_bounces_and_unsubscribes_change_the_subscriber(web, engine, sandbox):
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=4)
    by_address = {m.to[0]: m for m in sandbox.messages()}
    events = [
        event_for(by_address["reader0@example.com"], "spamreport"),
        event_for(
            by_address["reader1@example.com"], "bounce", type="bounce", reason="550 no such user"
        ),
        event_for(by_address["reader2@example.com"], "unsubscribe"),
        event_for(by_address["reader3@example.com"], "dropped", reason="Invalid"),
    ]
    assert _post(sandbox, url, events)[0] == 200
    with session_scope(engine) as session:
        people = {s.email: s for s in session.exec(select(Subscriber))}
        dropped = session.exec(
            select(Delivery).where(Delivery.subscriber_id == people["reader3@example.com"].id)
        ).one()
    assert people["reader0@example.com"].status == "complained"
    assert people["reader0@example.com"].status_changed_by == "sendgrid:spamreport"
    assert people["reader1@example.com"].status == "bounced"
    assert people["reader2@example.com"].status == "unsubscribed"
    assert dropped.status == "failed" and dropped.error == "dropped by sendgrid: Invalid"


def test_soft_bounces_count_up_to_the_limit(web, engine, sandbox):
    url, settings = web
    _dispatch_with_drops(engine, settings, sandbox, readers=1)
    [message] = sandbox.messages()
    for attempt in range(3):
        event = event_for(message, "bounce", type="blocked", reason="451 try later")
        event["timestamp"] += attempt  # three distinct bounces, not one redelivered
        _post(sandbox, url, [event])
        expected = "bounced" if attempt == 2 else "active"
        assert _status(engine, "reader0@example.com")[0] == expected


def test_a_sign_up_queues_its_confirmation_and_no_page_waits_on_the_provider(
    web, engine, sandbox, ann
):
    url, settings = web
    status, _, _ = _subscribe(url, email="zoe@example.com", topics="energy")
    assert status == 200
    assert sandbox.state.requests == 0  # the request answered before anything was sent
    deliver_mail(engine, settings)
    assert [m.to for m in sandbox.messages()] == [["zoe@example.com"]]


def test_subscribing_sends_a_confirmation_and_the_link_activates(web, engine, sandbox, ann):
    url, settings = web
    status, page, _ = _subscribe(url, email="Zoe@Example.com", name="Zoë", topics="energy")
    assert status == 200 and "Check your email" in page
    deliver_mail(engine, settings)  # the worker applies the sign-up and sends its email
    assert _status(engine, "zoe@example.com")[0] == "pending"
    [confirmation] = sandbox.messages()
    assert confirmation.to == ["zoe@example.com"] and "confirmation" in confirmation.categories
    link = _link(confirmation, "confirm")
    status, page, _ = _call(link)
    assert status == 200 and "Confirm your subscription" in page
    status, page, _ = _call(link, data={"csrf": _form_csrf(page)})
    assert status == 200 and "You are subscribed" in page
    assert _status(engine, "zoe@example.com") == ("active", "subscriber")
    deliver_mail(engine, settings)
    welcome = sandbox.messages()[-1]
    assert welcome.subject.startswith("Welcome to") and "Dear Zoë" in welcome.text


def test_the_form_never_tells_whether_an_address_is_subscribed(web, engine, sandbox, ann):
    url, settings = web
    _, for_existing, _ = _subscribe(url, email="ann@example.com", topics="energy")
    _, for_new, _ = _subscribe(url, email="new@example.com", topics="energy")
    assert for_existing == for_new
    deliver_mail(engine, settings)
    assert [m.to for m in sandbox.messages()] == [["new@example.com"]]


def test_the_honeypot_stops_a_simple_bot_quietly(web, engine, sandbox, ann):
    url, _ = web
    status, page, _ = _subscribe(url, email="bot@example.com", topics="energy", website="x")
    assert status == 200 and "Check your email" in page
    assert sandbox.messages() == []
    with session_scope(engine) as session:
        assert (
            session.exec(select(Subscriber).where(Subscriber.email == "bot@example.com")).first()
            is None
        )


def test_repeated_submissions_are_rate_limited(web, ann):
    url, _ = web
    answers = [_subscribe(url, email="r@example.com", topics="energy") for _ in range(6)]
    assert [answer[0] for answer in answers] == [200] * 5 + [429]
    # When to come back, for a browser or script, and the way back for a person.
    _, page, headers = answers[5]
    assert headers["retry-after"] == "600" and 'href="/subscribe"' in page


def test_a_forged_confirmation_link_changes_nothing(web, engine, sandbox, ann):
    url, settings = web
    _subscribe(url, email="zoe@example.com", topics="energy")
    deliver_mail(engine, settings)
    link = _link(sandbox.messages()[0], "confirm")
    status, page, _ = _call(link[:-3] + "xyz")
    assert status == 400 and "This link does not work" in page
    assert _status(engine, "zoe@example.com")[0] == "pending"


def test_the_preference_centre_changes_topics_cadence_and_pauses(web, engine, ann):
    url, settings = web
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
    token = _token(settings, ann)
    _, page, _ = _call(f"{url}/preferences/{token}")
    status, page, _ = _call(
        f"{url}/preferences/{token}",
        data={
            "csrf": _form_csrf(page),
            "topics": "food",
            "cadence": "weekly",
            "timezone": "Asia/Tokyo",
            "paused": "yes",
            "action": "save",
        },
    )
    assert status == 200 and "Saved." in page
    with session_scope(engine) as session:
        person = get_subscriber("ann@example.com", session=session)
        assert (person.cadence, person.timezone, person.status) == (
            "weekly",
            "Asia/Tokyo",
            "paused",
        )
        assert followed_topics(person, session=session) == ["food"]


def test_a_name_full_of_html_is_escaped_on_the_page(web, engine):
    url, settings = web
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        person = add_subscriber(
            "kim@example.com", session=session, name='<b>Kim & "Lee"</b>', topics=["energy"]
        )
    _, page, _ = _call(f"{url}/preferences/{_token(settings, person.id)}")
    assert "&lt;b&gt;Kim &amp; &#34;Lee&#34;&lt;/b&gt;" in page and "<b>Kim" not in page


def test_the_archive_shows_sent_briefs_and_never_drafts(web, engine, settings, sandbox):
    url, web_settings = web
    slug = seed_brief(engine, 2)
    status, _, _ = _call(f"{url}/archive/{slug}")
    assert status == 404  # a draft
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=web_settings)
    Dispatcher(engine, web_settings, SendGridTransport.from_settings(web_settings)).work_due()
    status, page, _ = _call(f"{url}/archive")
    assert status == 200 and f'href="/archive/{slug}"' in page
    status, page, _ = _call(f"{url}/archive/{slug}")
    assert status == 200 and "<h1>Port congestion returns" in page


def test_a_test_copys_links_say_they_came_in_a_test_copy_and_change_nothing(web, engine, sandbox):
    """Staff checking their test copy met "This link does not work" (400), and took
    unsubscribing to be broken."""
    url, settings = web
    slug = seed_brief(engine, 1)
    with session_scope(engine) as session:
        send_test_copy(slug, "editor@example.com", session=session, settings=settings)
    [message] = sandbox.messages()
    for path, what in (("unsubscribe", "unsubscribe page"), ("preferences", "preferences page")):
        link = _link(message, path)
        assert link.startswith(url)
        status, body, _ = _call(link)
        assert status == 200 and "This link came in a test copy" in body and what in body
    status, body, _ = _call(_link(message, "unsubscribe"), data={"List-Unsubscribe": "One-Click"})
    assert status == 200 and "change nothing" in body
    with session_scope(engine) as session:
        assert {s.status for s in session.exec(select(Subscriber))} == {"active"}
