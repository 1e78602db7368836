"""SendGrid's documented rules for a v3 `mail/send` body, checked as SendGrid checks them:
every broken rule listed, each in SendGrid's error envelope with its field path.
"""

from __future__ import annotations

import re
from typing import Any

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HELP = "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors"

Error = dict[str, Any]


def error(message: str, field: str | None = None) -> Error:
    """One entry of SendGrid's `{"errors": [...]}` envelope."""
    return {"message": message, "field": field, "help": HELP if field else None}


def validate_mail_send(body: Any) -> list[Error]:
    """SendGrid's rules for a `mail/send` body, as its documented errors state them."""
    if not isinstance(body, dict):
        return [error("The request body must be a JSON object.")]
    errors: list[Error] = []
    sender = body.get("from")
    if not isinstance(sender, dict) or not _ADDRESS.match(str(sender.get("email", ""))):
        errors.append(
            error(
                "The from object must be provided for every email send. It is an object that "
                "requires an email address and may contain a name.",
                "from.email",
            )
        )
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            error(
                "You may not include more than 1000 personalizations per API request.",
                "personalizations",
            )
        )
    total_recipients = 0
    for index, item in enumerate(personalizations):
        where = f"personalizations.{index}"
        if not isinstance(item, dict) or not item.get("to"):
            errors.append(
                error(
                    "The to array is required for all personalization objects, and must have at "
                    "least one email object with a valid email address.",
                    f"{where}.to",
                )
            )
            continue
        seen: dict[str, str] = {}
        for kind in ("to", "cc", "bcc"):
            for position, recipient in enumerate(item.get(kind) or []):
                address = str((recipient or {}).get("email", "")).strip().lower()
                if not _ADDRESS.match(address):
                    errors.append(
                        error(
                            "Does not contain a valid address.", f"{where}.{kind}.{position}.email"
                        )
                    )
                    continue
                total_recipients += 1
                if address in seen:
                    errors.append(
                        error(
                            "Each email address in the personalization block should be unique "
                            "between to, cc, and bcc. We found the first duplicate instance of "
                            f"[{address}] in the {where}.{kind} field.",
                            where,
                        )
                    )
                seen[address] = kind
    if total_recipients > MAX_RECIPIENTS:
        errors.append(
            error(
                "The total number of recipients must be less than 1000. This includes all "
                "recipients defined within the to, cc, and bcc parameters, across each object "
                "that you include in the personalizations array.",
                "personalizations",
            )
        )
    has_own_subjects = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if not body.get("subject") and not has_own_subjects:
        errors.append(
            error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        )
    content = body.get("content")
    if not isinstance(content, list) or not any(
        isinstance(c, dict) and c.get("value") for c in content
    ):
        errors.append(
            error(
                "Unless a valid template_id is provided, the content parameter is required. There "
                "must be at least one defined content block.",
                "content",
            )
        )
    else:
        types = [c.get("type") for c in content if isinstance(c, dict)]
        if "text/plain" in types and types[0] != "text/plain":
            errors.append(
                error(
                    "If present, text/plain must be first, followed by text/html, followed by any "
                    "other content.",
                    "content",
                )
            )
    if len(body.get("categories") or []) > MAX_CATEGORIES:
        errors.append(
            error("Too many categories. You may only specify up to 10 categories.", "categories")
        )
    return errors
