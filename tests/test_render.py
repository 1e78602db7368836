"""Rendering: one render per brief, tokens escaped per part, template errors named."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from newsletter.briefs import parse_brief, parse_brief_file
from newsletter.errors import TemplateError
from newsletter.fields import fill, recipient_values, token, tokens_in
from newsletter.links import Links
from newsletter.models import Brief
from newsletter.render import GMAIL_CLIP_BYTES, render_brief, render_web, render_welcome
from newsletter.render_markdown import markdown_to_html, markdown_to_text
from subscribers.models import Topic
from tests.conftest import test_settings

FIXTURES = Path(__file__).parent / "fixtures"


def _brief(name: str = "firm-layout.txt") -> Brief:
    return parse_brief_file(FIXTURES / name).to_brief()


@pytest.fixture
def settings():
    return test_settings(
        NEWSLETTER_BASE_URL="https://news.example.com",
        NEWSLETTER_POSTAL_ADDRESS="Example Analysis LLC, 9 Quay Street, Portsmouth",
    )


@pytest.fixture
def rendered(settings):
    return render_brief(_brief(), [Topic(slug="shipping", name="Shipping")], settings)


def _values(name: str = "Kim") -> dict[str, str]:
    return recipient_values(
        {"name": name, "email": "kim@example.com", "reader_token": "abc.def", "archive_token": ""}
    )


def test_html_is_a_complete_document_with_title_takeaways_and_body(rendered):
    assert rendered.html.lstrip().lower().startswith("<!doctype html>")
    assert "Port congestion returns to the Strait of Malacca" in rendered.html
    assert "Rerouting from the Red Sea is the main cause" in rendered.html
    assert "cannot berth ships fast enough" in rendered.html


def test_both_parts_carry_unsubscribe_preferences_and_postal_address(rendered):
    for part, content in (("html", rendered.html), ("text", rendered.text)):
        reader = token("reader_token", part)
        assert f"https://news.example.com/unsubscribe/{reader}" in content
        assert f"https://news.example.com/preferences/{reader}" in content
        assert "Example Analysis LLC, 9 Quay Street, Portsmouth" in content


def test_each_part_only_uses_its_own_tokens(rendered):
    assert ":text%%" not in rendered.html
    assert ":html%%" not in rendered.text


def test_text_part_reads_as_plain_text(rendered):
    assert "KEY TAKEAWAYS" in rendered.text
    assert "<p>" not in rendered.text and "**" not in rendered.text
    assert "Rosa Delgado" in rendered.text


def test_markdown_links_become_anchors_in_html_and_words_with_url_in_text(settings):
    email = render_brief(_brief("front-matter.md"), [], settings)
    assert '<a href="https://example.com/quota">the main quota</a>' in email.html
    assert "the main quota (https://example.com/quota)" in email.text


def test_preheader_comes_from_front_matter(settings):
    email = render_brief(_brief("front-matter.md"), [], settings)
    assert "Three changes that matter for importers." in email.html


def test_a_name_full_of_html_is_escaped_in_html_and_plain_in_text(rendered):
    values = _values('<b>Kim & "Lee"</b>')
    assert values[token("name", "html")] == "&lt;b&gt;Kim &amp; &quot;Lee&quot;&lt;/b&gt;"
    assert values[token("name", "text")] == '<b>Kim & "Lee"</b>'


def test_filling_leaves_no_token_behind(rendered):
    values = _values()
    for content in (rendered.html, rendered.text):
        filled = fill(content, values)
        assert not re.search(r"%%nl:", filled)
        assert "https://news.example.com/unsubscribe/abc.def" in filled
        assert "https://news.example.com/preferences/abc.def" in filled


def test_a_reader_s_values_are_only_those_the_content_shows(rendered):
    """A personalization carries no value its content never uses (each one is bytes in
    every request of a million-reader send)."""
    used = tokens_in(rendered.html, rendered.text)
    values = recipient_values(
        {"name": "Kim", "email": "k@example.com", "reader_token": "t", "confirm_token": "c"},
        used,
    )
    assert set(values) == used - {token("archive_token", p) for p in ("html", "text")}
    assert token("confirm_token", "html") not in values


def test_a_token_without_a_value_is_an_error_not_a_leak():
    with pytest.raises(TemplateError, match="no value for %%nl:name:html%%"):
        fill("Dear %%nl:name:html%%", {})


def test_email_stays_under_gmails_clipping_size(rendered):
    assert rendered.html_bytes < GMAIL_CLIP_BYTES


def _with_template(settings, tmp_path, name: str, source: str):
    """Settings whose templates are a copy of ours with `name` replaced by `source`."""
    templates = tmp_path / "templates"
    shutil.copytree(settings.NEWSLETTER_TEMPLATES_DIR, templates)
    (templates / name).write_text(source)
    return settings.model_copy(update={"NEWSLETTER_TEMPLATES_DIR": templates})


def test_a_broken_template_is_refused_with_its_name(tmp_path, settings):
    broken = _with_template(
        settings, tmp_path, "email/brief.mjml.j2", "<mjml><mj-body><mj-section>"
    )
    with pytest.raises(TemplateError, match=r"template email/brief.mjml.j2: MJML did not render"):
        render_brief(_brief(), [], broken)


def test_a_jinja_syntax_error_names_template_and_line(tmp_path, settings):
    broken = _with_template(settings, tmp_path, "email/brief.txt.j2", "line one\n{{ title \n")
    with pytest.raises(TemplateError, match=r"template email/brief.txt.j2:2"):
        render_brief(_brief(), [], broken)


def test_a_send_rendered_before_reader_tokens_still_gets_its_whole_urls(settings):
    """Content scheduled before an upgrade spells whole URLs; its readers' links must work."""
    links = Links.from_settings(settings)
    html = '<a href="%%nl:unsubscribe_url:html%%">Leave</a>'
    text = "%%nl:preferences_url:text%%"
    recipient = links.recipient(
        delivery_id=1, subscriber_id=7, email="k@example.com", name="K", used=tokens_in(html, text)
    )
    reader = links.reader_token(7)
    assert fill(html, recipient.values) == f'<a href="{links.unsubscribe_url(reader)}">Leave</a>'
    assert fill(text, recipient.values) == links.preferences_url(reader)


