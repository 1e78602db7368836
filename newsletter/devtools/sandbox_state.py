"""What the sandbox (`sandbox.py`) has accepted and counted, and the faults it draws: the
state its HTTP handler threads share, behind one lock, readable by tests mid-send."""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from newsletter.devtools.engagement import Engagement
from newsletter.devtools.faults import Faults
from newsletter.devtools.inbox import Accepted, Inbox, accepted_from
from newsletter.devtools.webhook_signer import EventPoster, accepted_events

# A restricted key's scopes, as SendGrid lists them for a "Mail Send" key.
DEFAULT_SCOPES = ("mail.send", "sender_verification_eligible", "2fa_required")


@dataclass
class Stats:
    requests: int = 0
    accepted_requests: int = 0
    personalizations: int = 0
    duplicate_deliveries: int = 0  # custom_args.delivery_id values accepted more than once
    injected: dict[str, int] = field(default_factory=dict)


class SandboxState:
    """What the sandbox accepted; safe to read from tests while requests arrive."""

    def __init__(
        self,
        api_key: str,
        *,
        keep_messages: bool = True,
        faults: Faults | None = None,
        rate_limit: int = 10_000,
        scopes: list[str] | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        self.api_key = api_key
        # What `GET /v3/scopes` says the key may do (`newsletter doctor` asks).
        self.scopes = list(DEFAULT_SCOPES if scopes is None else scopes)
        self.inbox = inbox or Inbox()
        # Off for benchmarks of a million recipients: counting is enough, and the sandbox's
        # memory is not what is being measured.
        self.keep_messages = keep_messages
        self.rate_limit = rate_limit
        self._lock = threading.Lock()
        self._accepted: list[Accepted] = []
        self._seen: set[str] = set()
        self.stats = Stats()
        self.set_faults(faults or Faults())
        # Set by `Sandbox.send_events_to`: what to post about each accepted request.
        self.events: EventPoster | None = None

    @property
    def requests(self) -> int:
        return self.stats.requests

    def set_faults(self, faults: Faults) -> None:
        """Put `faults` in force and start the draws again from their seed: what fails next
        follows from the faults alone (as `GET /sandbox/faults` shows them), not from how
        many requests came before."""
        with self._lock:
            self.faults = faults
            self._random = random.Random(faults.seed)

    def draw_fault(self) -> tuple[str, float]:
        """(what goes wrong or "", seconds of delay) for the next request."""
        with self._lock:
            self.stats.requests += 1
            faults, roll = self.faults, self._random.random()
            delay = faults.delay_seconds if self._random.random() < faults.rate_delay else 0.0
            for name, share in (
                ("429", faults.rate_429),
                ("500", faults.rate_500),
                ("503", faults.rate_503),
                ("drop", faults.rate_drop),
            ):
                if roll < share:
                    self.stats.injected[name] = self.stats.injected.get(name, 0) + 1
                    return name, delay
                roll -= share
            return "", delay

    def accept(self, body: dict[str, Any], raw: bytes = b"") -> str:
        message_id = secrets.token_urlsafe(16)
        personalizations = body["personalizations"]
        delivery_ids = [
            (item.get("custom_args") or {}).get("delivery_id") for item in personalizations
        ]
        accepted: list[Accepted] = []
        if self.keep_messages:
            accepted = accepted_from(body, message_id)
            self.inbox.add(raw or json.dumps(body).encode("utf-8"), accepted)
        with self._lock:
            self.stats.accepted_requests += 1
            self.stats.personalizations += len(personalizations)
            for delivery_id in delivery_ids:
                if delivery_id in (None, "0"):  # "0": a confirmation or welcome, no ledger row
                    continue
                if delivery_id in self._seen:
                    self.stats.duplicate_deliveries += 1
                self._seen.add(delivery_id)
            self._accepted.extend(accepted)
        if self.events is not None:
            self.events.add(accepted_events(message_id, body))
        return message_id

    def engage(self, engagement: Engagement, *, start: float | None = None) -> int:
        """Queue opens and clicks for every kept message to the webhook; how many."""
        if self.events is None:
            raise LookupError("no webhook to post to: start the sandbox with --webhook-url")
        events = engagement.events(self.messages(), start=start)
        self.events.add(events)
        return len(events)

    def rate_limit_headers(self) -> dict[str, str]:
        """SendGrid's X-RateLimit-* headers, for a one-second window."""
        now = time.time()
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(self.rate_limit - 1),
            "X-RateLimit-Reset": str(int(now) + 1),
        }

    def messages(self) -> list[Accepted]:
        with self._lock:
            return list(self._accepted)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snapshot = {**asdict(self.stats), "faults": asdict(self.faults)}
        if self.events is not None:
            snapshot["events"] = {"posted": self.events.posted, "waiting": self.events.waiting}
        return snapshot

    def clear(self) -> None:
        self.inbox.clear()
        with self._lock:
            self._accepted.clear()
            self._seen.clear()
            self.stats = Stats()
