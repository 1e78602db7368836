"""SendGrid's Event Webhook: the signature check and the translation into ProviderEvent.

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

from newsletter.errors import NewsletterError
from newsletter.events import EventKind, ProviderEvent

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# How old (or how far in the future) a signed timestamp may be.
TOLERANCE_SECONDS = 300


class WebhookRejectedError(NewsletterError):
    """Not from SendGrid, or not now: nothing in it is applied."""


def verify(public_key: str, body: bytes, signature: str, timestamp: str, *, now: datetime) -> None:
    if not public_key:
        raise WebhookRejectedError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not set; refusing unsigned events"
        )
    if not signature or not timestamp.isdigit():
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


def _kind(name: str) -> EventKind:
    try:
        return EventKind(name)
    except ValueError:
        return EventKind.OTHER


def _delivery_id(item: dict[str, Any]) -> int | None:
    value = item.get("delivery_id")
    return int(value) if isinstance(value, (str, int)) and str(value).isdigit() else None


def normalize(body: bytes) -> list[ProviderEvent]:
    """SendGrid's JSON array of events → ProviderEvents. Our custom_args come back as
    top-level keys (`delivery_id`, `send_id`)."""
    try:
        items = json.loads(body)
    except ValueError as exc:
        raise WebhookRejectedError(f"the body is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise WebhookRejectedError("the body is not a JSON array of events")
    events = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = _kind(str(item.get("event", "")))
        reason = str(item.get("reason") or item.get("response") or item.get("status") or "")
        events.append(
            ProviderEvent(
                provider="sendgrid",
                kind=kind,
                event_id=str(item.get("sg_event_id") or ""),
                email=str(item.get("email") or "").lower(),
                occurred_at=datetime.fromtimestamp(int(item.get("timestamp") or 0), UTC),
                delivery_id=_delivery_id(item),
                message_id=str(item.get("sg_message_id") or "").split(".")[0],
                # "bounce" is a hard bounce; "blocked" a soft one (SendGrid's `type`).
                hard_bounce=kind is EventKind.BOUNCE and item.get("type", "bounce") == "bounce",
                reason=reason,
            )
        )
    return events
