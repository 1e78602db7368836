"""The rules SendGrid applies to each personalization of a v3 `mail/send` body (sources in
`mail_send_rules.py`), checked in one pass over up to 1000 of them, sharing what one request
has seen so far (`Seen`: addresses, recipients, the request's own custom_args).
"""

from __future__ import annotations

from typing import Any

from newsletter.devtools.mail_send_errors import Error, error
from newsletter.devtools.mail_send_limits import (
    _LINE_BREAK,
    ADDRESS,
    MAX_CUSTOM_ARGS_BYTES,
    MAX_SUBSTITUTIONS_BYTES,
    RECIPIENT_KINDS,
    Seen,
    _address,
    _bytes,
    _entries,
    _header_errors,
    _string_map,
)


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
            if not ADDRESS.match(address):
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
