"""Header safety, in one place, before any transport.

Every `Batch` and `Recipient` passes through here when it is made (`providers/base.py`), so
no transport (SendGrid, SMTP, outbox, memory) can be handed a value that would break a
header, or inject one:

* a display name loses what SendGrid refuses in `to.name` (`,` `;`) and what RFC 5322
  cannot carry unquoted in a header without surprises (`"` `\\` `<` `>`, CR, LF, every
  control character); spaces are collapsed and it is cut to a sane length. The email body
  still greets the reader by the name as they wrote it: that value is a token, not this.
* a subject or any other header value keeps its text but never a CR, LF or control
  character (each becomes a space): nothing can end a header early and start another;
* categories (SendGrid's statistics labels) are US-ASCII, at most 255 characters, unique,
  at most 10.
"""

from __future__ import annotations

import re

from slugify import slugify

MAX_NAME_LENGTH = 100
MAX_CATEGORY_LENGTH = 255
MAX_CATEGORIES = 10

# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators.
_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_UNSAFE_VALUE = re.compile(f"[{_CONTROL}]")
_UNSAFE_NAME = re.compile(f'[{_CONTROL},;"\\\\<>]')
_SPACES = re.compile(r"\s+")
# RFC 5322 §3.6.8: a field name is printable US-ASCII except the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_CHECKED_NAMES: set[str] = set()


def header_value(value: str) -> str:
    """`value` on one line: CR, LF and control characters become spaces."""
    if not _UNSAFE_VALUE.search(value):
        return value  # the usual case, at the cost of one scan
    return _SPACES.sub(" ", _UNSAFE_VALUE.sub(" ", value)).strip()


def display_name(name: str) -> str:
    """A reader's name as a To header may carry it ("" when nothing is left)."""
    if not _UNSAFE_NAME.search(name) and len(name) <= MAX_NAME_LENGTH and name == name.strip():
        return name
    cleaned = _SPACES.sub(" ", _UNSAFE_NAME.sub(" ", name)).strip()
    if len(cleaned) > MAX_NAME_LENGTH:
        cleaned = cleaned[:MAX_NAME_LENGTH].rstrip()
    return cleaned


# Characters a display name loses besides control characters (see display_name).
NAME_SPECIALS = frozenset(',;"\\<>')


def plain_recipient(email: str, name: str, headers: dict[str, str]) -> bool:
    """Whether a recipient's address, name and headers are already header-safe (then
    `display_name`, `header_value` and `header_fields` would change nothing). C-level
    checks only: this runs for every recipient of every batch."""
    return (
        headers.keys() <= _CHECKED_NAMES
        and len(name) <= MAX_NAME_LENGTH
        and NAME_SPECIALS.isdisjoint(name)
        # str.isprintable() is False for every control character and line separator.
        and (name + email + "".join(headers.values())).isprintable()
        and name == name.strip()
    )


def header_fields(headers: dict[str, str]) -> dict[str, str]:
    """Custom headers with valid field names and one-line values; anything else is a bug in
    the caller, refused here rather than sent."""
    for name in headers:
        if name not in _CHECKED_NAMES:
            if not _FIELD_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a header field name")
            _CHECKED_NAMES.add(name)  # a handful of names, checked once per process
    if not _UNSAFE_VALUE.search("".join(headers.values())):
        return headers  # the usual case: one scan for all values
    return {name: header_value(value) for name, value in headers.items()}


def category(label: str) -> str:
    """One provider category: US-ASCII (transliterated, so 日本 becomes "ri-ben"), short."""
    if label.isascii() and len(label) <= MAX_CATEGORY_LENGTH and not _UNSAFE_VALUE.search(label):
        return label
    return slugify(label, max_length=MAX_CATEGORY_LENGTH) or "other"


def categories(labels: list[str]) -> list[str]:
    """Categories as SendGrid takes them: ASCII, unique, in order, at most 10."""
    unique: list[str] = []
    for label in labels:
        safe = category(label)
        if safe and safe not in unique:
            unique.append(safe)
    return unique[:MAX_CATEGORIES]
