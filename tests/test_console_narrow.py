"""The console on a phone (375 px, in headless Chromium driven by Playwright): no page
scrolls sideways. Staff check a send from their phone; the sends list, the audit log and
the reports once pushed the whole page two or three screens wide. A wide table scrolls in
its own box instead, named and reachable from the keyboard (axe-core's serious findings
are checked on each page)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import sync_playwright
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.devtools.browser import find_chromium
from newsletter.models import Send
from newsletter.providers.events import EventType
from subscribers.models import Subscriber, utcnow
from subscribers.roster import add_subscriber
from tests.browser_support import measure, only_loopback, watch
from tests.console_support import (  # noqa: F401 - a fixture
    EDITOR,
    PASSWORD,
    cheap_passwords,
    make_editor,
)
from tests.readers_support import event, food_topics, send_brief

pytestmark = pytest.mark.usefixtures("cheap_passwords")

PHONE = 375
LONG_ADDRESS = "dae-jung.park.head-of-research.north-asia@analysis-desk.example.com"


@pytest.fixture
def phone():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": PHONE, "height": 800})
        only_loopback(page)
        yield page
        browser.close()


def test_no_console_page_scrolls_sideways_on_a_phone(web, engine, phone):
    url, settings = web
    food_topics(engine)
    with session_scope(engine) as session:
        add_subscriber(LONG_ADDRESS, session=session, name="Park Dae-jung, 박대중", topics=["food"])
    send_id = send_brief(engine, settings, "Rice prices rise a second time, and why Tokyo waits")
    event(engine, send_id, LONG_ADDRESS, EventType.OPENED, utcnow() - timedelta(hours=1))
    make_editor(engine)
    with session_scope(engine) as session:
        brief_id = session.get_one(Send, send_id).brief_id
        reader_id = session.exec(select(Subscriber.id)).one()
    console = watch(phone)
    phone.goto(f"{url}/admin/sends")
    phone.get_by_label("Email").fill(EDITOR)
    phone.get_by_label("Password").fill(PASSWORD)
    phone.get_by_label("Password").press("Enter")
    phone.wait_for_url(f"{url}/admin/sends")
    pages = [
        "/admin",
        "/admin/briefs",
        f"/admin/briefs/{brief_id}",
        "/admin/briefs/new",
        "/admin/sends",
        f"/admin/sends/{send_id}",
        "/admin/subscribers",
        f"/admin/subscribers/{reader_id}",
        "/admin/subscribers/import",
        "/admin/topics",
        "/admin/reports",
        f"/admin/reports/sends/{send_id}",
        "/admin/audit",
    ]
    wide = {}
    for path in pages:
        phone.goto(f"{url}{path}")
        findings = measure(phone, PHONE, console)
        assert (findings.axe, findings.csp) == ([], []), path
        if findings.scrolls_sideways:
            wide[path] = findings.scroll_width
    assert wide == {}
