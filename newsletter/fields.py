"""What differs per recipient: the tokens a rendered email leaves in, and their values.

Rendering happens once per brief, never per reader; each per-reader field stays in the
content as a token, spelled once per part so each part gets its own escaping:
`%%nl:name:html%%` receives HTML-escaped text, `%%nl:name:text%%` the plain text. SendGrid
fills them as `substitutions`; local transports call `fill()`.

The reader's links are the base URL, written into the content at render time, and one
signed token per reader (`reader_token`): a personalization carries 35 characters per link
instead of the whole URL, which nearly halves a 1,000-reader request (930 KB to 530 KB) and
with it the client's JSON encoding and the upload. Sends rendered before this spelled whole
URLs (`unsubscribe_url` …); those tokens are still filled, for content that uses them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from functools import lru_cache

from markupsafe import Markup

from newsletter.errors import TemplateError

PARTS = ("html", "text")
_TOKEN = re.compile(r"%%nl:([a-z_]+):(html|text)%%")

# `archive_token` opens the archive for one reader when it is for subscribers only
# (NEWSLETTER_ARCHIVE=subscribers); empty otherwise.
RECIPIENT_FIELDS = ("name", "email", "reader_token", "archive_token")
# Only in the double opt-in email.
CONFIRM_FIELD = "confirm_token"
# Whole URLs, as content rendered before `reader_token` spelled them.
LEGACY_URL_FIELDS = ("unsubscribe_url", "preferences_url", "confirm_url")
# Each link's path under the base URL, and the token that ends it.
LINKS = {
    "unsubscribe_url": ("unsubscribe", "reader_token"),
    "preferences_url": ("preferences", "reader_token"),
    "confirm_url": ("confirm", CONFIRM_FIELD),
}

SAMPLE_READER = {"name": "Sample Reader", "email": "reader@example.com"}


def token(name: str, part: str) -> str:
    return f"%%nl:{name}:{part}%%"


@lru_cache(maxsize=256)
def _spellings(field: str) -> tuple[str, str]:
    return token(field, "text"), token(field, "html")


@lru_cache(maxsize=32)
def tokens_in(*contents: str) -> frozenset[str]:
    """The tokens some content uses: a recipient's values for exactly these are what a
    request must carry (cached: a send's content is scanned once, not once per batch)."""
    return frozenset(match.group(0) for content in contents for match in _TOKEN.finditer(content))


@lru_cache(maxsize=32)
def uses_legacy_urls(used: frozenset[str] | None) -> bool:
    """Whether content spells whole URLs (rendered before `reader_token`); None: unknown."""
    return used is None or any(
        spelling in used for field in LEGACY_URL_FIELDS for spelling in _spellings(field)
    )


# For each field a recipient's values carry: its text spelling and its HTML one (None where
# the content does not show that spelling).
ValuePlan = tuple[tuple[str, str | None, str | None], ...]


@lru_cache(maxsize=64)
def value_plan(fields: tuple[str, ...], used: frozenset[str] | None) -> ValuePlan:
    """Which spellings of which fields a recipient's values carry: every field in both
    spellings, or only the spellings in `used` (the content's, from `tokens_in`). Worked out
    once per content and set of fields, not once per reader (a batch's thousand share it)."""
    plan = []
    for field in fields:
        text_token, html_token = _spellings(field)
        carried = (
            text_token if used is None or text_token in used else None,
            html_token if used is None or html_token in used else None,
        )
        if carried != (None, None):
            plan.append((field, *carried))
    return tuple(plan)


def values_of(plan: ValuePlan, raw: Mapping[str, str]) -> dict[str, str]:
    """Token → value for one recipient, escaped for each part, as `plan` says."""
    values: dict[str, str] = {}
    for field, text_token, html_token in plan:
        value = raw[field]
        if text_token is not None:
            values[text_token] = value
        if html_token is not None:
            values[html_token] = html.escape(value, quote=True)
    return values


def recipient_values(raw: Mapping[str, str], used: frozenset[str] | None = None) -> dict[str, str]:
    """Token → value for one recipient, escaped for each part: every field of `raw` in both
    spellings, or only the spellings in `used` (the content's, from `tokens_in`)."""
    return values_of(value_plan(tuple(raw), used), raw)


@lru_cache(maxsize=8)
def template_tokens(base_url: str) -> dict[str, dict[str, Markup]]:
    """Tokens as the templates see them, `{{ tokens.html.unsubscribe_url }}`: the fields,
    and each link as the base URL (escaped for its part) followed by its token."""
    tokens: dict[str, dict[str, Markup]] = {}
    for part in PARTS:
        names = (*RECIPIENT_FIELDS, CONFIRM_FIELD)
        fields = {name: Markup(token(name, part)) for name in names}  # noqa: S704 - fixed ASCII
        for link, (path, field) in LINKS.items():
            prefix = f"{base_url}/{path}/"
            # The text part is not autoescaped: its prefix goes in as written.
            start = Markup.escape(prefix) if part == "html" else Markup(prefix)  # noqa: S704
            fields[link] = start + fields[field]
        tokens[part] = fields
    return tokens


def fill(content: str, values: Mapping[str, str]) -> str:
    """Replace every token in one pass; a token with no value is an error, never sent."""

    def replace(match: re.Match[str]) -> str:
        try:
            return values[match.group(0)]
        except KeyError:
            raise TemplateError("(recipient values)", f"no value for {match.group(0)}") from None

    return _TOKEN.sub(replace, content)


def sample_values(base_url: str) -> dict[str, str]:
    """A made-up reader's values, for previews that no real reader's links should leak into
    (the console's and `newsletter preview`'s alike)."""
    raw = {
        "name": SAMPLE_READER["name"],
        "email": SAMPLE_READER["email"],
        "reader_token": "preview",
        "archive_token": "preview",
        "unsubscribe_url": f"{base_url}/unsubscribe/preview",
        "preferences_url": f"{base_url}/preferences/preview",
    }
    return recipient_values(raw)
