"""Every example brief, rendered as a subscriber gets it and opened in headless Chromium
(Debian's `chromium`, through Playwright) on a 375-px-wide phone screen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.briefs import parse_brief_file
from newsletter.devtools.browser import chromium
from newsletter.devtools.preview import sample_html
from newsletter.render import render_brief
from subscribers.models import Topic
from tests.conftest import test_settings

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "briefs").iterdir())
TOKEN = re.compile(r"^%%nl:[a-z_]+:html%%$")


@pytest.fixture(scope="module")
def browser():
    with chromium() as opened:
        yield opened


@pytest.fixture(scope="module")
def settings():
    return test_settings(NEWSLETTER_BASE_URL="https://news.example.com")


def _rendered(path, settings):
    return render_brief(parse_brief_file(path).to_brief(), [Topic(slug="t", name="T")], settings)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_email_fits_a_phone_without_sideways_scrolling(browser, settings, path):
    layout = browser.layout(sample_html(_rendered(path, settings), settings), 375)
    assert layout.scroll_width <= 375, f"{layout.scroll_width} px wide"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_no_visible_text_is_smaller_than_14_px(browser, settings, path):
    layout = browser.layout(sample_html(_rendered(path, settings), settings), 375)
    assert layout.smallest_font_px >= 14, layout.smallest_text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_link_is_absolute_https_or_a_per_reader_token(browser, settings, path):
    layout = browser.layout(_rendered(path, settings).html, 375)
    assert layout.links
    assert [
        link for link in layout.links if not (link.startswith("https://") or TOKEN.match(link))
    ] == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_image_has_alt_text(browser, settings, path):
    layout = browser.layout(sample_html(_rendered(path, settings), settings), 375)
    assert layout.images_without_alt == []


def test_the_checks_notice_a_page_too_wide_for_a_phone(browser):
    layout = browser.layout('<div style="width:600px;font-size:16px">wide</div>', 375)
    assert layout.scrolls_sideways


def test_the_checks_notice_small_text_and_missing_alt(browser):
    layout = browser.layout('<p style="font-size:11px">fine print</p><img src="x.png">', 375)
    assert layout.smallest_font_px == 11 and layout.images_without_alt == ["x.png"]
