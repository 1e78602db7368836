"""Every email template as a reader's mail client gets it, measured by the tools mailbox
providers and readers use: Debian's SpamAssassin (local tests only) on the whole MIME
message the outbox transport writes, axe-core and Chromium on its HTML, light and dark.

Each template is rendered with the world's data: a firm name with an ampersand and CJK,
a reader whose name holds quotes and HTML.
"""

from __future__ import annotations

import email
import re
import shutil
import subprocess
import zlib
from datetime import date
from email import policy
from pathlib import Path

import pytest

from newsletter.briefs import parse_brief, parse_brief_file
from newsletter.devtools.browser import chromium
from newsletter.links import Links
from newsletter.providers.base import Batch
from newsletter.providers.outbox import OutboxTransport
from newsletter.render import (
    RenderedEmail,
    render_brief,
    render_confirmation,
    render_digest,
    render_welcome,
)
from subscribers.models import Topic
from tests.browser_support import SCREENSHOTS, measure, watch
from tests.conftest import clean_env, test_settings

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "briefs").iterdir())
TOPICS = [Topic(slug="japan", name="Japan"), Topic(slug="energy", name="Energy & grids")]
TEMPLATES = ("brief", "digest", "confirmation", "welcome")


@pytest.fixture(scope="module")
def settings():
    return test_settings(
        NEWSLETTER_BASE_URL="https://news.example.com",
        NEWSLETTER_SECRET_KEY="test-secret-key-that-is-long-enough-1234",
        NEWSLETTER_FROM="Lindqvist & Tanaka <briefs@lindqvist-tanaka.example>",
        NEWSLETTER_FIRM_NAME="Lindqvist & Tanaka 東京",
        NEWSLETTER_FOOTER_LINE="Independent analysis since 1998.",
        NEWSLETTER_POSTAL_ADDRESS="Lindqvist & Tanaka AB, Strandvägen 7, 114 56 Stockholm",
    )


def _briefs():
    briefs = [parse_brief_file(path).to_brief() for path in EXAMPLES]
    for number, brief in enumerate(briefs, 1):
        brief.id = number
    return briefs


def rendered(kind: str, settings) -> tuple[RenderedEmail, bool]:
    """A template's email, and whether it is the confirmation (its own links)."""
    briefs = _briefs()
    if kind == "brief":
        return render_brief(briefs[1], TOPICS, settings), False
    if kind == "digest":
        return render_digest(
            briefs, TOPICS, settings, cadence="weekly", on=date(2026, 6, 15)
        ), False
    if kind == "confirmation":
        return render_confirmation(TOPICS, settings), True
    return render_welcome(TOPICS, "weekly", settings), False


def full_message(kind: str, settings, folder: Path) -> email.message.EmailMessage:
    """The message exactly as the outbox transport writes it to disk for one reader."""
    email_, confirmation = rendered(kind, settings)
    recipient = Links.from_settings(settings).recipient(
        delivery_id=7,
        subscriber_id=42,
        email="mina.tanaka@example.org",
        name='Mina "M." <Tanaka>',
        confirm=confirmation,
        one_click=not confirmation,
    )
    batch = Batch(
        send_id=3,
        subject=email_.subject,
        html=email_.html,
        text=email_.text,
        recipients=[recipient],
        categories=[kind],
    )
    outbox = OutboxTransport(directory=folder, from_header=settings.NEWSLETTER_FROM)
    outbox.send_batch(batch)
    data = outbox.path_for(batch, 7).read_bytes()
    return email.message_from_bytes(data, policy=policy.default)  # type: ignore[return-value]


def _html(message) -> str:
    return message.get_body(("html",)).get_content()


