"""A member of staff in headless Chromium (Debian's `chromium`, driven by Playwright) finds
a reader, opens their history, edits their topics, resubscribes them, and imports a CSV
with bad rows and reads the report line by line before applying it. axe-core's serious
findings and CSP violations are checked on the list and the reader's page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.devtools.browser import find_chromium
from newsletter.models import MailKind, TransactionalMail
from newsletter.providers.events import EventType
from subscribers.models import Subscriber, utcnow
from subscribers.roster import add_subscriber, followed_topics, unsubscribe
from tests.browser_support import measure, only_loopback, watch
from tests.console_support import (  # noqa: F401 - a fixture
    EDITOR,
    PASSWORD,
    cheap_passwords,
    make_editor,
)
from tests.readers_support import event, food_topics, send_brief

pytestmark = pytest.mark.usefixtures("cheap_passwords")

CSV = (
    "email,name,topics,cadence,timezone\n"
    'new@example.com,"Doe, Jane",food,,\n'
    "not-an-address,Bad,food,,\n"
    "ok@example.com,OK,food,weekly,Mars/Olympus\n"
)


@pytest.fixture
def browser_page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        only_loopback(page)
        yield page
        browser.close()


def _uma(engine) -> Subscriber:
    with session_scope(engine) as session:
        return session.exec(select(Subscriber).where(Subscriber.email == "uma@example.com")).one()


def _clean(page, console: list[str]) -> None:
    findings = measure(page, 1400, console)
    assert (findings.axe, findings.csp) == ([], []), page.url


def test_staff_find_a_reader_read_their_history_edit_resubscribe_and_import_a_list(
    web, engine, browser_page, tmp_path
):
    url, settings = web
    page = browser_page
    console = watch(page)
    food_topics(engine)
    with session_scope(engine) as session:
        add_subscriber("ann@example.com", session=session, name="Ann", topics=["food"])
        add_subscriber("uma@example.com", session=session, name="Uma, 山田 🚀", topics=["food"])
    send_id = send_brief(engine, settings, "Rice prices")
    event(engine, send_id, "uma@example.com", EventType.OPENED, utcnow() - timedelta(hours=2))
    with session_scope(engine) as session:
        unsubscribe("uma@example.com", session=session)
    make_editor(engine)
    csv_file = tmp_path / "list.csv"
    csv_file.write_text(CSV, encoding="utf-8")

    page.goto(f"{url}/admin/subscribers")
    page.get_by_label("Email").fill(EDITOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.locator("h1")).to_have_text("Subscribers")

    # Finds her by part of her name.
    page.get_by_label("Address or name").fill("山田")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status")).to_contain_text("1 reader match")
    _clean(page, console)
    page.get_by_role("link", name="uma@example.com").click()

    # Her history: the unsubscribe, the brief she got, and her open.
    expect(page.locator("h1")).to_have_text("uma@example.com")
    history = page.locator("section", has=page.get_by_role("heading", name="Status history"))
    expect(history.get_by_role("cell", name="unsubscribed", exact=True)).to_be_visible()
    deliveries = page.locator("section", has=page.get_by_role("heading", name="Deliveries (1)"))
    expect(deliveries.get_by_role("cell", name="Rice prices")).to_be_visible()
    expect(deliveries.locator("ul.events")).to_contain_text("opened")
    _clean(page, console)

    # Edits her topics.
    page.get_by_label("Energy").check()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".notice")).to_have_text("Saved.")
    with session_scope(engine) as session:
        assert followed_topics(_uma(engine), session=session) == ["energy", "food"]

    # Resubscribes her: she is sent a confirmation, and mail starts when she confirms.
    page.get_by_role("button", name="Resubscribe (sends a confirmation)").click()
    expect(page.locator(".notice")).to_contain_text("a confirmation email is queued")
    expect(page.locator(".meta .status")).to_have_text("pending")
    with session_scope(engine) as session:
        mail = list(session.exec(select(TransactionalMail)))
    assert [(m.kind, m.subscriber_id) for m in mail] == [(MailKind.CONFIRMATION, _uma(engine).id)]

    # Imports a list with bad rows: the dry run says what each line would do.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Subscribers").click()
    page.get_by_role("link", name="Import a CSV").click()
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Check the file").click()
    expect(
        page.get_by_role("heading", name="What list.csv would do (nothing changed yet)")
    ).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(
        "1 added, 0 updated, 0 unchanged, 2 skipped, 0 merged."
    )
    bad = page.locator("tr.outcome-skipped")
    expect(bad.nth(0)).to_contain_text("3")
    expect(bad.nth(0)).to_contain_text("not-an-address")
    expect(bad.nth(1)).to_contain_text("ok@example.com")
    expect(bad.nth(1)).to_contain_text("timezone")
    _clean(page, console)
    with session_scope(engine) as session:
        assert (
            session.exec(select(Subscriber).where(Subscriber.email == "new@example.com")).first()
            is None
        )

    page.get_by_role("button", name="Apply: import the good lines").click()
    expect(page.get_by_role("heading", name="Imported list.csv")).to_be_visible()
    with session_scope(engine) as session:
        added = session.exec(select(Subscriber).where(Subscriber.email == "new@example.com")).one()
    assert added.name == "Doe, Jane"
