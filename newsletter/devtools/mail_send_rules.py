"""SendGrid's documented rules for a v3 `mail/send` body, in one table, checked as SendGrid
checks them: every broken rule listed, each in SendGrid's error envelope with its field
path (`personalizations.3.to.0.name`), so a client can tell which recipient broke what.

A rule checks the request as a whole (`whole`) or each personalization (`each`, in one pass
over up to 1000 of them: the sandbox's own speed is the ceiling of every benchmark).

Each rule names where SendGrid documents it:

* LIMITS   https://docs.sendgrid.com/api-reference/mail-send/limitations
* SPEC     SendGrid's OpenAPI description of POST /v3/mail/send (sendgrid-oai,
           spec/paths/mail_send/mail_send.json): maxItems, maxLength, uniqueItems and the
           field descriptions quoted in each rule
* ERRORS   https://docs.sendgrid.com/api-reference/mail-send/errors
* CATEGORIES https://docs.sendgrid.com/for-developers/sending-email/categories
* SPEC tracking_settings: its shape, checked in `mail_send_tracking.py`
* RFC 5322 §2.2: a header field body never holds a bare CR or LF (SendGrid builds the To,
           Subject and custom headers from these fields)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from newsletter.devtools.mail_send_errors import Error, error
from newsletter.devtools.mail_send_fast import plainly_valid
from newsletter.devtools.mail_send_limits import (
    _LINE_BREAK,
    ADDRESS,
    MAX_CATEGORIES,
    MAX_CATEGORY_LENGTH,
    MAX_CUSTOM_ARGS_BYTES,
    MAX_EMAIL_BYTES,
    MAX_PERSONALIZATIONS,
    MAX_RECIPIENTS,
    TOO_LARGE,
    Each,
    Seen,
    _bytes,
    _header_errors,
    _string_map,
)
from newsletter.devtools.mail_send_personalizations import (
    _own_custom_args,
    _own_headers,
    _own_subject,
    _recipients,
    _substitutions,
    _to_required,
)
from newsletter.devtools.mail_send_tracking import tracking_settings

__all__ = ["RULES", "TOO_LARGE", "Rule", "Seen", "validate_mail_send"]


@dataclass(frozen=True)
class Rule:
    what: str
    source: str
    whole: Callable[[dict[str, Any]], list[Error] | None] | None = None
    each: Each | None = None


# --- the whole request ----------------------------------------------------------------------


def _from(body: dict[str, Any]) -> list[Error] | None:
    sender = body.get("from")
    if isinstance(sender, dict) and ADDRESS.match(str(sender.get("email", ""))):
        return None
    return [
        error(
            "The from object must be provided for every email send. It is an object that "
            "requires an email address and may contain a name.",
            "from.email",
        )
    ]


def _personalization_count(body: dict[str, Any]) -> list[Error] | None:
    items = body.get("personalizations")
    if not isinstance(items, list) or not items:
        return [
            error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        ]
    if len(items) > MAX_PERSONALIZATIONS:
        return [
            error(
                "The personalization block is limited to 1000 personalizations per API "
                f"request. You have provided {len(items)} personalizations.",
                "personalizations",
            )
        ]
    return None


def _subject(body: dict[str, Any]) -> list[Error] | None:
    items = [i for i in body.get("personalizations") or [] if isinstance(i, dict)]
    subject = body.get("subject")
    if not subject and not (items and all(item.get("subject") for item in items)):
        return [
            error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        ]
    if subject is not None and (not isinstance(subject, str) or _LINE_BREAK.search(subject)):
        return [error("The subject must be a string on one line.", "subject")]
    return None


def _headers(body: dict[str, Any]) -> list[Error] | None:
    return _header_errors(body.get("headers"), "headers")


def _categories(body: dict[str, Any]) -> list[Error] | None:
    categories = body.get("categories")
    if categories is None:
        return None
    if not isinstance(categories, list):
        return [error("Invalid type. Expected: array.", "categories")]
    errors = []
    if len(categories) > MAX_CATEGORIES:
        errors.append(
            error("Too many categories. You may only specify up to 10 categories.", "categories")
        )
    if len({json.dumps(c) for c in categories}) != len(categories):
        errors.append(error("The categories must be unique.", "categories"))
    for index, category in enumerate(categories):
        where = f"categories.{index}"
        if not isinstance(category, str):
            errors.append(error("Each category must be a string.", where))
        elif len(category) > MAX_CATEGORY_LENGTH:
            errors.append(error("A category cannot have more than 255 characters.", where))
        elif not category.isascii():
            errors.append(
                error("Categories must be in 7-bit encoding using the US-ASCII set.", where)
            )
    return errors


def _custom_args(body: dict[str, Any]) -> list[Error] | None:
    shared = body.get("custom_args")
    if shared is None:
        return None
    errors = _string_map(shared, "custom_args")
    if isinstance(shared, dict) and _bytes(shared) >= MAX_CUSTOM_ARGS_BYTES:
        errors.append(
            error("The total size of custom_args may not exceed 10,000 bytes.", "custom_args")
        )
    return errors


def _content(body: dict[str, Any]) -> list[Error] | None:
    content = body.get("content")
    if not isinstance(content, list) or not any(
        isinstance(c, dict) and c.get("value") for c in content
    ):
        return [
            error(
                "Unless a valid template_id is provided, the content parameter is required. "
                "There must be at least one defined content block.",
                "content",
            )
        ]
    errors = [
        error(
            "The content value must be a string at least one character in length.",
            f"content.{index}.value",
        )
        for index, part in enumerate(content)
        if not isinstance(part, dict) or not isinstance(part.get("value"), str) or not part["value"]
    ]
    types = [c.get("type") for c in content if isinstance(c, dict)]
    if "text/plain" in types and types[0] != "text/plain":
        errors.append(
            error(
                "If present, text/plain must be first, followed by text/html, followed by any "
                "other content.",
                "content",
            )
        )
    return errors


RULES: tuple[Rule, ...] = (
    Rule("from.email is a valid address", "ERRORS from", whole=_from),
    Rule(
        "1 to 1000 personalizations", "SPEC personalizations.maxItems", whole=_personalization_count
    ),
    Rule(
        "every personalization has a to", "SPEC personalizations.items.required", each=_to_required
    ),
    Rule(
        "valid, unique addresses; names without , ; or line breaks; ≤ 1000 recipients",
        "ERRORS personalizations; LIMITS; RFC 5322 §2.2",
        each=_recipients,
    ),
    Rule(
        "a subject, on one line", "ERRORS subject; RFC 5322 §2.2", whole=_subject, each=_own_subject
    ),
    Rule(
        "headers not reserved, values on one line",
        "SPEC headers; RFC 5322 §2.2",
        whole=_headers,
        each=_own_headers,
    ),
    Rule(
        "≤ 10 unique ASCII categories ≤ 255 chars", "SPEC categories; CATEGORIES", whole=_categories
    ),
    Rule(
        "custom_args: strings, < 10,000 bytes",
        "LIMITS; SPEC custom_args",
        whole=_custom_args,
        each=_own_custom_args,
    ),
    Rule("substitutions: strings, ≤ 10,000 bytes each", "SPEC substitutions", each=_substitutions),
    Rule("content: present, non-empty, text/plain first", "ERRORS content", whole=_content),
    Rule(
        "tracking_settings: objects; enable flags booleans, the rest strings",
        "SPEC tracking_settings",
        whole=tracking_settings,
    ),
)
_EACH = [rule.each for rule in RULES if rule.each is not None]


def media_type_errors(content_type: str | None) -> list[Error]:
    """SendGrid's 415 for a body not declared as JSON (a charset may follow)."""
    if (content_type or "").split(";")[0].strip().lower() == "application/json":
        return []
    return [error("Content-Type should be application/json.")]


