"""Errors of the subscriber side, and the root of the project's whole error tree.

The root, `NewsletterError`, lives here because `subscribers/` is the lowest layer: it may
not import `newsletter/`, and `newsletter/` builds on it. `newsletter/errors.py` re-exports
it and documents the whole tree. Every message says what is wrong in words a person can act
on; `hint` holds what to do next where that depends on the surface (the CLI prints it; a
web page does not).
"""

from __future__ import annotations

import re


class NewsletterError(Exception):
    """Something a person can fix; `str()` is the message to show them."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class SubscriberError(NewsletterError):
    """Bad input about a subscriber or a topic."""


def _as_slug(text: str) -> str:
    """What `topics add` takes for a topic written in words: "energy security" as
    `energy-security` (the advice named a slug the command refuses)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64] or "a-slug"


class UnknownTopicError(SubscriberError):
    def __init__(self, unknown: list[str], known: list[str]) -> None:
        self.unknown = unknown
        self.known = known
        listed = ", ".join(known) if known else "none yet"
        names = ", ".join(repr(slug) for slug in unknown)
        super().__init__(
            f"unknown topic {names} (known topics: {listed})",
            hint=f"add it first: `newsletter topics add {_as_slug(unknown[0])} --name …`"
            if unknown
            else "",
        )


class InvalidSubscriberError(SubscriberError):
    """A subscriber field that does not validate; names the field."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field} {value!r}: {reason}")


class SubscriberNotFoundError(SubscriberError):
    """No subscriber with that address."""


class TopicExistsError(SubscriberError):
    """A topic slug that is already taken."""
