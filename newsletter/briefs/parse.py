"""Brief files in, `ParsedBrief` out: no database, so a file can be checked anywhere.

Two layouts parse into the same thing:

* Markdown with YAML front matter (`title`, `date`, `topics`, `author`, `preheader`,
  `slug`), the body in Markdown;
* the firm's own layout, as authors write it: a date line, a `##` title, a
  `### Key takeaways` list, `---`, the body, `---`, the signature block.

Both may mix: front matter wins over what the text says. Every refusal names the file and
the line, so the author can fix it without guessing.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from slugify import slugify as _slugify

from newsletter.briefs.front_matter import (
    meta_date,
    meta_str,
    meta_topics,
    parse_date,
    split_front_matter,
)
from newsletter.errors import BriefError
from newsletter.models import Brief

# A brief is a few pages of text; Gmail clips an email past about 102 KB.
BRIEF_MAX_BYTES = 2 * 2**20

_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SEPARATOR = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:[-*+•]|\d{1,3}[.)])\s+(.*)$")
_TAKEAWAYS = re.compile(r"^key\s+take-?aways:?$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"""[.!?:;…)\]"'”’»]$""")
# A signature is a few short lines: name, role, firm, contact.
_SIGNATURE_MAX_LINES = 12
_SIGNATURE_MAX_LINE_LENGTH = 120


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, in the file
    text: str


@dataclass
class ParsedBrief:
    title: str
    date: date
    body: str  # Markdown
    takeaways: list[str] = field(default_factory=list)  # Markdown, one item each
    author: str = ""
    signature: str = ""  # Markdown
    preheader: str = ""
    topics: list[str] = field(default_factory=list)
    slug: str = ""
    source_name: str = ""
    content_hash: str = ""

    def to_brief(self) -> Brief:
        """The row to store (not yet added to any session)."""
        return Brief(
            slug=self.slug,
            title=self.title,
            date=self.date,
            author=self.author,
            preheader=self.preheader,
            takeaways="\n".join(self.takeaways),
            body=self.body,
            signature=self.signature,
            source_name=Path(self.source_name).name,
            content_hash=self.content_hash,
        )

    @property
    def paragraphs(self) -> list[str]:
        return [block for block in re.split(r"\n\s*\n", self.body) if block.strip()]


def parse_brief_file(path: Path) -> ParsedBrief:
    """Read and parse a brief file: a regular file of at most BRIEF_MAX_BYTES, checked
    before a byte is read (a device such as /dev/zero has no end)."""
    try:
        with path.open("rb") as stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise BriefError(path, "not a regular file; give the path of a brief's text file")
            if info.st_size > BRIEF_MAX_BYTES:
                raise BriefError(path, _too_large(info.st_size))
            data = stream.read(BRIEF_MAX_BYTES + 1)
    except OSError as exc:
        raise BriefError(path, f"cannot read the file: {exc.strerror or exc}") from exc
    if len(data) > BRIEF_MAX_BYTES:  # it grew while we looked
        raise BriefError(path, _too_large(len(data)))
    return parse_brief(data, source_name=str(path))


def _too_large(size: int) -> str:
    return (
        f"{size / 2**20:.1f} MB is more than a brief may be ({BRIEF_MAX_BYTES // 2**20} MB; "
        "Gmail clips an email past about 102 KB anyway)"
    )


def parse_brief(data: bytes | str, *, source_name: str = "<brief>") -> ParsedBrief:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    text = _decode(raw, source_name)
    lines = [Line(n, t.rstrip()) for n, t in enumerate(text.split("\n"), start=1)]

    meta, after = split_front_matter(lines, source_name)
    parsed_date = meta_date(meta, source_name, lines)  # all the lines: it names the date's
    lines = _drop_blank_edges(after)
    if parsed_date is None:
        parsed_date, lines = _leading_date(lines, source_name)

    title = meta_str(meta, "title", source_name)
    lines = _drop_blank_edges(lines)
    if title:
        lines = _drop_heading_equal_to(lines, title)
    else:
        title, lines = _leading_title(lines, source_name)

    takeaways, lines = _takeaways(lines)
    segments = [segment for segment in _segments(lines) if segment]
    signature = ""
    if len(segments) >= 2 and _looks_like_signature(segments[-1]):
        signature = "\n".join(line.text for line in segments.pop())
    body = _join_split_paragraphs(
        "\n\n---\n\n".join("\n".join(line.text for line in segment) for segment in segments)
    )
    if not body.strip():
        raise BriefError(source_name, "the brief has no body text", _first_line_number(lines))

    author = meta_str(meta, "author", source_name) or _signature_author(signature)
    topics = meta_topics(meta, source_name)
    slug = meta_str(meta, "slug", source_name) or f"{parsed_date:%Y-%m-%d}-{slugify(title)}"
    return ParsedBrief(
        title=title,
        date=parsed_date,
        body=body,
        takeaways=takeaways,
        author=author,
        signature=signature,
        preheader=meta_str(meta, "preheader", source_name),
        topics=topics,
        slug=slugify(slug),
        source_name=source_name,
        content_hash=hashlib.sha256(raw).hexdigest(),
    )


def slugify(value: str) -> str:
    """Lower-case ASCII words joined by hyphens, transliterated from any script (a title in
    Japanese gets a romanized slug; the title itself keeps its script). ASCII because the
    slug goes into URLs in the text part and into SendGrid categories, which must be."""
    slug = _slugify(unicodedata.normalize("NFKC", value), max_length=80, word_boundary=True)
    return slug or "brief"


