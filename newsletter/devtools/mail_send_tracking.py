"""SendGrid's documented shape of `tracking_settings` in a v3 `mail/send` body, checked as
strictly as SendGrid documents it (SPEC: sendgrid-oai, spec/paths/mail_send/mail_send.json,
`tracking_settings`): an object whose four settings are objects, each `enable` (and click
tracking's `enable_text`) a JSON boolean, every other documented field a string. A wrong
type is named by its path (`tracking_settings.open_tracking.enable`). Settings SendGrid does
not document are let through, as its schema does.
"""

from __future__ import annotations

from typing import Any

from newsletter.devtools.mail_send_errors import Error, error

# setting → its documented fields and their JSON types.
TRACKING_SETTINGS: dict[str, dict[str, type]] = {
    "click_tracking": {"enable": bool, "enable_text": bool},
    "open_tracking": {"enable": bool, "substitution_tag": str},
    "subscription_tracking": {"enable": bool, "text": str, "html": str, "substitution_tag": str},
    "ganalytics": {
        "enable": bool,
        "utm_source": str,
        "utm_medium": str,
        "utm_term": str,
        "utm_content": str,
        "utm_campaign": str,
    },
}
_TYPE_NAMES = {bool: "boolean", str: "string", dict: "object"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _wrong_type(path: str, wanted: type, value: Any) -> Error:
    return error(
        f"Invalid type. Expected: {_TYPE_NAMES[wanted]}, given: {_json_type(value)}.", path
    )


def tracking_settings(body: dict[str, Any]) -> list[Error] | None:
    """Every way `body["tracking_settings"]` departs from SendGrid's documented shape."""
    settings = body.get("tracking_settings")
    if settings is None:
        return None
    if not isinstance(settings, dict):
        return [_wrong_type("tracking_settings", dict, settings)]
    errors = []
    for name, fields in TRACKING_SETTINGS.items():
        if name not in settings:
            continue
        path = f"tracking_settings.{name}"
        setting = settings[name]
        if not isinstance(setting, dict):
            errors.append(_wrong_type(path, dict, setting))
            continue
        for field, wanted in fields.items():
            # `bool` is an `int` in Python but not in JSON: compare the exact type.
            if field in setting and type(setting[field]) is not wanted:
                errors.append(_wrong_type(f"{path}.{field}", wanted, setting[field]))
    return errors
