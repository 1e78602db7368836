"""SendGrid's error envelope, shared by the sandbox's rule modules: one entry of
`{"errors": [{"message", "field", "help"}]}`."""

from __future__ import annotations

from typing import Any

HELP = "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors"

Error = dict[str, Any]


def error(message: str, field: str | None = None) -> Error:
    """One entry of SendGrid's `{"errors": [...]}` envelope."""
    return {"message": message, "field": field, "help": HELP if field else None}
