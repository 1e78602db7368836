"""SendGrid's Event Webhook: the signature check, and SendGrid's events in our words.

SendGrid signs `timestamp + raw body` with ECDSA (P-256, SHA-256) and sends the signature
and timestamp in `X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`. The check uses the
official `sendgrid` package's verifier; a stale timestamp is refused too, so a captured
request cannot be replayed later.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook

from newsletter.errors import WebhookRejectedError
from newsletter.providers.events import EventType, ProviderEvent

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# How old (or how far in the future) a signed timestamp may be.
TOLERANCE_SECONDS = 300

# SendGrid's `event` → ours. Anything else (group_resubscribe, new kinds) is UNKNOWN: kept
# with its payload, acted on by nothing.
EVENT_TYPES: dict[str, EventType] = {
    "processed": EventType.ACCEPTED,
    "delivered": EventType.DELIVERED,
    "deferred": EventType.DEFERRED,
    "bounce": EventType.BOUNCED,
    "blocked": EventType.BOUNCED,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
}


def verify(public_key: str, body: bytes, signature: str, timestamp: str, *, now: datetime) -> None:
    """Raise WebhookRejectedError unless SendGrid signed this body, recently."""
    if not public_key:
        raise WebhookRejectedError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not set; refusing unsigned events"
        )
    # Plain ASCII digits, and a sane length: "²" is a digit to str.isdigit() but not to int().
    if not signature or not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise WebhookRejectedError("missing signature or timestamp headers")
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE_SECONDS:
        raise WebhookRejectedError("stale timestamp: a replayed or delayed request")
    try:
        valid = EventWebhook(public_key).verify_signature(
            body.decode("utf-8"), signature, timestamp
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookRejectedError(f"unreadable signature or key: {exc}") from None
    if not valid:
        raise WebhookRejectedError("bad signature")


def _delivery_id(item: dict[str, Any]) -> int | None:
    value = item.get("delivery_id")
    text = str(value) if isinstance(value, str | int) else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def _is_hard_bounce(item: dict[str, Any]) -> bool:
    # SendGrid's "bounce" event carries type "bounce" (hard) or "blocked" (soft); the
    # legacy "blocked" event is always soft.
    return item.get("event") == "bounce" and item.get("type", "bounce") == "bounce"


def to_event(item: dict[str, Any]) -> ProviderEvent:
    """One SendGrid event → ours. Our custom_args come back as top-level keys."""
    name = str(item.get("event", ""))
    reason = str(item.get("reason") or item.get("response") or item.get("status") or "")
    return ProviderEvent(
        provider=PROVIDER,
        type=EVENT_TYPES.get(name, EventType.UNKNOWN),
        provider_type=name,
        event_id=str(item.get("sg_event_id") or ""),
        email=str(item.get("email") or "").lower(),
        occurred_at=datetime.fromtimestamp(int(item.get("timestamp") or 0), UTC),
        delivery_id=_delivery_id(item),
        message_id=str(item.get("sg_message_id") or "").split(".")[0],
        hard_bounce=_is_hard_bounce(item),
        reason=reason,
        url=str(item.get("url") or ""),
        raw=item,
    )


def normalize(body: bytes) -> list[ProviderEvent]:
    """SendGrid's JSON array of events → ours."""
    try:
        items = json.loads(body)
    except ValueError as exc:
        raise WebhookRejectedError(f"the body is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise WebhookRejectedError("the body is not a JSON array of events")
    return [to_event(item) for item in items if isinstance(item, dict)]
