"""SendGrid's documented limits for a v3 `mail/send` body as constants, and the checks that
both kinds of rule share (`mail_send_rules.py` checks the request as a whole,
`mail_send_personalizations.py` each personalization; the sources are listed there).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from newsletter.devtools.mail_send_errors import Error, error

MAX_PERSONALIZATIONS = 1000  # SPEC personalizations.maxItems; ERRORS "personalizations"
MAX_RECIPIENTS = 1000  # LIMITS "total number of recipients … no more than 1000"
MAX_CATEGORIES = 10  # SPEC categories.maxItems
MAX_CATEGORY_LENGTH = 255  # SPEC categories.items.maxLength
MAX_CUSTOM_ARGS_BYTES = 10_000  # LIMITS "custom arguments must be less than 10000 bytes"
MAX_SUBSTITUTIONS_BYTES = 10_000  # SPEC substitutions: "10,000 bytes per personalization"
MAX_EMAIL_BYTES = 30 * 1024 * 1024  # LIMITS "total size of your email … less than 30MB"
# SPEC headers: "You may not overwrite the following headers: …" (compared case-blind).
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
TOO_LARGE = "The total size of your email must be less than 30MB."
RECIPIENT_KINDS = ("to", "cc", "bcc")

ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LINE_BREAK = re.compile(r"[\r\n]")
# RFC 5322 §3.6.8: a field name is printable ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
_FIELD_NAMES = re.compile(r"[!-9;-~]+(?:\x1f[!-9;-~]+)*")


@dataclass
class Seen:
    """What the per-personalization rules share across one request."""

    addresses: set[str] = field(default_factory=set)
    recipients: int = 0
    shared_args: dict[str, Any] = field(default_factory=dict)


Each = Callable[[str, dict[str, Any], Seen], list[Error] | None]


def _entries(item: dict[str, Any], kind: str) -> list[Any]:
    entries = item.get(kind)
    return entries if isinstance(entries, list) else []


def _address(recipient: Any) -> str:
    if not isinstance(recipient, dict):
        return ""
    return str(recipient.get("email", "")).strip().lower()


def _all_strings(values: dict[str, Any]) -> bool:
    return set(map(type, values.values())) <= {str}


def _bytes(values: dict[str, Any]) -> int:
    """Size of a string map, in UTF-8 bytes (keys and values), exact past a cheap bound."""
    if not _all_strings(values):
        values = {str(k): str(v) for k, v in values.items()}
    rough = sum(map(len, values)) + sum(map(len, values.values()))
    if rough * 4 < MAX_CUSTOM_ARGS_BYTES:  # even all 4-byte characters stay under
        return rough
    return sum(len(k.encode()) + len(v.encode()) for k, v in values.items())


def _header_errors(headers: Any, path: str) -> list[Error] | None:
    if not headers:
        return None
    if not isinstance(headers, dict):
        return [error("Invalid type. Expected: object.", path)]
    if (  # the usual case, checked in a few C-level passes
        _all_strings(headers)
        and RESERVED_HEADERS.isdisjoint(map(str.lower, headers))
        and _FIELD_NAMES.fullmatch("\x1f".join(headers))
        and not _LINE_BREAK.search("".join(headers.values()))
    ):
        return None
    errors = []
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            errors.append(
                error(f"The header {name} is reserved and may not be set.", f"{path}.{name}")
            )
        elif not _FIELD_NAME.match(name):
            errors.append(error(f"The header name {name!r} is not valid.", f"{path}.{name}"))
        elif not isinstance(value, str):
            errors.append(error("Header values must be strings.", f"{path}.{name}"))
        elif _LINE_BREAK.search(value):
            errors.append(
                error(
                    "Header values may not contain carriage returns or line feeds.",
                    f"{path}.{name}",
                )
            )
    return errors


def _string_map(value: Any, path: str) -> list[Error]:
    if not isinstance(value, dict):
        return [error("Invalid type. Expected: object.", path)]
    if _all_strings(value):
        return []
    return [
        error("The key/value pairs must be strings.", f"{path}.{key}")
        for key, item in value.items()
        if not isinstance(item, str)
    ]
