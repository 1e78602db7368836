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
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from newsletter.devtools.mail_send_errors import Error, error
from newsletter.devtools.mail_send_tracking import tracking_settings

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

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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


@dataclass(frozen=True)
class Rule:
    what: str
    source: str
    whole: Callable[[dict[str, Any]], list[Error] | None] | None = None
    each: Each | None = None


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


# --- the whole request ----------------------------------------------------------------------


def _from(body: dict[str, Any]) -> list[Error] | None:
    sender = body.get("from")
    if isinstance(sender, dict) and _ADDRESS.match(str(sender.get("email", ""))):
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


# --- each personalization -------------------------------------------------------------------


def _to_required(where: str, item: dict[str, Any], seen: Seen) -> list[Error] | None:
    if item.get("to"):
        return None
    return [
        error(
            "The to array is required for all personalization objects, and must have at "
            "least one email object with a valid email address.",
            f"{where}.to",
        )
    ]


def _recipients(where: str, item: dict[str, Any], seen: Seen) -> list[Error] | None:
    """Valid, unique addresses (within the personalization and across the request); names
    without `,` `;` or line breaks; counted toward the 1000-recipient limit."""
    errors: list[Error] = []
    here: set[str] = set()
    for kind in RECIPIENT_KINDS:
        for position, recipient in enumerate(_entries(item, kind)):
            path = f"{where}.{kind}.{position}"  # only read when something is wrong
            address = _address(recipient)
            seen.recipients += 1
            if not _ADDRESS.match(address):
                errors.append(error("Does not contain a valid address.", f"{path}.email"))
            elif address in here:
                errors.append(
                    error(
                        "Each email address in the personalization block should be unique "
                        "between to, cc, and bcc. We found the first duplicate instance of "
                        f"[{address}] in the {where}.{kind} field.",
                        where,
                    )
                )
            elif address in seen.addresses:
                errors.append(
                    error(
                        "Each unique email address in the personalizations array should only "
                        f"be included once. You have included [{address}] more than once.",
                        where,
                    )
                )
            here.add(address)
            name = recipient.get("name") if isinstance(recipient, dict) else None
            if name is None:
                continue
            if not isinstance(name, str):
                errors.append(error("The name must be a string.", f"{path}.name"))
            elif ";" in name or "," in name:
                errors.append(
                    error(
                        "The to.name, cc.name, and bcc.name personalizations cannot include "
                        "either the ; or , characters.",
                        f"{path}.name",
                    )
                )
            elif _LINE_BREAK.search(name):
                errors.append(error("The name may not contain line breaks.", f"{path}.name"))
    seen.addresses |= here
    return errors


def _own_subject(where: str, item: dict[str, Any], seen: Seen) -> list[Error] | None:
    subject = item.get("subject")
    if subject is None or (isinstance(subject, str) and not _LINE_BREAK.search(subject)):
        return None
    return [error("The subject must be a string on one line.", f"{where}.subject")]


def _own_headers(where: str, item: dict[str, Any], seen: Seen) -> list[Error] | None:
    return _header_errors(item.get("headers"), f"{where}.headers")


def _own_custom_args(where: str, item: dict[str, Any], seen: Seen) -> list[Error] | None:
    own = item.get("custom_args")
    if own is None:
        return None
    errors = _string_map(own, f"{where}.custom_args")
    if isinstance(own, dict) and _bytes({**seen.shared_args, **own}) >= MAX_CUSTOM_ARGS_BYTES:
        errors.append(
            error(
                "The total size of custom_args may not exceed 10,000 bytes.",
                f"{where}.custom_args",
            )
        )
    return errors


def _substitutions(where: str, item: dict[str, Any], seen: Seen) -> list[Error] | None:
    values = item.get("substitutions")
    if values is None:
        return None
    errors = _string_map(values, f"{where}.substitutions")
    if isinstance(values, dict) and _bytes(values) > MAX_SUBSTITUTIONS_BYTES:
        errors.append(
            error(
                "The total collective size of your substitutions may not exceed 10,000 bytes "
                "per personalization object.",
                f"{where}.substitutions",
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
    from newsletter.devtools.mail_send_fast import plainly_valid  # it imports this module

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
