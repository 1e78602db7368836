"""What the sandbox does wrong on purpose, to rehearse an outage (`PUT /sandbox/faults`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from newsletter.devtools.mail_send_errors import error


@dataclass
class Faults:
    """What share of requests go wrong, and how. Chosen per request by a seeded RNG, so a
    test's run is repeatable."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    # Read the body, accept the mail, then close the connection without an answer.
    rate_drop: float = 0.0
    rate_delay: float = 0.0
    delay_seconds: float = 0.0
    # Seconds a 429 asks the client to wait (X-RateLimit-Reset is this far ahead).
    retry_after: int = 1
    seed: int = 0
    # A request holding any of these addresses is refused with a 400 whose error names no
    # field: a strict provider that does not say which recipient it minds.
    refuse_unnamed: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def unnamed_refusal(body: Any, faults: Faults) -> list[dict[str, Any]]:
    """The `refuse_unnamed` fault: a 400 that does not say which recipient it minds."""
    if not faults.refuse_unnamed:
        return []
    addresses = {
        str(to.get("email", "")).lower()
        for item in body.get("personalizations") or []
        for to in item.get("to") or []
    }
    if addresses & {a.lower() for a in faults.refuse_unnamed}:
        return [error("Bad Request (injected by the sandbox: no field named)")]
    return []
