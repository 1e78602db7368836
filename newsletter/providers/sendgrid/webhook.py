"""SendGrid's Event Webhook: the signature check, and SendGrid's events in our words.

SendGrid signs `timestamp + raw body` with ECDSA (P-256, SHA-256) and sends the signature
and timestamp in `X-Twilio-Email-Event-Webhook-Signature` / `-Timestamp`. The check uses the
official `sendgrid` package's verifier; a stale timestamp is refused too, so a captured
request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
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

# A `dropped` event's `reason` (compared case-insensitively, whole) → the event that put
# the address on the SendGrid suppression list it was dropped for. SendGrid documents these
# drop reasons: "Bounced Address", "Spam Reporting Address", "Unsubscribed Address",
# "Invalid", "Invalid SMTPAPI header", "Spam Content", "Recipient List over Package Quota".
# The first four are about the reader: SendGrid telling us, at the next send, of a bounce,
# spam report or unsubscribe we may never have had as its own event (it came before the
# webhook was set up, or through another sender on the account, or the address was put on
# the list by hand). "Invalid" names SendGrid's invalid-emails list: an address malformed by
# its rules or that the receiving server said does not exist, a hard bounce in all but name.
# Every later send would be dropped again. The rest are about the message or our account
# and fail the delivery alone. SendGrid documents no drop reason of its own for an
# unsubscribe group (ASM); one it words otherwise changes only the delivery.
DROP_SUPPRESSIONS: dict[str, EventType] = {
    "bounced address": EventType.BOUNCED,
    "invalid": EventType.BOUNCED,
    "spam reporting address": EventType.COMPLAINED,
    "unsubscribed address": EventType.UNSUBSCRIBED,
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


# What our ledger columns hold; anything longer is not an event we sent.
MAX_EVENT_ID = 100
MAX_EMAIL = 320
MAX_ID = 2**63 - 1
MAX_URL = 8000


def _delivery_id(item: dict[str, Any]) -> int | None:
    value = item.get("delivery_id")
    if (
        isinstance(value, bool)
        or not isinstance(value, str | int)
        or not str(value).isascii()
        or not str(value).isdigit()
    ):
        return None
    number = int(value)
    if number > MAX_ID:
        raise ValueError(f"delivery_id {str(value)[:30]!r} is out of range")
    return number


def _timestamp(item: dict[str, Any]) -> datetime:
    value = item.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"timestamp {value!r} is not a number")
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"timestamp {str(value)[:30]!r} is not a time") from None


def _text(item: dict[str, Any], key: str, limit: int) -> str:
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int):
        raise ValueError(f"{key} is a {type(value).__name__}, not text")
    if len(str(value)) > limit:
        raise ValueError(f"{key} is longer than {limit} characters")
    return str(value)


def _is_hard_bounce(item: dict[str, Any]) -> bool:
    # SendGrid's "bounce" event carries type "bounce" (hard) or "blocked" (soft); the
    # legacy "blocked" event is always soft.
    return item.get("event") == "bounce" and item.get("type", "bounce") == "bounce"


def _suppressed_by(item: dict[str, Any]) -> EventType | None:
    reason = item.get("reason")
    if item.get("event") != "dropped" or not isinstance(reason, str):
        return None
    return DROP_SUPPRESSIONS.get(reason.casefold())


def to_event(item: dict[str, Any]) -> ProviderEvent:
    """One SendGrid event → ours. Our custom_args come back as top-level keys. Raises
    ValueError, naming the field, for an event that cannot be ours."""
    name = _text(item, "event", 64)
    if not name:
        raise ValueError("no event name")
    reason = str(item.get("reason") or item.get("response") or item.get("status") or "")
    return ProviderEvent(
        provider=PROVIDER,
        type=EVENT_TYPES.get(name, EventType.UNKNOWN),
        provider_type=name,
        event_id=_text(item, "sg_event_id", MAX_EVENT_ID),
        email=_text(item, "email", MAX_EMAIL).lower(),
        occurred_at=_timestamp(item),
        delivery_id=_delivery_id(item),
        message_id=_text(item, "sg_message_id", 500).split(".")[0][:MAX_EVENT_ID],
        hard_bounce=_is_hard_bounce(item),
        suppressed_by=_suppressed_by(item),
        reason=reason,
        url=_text(item, "url", MAX_URL),
        # Only an open can be a machine's (our reports count people's opens apart).
        machine=name == "open" and item.get("sg_machine_open") is True,
        raw=item,
    )


def _encodes(payload: Any) -> bool:
    """Whether the payload, as JSON text, can be written as UTF-8."""
    try:
        json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def rejected(item: Any, why: str) -> ProviderEvent:
    """A malformed event, kept with its payload and why; it changes nothing else. Its id is
    the payload's hash, so a redelivered batch records it once."""
    raw = item if isinstance(item, dict) else {"event": item}
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()
    if not _encodes(raw):  # kept as ASCII-escaped JSON text, which any database stores
        raw = {"unencodable_payload": json.dumps(raw, sort_keys=True, default=str)}
    return ProviderEvent(
        provider=PROVIDER,
        type=EventType.REJECTED,
        provider_type=str(raw.get("event", "")).encode("utf-8", "replace").decode()[:64],
        event_id=f"rejected:{digest[:64]}",
        email="",
        occurred_at=datetime.fromtimestamp(0, UTC),
        message_id=digest,
        reason=why[:500],
        raw=raw,
    )


def normalize(body: bytes, *, received_at: datetime | None = None) -> list[ProviderEvent]:
    """SendGrid's JSON array of events → ours; a malformed item becomes a REJECTED event,
    so the rest of its batch still applies (SendGrid would otherwise retry the whole batch,
    and the good events in it would never count).

    No event happened after it reached us: a time later than `received_at` (a clock
    astray) is taken as `received_at`, or a reader's "last open" stood days ahead and
    every report's hours with it. The raw payload keeps the time as it came."""
    try:
        items = json.loads(body)
    except ValueError as exc:
        raise WebhookRejectedError(f"the body is not JSON: {exc}") from None
    if not isinstance(items, list):
        raise WebhookRejectedError("the body is not a JSON array of events")
    # JSON may spell half a surrogate pair (\ud800), which no UTF-8 text can hold: such an
    # event is refused alone, or the database would refuse its whole batch, and SendGrid
    # would post it again for ever. Looked for only where the body spells one at all.
    halves = b"\\ud" in body.lower()
    events = []
    for item in items:
        try:
            if not isinstance(item, dict):
                raise ValueError(f"an event is an object, not {type(item).__name__}")
            if halves and not _encodes(item):
                raise ValueError("the event holds half a surrogate pair: not text")
            event = to_event(item)
            if received_at is not None and event.occurred_at > received_at:
                event = replace(event, occurred_at=received_at, reported_at=event.occurred_at)
            events.append(event)
        except ValueError as exc:
            events.append(rejected(item, str(exc)))
    return events
