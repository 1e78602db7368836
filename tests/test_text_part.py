"""The plain-text part, built from markdown-it's token stream: what a reader of text mail
(or a screen reader, or a spam filter) gets instead of the HTML."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.briefs import parse_brief, parse_brief_file
from newsletter.render import render_brief
from newsletter.render_markdown import markdown_to_text
from newsletter.render_text import display_width, wrap
from tests.conftest import test_settings

EXAMPLES = sorted((Path(__file__).parent.parent / "examples" / "briefs").iterdir())


def _email_text(body: str, signature: str = "") -> str:
    source = f"---\ntitle: A brief\ndate: 2026-06-10\n---\n\n{body}\n"
    if signature:
        source += f"\n---\n\n{signature}\n"
    brief = parse_brief(source).to_brief()
    return render_brief(brief, [], test_settings()).text


def test_underscores_in_a_links_words_and_url_survive():
    text = markdown_to_text(
        "The data: [rice_price_index_2026.csv](https://data.example.com/rice_price_index_2026.csv)."
    )
    assert "rice_price_index_2026.csv (https://data.example.com/rice_price_index_2026.csv)" in (
        " ".join(text.split())
    )


def test_asterisks_between_digits_stay_as_written():
    assert markdown_to_text("Scale it by 2*3*4 to compare.") == "Scale it by 2*3*4 to compare."


def test_emphasis_keeps_a_plain_text_mark_and_code_keeps_its_characters():
    assert markdown_to_text("It *was* **40%** up, per `a_b*c`.") == "It *was* *40%* up, per a_b*c."


def test_a_link_whose_words_are_its_url_is_written_once():
    assert markdown_to_text("See <https://example.com/a>.") == "See https://example.com/a."


def test_footnotes_are_numbered_and_listed_under_notes():
    text = markdown_to_text("A claim.[^src]\n\n[^src]: The ministry's survey, *May 2026*.\n")
    assert text == "A claim.[1]\n\nNotes\n-----\n\n[1] The ministry's survey, *May 2026*."


def test_a_table_becomes_aligned_columns():
    text = markdown_to_text(
        "| | May 2024 | May 2026 |\n|---|---|---|\n"
        "| 5 kg bag | ¥2,100 | ¥2,950 |\n| Reserve stock (tonnes) | 910,000 | 310,000 |\n"
    )
    assert text.splitlines() == [
        "                       | May 2024 | May 2026",
        "-----------------------+----------+---------",
        "5 kg bag               | ¥2,100   | ¥2,950",
        "Reserve stock (tonnes) | 910,000  | 310,000",
    ]


def test_a_table_too_wide_for_columns_becomes_one_record_per_row():
    header = " | ".join(f"Header number {n} of the table" for n in range(4))
    text = markdown_to_text(f"| {header} |\n|---|---|---|---|\n| a | b | c | d |\n")
    assert text.splitlines()[:2] == [
        "Header number 0 of the table: a",
        "Header number 1 of the table: b",
    ]


def test_cjk_columns_count_double_in_a_table_and_in_wrapping():
    text = markdown_to_text("| 品目 | 価格 |\n|---|---|\n| 米 | 高い |\n")
    assert text.splitlines()[0] == "品目 | 価格"
    lines = wrap("東京の米価は、" * 20)
    assert all(display_width(line) <= 72 for line in lines) and len(lines) == 4
    assert not any(line.startswith("、") for line in lines)


def test_lists_nest_and_quotes_keep_their_marks_when_wrapped():
    text = markdown_to_text(
        "1. First, a long item that must wrap because it runs past the end of a line of text.\n"
        "   - a nested point\n"
        "2. Second\n\n"
        "> A quotation long enough that it too has to wrap onto a second line of the email.\n"
    )
    assert text.splitlines() == [
        "1. First, a long item that must wrap because it runs past the end of a",
        "   line of text.",
        "   - a nested point",
        "2. Second",
        "",
        "> A quotation long enough that it too has to wrap onto a second line of",
        "> the email.",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_line_fits_78_columns_unless_it_is_one_unbreakable_word(path):
    text = render_brief(parse_brief_file(path).to_brief(), [], test_settings()).text
    assert max(display_width(line) for line in text.splitlines() if " " in line.strip()) <= 78


def test_a_long_paragraph_is_wrapped_at_72_columns():
    text = _email_text("word " * 200)
    body = [line for line in text.splitlines() if line.startswith("word")]
    assert len(body) > 10 and max(len(line) for line in body) <= 72


def test_the_signature_follows_the_dash_dash_space_separator():
    text = _email_text("Body.", signature="## **Mara Lindqvist**\n\nSenior Analyst")
    assert "\n-- \n*Mara Lindqvist*\nSenior Analyst\n" in text
    assert "----" not in text.split("-- \n")[1].split("_____")[0]  # no heading underline
