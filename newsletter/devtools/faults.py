"""What the sandbox does wrong on purpose, to rehearse an outage (`PUT /sandbox/faults`)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from newsletter.devtools.mail_send_errors import error
from newsletter.devtools.mail_send_limits import _ADDRESS

# Past a sender's 30 s default timeout (a provider that never answers), short of a thread
# asleep for good.
MAX_DELAY_SECONDS = 300
MAX_RETRY_AFTER = 3600
MAX_SEED = 2**32 - 1
MAX_REFUSED = 1000
MAX_ADDRESS_LENGTH = 254  # RFC 5321's longest path, less its angle brackets
# A request draws one of these failures at most, so their shares add up to 1 at most.
FAILURES = ("rate_429", "rate_500", "rate_503", "rate_drop")


class FaultsRefusedError(ValueError):
    """Faults the sandbox will not take: `field` names the one at fault (None: the body as
    a whole), the message what it must be."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field


def _number(value: Any, top: float) -> bool:
    """From 0 to `top`: not a bool (True is an int), and never NaN or infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= top


def _whole(value: Any, top: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top


def _addresses(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= MAX_REFUSED
        and all(
            isinstance(a, str) and len(a) <= MAX_ADDRESS_LENGTH and _ADDRESS.match(a) for a in value
        )
    )


_SHARE: tuple[Callable[[Any], bool], str] = (
    lambda value: _number(value, 1),
    "a share of requests from 0 to 1",
)
# Each field: what its value passes, and what a refusal says it must be.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "rate_429": _SHARE,
    "rate_500": _SHARE,
    "rate_503": _SHARE,
    "rate_drop": _SHARE,
    "rate_delay": _SHARE,
    "delay_seconds": (
        lambda value: _number(value, MAX_DELAY_SECONDS),
        f"a number of seconds from 0 to {MAX_DELAY_SECONDS}",
    ),
    "retry_after": (
        lambda value: _whole(value, MAX_RETRY_AFTER),
        f"a whole number of seconds from 0 to {MAX_RETRY_AFTER}",
    ),
    "seed": (lambda value: _whole(value, MAX_SEED), f"a whole number from 0 to {MAX_SEED}"),
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
    A value out of its range (`RULES`) is refused with `FaultsRefusedError`."""

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
        for name, (valid, meaning) in RULES.items():
            if not valid(getattr(self, name)):
                raise FaultsRefusedError(name, f"{name} must be {meaning}")
        for end, name in enumerate(FAILURES, 1):
            # A hair over 1 is float arithmetic (0.1 + 0.2 + 0.7), not a request for more.
            if math.fsum(getattr(self, n) for n in FAILURES[:end]) > 1 + 1e-9:
                raise FaultsRefusedError(
                    name,
                    f"{name} takes {', '.join(FAILURES[:-1])} and {FAILURES[-1]} past 1 in "
                    "all: a request draws one of these failures at most",
                )

    @classmethod
    def from_dict(cls, data: Any) -> Faults:
        """Faults from what `PUT /sandbox/faults` took as JSON; FaultsRefusedError naming
        the first field at fault."""
        known = sorted(f.name for f in fields(cls))
        if not isinstance(data, dict):
            raise FaultsRefusedError(
                None, f"the faults must be a JSON object with fields {', '.join(known)}"
            )
        unknown = sorted(map(str, set(data) - set(known)))
        if unknown:
            others = ", ".join(unknown[1:4]) + (", …" if len(unknown) > 4 else "")
            nor = f" (nor {others})" if others else ""
            raise FaultsRefusedError(
                unknown[0],
                f"{unknown[0]} is not a fault field{nor}; they are {', '.join(known)}",
            )
        return cls(**data)

    @classmethod
    def from_json(cls, text: str | bytes) -> Faults:
        """Faults from a PUT's body (or `newsletter sandbox --faults`)."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested too deep
            data = None
        return cls.from_dict(data)


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
