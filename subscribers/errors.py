"""Errors of the subscriber side; each message says what to fix."""

from __future__ import annotations


class SubscriberError(Exception):
    """Root of what `subscribers` raises for bad input; `str()` is the message to show."""


class UnknownTopicError(SubscriberError):
    def __init__(self, unknown: list[str], known: list[str]) -> None:
        self.unknown = unknown
        self.known = known
        listed = ", ".join(known) if known else "none yet: add one with `newsletter topics add`"
        names = ", ".join(repr(slug) for slug in unknown)
        super().__init__(f"unknown topic {names} (known topics: {listed})")


class InvalidSubscriberError(SubscriberError):
    """A subscriber field that does not validate; names the field."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field} {value!r}: {reason}")


class SubscriberNotFoundError(SubscriberError):
    pass


class TopicExistsError(SubscriberError):
    pass
