"""Every page a reader can reach, opened in headless Chromium (Debian's `chromium`, through
Playwright) from the real app over HTTP, at a phone's width and a desktop's, in light and
dark mode: no sideways scrolling, no Content-Security-Policy violation, no serious axe-core
finding, the firm's name on screen. Screenshots go to `var/screenshots/pages/`.

The look does not depend on the database, so these run on SQLite only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from newsletter.briefs import add_brief, parse_brief
from newsletter.db import session_scope
from newsletter.devtools.browser import find_chromium
from newsletter.links import Links
from newsletter.providers.sendgrid import SendGridTransport
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from subscribers.models import SubscriberStatus
from subscribers.roster import add_subscriber
from subscribers.topics import add_topic
from tests.browser_support import SCREENSHOTS, Findings, measure, only_loopback, watch
from tests.conftest import serve_app

EXAMPLES = Path(__file__).parent.parent / "examples" / "briefs"
FIRM = "Lindqvist & Tanaka <Analysis> 東京"
WIDTHS = (375, 1280)
SCHEMES = ("light", "dark")
LONG_ADDRESS = "a.very.long.address.that.keeps.going.for.a.while@subdomain.example-analysis.com"
BRIEF = """---
title: "Rice, reserves and the 2026 reshuffle: what 高市 said"
date: 2026-06-10
topics: [japan, food]
author: Kenji Watanabe
---

### Key takeaways

- Retail rice prices remain **40% above** their 2024 level.
- The agriculture ministry is likely to change hands in July.

---

Few commodities carry the political weight of rice. The series is in
[rice_price_index_2026.csv](https://data.example.com/rice_price_index_2026.csv).[^1]

| Indicator | May 2024 | May 2026 |
|---|---|---|
| 5 kg bag, national average | ¥2,100 | ¥2,950 |
| Reserve stock (tonnes) | 910,000 | 310,000 |

![Bar chart of retail rice prices](https://charts.example.com/rice.png)

![A chart from elsewhere](https://elsewhere.example.net/chart.png)

> "You can release a warehouse once. You cannot release it every quarter."

東京の米価は、二〇二四年の水準を大きく上回ったままである。

[^1]: Ministry of Agriculture survey of 1,000 supermarkets.

---

## **Kenji Watanabe**

Analyst, Japan Politics
"""


@pytest.fixture(params=["sqlite"])
def db_url(request, tmp_path, sqlite_template):
    path = tmp_path / "test.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={
            "NEWSLETTER_FIRM_NAME": FIRM,
            "NEWSLETTER_FOOTER_LINE": "Independent analysis since 1998.",
            "NEWSLETTER_ACCENT_COLOR": "#0a8f3c",
            "NEWSLETTER_IMAGE_ORIGINS": "https://charts.example.com",
            "NEWSLETTER_LOGO_URL": "https://cdn.lindqvist.example/logo.png",
        }
    )


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        opened = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        yield opened
        opened.close()


@pytest.fixture
def site(web, engine):
    """The running app with a published brief and readers in each state; page name →
    how to reach it (a URL, or a URL and the steps that lead to the page)."""
    url, settings = web
    links = Links.from_settings(settings)
    with session_scope(engine) as session:
        add_topic("japan", "Japan", session=session)
        add_topic("food", "Food security", session=session)
        reader = add_subscriber(LONG_ADDRESS, session=session, name="Ann", topics=["japan"])
        leaving = add_subscriber("leaving@example.com", session=session, topics=["food"])
        pending = add_subscriber(
            "new@example.com", session=session, status=SubscriberStatus.PENDING
        )
        slug = add_brief(parse_brief(BRIEF), session=session).brief.slug
        create_send(slug, session=session, settings=settings)
    Dispatcher(engine, settings, SendGridTransport.from_settings(settings)).work_due()
    confirm = links.confirm_url(pending.id)
    return {
        "subscribe": f"{url}/subscribe",
        "check-email": f"{url}/subscribe",
        "confirm": confirm,
        "confirmed": confirm,
        "preferences": links.preferences_url(links.reader_token(reader.id)),
        "unsubscribe": links.unsubscribe_url(links.reader_token(leaving.id)),
        "link-invalid": f"{url}/preferences/not-a-real-token",
        "not-found": f"{url}/archive/no-such-brief",
        "archive": f"{url}/archive",
        "brief": f"{url}/archive/{slug}",
    }


_SIGNUPS = iter(range(10_000))


def _arrive(page, name: str, address: str) -> None:
    page.goto(address)
    if name == "check-email":
        page.fill("#email", f"reader{next(_SIGNUPS)}@example.com")
        page.check("input[name=topics][value=japan]")
        page.click("button[type=submit]")
        page.wait_for_load_state()
    elif name == "confirmed" and page.locator("main form button").count():
        # The confirm page asks for a click (link scanners only GET); press it.
        page.click("main form button")
        page.wait_for_load_state()


def _open(browser, address: str, name: str, width: int, scheme: str) -> Findings:
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    try:
        console = watch(page)
        only_loopback(page)
        _arrive(page, name, address)
        findings = measure(page, width, console)
        folder = SCREENSHOTS / "pages"
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}-{width}-{scheme}.png"), full_page=True)
        return findings
    finally:
        context.close()


# Page → words that show it is that page (and not, say, an error in its place).
PAGES = {
    "subscribe": "Subscribe",
    "check-email": "Check your email",
    "confirm": "subscri",  # "Confirm your subscription", or "You are subscribed"
    "confirmed": "You are subscribed",
    "preferences": LONG_ADDRESS,
    "unsubscribe": "leaving@example.com",
    "link-invalid": "This link does not work",
    "not-found": "Page not found",
    "archive": "Rice, reserves and the 2026 reshuffle",
    "brief": "東京の米価は",
}


@pytest.mark.parametrize("name", PAGES)
def test_the_page_fits_obeys_its_csp_passes_axe_and_shows_the_firm(browser, site, name):
    problems = []
    for width in WIDTHS:
        for scheme in SCHEMES:
            found = _open(browser, site[name], name, width, scheme)
            where = f"{name} at {width} px, {scheme}"
            if found.scrolls_sideways:
                problems.append(f"{where}: {found.scroll_width} px wide")
            problems += [f"{where}: CSP: {message}" for message in found.csp]
            problems += [f"{where}: axe: {finding}" for finding in found.axe]
            if FIRM not in found.text:
                problems.append(f"{where}: the firm's name is not on screen")
            if PAGES[name] not in found.text:
                problems.append(f"{where}: not the page: {found.text[:300]!r}")
    assert problems == []


def test_the_checks_catch_a_page_that_breaks_its_csp_has_a_nameless_link_and_is_too_wide(
    browser, settings, engine, tmp_path
):
    """The measurement can fail: the not-found page, planted with an inline style, a link
    with no name, and a line wider than a phone, is caught on all three counts."""
    templates = tmp_path / "templates"
    shutil.copytree(settings.NEWSLETTER_TEMPLATES_DIR, templates)
    bad = templates / "web" / "not_found.html"
    bad.write_text(
        bad.read_text().replace(
            "<h1>Page not found</h1>",
            '<h1 style="color:red">Page not found</h1><pre>' + "wide " * 80 + "</pre>"
            '<p><a href="/x" class="button" aria-label="">   </a></p>',
        )
    )
    with serve_app(settings, NEWSLETTER_TEMPLATES_DIR=str(templates)) as (url, _):
        found = _open(browser, f"{url}/archive/nothing", "planted-bad", 375, "light")
    assert any("style-src" in message for message in found.csp)
    assert any("link-name" in finding for finding in found.axe)
    assert found.scrolls_sideways
