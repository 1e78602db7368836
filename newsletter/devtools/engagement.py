"""Readers opening and clicking, as SendGrid's Event Webhook reports them: `open` events
(some marked `sg_machine_open`, as SendGrid marks Apple Mail Privacy Protection's prefetch)
and `click` events carrying the link, for messages the sandbox accepted. The demo and the
tests post these through the real webhook; `POST /sandbox/engage` does it for anyone trying
the reports by hand.

Who opens and clicks is drawn from a seeded RNG, so a run is repeatable. Each field of an
`Engagement` has a rule (`RULES`), checked whenever one is made: `true` was taken as a
share or a count (a bool is an int in Python), and any seed at all, "abc" too.
"""

from __future__ import annotations

import html
import random
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from newsletter.devtools.inbox import Accepted

_LINK = re.compile(r'href="(https?://[^"]{1,2000})"')
# The reader's own keys (unsubscribe, preferences) are not what a report counts as interest.
_NOT_CONTENT = ("/unsubscribe/", "/preferences/")
_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
_MACHINE_AGENT = "Mozilla/5.0"  # what Apple's proxy shows: no client, no reader
# Opens per reader who opens, links per reader who clicks, clicks per link: a handful each.
MAX_REPEATS = 20
_SHARE = number_rule(1, "a share of readers from 0 to 1")
_REPEATS = whole_rule(MAX_REPEATS, f"a whole number from 0 to {MAX_REPEATS}")
# Each field: what its value passes, and what a refusal says it must be.
RULES: dict[str, Rule] = {
    "open_rate": _SHARE,
    "machine_rate": _SHARE,
    "click_rate": _SHARE,
    "repeat_opens": _REPEATS,
    "links_per_reader": _REPEATS,
    "repeat_clicks": _REPEATS,
    "seed": whole_rule(MAX_SEED, f"a whole number from 0 to {MAX_SEED}"),
}


def open_event(
    message: Accepted, *, machine: bool = False, at: float | None = None
) -> dict[str, Any]:
    """One `open`, as SendGrid words it (`sg_machine_open` true for a machine's fetch)."""
    return {
        **_base(message, "open", at),
        "useragent": _MACHINE_AGENT if machine else _AGENT,
        "ip": "17.58.0.1" if machine else "198.51.100.7",
        "sg_machine_open": machine,
    }


def click_event(message: Accepted, url: str, *, at: float | None = None) -> dict[str, Any]:
    """One `click` on `url`, as SendGrid words it."""
    links = content_links(message)
    offset = links.index(url) if url in links else 0
    return {
        **_base(message, "click", at),
        "url": url,
        "url_offset": {"index": offset, "type": "html"},
        "useragent": _AGENT,
        "ip": "198.51.100.7",
    }


def _base(message: Accepted, kind: str, at: float | None) -> dict[str, Any]:
    return {
        "email": message.to[0],
        "timestamp": int(at if at is not None else time.time()),
        "event": kind,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": f"{message.message_id}.filter0001",
        **message.custom_args,
    }


def content_links(message: Accepted) -> list[str]:
    """The links of a message's HTML a reader might follow (not their own keys), in order,
    as a browser follows them: an attribute's `&amp;` is `&` (the reports showed
    `?page=52&amp;ref=brief`, which SendGrid never reports)."""
    links = dict.fromkeys(html.unescape(link) for link in _LINK.findall(message.html))
    return [link for link in links if not any(part in link for part in _NOT_CONTENT)]


@dataclass
class Engagement:
    """What share of readers open, open by machine only, and click (`POST /sandbox/engage`
    takes the same fields as JSON). A reader who opens opens `repeat_opens` times; one who
    clicks follows up to `links_per_reader` links, each `repeat_clicks` times. Each reader
    draws one of: opens by machine, opens, neither; so `open_rate` and `machine_rate` are 1
    at most in all, and `click_rate`, a share of all readers, is `open_rate` at most.
    Anything else is refused with `FieldRefusedError`, naming the field."""

    open_rate: float = 0.5
    machine_rate: float = 0.1
    click_rate: float = 0.2
    repeat_opens: int = 2
    links_per_reader: int = 2
    repeat_clicks: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_rules(self, RULES)
        # A hair over is float arithmetic (0.9 + 0.1), not a request for more.
        if self.open_rate + self.machine_rate > 1 + 1e-9:
            raise FieldRefusedError(
                "machine_rate",
                "machine_rate takes open_rate and machine_rate past 1 in all: a reader opens "
                "by machine, opens, or neither",
            )
        if self.click_rate > self.open_rate + 1e-9:
            raise FieldRefusedError(
                "click_rate", "click_rate must be open_rate at most: only a reader who opens clicks"
            )

    @classmethod
    def from_dict(cls, data: Any) -> Engagement:
        """An Engagement from JSON already read; FieldRefusedError naming the first field
        at fault."""
        return cls(**known_fields(data, cls, "the engagement", "an engagement field"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Engagement:
        """An Engagement from `POST /sandbox/engage`'s body."""
        return cls(**json_object(text, cls, "the engagement", "an engagement field"))

    def events(
        self, messages: list[Accepted], *, start: float | None = None
    ) -> list[dict[str, Any]]:
        """Open and click events for `messages`, spread over the hours after `start`."""
        rng = random.Random(self.seed)
        start = start if start is not None else time.time()
        events: list[dict[str, Any]] = []
        for message in messages:
            roll = rng.random()
            if roll < self.machine_rate:
                events.append(open_event(message, machine=True, at=start + rng.uniform(0, 600)))
                continue
            if roll >= self.machine_rate + self.open_rate:
                continue
            first = start + rng.uniform(0, 36 * 3600)
            for repeat in range(self.repeat_opens):
                events.append(open_event(message, at=first + repeat * 1800))
            links = content_links(message)
            if links and rng.random() < self.click_rate / max(self.open_rate, 1e-9):
                for url in rng.sample(links, min(self.links_per_reader, len(links))):
                    for repeat in range(self.repeat_clicks):
                        events.append(click_event(message, url, at=first + 60 + repeat * 300))
        return events
