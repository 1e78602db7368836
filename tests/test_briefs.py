"""Parsing brief files: the firm's layout, front matter, and every refusal naming file and line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from newsletter.briefs import parse_brief, parse_brief_file, slugify
from newsletter.errors import BriefError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def firm_brief():
    return parse_brief_file(FIXTURES / "firm-layout.txt")


def test_firm_layout_title_is_the_first_heading(firm_brief):
    assert firm_brief.title == "Port congestion returns to the Strait of Malacca"


def test_firm_layout_date_is_the_first_line(firm_brief):
    assert firm_brief.date == date(2026, 4, 14)


def test_firm_layout_takeaways_are_the_bullets_under_key_takeaways(firm_brief):
    assert firm_brief.takeaways == [
        "Container dwell times at Tanjung Pelepas have doubled since March.",
        "Rerouting from the Red Sea is the main cause, not local capacity.",
        "Relief depends on shipping lines' summer schedules, due in May.",
    ]


def test_firm_layout_body_has_its_paragraphs_with_the_pdf_split_joined(firm_brief):
    paragraphs = firm_brief.paragraphs
    assert len(paragraphs) == 3
    assert paragraphs[0].startswith("Container ships are again queuing")
    assert "four days in which they cannot berth ships fast enough." in paragraphs[1]
    assert paragraphs[2].startswith("Capacity is not the problem")


def test_firm_layout_keeps_dashes_and_non_latin_names_intact(firm_brief):
    assert "Asia–Europe" in firm_brief.body
    assert "– a cost" in firm_brief.body
    assert "田中" in firm_brief.body and "김민수" in firm_brief.body


def test_firm_layout_author_comes_from_the_signature_block(firm_brief):
    assert firm_brief.author == "Rosa Delgado"
    assert "Maritime Analyst" in firm_brief.signature
    assert "Maritime Analyst" not in firm_brief.body


def test_firm_layout_has_no_topics_of_its_own(firm_brief):
    assert firm_brief.topics == []


def test_front_matter_fields_win():
    parsed = parse_brief_file(FIXTURES / "front-matter.md")
    assert parsed.title == "Grain corridors: what the new tariff schedule changes"
    assert parsed.date == date(2026, 4, 20)
    assert parsed.topics == ["food", "trade"]
    assert parsed.author == "Sam Ito"
    assert parsed.preheader == "Three changes that matter for importers."
    assert parsed.takeaways == [
        "Tariffs on feed grain fall by *half* from July.",
        "Milling wheat is unchanged.",
    ]
    assert parsed.paragraphs == [
        "The schedule published on Friday is shorter than expected.",
        "It leaves [the main quota](https://example.com/quota) in place.",
    ]


def test_slug_is_date_and_title_unless_front_matter_names_one():
    parsed = parse_brief("---\nslug: My Own Slug\n---\n1 May 2026\n\n## Title here\n\nBody.\n")
    assert parsed.slug == "my-own-slug"
    assert parse_brief("1 May 2026\n\n## Title here\n\nBody.\n").slug == "2026-05-01-title-here"


def test_a_slug_is_ascii_whatever_the_script_of_the_title():
    slug = slugify("高市早苗 meets 이재명")
    assert slug.isascii() and "meets" in slug and slug.startswith("gao-shi")


def test_a_cjk_title_keeps_its_script_and_gets_an_ascii_slug():
    parsed = parse_brief("1 May 2026\n\n## 日本の米価格、上昇\n\nBody.\n")
    assert parsed.title == "日本の米価格、上昇"
    assert parsed.slug == "2026-05-01-ri-ben-nomi-jia-ge-shang-sheng"


def test_a_title_with_nothing_to_transliterate_still_gets_a_slug():
    assert slugify("🍚🍚") == "brief"


def test_same_bytes_give_the_same_content_hash():
    text = "1 May 2026\n\n## T\n\nBody.\n"
    assert parse_brief(text).content_hash == parse_brief(text).content_hash
    assert parse_brief(text).content_hash != parse_brief(text + "More.\n").content_hash


def test_crlf_and_bom_parse_like_plain_text():
    plain = parse_brief("1 May 2026\n\n## Title\n\nBody text.\n")
    windows = parse_brief("\ufeff1 May 2026\r\n\r\n## Title\r\n\r\nBody text.\r\n".encode())
    assert (windows.title, windows.date, windows.body) == (plain.title, plain.date, plain.body)


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("1 May 2026\n\nJust a paragraph, no heading.\n", 3, "no title"),
        ("## A title but no date\n\nBody.\n", 1, "no date"),
        ("32 Mayday 2026\n\n## Title\n\nBody.\n", 1, "is not a date"),
        ("1 May 2026\n\n## Title only\n", None, "no body text"),
        (
            "---\ntitle: T\ndate: 2026-05-01\ncolour: blue\n---\nBody.\n",
            4,
            "unknown front matter key 'colour'",
        ),
        ("---\ntitle: [unclosed\ndate: 2026-05-01\n---\nBody.\n", None, "not valid YAML"),
        ("---\ntitle: T\n\nBody never closes the front matter.\n", 1, "never closed"),
        ("---\ntitle: T\ndate: someday\n---\nBody.\n", 3, "not a date"),
        ("---\ntitle: T\ndate: 2026-11-31\n---\nBody.\n", 3, "'2026-11-31' is not a date"),
        ("---\ntitle: T\ndate: 2026-13-02\n---\nBody.\n", 3, "'2026-13-02' is not a date"),
    ],
    ids=[
        "no-title",
        "no-date",
        "bad-date",
        "empty-body",
        "unknown-key",
        "bad-yaml",
        "unclosed-front-matter",
        "bad-front-matter-date",
        "front-matter-day-past-the-month",
        "front-matter-month-13",
    ],
)
def test_a_brief_that_cannot_be_understood_is_refused_with_file_line_and_reason(text, line, reason):
    with pytest.raises(BriefError) as caught:
        parse_brief(text, source_name="briefs/x.md")
    assert reason in str(caught.value)
    assert str(caught.value).startswith("briefs/x.md")
    if line is not None:
        assert caught.value.line == line
        assert str(caught.value).startswith(f"briefs/x.md:{line}:")


def test_a_front_matter_date_with_its_time_is_that_day():
    brief = parse_brief("---\ntitle: T\ndate: 2026-05-20 07:00\n---\nBody.\n")
    assert brief.date == date(2026, 5, 20)


def test_non_utf8_file_is_refused_naming_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("1 May 2026\n\n## Caf\xe9 politics\n\nBody.\n".encode("latin-1"))
    with pytest.raises(BriefError, match=r"latin1.txt:3: not UTF-8 text \(byte 0xe9\)"):
        parse_brief_file(path)


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(BriefError, match="binary file"):
        parse_brief_file(path)


def test_missing_file_is_refused_with_its_name(tmp_path):
    with pytest.raises(BriefError, match=r"missing\.md: cannot read the file"):
        parse_brief_file(tmp_path / "missing.md")


def test_a_title_with_a_colon_is_refused_with_how_to_quote_it_and_the_advice_works():
    """YAML's own words ("mapping values are not allowed here") left staff to guess."""
    with pytest.raises(BriefError) as refused:
        parse_brief("---\ntitle: Rice: the cabinet risk\ndate: 2026-05-01\n---\nBody.\n")
    assert refused.value.line == 2 and "goes in single quotes" in str(refused.value)
    advised = str(refused.value).split("twice: title: ", 1)[1]
    brief = parse_brief(f"---\ntitle: {advised}\ndate: 2026-05-01\n---\nBody.\n")
    assert brief.title == "Rice: the cabinet's risk"
