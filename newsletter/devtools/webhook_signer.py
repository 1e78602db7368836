"""Event Webhook posts as SendGrid makes them: signed (ECDSA P-256 over timestamp + body),
worded in SendGrid's vocabulary. The sandbox uses it to post events about what it accepted;
tests use it to forge nothing."""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

if TYPE_CHECKING:
    from newsletter.devtools.sandbox import Accepted


class EventSigner:
    """Signs Event Webhook posts as SendGrid does: ECDSA P-256 over timestamp + body. Its
    public key, base64 DER, is what SENDGRID_WEBHOOK_PUBLIC_KEY takes."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key(self) -> str:
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = self._key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }


def event_for(message: Accepted, event: str, **extra: Any) -> dict[str, Any]:
    """One Event Webhook item about an accepted message, as SendGrid words it."""
    return {
        "email": message.to[0],
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": f"{message.message_id}.filter0001",
        **message.custom_args,
        **extra,
    }


def post_events(url: str, signer: EventSigner, events: list[dict[str, Any]]) -> int:
    """POST a signed Event Webhook batch to `url`, as SendGrid would; the HTTP status."""
    body = json.dumps(events).encode()
    request = urllib.request.Request(  # noqa: S310 - a URL the caller chose, local
        url, data=body, headers=signer.headers(body), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
