"""SendGrid's documented rules for a v3 `mail/send` body, in one table, checked as SendGrid
checks them: every broken rule listed, each in SendGrid's error envelope with its field
path (`personalizations.3.to.0.name`), so a client can tell which recipient broke what.

Each rule names where SendGrid documents it:

* LIMITS   https://docs.sendgrid.com/api-reference/mail-send/limitations
* SPEC     SendGrid's OpenAPI description of POST /v3/mail/send (sendgrid-oai,
           spec/paths/mail_send/mail_send.json): maxItems, maxLength, uniqueItems and the
           field descriptions quoted in each rule
* ERRORS   https://docs.sendgrid.com/api-reference/mail-send/errors
* CATEGORIES https://docs.sendgrid.com/for-developers/sending-email/categories
* RFC 5322 §2.2: a header field body never holds a bare CR or LF (SendGrid builds the To,
           Subject and custom headers from these fields)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
HELP = "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors"
RECIPIENT_KINDS = ("to", "cc", "bcc")

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LINE_BREAK = re.compile(r"[\r\n]")
# RFC 5322 §3.6.8: a field name is printable ASCII except the colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")

Error = dict[str, Any]


def error(message: str, field: str | None = None) -> Error:
    """One entry of SendGrid's `{"errors": [...]}` envelope."""
    return {"message": message, "field": field, "help": HELP if field else None}


@dataclass(frozen=True)
class Rule:
    what: str
    source: str
    check: Callable[[dict[str, Any]], Iterator[Error]]


