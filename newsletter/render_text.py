"""The plain-text part, built from markdown-it's token stream rather than by stripping
Markdown with regexes (which turned `rice_price_index_2026.csv` into `ricepriceindex2026.csv`
and `2*3*4` into `234`).

Text is wrapped at 72 columns, measured as a terminal shows it (CJK characters take two,
and may break between any two of them; a URL or any other word is never split, so a line
runs past 72 only when one word is longer). Links read `words (url)`, footnotes are
numbered `[1]` with their text under "Notes", tables become aligned columns, or one
"Header: value" line per cell when the columns would not fit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from markdown_it.token import Token

WIDTH = 72

# Closing punctuation that may not start a line (CJK line-breaking rules, kinsoku).
_NO_LINE_START = set(
    "\u3001\u3002\uff0c\uff0e\u30fb\uff1a\uff1b\uff1f\uff01\uff09"
    "\u300d\u300f\u3011\u3015\u3009\u300b\u201d\u2019\u30fc\u2026"
    "\u3005\u3041\u3043\u3045\u3047\u3049\u3063\u3083\u3085\u3087"
    "\u308e"
)  # ideographic comma and full stop, closing brackets, small kana …


def display_width(text: str) -> int:
    """Columns `text` takes in a fixed-width font: wide (CJK) characters count twice,
    combining marks not at all."""
    total = 0
    for char in text:
        if unicodedata.combining(char) or char in "\u200b\u200c\u200d\u034f":
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _pieces(word: str) -> list[str]:
    """A word split where a line may break inside it: between wide (CJK) characters, never
    before closing punctuation. A word without wide characters stays whole."""
    pieces: list[str] = []
    for char in word:
        glue = pieces and (
            char in _NO_LINE_START or not (_is_wide(char) or _is_wide(pieces[-1][-1]))
        )
        if glue:
            pieces[-1] += char
        else:
            pieces.append(char)
    return pieces


def wrap(text: str, width: int = WIDTH, *, first: str = "", rest: str = "") -> list[str]:
    """Greedy wrapping by display width; `first` and `rest` prefix the first and the
    following lines (list markers, quote marks, indentation)."""
    lines: list[str] = []
    line, used, prefix = "", 0, first
    for word in text.split():
        for index, piece in enumerate(_pieces(word)):
            space = " " if line and index == 0 else ""
            size = display_width(piece)
            if line and display_width(prefix) + used + len(space) + size > width:
                lines.append(prefix + line)
                line, used, prefix, space = "", 0, rest, ""
            line += space + piece
            used += len(space) + size
    if line or not lines:
        lines.append(prefix + line)
    return lines


@dataclass
class _Container:
    kind: str  # "quote", "item"
    marker: str = ""  # an item's "- " / "1. " / "[1] ", shown on its first line only
    shown: bool = False


@dataclass
class _State:
    containers: list[_Container] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    blank_before_next: bool = False
    tight: list[bool] = field(default_factory=list)  # per open list
    ordinal: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _inline(children: Sequence[Token], *, marks: bool = True) -> str:
    """An inline token's children as text: links `words (url)`, emphasis as written."""
    out: list[str] = []
    hrefs: list[tuple[str, int]] = []
    written: list[bool] = []  # per open link: its words are its address
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind in ("em_open", "em_close"):
            out.append(child.markup if marks else "")
        elif kind in ("strong_open", "strong_close"):
            out.append(child.markup[:1] if marks else "")
        elif kind == "link_open":
            hrefs.append((str(child.attrGet("href") or ""), len(out)))
            written.append(child.markup in ("autolink", "linkify"))
        elif kind == "link_close" and hrefs:
            href, start = hrefs.pop()
            words = "".join(out[start:])
            if written.pop() and not href.startswith("mailto:"):
                # An address written as such: once, as the link goes (its shown form
                # decodes %20 to a space and an IDN's punycode, and read as two links).
                del out[start:]
                out.append(href)
            elif href and href not in (words, f"mailto:{words}"):
                out.append(f" ({href})")
        elif kind == "image":
            alt = "".join(c.content for c in child.children or []) or child.content
            out.append(f"[Image: {alt}] ({child.attrGet('src')})")
        elif kind == "footnote_ref":
            out.append(f"[{child.meta['id'] + 1}]")
    return "".join(out)


