"""Event Webhook posts as SendGrid makes them: signed (ECDSA P-256 over timestamp + body),
worded in SendGrid's vocabulary. The sandbox uses it to post events about what it accepted;
tests use it to forge nothing."""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.errors import ConfigurationError

if TYPE_CHECKING:
    from newsletter.devtools.sandbox import Accepted


class EventSigner:
    """Signs Event Webhook posts as SendGrid does: ECDSA P-256 over timestamp + body. Its
    public key, base64 DER, is what SENDGRID_WEBHOOK_PUBLIC_KEY takes."""

    def __init__(self, key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self._key = key or ec.generate_private_key(ec.SECP256R1())

    @classmethod
    def kept_in(cls, path: Path) -> EventSigner:
        """The signer whose key `path` keeps, made there (readable by this user only) if
        there is none yet. A new key at each start broke the SENDGRID_WEBHOOK_PUBLIC_KEY a
        developer had given their web app: after a restart it refused every event the
        sandbox posted as forged, and the sandbox kept posting them again."""
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            return cls._made_in(path)
        except OSError as exc:
            raise ConfigurationError(
                f"the webhook signing key {path} cannot be read ({exc.strerror})"
            ) from None
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ConfigurationError(
                f"{path} is not a webhook signing key (a P-256 private key in PEM)",
                hint="delete it for a new one, whose public key the sandbox prints",
            )
        return cls(key)

    @classmethod
    def _made_in(cls, path: Path) -> EventSigner:
        signer = cls()
        pem = signer._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written whole beside it, then linked into place: a sandbox stopped midway, or a
        # second one starting at the same moment, never finds the file half-written.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, draft = tempfile.mkstemp(dir=path.parent, prefix=".webhook-key-")
            try:
                with os.fdopen(descriptor, "wb") as file:  # mkstemp's mode: this user only
                    file.write(pem)
                path.hardlink_to(draft)
            finally:
                Path(draft).unlink()
        except FileExistsError:  # a second sandbox made it first: sign with that one
            return cls.kept_in(path)
        except OSError as exc:
            raise ConfigurationError(
                f"the webhook signing key cannot be kept at {path} ({exc.strerror})",
                hint="pass --webhook-key with a path in a folder this user can write",
            ) from None
        return signer

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


def accepted_events(
    message_id: str, body: dict[str, Any], *, at: float | None = None
) -> list[dict[str, Any]]:
    """`processed` and `delivered` for every personalization of an accepted request, as
    SendGrid posts them: our custom_args come back as top-level keys."""
    stamp = int(at if at is not None else time.time())
    shared = body.get("custom_args") or {}
    events: list[dict[str, Any]] = []
    for index, item in enumerate(body.get("personalizations") or []):
        args = {**shared, **(item.get("custom_args") or {})}
        for kind in ("processed", "delivered"):
            events.append(
                {
                    "email": item["to"][0]["email"],
                    "timestamp": stamp,
                    "event": kind,
                    "sg_event_id": secrets.token_urlsafe(16),
                    "sg_message_id": f"{message_id}.filter0001.{index}",
                    **args,
                }
            )
    return events


class EventPoster:
    """Posts signed events to a webhook URL from a background thread, as SendGrid's Event
    Webhook does: in batches, `delay` seconds after the mail was accepted (SendGrid's events
    lag by seconds to minutes), and again later when the receiver did not answer 2xx."""

    BATCH = 500

    def __init__(self, signer: EventSigner, url: str, *, delay: float = 0.0) -> None:
        self.signer = signer
        self.url = url
        self.delay = delay
        self.posted = 0
        self.failed_posts = 0
        self.in_flight = 0  # events taken for a post that has not answered yet
        self._pending: deque[tuple[float, dict[str, Any]]] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="sandbox-events")
        self._thread.start()

    def add(self, events: list[dict[str, Any]]) -> None:
        due = time.monotonic() + self.delay
        with self._ready:
            self._pending.extend((due, event) for event in events)
            self._ready.notify()

    @property
    def waiting(self) -> int:
        with self._ready:
            return len(self._pending)

    def _take(self) -> list[dict[str, Any]]:
        """The next batch that is due, waiting for one; [] when stopping."""
        with self._ready:
            while not self._stopping:
                now = time.monotonic()
                if self._pending and self._pending[0][0] <= now:
                    batch: list[dict[str, Any]] = []
                    while self._pending and self._pending[0][0] <= now and len(batch) < self.BATCH:
                        batch.append(self._pending.popleft()[1])
                    return batch
                timeout = self._pending[0][0] - now if self._pending else None
                self._ready.wait(timeout)
            return []

    def _run(self) -> None:
        while batch := self._take():
            self.in_flight = len(batch)
            try:
                status = post_events(self.url, self.signer, batch)
            except OSError:
                status = 0
            finally:
                self.in_flight = 0
            if 200 <= status < 300:
                self.posted += len(batch)
                continue
            # SendGrid retries a batch the receiver did not take; so does the sandbox.
            self.failed_posts += 1
            retry = time.monotonic() + 1.0
            with self._ready:
                self._pending.extendleft((retry, event) for event in reversed(batch))
            time.sleep(0.2)

    def stop(self) -> None:
        with self._ready:
            self._stopping = True
            self._ready.notify()
        self._thread.join(timeout=5)
