"""A new reader, in headless Chromium (Debian's `chromium`, driven by Playwright): subscribes
through the form, follows the confirmation link from the email the sandbox captured, changes
topics in the preference centre, and unsubscribes."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from newsletter.db import session_scope
from newsletter.devtools.browser import find_chromium
from subscribers.roster import followed_topics, get_subscriber
from subscribers.topics import add_topic
from tests.workers_support import deliver_mail


@pytest.fixture
def page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser.new_page(viewport={"width": 375, "height": 800})
        browser.close()


def _reader(engine):
    with session_scope(engine) as session:
        person = get_subscriber("mina@example.com", session=session)
        return person.status, followed_topics(person, session=session)


def _link(message, path):
    return next(word for word in message.text.split() if f"/{path}/" in word)


def test_a_new_reader_subscribes_confirms_changes_topics_and_leaves(web, engine, sandbox, page):
    url, settings = web
    with session_scope(engine) as session:
        add_topic("energy", "Energy", session=session)
        add_topic("japan", "Japan", session=session)

    page.goto(f"{url}/subscribe")
    page.fill("#email", "mina@example.com")
    page.fill("#name", "Mina")
    page.check("input[name=topics][value=energy]")
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "Check your email"

    deliver_mail(engine, settings)  # the worker's next tick
    assert _reader(engine) == ("pending", ["energy"])
    [confirmation] = sandbox.messages()
    page.goto(_link(confirmation, "confirm"))
    assert page.locator("h1").inner_text() == "Confirm your subscription"
    assert _reader(engine)[0] == "pending"  # opening the link is not confirming
    page.click("button[type=submit]")
    assert page.locator("h1").inner_text() == "You are subscribed"
    assert _reader(engine)[0] == "active"

    deliver_mail(engine, settings)
    welcome = sandbox.messages()[-1]
    page.goto(_link(welcome, "preferences"))
    page.uncheck("input[name=topics][value=energy]")
    page.check("input[name=topics][value=japan]")
    page.click("button[value=save]")
    assert page.locator(".saved").inner_text() == "Saved."
    assert _reader(engine) == ("active", ["japan"])

    page.click("button[value=unsubscribe]")
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    assert _reader(engine)[0] == "unsubscribed"
