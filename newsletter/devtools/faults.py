"""What the sandbox does wrong on purpose, to rehearse an outage (`PUT /sandbox/faults`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from newsletter.devtools.mail_send_errors import error
from newsletter.devtools.mail_send_limits import ADDRESS
from newsletter.devtools.sandbox_input import (
    MAX_SEED,
    FieldRefusedError,
    Rule,
    check_rules,
    json_object,
    known_fields,
    number_rule,
    whole_rule,
)

# Past a sender's 30 s default timeout (a provider that never answers), short of a thread
# asleep for good.
MAX_DELAY_SECONDS = 300
MAX_RETRY_AFTER = 3600
MAX_REFUSED = 1000
MAX_ADDRESS_LENGTH = 254  # RFC 5321's longest path, less its angle brackets
# A request draws one of these failures at most, so their shares add up to 1 at most.
FAILURES = ("rate_429", "rate_500", "rate_503", "rate_drop")


def _addresses(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= MAX_REFUSED
        and all(
            isinstance(a, str) and len(a) <= MAX_ADDRESS_LENGTH and ADDRESS.match(a) for a in value
        )
    )


_SHARE = number_rule(1, "a share of requests from 0 to 1")
# Each field: what its value passes, and what a refusal says it must be.
RULES: dict[str, Rule] = {
    "rate_429": _SHARE,
    "rate_500": _SHARE,
    "rate_503": _SHARE,
    "rate_drop": _SHARE,
    "rate_delay": _SHARE,
    "delay_seconds": number_rule(
        MAX_DELAY_SECONDS, f"a number of seconds from 0 to {MAX_DELAY_SECONDS}"
    ),
    "retry_after": whole_rule(
        MAX_RETRY_AFTER, f"a whole number of seconds from 0 to {MAX_RETRY_AFTER}"
    ),
    "seed": whole_rule(MAX_SEED, f"a whole number from 0 to {MAX_SEED}"),
    "refuse_unnamed": (
        _addresses,
        f"a list of at most {MAX_REFUSED} email addresses of at most "
        f"{MAX_ADDRESS_LENGTH} characters",
    ),
}


@dataclass
class Faults:
    """What share of requests go wrong, and how. Chosen per request by an RNG seeded with
    `seed`, started again by every `SandboxState.set_faults` (every PUT), so the same
    faults fail the same requests: a test's run, or a rehearsal run twice, is repeatable.
    A value out of its range (`RULES`) is refused with `FieldRefusedError`."""

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

    def __post_init__(self) -> None:
        check_rules(self, RULES)
        for end, name in enumerate(FAILURES, 1):
            # A hair over 1 is float arithmetic (0.1 + 0.2 + 0.7), not a request for more.
            if math.fsum(getattr(self, n) for n in FAILURES[:end]) > 1 + 1e-9:
                raise FieldRefusedError(
                    name,
                    f"{name} takes {', '.join(FAILURES[:-1])} and {FAILURES[-1]} past 1 in "
                    "all: a request draws one of these failures at most",
                )

    @classmethod
    def from_dict(cls, data: Any) -> Faults:
        """Faults from what `PUT /sandbox/faults` took as JSON; FieldRefusedError naming
        the first field at fault."""
        return cls(**known_fields(data, cls, "the faults", "a fault field"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Faults:
        """Faults from a PUT's body (or `newsletter sandbox --faults`)."""
        return cls(**json_object(text, cls, "the faults", "a fault field"))


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
