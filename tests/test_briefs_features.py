"""Briefs as the firm writes them: Markdown features, text that survives copy-paste, topic
suggestion, the size guard, the other emails (confirmation, welcome, digest), dark mode,
test copies and previews."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from newsletter.briefs import parse_brief, parse_brief_file
from newsletter.cli import app
from newsletter.db import session_scope
from newsletter.fields import fill, recipient_values
from newsletter.models import Delivery, Send
from newsletter.render import (
    markdown_to_html,
    render_brief,
    render_confirmation,
    render_web,
    render_welcome,
)
from subscribers.models import Topic
from subscribers.topics import add_topic, suggest_topics
from tests.conftest import SANDBOX_KEY, test_settings

EXAMPLES = Path(__file__).parent.parent / "examples" / "briefs"
FIXTURES = Path(__file__).parent / "fixtures"
NEWS = test_settings(NEWSLETTER_BASE_URL="https://news.example.com")
VALUES = recipient_values(
    {
        "name": "Ann",
        "email": "ann@example.com",
        "reader_token": "t",
        "confirm_token": "t",
        "archive_token": "",
    }
)


def test_commonmark_features_render_as_html():
    html = markdown_to_html(
        "A [link](https://example.com), *emphasis*, **strong**.\n\n"
        "- one\n  - nested\n- two\n\n"
        "> quoted\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        "![A chart of rice prices](https://charts.example.com/r.png)\n\n"
        "A claim.[^1]\n\n[^1]: The source.\n"
    )
    assert '<a href="https://example.com">link</a>' in html
    assert "<em>emphasis</em>" in html and "<strong>strong</strong>" in html
    assert "<ul>\n<li>nested</li>\n</ul>" in html
    assert "<blockquote>" in html and "<table style=" in html and "<th style=" in html
    assert '<img src="https://charts.example.com/r.png" alt="A chart of rice prices" ' in html
    assert '<sup class="footnote-ref">[1]</sup>' in html and "The source." in html


def test_raw_html_in_a_brief_is_shown_as_text_not_run():
    assert "&lt;script&gt;" in markdown_to_html("<script>alert(1)</script>")


def test_smart_quotes_dashes_and_non_latin_names_survive_intact():
    text = (
        "---\ntitle: “Quiet” wires – and louder politics\ndate: 2026-06-03\n---\n\n"
        "高市早苗 met 이재명 — ‘cordially’, both sides said.\n"
    )
    brief = parse_brief(text).to_brief()
    email = render_brief(brief, [], test_settings())
    for phrase in ("“Quiet” wires – and louder politics", "高市早苗", "이재명", "— ‘cordially’"):
        assert phrase in email.html and phrase in email.text


def test_dark_mode_rules_are_in_every_email():
    email = render_brief(
        parse_brief_file(EXAMPLES / "2026-06-10-rice-prices.md").to_brief(), [], test_settings()
    )
    assert "prefers-color-scheme: dark" in email.html and "[data-ogsc]" in email.html


def test_the_confirmation_email_carries_the_confirm_link_in_both_parts():
    email = render_confirmation([Topic(slug="japan", name="Japan")], NEWS)
    html, text = fill(email.html, VALUES), fill(email.text, VALUES)
    assert (
        "https://news.example.com/confirm/t" in html
        and "https://news.example.com/confirm/t" in text
    )
    assert "%%nl:" not in html + text and "on Japan" in " ".join(text.split())


def test_the_confirmation_tells_a_returning_reader_their_earlier_topics_stand():
    """A reader who left and signed up again with other topics was sent their old ones
    ("briefs on Japan"), with no word on why (the form cannot tell who is typing)."""
    email = render_confirmation([Topic(slug="japan", name="Japan")], NEWS)
    for part in (email.html, email.text):
        words = " ".join(fill(part, VALUES).split())
        assert "If you were subscribed before, these are the topics you chose then" in words


def test_the_welcome_email_says_what_will_come_and_how_often():
    email = render_welcome([Topic(slug="japan", name="Japan")], "weekly", NEWS)
    text = fill(email.text, VALUES)
    words = " ".join(text.split())  # the text part is wrapped at 72 columns
    assert "Dear Ann, you are subscribed to Japan. You will get one digest a week" in words
    assert "https://news.example.com/preferences/t" in text and "%%nl:" not in text


def test_the_web_version_has_the_brief_and_no_per_reader_links():
    brief = parse_brief_file(EXAMPLES / "2026-06-10-rice-prices.md").to_brief()
    page = render_web(brief, [Topic(slug="japan", name="Japan")], test_settings())
    assert "<h1>Rice prices and the summer cabinet reshuffle</h1>" in page
    assert "%%nl:" not in page and "unsubscribe" not in page.lower()


@pytest.fixture
def topics(engine):
    with session_scope(engine) as session:
        add_topic("energy", "Energy", ["grid", "lng", "electricity"], session=session)
        add_topic("europe", "Europe", ["baltic", "poland"], session=session)
        add_topic("japan", "Japan", ["tokyo", "yen"], session=session)
    return engine


def test_topics_are_suggested_from_their_keywords_with_the_words_that_matched(topics):
    text = parse_brief_file(EXAMPLES / "2026-06-03-baltic-grid.txt").to_brief()
    with session_scope(topics) as session:
        found = suggest_topics(f"{text.title}\n{text.body}", session=session)
    assert [s.topic.slug for s in found] == ["energy", "europe"]
    assert found[0].describe().startswith("energy (grid ×")
    assert "baltic" in found[1].matched and "poland" in found[1].matched


def test_a_keyword_matches_whole_words_only(topics):
    with session_scope(topics) as session:
        assert suggest_topics("A long gridlock in Yenisei.", session=session) == []


@pytest.fixture
def cli(topics, db_url, sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SENDGRID_API_HOST", sandbox.url)
    monkeypatch.setenv("SENDGRID_API_KEY", SANDBOX_KEY)
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://news.example.com")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_briefs_add_suggests_topics_and_adding_again_with_topics_confirms_them(cli):
    path = str(EXAMPLES / "2026-06-03-baltic-grid.txt")
    first = cli("briefs", "add", path)
    assert first.exit_code == 0
    suggested = first.stderr.split("suggested topics, from the words that matched: ")[1]
    assert "energy (grid" in suggested and "europe (baltic" in suggested
    assert f"confirm with: newsletter briefs add {path} --topics " in first.stderr
    second = json.loads(cli("briefs", "add", path, "--topics", "energy,europe", "--json").stdout)
    assert second["topics"] == ["energy", "europe"] and second["created"] is False


def test_briefs_add_warns_when_the_email_would_be_clipped_by_gmail(cli, tmp_path):
    big = tmp_path / "long.md"
    big.write_text(
        "---\ntitle: A very long brief\ndate: 2026-06-01\ntopics: [energy]\n---\n\n"
        + "\n\n".join(f"Paragraph {i}: " + "words " * 60 for i in range(400)),
        encoding="utf-8",
    )
    result = cli("briefs", "add", str(big))
    assert result.exit_code == 0
    assert "over Gmail's 104,448-byte clipping limit; `send` will refuse it" in result.stderr
    refused = cli("send", "1", "--now")
    assert refused.exit_code == 1 and "over Gmail's 104,448-byte clipping limit" in refused.stderr


def test_a_test_copy_goes_through_the_transport_marked_and_touches_no_ledger(cli, sandbox, engine):
    cli("briefs", "add", str(EXAMPLES / "2026-06-03-baltic-grid.txt"), "--topics", "energy")
    result = cli("briefs", "test-send", "1", "--to", "Editor@Example.com")
    assert result.exit_code == 0, result.stderr
    [message] = sandbox.messages()
    assert message.to == ["editor@example.com"]
    assert message.subject.startswith("[TEST] The Baltic grid")
    assert "test" in message.categories and "%%nl:" not in message.html
    with session_scope(engine) as session:
        assert session.exec(select(Send)).all() == []
        assert session.exec(select(Delivery)).all() == []


def test_preview_writes_email_text_web_version_and_screenshots(cli, tmp_path):
    cli("briefs", "add", str(EXAMPLES / "2026-06-10-rice-prices.md"), "--topics", "japan")
    result = cli("briefs", "preview", "1", "--out", str(tmp_path / "p"))
    assert result.exit_code == 0, result.stderr
    slug = "2026-06-10-rice-prices-and-the-summer-cabinet-reshuffle"
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert names == sorted(
        [
            *(f"{slug}{end}" for end in (".html", ".txt", ".web.html", "-375.png", "-640.png")),
            "static",  # the web version's stylesheets, so it opens styled from the folder
        ]
    )
    assert (tmp_path / "p" / f"{slug}-375.png").read_bytes().startswith(b"\x89PNG")
