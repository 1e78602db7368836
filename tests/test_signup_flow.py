"""Signing up over real HTTP: one answer whatever the address's state, the form checked
before the address is looked at, a confirm link that only a button press (a POST) can use,
and rate limits kept in the database."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from newsletter import signup
from newsletter.db import session_scope
from newsletter.limits import Rule, hit
from newsletter.models import MailKind, RateLimitHit, SignupRequest, TransactionalMail
from subscribers.models import utcnow
from subscribers.roster import add_subscriber, forget
from subscribers.topics import add_topic
from tests.conftest import start_web, web_settings
from tests.web_support import (
    call,
    confirm_token,
    form_csrf,
    link_in,
    status_of,
    subscribe,
    without_csrf,
)
from tests.workers_support import deliver_mail

STATES = ["pending", "active", "paused", "unsubscribed", "bounced", "complained"]


@pytest.fixture
def listed(engine):
    """`energy`, and one address in each state (and a forgotten one)."""
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        for state in STATES:
            add_subscriber(f"{state}@example.com", session=session, topics=["energy"], status=state)
        add_subscriber("gone@example.com", session=session, topics=["energy"])
        forget("gone@example.com", session=session)
    return engine


ADDRESSES = [f"{state}@example.com" for state in STATES] + ["gone@example.com", "new@example.com"]


def _welcomes(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(TransactionalMail)
            .where(TransactionalMail.kind == MailKind.WELCOME)
        )


@pytest.mark.parametrize(
    "fields",
    [
        {"topics": "energy"},
        {"topics": "no-such-topic"},
        {"topics": "energy", "cadence": "hourly"},
        {"topics": "energy", "timezone": "Mars/Olympus"},
        {"topics": "energy", "name": "x" * 1000},
    ],
    ids=["good", "unknown-topic", "bad-cadence", "bad-timezone", "long-name"],
)
def test_every_address_gets_the_same_answer_whatever_its_state(web, listed, fields):
    url, _ = web
    answers = set()
    for address in ADDRESSES:
        code, page, _ = subscribe(url, email=address, **fields)
        answers.add((code, without_csrf(page).replace(address, "ADDRESS")))
    assert len(answers) == 1, [code for code, _ in answers]
    [(code, page)] = answers
    assert code == (200 if fields == {"topics": "energy"} else 400)
    assert "Traceback" not in page


def test_a_form_too_old_or_without_its_token_comes_back_as_filled_in(web, listed):
    """A tab left open past the form's token's hours (or a form posted from elsewhere):
    nothing is recorded, and the person sees the form again with what they typed."""
    url, _ = web
    typed = [("email", "late@example.com"), ("name", 'Ren "Late" 遅'), ("topics", "energy")]
    for token in ("", "made-up"):
        code, page, _ = call(f"{url}/subscribe", data=[("csrf", token), *typed])
        assert code == 400 and "open too long" in page
        assert 'value="late@example.com"' in page and 'value="Ren &#34;Late&#34; 遅"' in page
    assert _requests(listed) == 0
    code, page, _ = call(f"{url}/subscribe", data=[("csrf", form_csrf(page)), *typed])
    assert code == 200 and _requests(listed) == 1


def _requests(engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(SignupRequest))


def test_a_sign_up_answers_before_the_address_is_looked_at(web, listed):
    """The request only records the wish; the worker looks the address up, so the answer
    (and its timing) cannot depend on it. bench/web.py measures the timing."""
    url, settings = web
    assert subscribe(url, email="unsubscribed@example.com", topics="energy")[0] == 200
    assert status_of(listed, "unsubscribed@example.com") == "unsubscribed"
    deliver_mail(listed, settings)
    assert status_of(listed, "unsubscribed@example.com") == "pending"


def test_the_confirm_link_asks_and_only_the_button_confirms(web, engine, sandbox):
    url, settings = web
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
    subscribe(url, email="zoe@example.com", topics="energy")
    deliver_mail(engine, settings)
    link = link_in(sandbox.messages()[0], "confirm")
    for _ in range(3):  # a mail scanner fetching the link, again and again
        code, page, headers = call(link)
        assert code == 200 and "<form" in page and 'method="post"' in page
        assert headers["cache-control"] == "no-store"
    assert status_of(engine, "zoe@example.com") == "pending" and _welcomes(engine) == 0
    csrf = form_csrf(page)
    code, page, _ = call(link, data={"csrf": csrf})
    assert code == 200 and "You are subscribed" in page and "A welcome email is on its" in page
    assert status_of(engine, "zoe@example.com") == "active" and _welcomes(engine) == 1
    code, again, _ = call(link, data={"csrf": csrf})
    assert _welcomes(engine) == 1  # pressing it twice welcomes once
    # ... and says so: "a welcome email is on its way" promised one that never came.
    assert code == 200 and "You had confirmed already" in again and "welcome" not in again
    assert "You had confirmed already" in call(link)[1]  # the link opened again


def test_a_confirm_post_without_its_form_token_changes_nothing(web, engine):
    url, settings = web
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        person = add_subscriber("zoe@example.com", session=session, status="pending")
    code, _, _ = call(f"{url}/confirm/{confirm_token(settings, person.id)}", data={"csrf": "x"})
    assert code == 400 and status_of(engine, "zoe@example.com") == "pending"


# --- rate limits -------------------------------------------------------------------------


@pytest.fixture
def energy(engine):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
    return engine


def test_case_and_width_variants_of_an_address_share_one_limit(web, energy):
    url, _ = web
    variants = [
        "victim@example.com",
        "Victim@Example.com",
        "VICTIM@EXAMPLE.COM",
        "victim@ｅxample.com",  # noqa: RUF001 - a full-width e, NFKC folds it
        "ｖictim@example.com",  # noqa: RUF001
        "victim@example.ｃom",  # noqa: RUF001
    ]
    # From six clients (however the app reads them), so only the address is counted.
    codes = [
        subscribe(
            url,
            email=address,
            topics="energy",
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        )[0]
        for n, address in enumerate(variants)
    ]
    assert codes == [200] * 5 + [429]


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(web, energy):
    url, _ = web
    codes = [
        subscribe(
            url,
            email=f"reader{n}@example.com",
            topics="energy",
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
        )[0]
        for n in range(21)
    ]
    assert codes == [200] * 20 + [429]


def test_a_trusted_proxy_names_the_client_and_an_ipv6_64_is_one_client(settings, sandbox, energy):
    served = web_settings(settings, sandbox, NEWSLETTER_TRUSTED_PROXIES="127.0.0.1,10.0.0.0/8")
    with start_web(served) as url:
        same_64 = [
            subscribe(
                url,
                email=f"reader{n}@example.com",
                topics="energy",
                # The proxy chain: client, then our own proxies, nearest last.
                headers={"X-Forwarded-For": f"2001:db8:1:2::{n:x}, 10.1.2.3"},
            )[0]
            for n in range(21)
        ]
        other_64 = subscribe(
            url,
            email="other@example.com",
            topics="energy",
            headers={"X-Forwarded-For": "2001:db8:1:3::1"},
        )[0]
    assert same_64 == [200] * 20 + [429] and other_64 == 200


def test_limits_are_shared_by_two_servers_and_survive_a_restart(settings, sandbox, energy):
    served = web_settings(settings, sandbox)
    with start_web(served) as first, start_web(served) as second:
        codes = [subscribe(first, email="r@example.com", topics="energy")[0] for _ in range(3)]
        codes += [subscribe(second, email="r@example.com", topics="energy")[0] for _ in range(2)]
    with start_web(served) as restarted:
        codes.append(subscribe(restarted, email="r@example.com", topics="energy")[0])
    assert codes == [200] * 5 + [429]


def test_one_address_gets_at_most_three_confirmations_a_day(settings, sandbox, energy):
    served = web_settings(settings, sandbox, NEWSLETTER_TRUSTED_PROXIES="127.0.0.1")
    with start_web(served) as url:
        for n in range(5):
            address = "victim@example.com" if n % 2 else "Victim@Example.COM"
            forwarded = {"X-Forwarded-For": f"203.0.113.{n}"}
            assert subscribe(url, email=address, topics="energy", headers=forwarded)[0] == 200
            deliver_mail(energy, served)
    assert [m.to for m in sandbox.messages()] == [["victim@example.com"]] * 3


def test_old_counters_expire(engine):
    rule = Rule(limit=1, window=timedelta(minutes=10))
    long_ago = utcnow() - timedelta(days=2)
    with session_scope(engine) as session:
        for n in range(50):
            assert hit(session, f"old-key-{n}", rule, now=long_ago)
        assert hit(session, "fresh", rule, now=utcnow())
        assert not hit(session, "fresh", rule, now=utcnow())
        keys = session.scalar(sa.select(sa.func.count()).select_from(RateLimitHit))
    assert keys == 1


def test_a_window_slides_rather_than_resetting_on_the_hour(engine):
    rule = Rule(limit=4, window=timedelta(minutes=10))
    start = utcnow().replace(minute=9, second=0, microsecond=0)
    with session_scope(engine) as session:
        assert all(hit(session, "k", rule, now=start) for _ in range(4))
        # A minute later a new fixed window has begun; most of the last one still counts.
        assert not hit(session, "k", rule, now=start + timedelta(minutes=1, seconds=1))


def test_two_presses_at_once_confirm_once_and_queue_one_welcome(engine, monkeypatch):
    """Both presses read "pending" before either wrote, and both queued a welcome. The
    first press is held inside its transaction while the second arrives."""
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        person = add_subscriber("zoe@example.com", session=session, status="pending")
    inside, release = threading.Event(), threading.Event()
    real = signup.confirm

    def held_first(*args, **kwargs):
        if not inside.is_set():
            inside.set()
            release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(signup, "confirm", held_first)
    outcomes: list[signup.Confirmation] = []

    def press() -> None:
        outcomes.append(signup.confirm_signup(engine, person.id, ip=""))

    first = threading.Thread(target=press)
    first.start()
    assert inside.wait(5)
    second = threading.Thread(target=press)
    second.start()
    time.sleep(0.3)  # the second press is at the reader's row now, or past it
    release.set()
    first.join(10)
    second.join(10)
    assert sorted(o.value for o in outcomes) == ["already", "confirmed"]
    assert _welcomes(engine) == 1