def test_a_confirmation_rendered_before_reader_tokens_still_gets_its_whole_confirm_url(settings):
    links = Links.from_settings(settings)
    text = "%%nl:confirm_url:text%%"
    recipient = links.recipient(
        delivery_id=1,
        subscriber_id=7,
        email="k@example.com",
        name="K",
        confirm=True,
        used=tokens_in(text),
    )
    assert fill(text, recipient.values) == links.confirm_url(7)


def test_a_batch_signs_no_token_its_content_never_shows(settings, monkeypatch):
    """One signature per reader when the content shows only the reader token: not the
    archive's (subscribers-only archive) nor the confirm link's."""
    subscribers_only = test_settings(
        **{**settings.model_dump(), "NEWSLETTER_ARCHIVE": "subscribers"}
    )
    links = Links.from_settings(subscribers_only)
    signed: list[str] = []
    sign = links.signer.sign
    monkeypatch.setattr(
        links.signer,
        "sign",
        lambda purpose, reader: signed.append(purpose) or sign(purpose, reader),
    )
    readers = [(i, i, f"r{i}@example.com", "R") for i in range(1, 4)]
    made = links.recipients(readers, confirm=True, used=tokens_in("%%nl:reader_token:text%%"))
    assert len(made) == 3 and signed == ["subscriber-links"] * 3


def test_a_brief_on_several_topics_does_not_tell_each_reader_they_follow_them_all(settings):
    """One email goes to every reader a brief matched: "because you follow Energy, Food,
    Japan" was untrue for a reader who follows Japan alone."""
    topics = [Topic(slug=s, name=s.title()) for s in ("energy", "food", "japan")]
    email = render_brief(_brief(), topics, settings)
    flat = " ".join(email.text.split())
    assert "because you follow one or more of Energy, Food, Japan." in flat
    assert "because you follow one or more of Energy, Food, Japan." in " ".join(
        re.sub(r"<[^>]+>", " ", email.html).split()
    )


def test_a_welcome_names_the_readers_own_topics_as_the_ones_they_follow(settings):
    topics = [Topic(slug=s, name=s.title()) for s in ("energy", "food")]
    email = render_welcome(topics, "daily", settings)
    assert "because you follow Energy, Food." in " ".join(email.text.split())


SIGNED = (
    "---\ntitle: Rice prices\ndate: 2026-05-20\n---\n\nThe harvest came in late.\n\n---\n\n"
    "**Li Wei**\nSenior Analyst, China\nNorthgate Analysis\n"
)


def test_a_signature_written_a_line_to_each_item_keeps_its_lines_in_every_part(settings):
    """They ran into one line: "Li Wei Senior Analyst, China Northgate Analysis"."""
    brief = parse_brief(SIGNED).to_brief()
    assert brief.signature == "**Li Wei**\nSenior Analyst, China\nNorthgate Analysis"
    email = render_brief(brief, [], settings)
    assert re.search(
        r"Li Wei</strong><br ?/?>\s*Senior Analyst, China<br ?/?>\s*Northga", email.html
    )
    assert "Li Wei*\nSenior Analyst, China\nNorthgate Analysis" in email.text
    assert re.search(r"China<br ?/?>\s*Northgate", render_web(brief, [], settings))


def test_a_bare_address_pasted_into_a_brief_is_a_link_and_is_written_once_in_text(settings):
    """It stayed plain text: a reader's client might not link it, and the report's links
    never counted it."""
    brief = parse_brief(
        "---\ntitle: Yuan\ndate: 2026-05-20\n---\n\n"
        "The series is at https://data.example.cn/s?series=CNY&lang=en#t, as example.com said.\n"
    ).to_brief()
    email = render_brief(brief, [], settings)
    assert '<a href="https://data.example.cn/s?series=CNY&amp;lang=en#t"' in email.html
    assert "https://data.example.cn/s?series=CNY&lang=en#t, as example.com said." in " ".join(
        email.text.split()
    )
    assert 'href="http://example.com' not in email.html  # a domain in a sentence stays words


def test_only_an_address_with_its_scheme_is_linked_and_the_text_part_writes_it_as_it_goes():
    text = "See //example.com/x, https://bücher.de/x and https://ex.com/a%20b."
    html = str(markdown_to_html(text))
    assert 'href="//example.com' not in html  # goes nowhere from a mail client
    assert html.count("<a ") == 2
    plain = " ".join(markdown_to_text(text).split())
    assert plain == "See //example.com/x, https://xn--bcher-kva.de/x and https://ex.com/a%20b."
