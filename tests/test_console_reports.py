"""The console's reports page over HTTP: a send's unique readers and its links, topics, the
list's growth as an SVG chart drawn on the server; for staff only; and in headless
Chromium, the charts render under the console's CSP with no serious accessibility finding."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from tests.conftest import serve_app, sqlite_only
from tests.console_support import Client, cheap_passwords, make_editor  # noqa: F401
from tests.reports_support import LINK_A, LINK_B, tell_a_known_story

pytestmark = pytest.mark.usefixtures("cheap_passwords")


@pytest.fixture
def told(web, engine, sandbox):
    url, settings = web
    return tell_a_known_story(engine, settings, sandbox, url)


@pytest.fixture
def editor(web, engine):
    make_editor(engine)
    client = Client(web[0])
    assert client.sign_in().status == 303
    return client


def _figure(page: str, kind: str) -> str:
    match = re.search(rf'data-kind="{kind}">([\d,]+)', page)
    assert match, f"no {kind} figure"
    return match.group(1)


def test_a_sends_report_page_shows_unique_readers_and_its_links(told, editor):
    answer = editor.call(f"/admin/reports/sends/{told.send_id}")
    assert answer.status == 200
    figures = {
        kind: _figure(answer.body, kind)
        for kind in ("delivered", "opened", "clicked", "bounced", "unsubscribed", "complained")
    }
    assert figures == {
        "delivered": "5",
        "opened": "2",
        "clicked": "2",
        "bounced": "1",
        "unsubscribed": "1",
        "complained": "1",
    }
    assert _figure(answer.body, "machine_opened") == "1"
    rows = re.findall(
        r'<td class="url">([^<]+)</td><td class="num">(\d+)</td><td class="num">(\d+)</td>',
        answer.body,
    )
    assert rows == [(LINK_A.replace("&", "&amp;"), "2", "3"), (LINK_B, "1", "1")]
    assert answer.body.count('<rect class="bar') == 48
    assert "<script" not in answer.body


def test_a_sends_report_says_whose_unsubscribes_it_counts(told, editor):
    """An unsubscribe on our pages names the reader, not the email: staff read the figure
    as this send's own leavers, while it holds readers who left after a later send."""
    answer = editor.call(f"/admin/reports/sends/{told.send_id}")
    assert "counted against the last send handed off to them" in answer.body


def test_the_reports_page_lists_topics_and_draws_the_lists_growth(told, editor):
    answer = editor.call("/admin/reports?since=2020-01-01")
    assert answer.status == 200
    assert re.search(
        r"Energy <span class=\"hint\">\(energy\)</span></th>(<td[^>]*>[^<]*</td>){5}", answer.body
    )
    assert "40.0%" in answer.body
    svg = re.search(r'<svg class="chart".*?</svg>', answer.body, re.S)
    assert svg and svg.group(0).count("<circle") == 12 and "<polyline" in svg.group(0)
    assert f'href="/admin/reports/sends/{told.send_id}"' in answer.body


@sqlite_only
@pytest.mark.parametrize("typed", ["27/11/2026", "2026-02-30", "27 November 2026"])
def test_a_day_it_cannot_read_is_named_by_its_field_and_form_and_kept_in_the_box(editor, typed):
    """27/11/2026 put 90 days ago in the box, the table under it, and only a bare "write
    the day as" above: it read as an answer to what was typed. A longer one was a bare
    "at most 10 characters"."""
    answer = editor.call(f"/admin/reports?since={quote(typed)}")
    assert answer.status == 400, answer.body
    assert f"Sends since &#39;{typed}&#39;: write the day as YYYY-MM-DD, e.g. " in answer.body
    assert "the table shows the last 90 days instead" in answer.body
    assert f'name="since" value="{typed}" aria-invalid="true"' in answer.body


def test_since_year_one_east_of_utc_shows_every_send_not_a_500(settings, engine):
    """Midnight of 0001-01-01 in Tokyo is in year 0 in UTC, which no datetime holds: the
    page answered 500 "Something went wrong"."""
    make_editor(engine)
    with serve_app(settings, NEWSLETTER_TIMEZONE="Asia/Tokyo") as (url, _):
        client = Client(url)
        assert client.sign_in().status == 303
        answer = client.call("/admin/reports?since=0001-01-01")
    assert answer.status == 200, answer.body
    assert 'name="since" value="0001-01-01"' in answer.body


@sqlite_only
@pytest.mark.parametrize(
    "path", ["/admin/reports/sends/999", "/admin/reports/sends/99999999999999999999"]
)
def test_an_unknown_send_is_a_404_page(editor, path):
    answer = editor.call(path)
    assert answer.status in (404, 422) and "Traceback" not in answer.body


@sqlite_only
@pytest.mark.parametrize("path", ["/admin/reports", "/admin/reports/sends/1"])
def test_a_visitor_is_sent_to_sign_in_and_shown_nothing(web, path):
    answer = Client(web[0]).call(path)
    assert answer.status == 303 and answer.location.startswith("/admin/login")


@sqlite_only
def test_the_charts_render_in_chromium_under_the_consoles_policy(told, web, engine):
    from playwright.sync_api import sync_playwright

    from newsletter.devtools.browser import find_chromium
    from tests.browser_support import measure, only_loopback, watch
    from tests.console_support import EDITOR, PASSWORD

    make_editor(engine)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        only_loopback(page)
        console = watch(page)
        page.goto(f"{web[0]}/admin/login")
        page.fill("input[name=email]", EDITOR)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        for path, shapes in (
            (f"/admin/reports/sends/{told.send_id}", "rect.bar"),
            ("/admin/reports", "circle.point"),
        ):
            page.goto(web[0] + path)
            box = page.locator("svg.chart").first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 80, path
            drawn = page.locator(f"svg.chart {shapes}").first.bounding_box()
            assert drawn and drawn["width"] > 0, path
            fill = page.evaluate(
                f"getComputedStyle(document.querySelector('svg.chart {shapes}')).fill"
            )
            assert fill == "rgb(29, 78, 137)", (path, fill)  # reports.css was applied
            findings = measure(page, 1280, console)
            assert findings.csp == [] and findings.axe == [], (path, findings)
        browser.close()
