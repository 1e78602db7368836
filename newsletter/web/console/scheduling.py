"""Scheduling a brief from the console: when (now, a time in a zone, each reader's local
time), and what the confirm step tells staff before anything is queued."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session

from newsletter.briefs import brief_state, brief_topics
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.models import Brief, Send
from newsletter.render import GMAIL_CLIP_BYTES, render_brief
from newsletter.sending.audience import Audience, count_audience
from newsletter.sending.create import create_send, wall_clock
from subscribers.models import id_of, utcnow

_LOCAL = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
# Past this share of Gmail's limit the confirm step warns; past the limit create_send refuses.
CLIP_WARNING_SHARE = 0.8


@dataclass(frozen=True)
class When:
    mode: str  # "now", "at" or "local"
    at: datetime | None = None  # aware, for "at"
    local_time: str = ""  # "HH:MM", for "local"
    # As staff typed it, to carry through the confirm step.
    at_text: str = ""
    zone: str = ""

    def describe(self) -> str:
        if self.mode == "local":
            return f"at {self.local_time} in each reader's own timezone"
        if self.mode == "at" and self.at is not None:
            moment = f"at {self.at:%Y-%m-%d %H:%M} {self.zone}"
            utc = self.at.astimezone(UTC)
            return moment if self.zone == "UTC" else f"{moment} ({utc:%Y-%m-%d %H:%M} UTC)"
        return "now (a worker starts it on its next tick)"


def parse_when(mode: str, at: str, zone: str, local_time: str, settings: Settings) -> When:
    """The schedule form's fields → When, or a refusal naming the field."""
    if mode == "now":
        return When("now")
    if mode == "local":
        if not _LOCAL.fullmatch(local_time.strip()):
            raise NewsletterError(f"local time {local_time!r}: write it as HH:MM, e.g. 07:00")
        return When("local", local_time=local_time.strip())
    if mode != "at":
        raise NewsletterError("choose when: now, at a time, or at each reader's local time")
    zone = zone or settings.NEWSLETTER_TIMEZONE
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise NewsletterError(f"time zone {zone!r} is not an IANA zone (e.g. Asia/Tokyo)") from None
    try:
        local = datetime.strptime(at.strip().replace("T", " "), "%Y-%m-%d %H:%M")
    except ValueError:
        raise NewsletterError(
            f"time {at!r}: give a date and a time, e.g. 2026-06-11 07:00"
        ) from None
    moment = wall_clock(local, zone)
    # Said at the confirm step, not after its button: create_send refuses it there too.
    if moment <= utcnow():
        raise NewsletterError(
            f"time {at.strip()!r} in {zone} is in the past; choose a later time, or send now"
        )
    return When("at", at=moment, at_text=at.strip(), zone=zone)


@dataclass(frozen=True)
class Confirmation:
    """What the confirm step says: who it reaches, and what to think about first."""

    audience: Audience
    html_bytes: int
    clipping: str  # why Gmail would clip it; create_send refuses such a brief
    near_clipping: bool
    sent_before: bool  # a send of it started before: this would be a second send
    clip_limit: int = GMAIL_CLIP_BYTES


def confirmation(brief: Brief, *, session: Session, settings: Settings) -> Confirmation:
    rendered = render_brief(brief, brief_topics(brief, session=session), settings)
    audience = count_audience(id_of(brief), session=session)
    return Confirmation(
        audience=audience,
        html_bytes=rendered.html_bytes,
        clipping=rendered.clipping(),
        near_clipping=rendered.html_bytes > GMAIL_CLIP_BYTES * CLIP_WARNING_SHARE,
        sent_before=brief_state(brief, session=session).published or audience.received > 0,
    )


def schedule(
    brief: Brief, when: When, *, session: Session, settings: Settings, again: bool = False
) -> Send:
    """Create the send through `create_send`, which renders and checks the brief and refuses
    a time in the past or a second send staff did not ask for (`again`: they ticked "Yes,
    send it again"; it goes to the readers who do not have it yet)."""
    return create_send(
        str(id_of(brief)),
        session=session,
        settings=settings,
        when=when.at,
        local_time=when.local_time,
        again=again,
    )