class _Renderer:
    def __init__(self, width: int, *, compact: bool = False, marks: bool = True) -> None:
        self.width = width
        self.marks = marks  # emphasis as written (`*word*`), or none (an excerpt)
        self.compact = compact  # no blank line between blocks (a signature's short lines)
        self.state = _State()

    # Prefixes: the first line of a block may show an item's marker; later lines indent.
    def _prefixes(self) -> tuple[str, str]:
        first, rest = "", ""
        for container in self.state.containers:
            if container.kind == "quote":
                first, rest = first + "> ", rest + "> "
            else:
                pad = " " * display_width(container.marker)
                first += pad if container.shown else container.marker
                rest += pad
        return first, rest

    def _emit(self, lines: list[str]) -> None:
        state = self.state
        if state.lines and state.blank_before_next:
            # Inside a quote that has begun, the blank line keeps its mark.
            quotes = [c for c in state.containers if c.kind == "quote" and c.shown]
            state.lines.append(("> " * len(quotes)).rstrip())
        for container in state.containers:
            container.shown = True
        state.lines.extend(line.rstrip() for line in lines)
        state.blank_before_next = not self.compact

    def _paragraph(self, text: str) -> None:
        first, rest = self._prefixes()
        lines: list[str] = []
        for number, segment in enumerate(text.split("\n")):  # hard breaks
            lines += wrap(segment, self.width, first=first if number == 0 else rest, rest=rest)
        self._emit(lines)

    def _heading(self, text: str, level: int) -> None:
        first, rest = self._prefixes()
        lines = wrap(text, self.width, first=first, rest=rest)
        rule = "=" if level == 1 else "-"
        underline = max(display_width(line) - display_width(rest) for line in lines)
        self._emit([*lines, rest + rule * underline])

    def _table(self, rows: list[list[str]]) -> None:
        first, rest = self._prefixes()
        columns = max(len(row) for row in rows)
        rows = [row + [""] * (columns - len(row)) for row in rows]
        widths = [max(display_width(row[i]) for row in rows) for i in range(columns)]
        room = self.width - display_width(rest)
        if sum(widths) + 3 * (columns - 1) <= room:
            lines = []
            for number, row in enumerate(rows):
                cells = [c + " " * (w - display_width(c)) for c, w in zip(row, widths, strict=True)]
                lines.append(rest + " | ".join(cells))
                if number == 0:
                    lines.append(rest + "-+-".join("-" * w for w in widths))
            lines[0] = first + lines[0][len(rest) :]
            self._emit(lines)
            return
        # Too wide for columns: one record per row, "Header: value" per cell.
        header, body = rows[0], rows[1:]
        for row in body:
            record: list[str] = []
            for name, value in zip(header, row, strict=True):
                label = f"{name}: " if name else ""
                record += wrap(label + value, self.width, first=rest, rest=rest + "  ")
            record[0] = first + record[0][len(rest) :]
            self._emit(record)
            first = rest

    def render(self, tokens: Sequence[Token]) -> list[str]:
        state = self.state
        index = 0
        while index < len(tokens):
            token = tokens[index]
            kind = token.type
            if kind == "inline":
                self._paragraph(_inline(token.children or [], marks=self.marks))
            elif kind == "heading_open":
                text = _inline(tokens[index + 1].children or [], marks=False)
                self._heading(text, int(token.tag[1]))
                index += 2
            elif kind in ("bullet_list_open", "ordered_list_open"):
                state.tight.append(bool(tokens[index + 2].hidden))
                state.ordinal.append(int(token.attrGet("start") or 1) if token.tag == "ol" else 0)
            elif kind in ("bullet_list_close", "ordered_list_close"):
                state.tight.pop()
                state.ordinal.pop()
            elif kind == "list_item_open":
                if state.ordinal[-1]:
                    marker = f"{state.ordinal[-1]}. "
                    state.ordinal[-1] += 1
                else:
                    marker = "- "
                state.containers.append(_Container("item", marker))
                # A tight list's items follow each other, a nested one its parent's line;
                # the list itself stands apart from the paragraph before it.
                first_item = tokens[index - 1].type in ("bullet_list_open", "ordered_list_open")
                nested_in_tight = len(state.tight) > 1 and state.tight[-2]
                if state.tight[-1] and (not first_item or nested_in_tight):
                    state.blank_before_next = False
            elif kind in ("list_item_close", "footnote_close", "blockquote_close"):
                state.containers.pop()
            elif kind == "blockquote_open":
                state.containers.append(_Container("quote"))
            elif kind in ("fence", "code_block"):
                first, rest = self._prefixes()
                code = token.content.rstrip("\n").split("\n")
                self._emit([(first if n == 0 else rest) + "    " + c for n, c in enumerate(code)])
            elif kind == "hr":
                self._emit([self._prefixes()[0] + "* * *"])
            elif kind == "table_open":
                rows, index = _table_rows(tokens, index)
                self._table(rows)
                continue
            elif kind == "footnote_block_open":
                self._heading("Notes", 2)
            elif kind == "footnote_open":
                state.containers.append(_Container("item", f"[{token.meta['id'] + 1}] "))
            index += 1
        return state.lines


def _table_rows(tokens: Sequence[Token], index: int) -> tuple[list[list[str]], int]:
    rows: list[list[str]] = []
    while tokens[index].type != "table_close":
        token = tokens[index]
        if token.type == "tr_open":
            rows.append([])
        elif token.type == "inline":
            rows[-1].append(_inline(token.children or []).replace("\n", " "))
        index += 1
    return rows, index + 1


def tokens_to_text(
    tokens: Sequence[Token], width: int = WIDTH, *, compact: bool = False, marks: bool = True
) -> str:
    lines = _Renderer(width, compact=compact, marks=marks).render(tokens)
    return "\n".join(lines).strip("\n")