# --- decoding ---------------------------------------------------------------------------


def _decode(raw: bytes, source_name: str) -> str:
    if b"\x00" in raw[:8192]:
        raise BriefError(source_name, "this is a binary file, not a text brief")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BriefError(
            source_name,
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
            line,
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- the firm's layout: date, title, takeaways, body, signature ----------------------------


def _drop_blank_edges(lines: list[Line]) -> list[Line]:
    start = next((i for i, line in enumerate(lines) if line.text.strip()), len(lines))
    end = len(lines)
    while end > start and not lines[end - 1].text.strip():
        end -= 1
    return lines[start:end]


def _first_line_number(lines: list[Line]) -> int | None:
    return lines[0].number if lines else None


def _leading_date(lines: list[Line], source: str) -> tuple[date, list[Line]]:
    if not lines:
        raise BriefError(source, "the file is empty")
    first = lines[0]
    parsed = parse_date(first.text)
    if parsed is not None:
        return parsed, lines[1:]
    if _HEADING.match(first.text) or len(first.text) > 40:
        raise BriefError(
            source,
            "no date: put it on the first line (e.g. '20 May 2026') or as 'date:' in front matter",
            first.number,
        )
    raise BriefError(
        source, f"{first.text.strip()!r} is not a date (write e.g. '20 May 2026')", first.number
    )


def _clean_inline(text: str) -> str:
    """A heading's words without the Markdown emphasis around them."""
    return re.sub(r"(\*\*|__|\*|_)(.+?)\1", r"\2", text).strip()


def _leading_title(lines: list[Line], source: str) -> tuple[str, list[Line]]:
    lines = _drop_blank_edges(lines)
    if lines:
        match = _HEADING.match(lines[0].text)
        if match and not _TAKEAWAYS.match(_clean_inline(match.group(2))):
            title = _clean_inline(match.group(2))
            if title:
                return title, lines[1:]
    raise BriefError(
        source,
        "no title: start the brief with a '## Title' heading or set 'title:' in front matter",
        _first_line_number(lines),
    )


def _drop_heading_equal_to(lines: list[Line], title: str) -> list[Line]:
    if lines:
        match = _HEADING.match(lines[0].text)
        if match and _clean_inline(match.group(2)) == title:
            return lines[1:]
    return lines


def _takeaways(lines: list[Line]) -> tuple[list[str], list[Line]]:
    """Find the 'Key takeaways' heading and the list under it; return both apart."""
    index = next((i for i, line in enumerate(lines) if _is_takeaways_heading(line.text)), None)
    if index is None:
        return [], lines
    items: list[str] = []
    end = index + 1
    while end < len(lines):
        text = lines[end].text
        item = _LIST_ITEM.match(text)
        if item:
            items.append(item.group(1).strip())
        elif text.strip() and items and text.startswith((" ", "\t")):
            items[-1] = f"{items[-1]} {text.strip()}"  # a wrapped item continues
        elif text.strip():
            break
        end += 1
    return items, lines[:index] + lines[end:]


def _is_takeaways_heading(text: str) -> bool:
    heading = _HEADING.match(text)
    return bool(heading and _TAKEAWAYS.match(_clean_inline(heading.group(2))))


def _segments(lines: list[Line]) -> list[list[Line]]:
    """Split at thematic breaks that stand on their own (after a blank line or at the start).

    A '---' right under a text line is a Markdown setext heading, not a separator.
    """
    segments: list[list[Line]] = [[]]
    previous_blank = True
    for line in lines:
        if _SEPARATOR.match(line.text) and previous_blank:
            segments.append([])
        else:
            segments[-1].append(line)
        previous_blank = not line.text.strip()
    return [_drop_blank_edges(segment) for segment in segments]


def _looks_like_signature(segment: list[Line]) -> bool:
    filled = [line for line in segment if line.text.strip()]
    return 0 < len(filled) <= _SIGNATURE_MAX_LINES and all(
        len(line.text.strip()) <= _SIGNATURE_MAX_LINE_LENGTH
        and not _SENTENCE_END.search(line.text.strip())
        for line in filled
    )


def _signature_author(signature: str) -> str:
    for text in signature.splitlines():
        cleaned = _clean_inline(re.sub(r"^\s{0,3}#{1,6}\s+", "", text))
        if cleaned:
            return cleaned
    return ""


def _join_split_paragraphs(markdown: str) -> str:
    """Join a paragraph that copy-paste from a PDF broke mid-sentence across a blank line.

    The signal: a prose paragraph that ends without closing punctuation, followed by one
    that starts in lower case. Headings, lists, quotes and tables are never joined.
    """
    blocks = re.split(r"\n\s*\n", markdown)
    joined: list[str] = []
    for block in blocks:
        if joined and _is_prose(joined[-1]) and _is_prose(block):
            previous = joined[-1].rstrip()
            if not _SENTENCE_END.search(previous) and block.lstrip()[:1].islower():
                joined[-1] = f"{previous} {block.strip()}"
                continue
        joined.append(block)
    return "\n\n".join(joined).strip()


def _is_prose(block: str) -> bool:
    first = block.lstrip()
    return bool(first) and not (
        _HEADING.match(first)
        or _LIST_ITEM.match(first)
        or _SEPARATOR.match(first)
        or first.startswith((">", "|", "```", "    ", "<", "!["))
    )