def _personalizations(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    items = body.get("personalizations")
    if not isinstance(items, list):
        return []
    return [
        (f"personalizations.{i}", item) for i, item in enumerate(items) if isinstance(item, dict)
    ]


def _recipients(body: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(personalization path, recipient path, recipient object) for every to/cc/bcc."""
    for where, item in _personalizations(body):
        for kind in RECIPIENT_KINDS:
            entries = item.get(kind) or []
            for position, recipient in enumerate(entries if isinstance(entries, list) else []):
                yield where, f"{where}.{kind}.{position}", recipient


def _address(recipient: Any) -> str:
    return (
        str((recipient or {}).get("email", "")).strip().lower()
        if isinstance(recipient, dict)
        else ""
    )


# --- the rules ------------------------------------------------------------------------------


def _from(body: dict[str, Any]) -> Iterator[Error]:
    sender = body.get("from")
    if not isinstance(sender, dict) or not _ADDRESS.match(str(sender.get("email", ""))):
        yield error(
            "The from object must be provided for every email send. It is an object that "
            "requires an email address and may contain a name.",
            "from.email",
        )


def _personalization_count(body: dict[str, Any]) -> Iterator[Error]:
    items = body.get("personalizations")
    if not isinstance(items, list) or not items:
        yield error(
            "The personalizations field is required and must have at least one personalization.",
            "personalizations",
        )
    elif len(items) > MAX_PERSONALIZATIONS:
        yield error(
            "The personalization block is limited to 1000 personalizations per API request. "
            f"You have provided {len(items)} personalizations.",
            "personalizations",
        )


def _to_required(body: dict[str, Any]) -> Iterator[Error]:
    for where, item in _personalizations(body):
        if not item.get("to"):
            yield error(
                "The to array is required for all personalization objects, and must have at "
                "least one email object with a valid email address.",
                f"{where}.to",
            )


def _valid_addresses(body: dict[str, Any]) -> Iterator[Error]:
    for _, path, recipient in _recipients(body):
        if not _ADDRESS.match(_address(recipient)):
            yield error("Does not contain a valid address.", f"{path}.email")


def _recipient_count(body: dict[str, Any]) -> Iterator[Error]:
    total = sum(1 for _ in _recipients(body))
    if total > MAX_RECIPIENTS:
        yield error(
            "The total number of recipients must be less than 1000. This includes all "
            "recipients defined within the to, cc, and bcc parameters, across each object "
            "that you include in the personalizations array.",
            "personalizations",
        )


def _unique_addresses(body: dict[str, Any]) -> Iterator[Error]:
    """Within a personalization (to, cc, bcc together) and across the whole array."""
    seen_in_request: set[str] = set()
    for where, item in _personalizations(body):
        seen_here: set[str] = set()
        for kind in RECIPIENT_KINDS:
            entries = item.get(kind) or []
            for recipient in entries if isinstance(entries, list) else []:
                address = _address(recipient)
                if not address:
                    continue
                if address in seen_here:
                    yield error(
                        "Each email address in the personalization block should be unique "
                        "between to, cc, and bcc. We found the first duplicate instance of "
                        f"[{address}] in the {where}.{kind} field.",
                        where,
                    )
                elif address in seen_in_request:
                    yield error(
                        "Each unique email address in the personalizations array should only "
                        f"be included once. You have included [{address}] more than once.",
                        where,
                    )
                seen_here.add(address)
            seen_in_request |= seen_here


def _names(body: dict[str, Any]) -> Iterator[Error]:
    for _, path, recipient in _recipients(body):
        name = recipient.get("name") if isinstance(recipient, dict) else None
        if name is None:
            continue
        if not isinstance(name, str):
            yield error("The name must be a string.", f"{path}.name")
        elif ";" in name or "," in name:
            yield error(
                "The to.name, cc.name, and bcc.name personalizations cannot include either the "
                "; or , characters.",
                f"{path}.name",
            )
        elif _LINE_BREAK.search(name):
            yield error("The name may not contain line breaks.", f"{path}.name")


def _subject(body: dict[str, Any]) -> Iterator[Error]:
    items = _personalizations(body)
    own = bool(items) and all(item.get("subject") for _, item in items)
    if not body.get("subject") and not own:
        yield error(
            "The subject is required. You can get around this requirement if you use a "
            "template with a subject defined or if every personalization has a subject "
            "defined.",
            "subject",
        )
    for where, holder in [("", body), *((f"{w}.", item) for w, item in items)]:
        subject = holder.get("subject")
        if subject is not None and (not isinstance(subject, str) or _LINE_BREAK.search(subject)):
            yield error("The subject must be a string on one line.", f"{where}subject")


def _header_errors(headers: Any, path: str) -> Iterator[Error]:
    if headers is None:
        return
    if not isinstance(headers, dict):
        yield error("Invalid type. Expected: object.", path)
        return
    for name, value in headers.items():
        if name.lower() in RESERVED_HEADERS:
            yield error(f"The header {name} is reserved and may not be set.", f"{path}.{name}")
        elif not _FIELD_NAME.match(name):
            yield error(f"The header name {name!r} is not a valid header name.", f"{path}.{name}")
        elif not isinstance(value, str):
            yield error("Header values must be strings.", f"{path}.{name}")
        elif _LINE_BREAK.search(value):
            yield error(
                "Header values may not contain carriage returns or line feeds.", f"{path}.{name}"
            )


def _headers(body: dict[str, Any]) -> Iterator[Error]:
    yield from _header_errors(body.get("headers"), "headers")
    for where, item in _personalizations(body):
        yield from _header_errors(item.get("headers"), f"{where}.headers")


def _categories(body: dict[str, Any]) -> Iterator[Error]:
    categories = body.get("categories")
    if categories is None:
        return
    if not isinstance(categories, list):
        yield error("Invalid type. Expected: array.", "categories")
        return
    if len(categories) > MAX_CATEGORIES:
        yield error("Too many categories. You may only specify up to 10 categories.", "categories")
    if len({json.dumps(c) for c in categories}) != len(categories):
        yield error("The categories must be unique.", "categories")
    for index, category in enumerate(categories):
        where = f"categories.{index}"
        if not isinstance(category, str):
            yield error("Each category must be a string.", where)
        elif len(category) > MAX_CATEGORY_LENGTH:
            yield error("A category cannot have more than 255 characters.", where)
        elif not category.isascii():
            yield error("Categories must be in 7-bit encoding using the US-ASCII set.", where)


def _string_map(value: Any, path: str) -> Iterator[Error]:
    if not isinstance(value, dict):
        yield error("Invalid type. Expected: object.", path)
        return
    for key, item in value.items():
        if not isinstance(item, str):
            yield error("The key/value pairs must be strings.", f"{path}.{key}")


def _size(value: dict[str, Any]) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _custom_args(body: dict[str, Any]) -> Iterator[Error]:
    shared = body.get("custom_args")
    if shared is not None:
        yield from _string_map(shared, "custom_args")
    shared = shared if isinstance(shared, dict) else {}
    if _size(shared) >= MAX_CUSTOM_ARGS_BYTES:
        yield error("The total size of custom_args may not exceed 10,000 bytes.", "custom_args")
        return
    for where, item in _personalizations(body):
        own = item.get("custom_args")
        if own is None:
            continue
        yield from _string_map(own, f"{where}.custom_args")
        if isinstance(own, dict) and _size({**shared, **own}) >= MAX_CUSTOM_ARGS_BYTES:
            yield error(
                "The total size of custom_args may not exceed 10,000 bytes.",
                f"{where}.custom_args",
            )


def _substitutions(body: dict[str, Any]) -> Iterator[Error]:
    for where, item in _personalizations(body):
        values = item.get("substitutions")
        if values is None:
            continue
        yield from _string_map(values, f"{where}.substitutions")
        if isinstance(values, dict) and _size(values) > MAX_SUBSTITUTIONS_BYTES:
            yield error(
                "The total collective size of your substitutions may not exceed 10,000 bytes "
                "per personalization object.",
                f"{where}.substitutions",
            )


def _content(body: dict[str, Any]) -> Iterator[Error]:
    content = body.get("content")
    if not isinstance(content, list) or not any(
        isinstance(c, dict) and c.get("value") for c in content
    ):
        yield error(
            "Unless a valid template_id is provided, the content parameter is required. There "
            "must be at least one defined content block.",
            "content",
        )
        return
    for index, part in enumerate(content):
        if (
            not isinstance(part, dict)
            or not isinstance(part.get("value"), str)
            or not part["value"]
        ):
            yield error(
                "The content value must be a string at least one character in length.",
                f"content.{index}.value",
            )
    types = [c.get("type") for c in content if isinstance(c, dict)]
    if "text/plain" in types and types[0] != "text/plain":
        yield error(
            "If present, text/plain must be first, followed by text/html, followed by any "
            "other content.",
            "content",
        )


RULES: tuple[Rule, ...] = (
    Rule("from.email is a valid address", "ERRORS from", _from),
    Rule(
        "1 to 1000 personalizations",
        "SPEC personalizations.maxItems; ERRORS",
        _personalization_count,
    ),
    Rule("every personalization has a to", "SPEC personalizations.items.required", _to_required),
    Rule("every address is valid", "ERRORS personalizations.to", _valid_addresses),
    Rule("at most 1000 recipients per request", "LIMITS", _recipient_count),
    Rule("no address twice", "ERRORS personalizations", _unique_addresses),
    Rule("names without , ; or line breaks", "LIMITS; RFC 5322 §2.2", _names),
    Rule("a subject, on one line", "ERRORS subject; RFC 5322 §2.2", _subject),
    Rule("headers: not reserved, values on one line", "SPEC headers; RFC 5322 §2.2", _headers),
    Rule("≤ 10 unique ASCII categories ≤ 255 chars", "SPEC categories; CATEGORIES", _categories),
    Rule("custom_args: strings, < 10,000 bytes", "LIMITS; SPEC custom_args", _custom_args),
    Rule("substitutions: strings, ≤ 10,000 bytes each", "SPEC substitutions", _substitutions),
    Rule("content: present, text/plain first", "ERRORS content", _content),
)


def validate_mail_send(body: Any, *, size: int = 0) -> list[Error]:
    """Every rule `body` breaks, as SendGrid's errors; [] when SendGrid would accept it.
    `size` is the request's length in bytes (the 30 MB limit on the whole email)."""
    if not isinstance(body, dict):
        return [error("The request body must be a JSON object.")]
    errors = [problem for rule in RULES for problem in rule.check(body)]
    if size >= MAX_EMAIL_BYTES:  # LIMITS; SendGrid answers this one with 413
        errors.append(error(TOO_LARGE))
    return errors