def validate_mail_send(body: Any, *, size: int = 0) -> list[Error]:
    """Every rule `body` breaks, as SendGrid's errors; [] when SendGrid would accept it.
    `size` is the request's length in bytes (the 30 MB limit on the whole email)."""
    if not isinstance(body, dict):
        return [error("The request body must be a JSON object.")]
    errors: list[Error] = []
    for rule in RULES:
        if rule.whole is not None:
            errors += rule.whole(body) or ()
    shared = body.get("custom_args")
    seen = Seen(shared_args=shared if isinstance(shared, dict) else {})
    items = body.get("personalizations")
    items = items if isinstance(items, list) else []
    if plainly_valid(items, seen.shared_args):
        items, seen.recipients = [], len(items)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(error("Invalid type. Expected: object.", f"personalizations.{index}"))
            continue
        where = f"personalizations.{index}"
        for check in _EACH:
            errors += check(where, item, seen) or ()
    if seen.recipients > MAX_RECIPIENTS:
        errors.append(
            error(
                "The total number of recipients must be less than 1000. This includes all "
                "recipients defined within the to, cc, and bcc parameters, across each object "
                "that you include in the personalizations array.",
                "personalizations",
            )
        )
    if size >= MAX_EMAIL_BYTES:  # LIMITS; SendGrid answers this one with 413
        errors.append(error(TOO_LARGE))
    return errors
