"""A new member of staff in headless Chromium (Debian's `chromium`, driven by Playwright):
signs in, uploads a brief, previews it at both widths and in dark mode, test-sends it,
schedules it, watches a real worker process finish it through the sandbox on the sends
page, and finds it in the archive. Keyboard and screen-reader basics are checked on the
way: a skip link first in the tab order, a label for every field, one main landmark."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from playwright.sync_api import expect, sync_playwright

from newsletter.briefs import add_brief, parse_brief
from newsletter.db import session_scope
from newsletter.devtools.browser import find_chromium
from newsletter.sending.create import create_send
from subscribers.models import utcnow
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.conftest import sqlite_only
from tests.console_support import (  # noqa: F401 - a fixture
    EDITOR,
    PASSWORD,
    cheap_passwords,
    make_editor,
)
from tests.workers_support import deliver_mail, worker, worker_log

pytestmark = pytest.mark.usefixtures("cheap_passwords")

BRIEF = """\
---
title: "Rice prices: a second rise, and why Tokyo waits"
date: 2026-06-10
topics: [food]
author: Aiko Tanaka
---

### Key takeaways

- Retail rice rose 4% in May, the second rise this year.
- The ministry is holding back its reserve until the harvest.

Wholesale prices have climbed since March. Dear %%reader%%, this is a brief.
"""

# Every field has a name a screen reader can say; one main landmark; a skip link.
_A11Y = """
() => {
  const unlabelled = [...document.querySelectorAll('input, select, textarea')]
    .filter(el => el.type !== 'hidden')
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map(el => el.name || el.id);
  return {unlabelled, mains: document.querySelectorAll('main').length};
}
"""


@pytest.fixture
def browser_page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
        browser.close()


def _accessible(page) -> None:
    found = page.evaluate(_A11Y)
    assert found == {"unlabelled": [], "mains": 1}, page.url


def test_a_new_editor_writes_previews_tests_schedules_and_watches_a_brief_go_out(
    web, engine, db_url, sandbox, browser_page, tmp_path
):
    url, settings = web
    page = browser_page
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        add_subscriber("ann@example.com", session=session, name="Ann", topics=["food"])
        add_subscriber("dan@example.com", session=session, topics=["food"], cadence="daily")
    make_editor(engine)
    brief_file = tmp_path / "rice.md"
    brief_file.write_text(BRIEF, encoding="utf-8")

    # Signs in: a visitor is sent to the sign-in form, with the keyboard.
    page.goto(f"{url}/admin/briefs")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    _accessible(page)
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.locator("h1")).to_have_text("Briefs")
    assert page.url == f"{url}/admin/briefs"

    # Uploads a brief.
    page.get_by_role("link", name="New brief").click()
    page.wait_for_url(f"{url}/admin/briefs/new")  # the click only starts the navigation
    _accessible(page)
    page.get_by_label("Brief file (up to 512 KB)").set_input_files(str(brief_file))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("h1")).to_have_text("Rice prices: a second rise, and why Tokyo waits")
    expect(page.get_by_role("status")).to_have_text("Saved.")
    _accessible(page)

    # Previews it at both widths, with Ann's values, then in dark mode.
    page.get_by_label("As the reader with this address").fill("ann@example.com")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**reader=ann%40example.com")
    expect(page.get_by_text("Shown as Ann <ann@example.com>")).to_be_visible()
    for width in (375, 640):
        frame = page.frame_locator(f"iframe.w{width}")
        expect(frame.locator("li", has_text="Retail rice rose 4% in May")).to_be_visible()
        box = page.locator(f"iframe.w{width}").bounding_box()
        assert box is not None and abs(box["width"] - (width + 2)) <= 1
    assert "You receive this email as ann@example.com" in page.locator("pre.text-part").inner_text()
    light = (
        page.frame_locator("iframe.w640")
        .locator("body")
        .evaluate("b => getComputedStyle(b).backgroundColor")
    )
    page.get_by_label("Dark mode").check()
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**dark=1")
    page.wait_for_load_state()
    dark = (
        page.frame_locator("iframe.w640")
        .locator("body")
        .evaluate("b => getComputedStyle(b).backgroundColor")
    )
    assert light != dark and dark == "rgb(17, 19, 24)"

    # Test-sends it: queued; the worker's next tick sends it.
    page.get_by_role("button", name="Send test copy").focus()  # with the keyboard
    page.keyboard.press("Enter")
    page.wait_for_url("**notice=test_queued")
    expect(page.get_by_role("status")).to_contain_text("Test copy queued")
    deliver_mail(engine, settings)
    [copy] = sandbox.messages()
    assert copy.to == [EDITOR] and copy.subject.startswith("[TEST]")
    page.reload()
    expect(page.locator(".test-copies")).to_contain_text("sent")

    # Schedules it: the confirm step says who it reaches.
    page.get_by_role("button", name="Next: check who it reaches").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/schedule")
    expect(page.locator(".reach")).to_have_text("It reaches 1 reader now and 1 through digests.")
    page.get_by_role("button", name="Schedule it").click()
    expect(page.locator("h1")).to_contain_text("Send 1:")

    # Watches it finish: a real worker process, the page polling its progress.
    process = worker(db_url, sandbox.url, tmp_path, batch=100, threads=1)
    try:
        expect(page.locator('[data-field="status"]')).to_have_text("finished", timeout=30_000)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, worker_log(process)
    expect(page.locator('[data-field="progress"]')).to_contain_text("1 of 1 settled (1 sent")
    assert sorted(a for m in sandbox.messages() for a in m.to) == ["ann@example.com", EDITOR]

    # Finds it in the archive, and in the audit log.
    page.goto(f"{url}/archive")
    page.get_by_role("link", name="Rice prices: a second rise, and why Tokyo waits").click()
    expect(page.locator("h1")).to_have_text("Rice prices: a second rise, and why Tokyo waits")
    page.goto(f"{url}/admin/audit")
    for action in ("Signed in", "Added a brief", "Sent a test copy", "Scheduled a brief"):
        expect(page.get_by_role("cell", name=action, exact=True)).to_be_visible()


@sqlite_only
def test_cancelling_a_send_in_the_browser_needs_the_box_ticked(web, engine, browser_page):
    """One click cancelled a send for good; the browser now holds the form until staff
    tick "Yes, cancel it"."""
    url, settings = web
    with session_scope(engine) as session:
        add_topic("food", "Food", session=session)
        add_subscriber("ann@example.com", session=session, topics=["food"])
        slug = add_brief(parse_brief(BRIEF), session=session).brief.slug
        create_send(slug, session=session, settings=settings, when=utcnow() + timedelta(days=1))
    make_editor(engine)
    page = browser_page
    page.goto(f"{url}/admin/sends/1")
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(f"{url}/admin/sends/1")
    page.get_by_role("button", name="Cancel the send").click()
    expect(page.locator("[data-field=status]")).to_have_text("scheduled")
    page.get_by_label("Yes, cancel it (it cannot be resumed)").check()
    page.get_by_role("button", name="Cancel the send").click()
    page.wait_for_url("**notice=cancelled")
    expect(page.locator("[data-field=status]")).to_have_text("cancelled")
