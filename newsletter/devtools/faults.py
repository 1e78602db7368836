"""What the sandbox does wrong on purpose, to rehearse an outage (`PUT /sandbox/faults`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


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