def _text(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


# --- SpamAssassin ----------------------------------------------------------------------


def spamassassin(raw: bytes, home: Path) -> tuple[float, list[str]]:
    """Debian's SpamAssassin on one message, local tests only (-L: no network, no DNS
    lists), no Bayes and no auto-learning: its score and the rules that scored."""
    program = shutil.which("spamassassin")
    if program is None:
        pytest.fail("Debian's spamassassin is not installed (apt-get install spamassassin)")
    report = subprocess.run(
        [program, "-L", "-t", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"],
        input=raw,
        capture_output=True,
        check=True,
        env=clean_env(HOME=str(home)),
        timeout=120,
    ).stdout.decode("utf-8", "replace")
    score = float(re.search(r"X-Spam-Status: \w+, score=(-?[\d.]+)", report).group(1))
    rules = re.findall(r"^\s*(-?\d+\.\d+) (\w+)", report.split("Content analysis details")[1], re.M)
    return score, [f"{points} {name}" for points, name in rules if float(points) != 0]


@pytest.mark.parametrize("kind", TEMPLATES)
def test_spamassassin_scores_every_template_zero(kind, settings, tmp_path):
    message = full_message(kind, settings, tmp_path)
    score, rules = spamassassin(message.as_bytes(), tmp_path)
    assert (score, rules) == (0.0, [])


def test_spamassassin_scores_hidden_low_contrast_text_above_zero(settings, tmp_path):
    """The measurement can fail: the preheader as MJML's <mj-preview> writes it (white,
    1 px) scores, as it did on every email before."""
    message = full_message("brief", settings, tmp_path)
    html = _html(message).replace(
        'class="nl-preheader" style="',
        'class="nl-preheader" style="font-size:1px;color:#ffffff;line-height:1px;opacity:0;',
    )
    message.get_body(("html",)).set_content(html, subtype="html")
    score, rules = spamassassin(message.as_bytes(), tmp_path)
    assert score > 0 and any("HTML_FONT_LOW_CONTRAST" in rule for rule in rules)


# --- In Chromium: light and dark, phone and desktop ------------------------------------


@pytest.fixture(scope="module")
def browser():
    with chromium() as opened:
        yield opened


def _open(browser, html: str, width: int, scheme: str):
    page = browser._browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    console = watch(page)
    page.route("**/*", lambda route: route.abort())  # images and fonts stay unfetched
    page.set_content(html, wait_until="load")
    return page, console


@pytest.mark.parametrize("kind", TEMPLATES)
def test_every_email_passes_axe_and_fits_a_phone_in_light_and_dark(
    kind, settings, tmp_path, browser
):
    html = _html(full_message(kind, settings, tmp_path))
    problems = []
    for width in (375, 640):
        for scheme in ("light", "dark"):
            page, console = _open(browser, html, width, scheme)
            try:
                found = measure(page, width, console)
                folder = SCREENSHOTS / "emails"
                folder.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(folder / f"{kind}-{width}-{scheme}.png"), full_page=True)
            finally:
                page.close()
            where = f"{kind} at {width} px, {scheme}"
            problems += [f"{where}: {finding}" for finding in found.axe]
            if found.scrolls_sideways:
                problems.append(f"{where}: {found.scroll_width} px wide")
    assert problems == []


# Runs in the page: words in table cells that a line break splits in two.
_SPLIT_WORDS = """
() => {
  const split = [];
  for (const cell of document.querySelectorAll('th, td')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
      const node = walker.currentNode;
      for (const match of node.textContent.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (tops.size > 1) split.push(match[0]);
      }
    }
  }
  return split;
}
"""


def test_table_headers_do_not_break_mid_word_on_a_phone(settings, tmp_path, browser):
    text = (
        "---\ntitle: Tables\ndate: 2026-06-10\n---\n\n"
        "| Indicator | Consumption | Reservoirs | Interconnectors | Unemployment |\n"
        "|---|---|---|---|---|\n| 5 kg bag | 1 | 2 | 3 | 4 |\n"
    )
    html = render_brief(parse_brief(text).to_brief(), [], settings).html
    page, _ = _open(browser, html, 375, "light")
    try:
        assert page.evaluate(_SPLIT_WORDS) == []
    finally:
        page.close()


def _png(width: int, height: int) -> str:
    """A real PNG of `width` × `height` grey pixels, as a data: URL (no network)."""
    import base64
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x99" * width for _ in range(height))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_a_wide_chart_keeps_the_email_phone_wide_without_the_style_sheet(
    settings, tmp_path, browser
):
    """Outlook for Windows and Gmail with other accounts drop <style>: the image's own
    width attribute and inline max-width must hold it."""
    text = f"---\ntitle: Chart\ndate: 2026-06-10\n---\n\n![A wide chart]({_png(1200, 40)})\n"
    html = render_brief(parse_brief(text).to_brief(), [], settings).html
    assert re.search(r'<img [^>]*width="592" style="[^"]*max-width:592px', html)
    without_styles = re.sub(r"<style[^>]*>.*?</style>", "", html, flags=re.S)
    page, _ = _open(browser, without_styles, 375, "light")
    try:
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert page.evaluate("document.querySelector('img[alt=\"A wide chart\"]').width") <= 375
    finally:
        page.close()


