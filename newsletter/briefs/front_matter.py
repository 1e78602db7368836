"""YAML front matter of a Markdown brief: six plain keys, read safely, each refusal naming
the file and line. Kept apart from the layout parser because YAML is where the hostile input
lives (aliases, nesting, unknown keys), and its rules read better alone."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import yaml

from newsletter.errors import BriefError

if TYPE_CHECKING:
    from newsletter.briefs.parse import Line

FRONT_MATTER_MAX_CHARS = 16 * 2**10
# What YAML's own words ("mapping values are not allowed here", "expected <block end>")
# leave staff to guess: a title with a colon or quotes in it is the usual cause.
_UNQUOTED = ("mapping values are not allowed", "expected <block end>", "quoted scalar")
_QUOTING = (
    "A value with a colon or quotes in it goes in single quotes, each ' inside written "
    "twice: title: 'Rice: the cabinet''s risk'"
)
FRONT_MATTER_KEYS = frozenset({"title", "date", "topics", "author", "preheader", "slug"})
DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y")


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: `*name` repeats a node by reference, so a few
    hundred bytes of nested aliases stand for billions of items (a "billion laughs"). Front
    matter has six plain keys and needs none.

    Nor does it read dates: PyYAML's own reading of `date: 2026-11-31` raised a bare
    ValueError (a 500 in the console's editor, a traceback at the command line). A date
    stays text here, and `meta_date` reads it, or says which line is not a date."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in front matter", event.start_mark
            )
        return super().compose_node(parent, index)


def split_front_matter(lines: list[Line], source: str) -> tuple[dict[str, object], list[Line]]:
    if not lines or lines[0].text.strip() != "---":
        return {}, lines
    end = next((i for i, line in enumerate(lines[1:], 1) if line.text.strip() == "---"), None)
    if end is None:
        raise BriefError(source, "front matter opened with '---' is never closed", 1)
    text = "\n".join(line.text for line in lines[1:end])
    if len(text) > FRONT_MATTER_MAX_CHARS:
        raise BriefError(
            source, f"front matter is longer than {FRONT_MATTER_MAX_CHARS} characters", 1
        )
    try:
        meta = yaml.load(text, Loader=_NoAliasLoader) or {}  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        advice = f". {_QUOTING}" if any(s in problem for s in _UNQUOTED) else ""
        raise BriefError(
            source, f"front matter is not valid YAML: {problem}{advice}", line
        ) from exc
    except RecursionError:
        raise BriefError(source, "front matter is nested too deeply", 2) from None
    if not isinstance(meta, dict):
        raise BriefError(source, "front matter must be 'key: value' lines", 2)
    for key in meta:
        if str(key) not in FRONT_MATTER_KEYS:
            known = ", ".join(sorted(FRONT_MATTER_KEYS))
            line = _line_of(lines[1:end], str(key))
            raise BriefError(source, f"unknown front matter key {key!r} (known: {known})", line)
    return {str(k): v for k, v in meta.items()}, lines[end + 1 :]


def _line_of(lines: list[Line], key: str) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*:")
    return next((line.number for line in lines if pattern.match(line.text)), None)


def meta_str(meta: dict[str, object], key: str, source: str) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise BriefError(source, f"front matter {key!r} must be text, not {type(value).__name__}")
    return str(value).strip()


def meta_topics(meta: dict[str, object], source: str) -> list[str]:
    value = meta.get("topics")
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise BriefError(source, "front matter 'topics' must be a list of topic slugs")
    return [item.strip().lower() for item in items if item.strip()]


def meta_date(meta: dict[str, object], source: str, lines: list[Line]) -> date | None:
    value = meta.get("date")
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    parsed = parse_date(str(value))
    if parsed is None:
        raise BriefError(
            source,
            f"front matter date {value!r} is not a date (write e.g. 2026-05-20)",
            _line_of(lines, "date"),
        )
    return parsed


def parse_date(text: str) -> date | None:
    cleaned = re.sub(r"\s+", " ", text.strip().strip("*_ "))
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).date()
        except ValueError:
            continue
    try:  # a date with its time, as YAML would have read it: 2026-05-20 07:00
        return datetime.fromisoformat(cleaned).date()
    except ValueError:
        return None