def test_a_brief_in_japanese_renders_with_a_cjk_font_not_boxes(settings, browser):
    """Previews need Debian's fonts-noto-cjk (.ci/run installs it): Chromium names the
    font it drew the text with."""
    text = "---\ntitle: 東京の米価\ndate: 2026-06-10\n---\n\n東京の米価は高いままである。\n"
    html = render_brief(parse_brief(text).to_brief(), [], settings).html
    page, _ = _open(browser, html, 375, "light")
    try:
        session = page.context.new_cdp_session(page)
        session.send("DOM.enable")
        session.send("CSS.enable")
        root = session.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        node = session.send("DOM.querySelector", {"nodeId": root, "selector": "h1"})["nodeId"]
        fonts = session.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        assert any("CJK" in font["familyName"] for font in fonts), fonts
    finally:
        page.close()


# --- The parts of the message ------------------------------------------------------------


@pytest.mark.parametrize("kind", TEMPLATES)
def test_every_email_declares_its_colour_schemes_and_hides_its_preheader_without_tricks(
    kind, settings, tmp_path
):
    html = _html(full_message(kind, settings, tmp_path))
    assert '<meta name="color-scheme" content="light dark"' in html
    preheader = re.search(r'<div class="nl-preheader" style="([^"]*)">(.*?)</div>', html, re.S)
    assert preheader is not None
    style, words = preheader.groups()
    assert "display:none" in style and "color" not in style and "font-size" not in style
    # Padded, so the inbox snippet stops after the preheader instead of reading on.
    assert words.count("&zwnj;") >= 80


@pytest.mark.parametrize("kind", ["brief", "digest", "welcome"])
def test_the_email_shows_the_firms_masthead_and_address_in_both_parts(kind, settings, tmp_path):
    message = full_message(kind, settings, tmp_path)
    html, text = _html(message), _text(message)
    assert "Lindqvist &amp; Tanaka 東京" in html and "Lindqvist & Tanaka 東京" in text
    assert "Independent analysis since 1998." in html + text
    assert "Strandvägen 7" in html and "Strandvägen 7" in text


def test_the_brief_email_carries_the_authors_byline_and_the_briefs_topics(settings, tmp_path):
    message = full_message("brief", settings, tmp_path)
    for part in (_html(message), _text(message)):
        assert "By Kenji Watanabe" in part
        assert "Japan, Energy" in part.replace("&amp;", "&")


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("brief", "/archive/2026-06-10-rice-prices-and-the-summer-cabinet-reshuffle"),
        ("digest", "/archive"),
        ("confirmation", "/archive"),
        ("welcome", "/archive"),
    ],
)
def test_view_in_browser_opens_that_emails_own_web_version(kind, path, settings, tmp_path):
    message = full_message(kind, settings, tmp_path)
    html, text = _html(message), _text(message)
    link = re.search(r'<a href="([^"]+)"[^>]*>View in browser</a>', html).group(1)
    assert link == f"https://news.example.com{path}"
    assert f"View in your browser:\n{link}\n" in text


def test_a_signatures_heading_marks_do_not_make_a_page_heading(settings):
    brief = parse_brief_file(EXAMPLES[0]).to_brief()  # "## **Mara Lindqvist**"
    email_ = render_brief(brief, [], settings)
    assert not re.search(r"<h\d[^>]*>(<strong>)?Mara Lindqvist", email_.html)
    assert "<p><strong>Mara Lindqvist</strong></p>" in email_.html
    assert "\n-- \n*Mara Lindqvist*\nSenior Analyst, Energy\n" in email_.text
