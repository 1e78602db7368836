"""Creating a send: the brief is rendered and checked now, so a bad one is refused before
anything is queued; the ledger is planned later, when the send falls due (`plan.py`).

The guards, each refused with what to do instead:

* a brief that already has a send (not cancelled) is refused, naming that send: `again`
  sends it to the readers who have not received it yet, and only `include_received` gives
  anyone a second copy;
* a send that would reach nobody, now or through digests, is refused unless `allow_empty`
  (it would still publish the brief);
* a time in the past is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.briefs import brief_topics, get_brief
from newsletter.config import Settings
from newsletter.errors import ConflictError, NewsletterError, NotFoundError
from newsletter.models import Brief, Send, SendKind, SendStatus
from newsletter.render import render_brief
from newsletter.sending.audience import Audience, count_audience
from subscribers.models import id_of, utcnow

_LOCAL_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def wall_clock(local: datetime, zone: str) -> datetime:
    """`local` (naive) as a moment in `zone`, refused if that zone's clocks skip it: 01:30
    on the night London's clocks go forward was taken as 02:30 without a word (and shown as
    "01:30 UTC"). A time the clocks pass twice is its first."""
    moment = local.replace(tzinfo=ZoneInfo(zone))
    back = moment.astimezone(UTC).astimezone(ZoneInfo(zone))
    if back.replace(tzinfo=None) != local:
        raise NewsletterError(
            f"{local:%Y-%m-%d %H:%M} does not exist in {zone}: the clocks go forward over it "
            f"that night; choose {back:%H:%M} or another time"
        )
    return moment


@dataclass(frozen=True)
class ScheduledSend:
    """A new send and whom it reaches, as `send` confirms it."""

    send: Send
    audience: Audience


def create_send(
    brief_reference: str, *, session: Session, settings: Settings, **options: Any
) -> Send:
    """Render and check the brief, and schedule its send for `when` (now if None).

    A worker plans the ledger when `when` comes (subscribers who join or leave meanwhile
    are counted as they are then). With `local_time` ("07:00") it is planned at once and
    each recipient's row falls due at the next 07:00 in their own timezone. `options` are
    `schedule_send`'s; this is it without the audience.
    """
    return schedule_send(brief_reference, session=session, settings=settings, **options).send


def schedule_send(
    brief_reference: str,
    *,
    session: Session,
    settings: Settings,
    when: datetime | None = None,
    local_time: str = "",
    again: bool = False,
    include_received: bool = False,
    allow_empty: bool = False,
    now: datetime | None = None,
) -> ScheduledSend:
    """`create_send`, with whom it reaches now and through digests (the guards above).
    `now`: the clock `when` must not be before (a test's or a replay's; default the real)."""
    if local_time and not _LOCAL_TIME.fullmatch(local_time):
        raise NewsletterError(f"local time {local_time!r}: write it as HH:MM, e.g. 07:00")
    now = now or utcnow()
    if when is not None and when < now.replace(second=0, microsecond=0):
        raise NewsletterError(
            f"{when:%Y-%m-%d %H:%M} {when.tzname() or 'UTC'} is in the past "
            f"(it is {now.astimezone(when.tzinfo):%Y-%m-%d %H:%M} there now)",
            hint="give a later time, or --now to send at once",
        )
    brief = get_brief(brief_reference, session=session)
    topics = brief_topics(brief, session=session)
    if not topics:
        raise NewsletterError(
            f"brief {brief.slug!r} has no topics, so it would reach no one",
            hint="add it again with `newsletter briefs add FILE --topics a,b`, or set "
            "'topics:' in its front matter",
        )
    earlier = _earlier_sends(brief, session)
    _refuse_a_second_send(brief, earlier, again=again or include_received)
    rendered = render_brief(brief, topics, settings)
    if clipping := rendered.clipping():
        raise NewsletterError(f"brief {brief.slug!r}: {clipping}; shorten it")
    audience = count_audience(id_of(brief), session=session, include_received=include_received)
    if earlier:  # digest readers had it with the first send's publication
        audience = Audience(now=audience.now, digests=0, received=audience.received)
    if audience.now + audience.digests == 0 and not allow_empty:
        already = f"; {audience.received} already have it" if audience.received else ""
        raise NewsletterError(
            f"brief {brief.slug!r} would reach no reader, now or through digests{already}",
            hint="check its topics and the list, or add --allow-empty to send (and publish) "
            "it anyway",
        )
    send = Send(
        brief_id=id_of(brief),
        scheduled_at=(when or now).astimezone(UTC),
        local_time=local_time,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        include_received=include_received,
    )
    session.add(send)
    session.flush()
    return ScheduledSend(send, audience)


def _earlier_sends(brief: Brief, session: Session) -> list[Send]:
    """The brief's sends that were not cancelled, oldest first."""
    return list(
        session.scalars(
            sa.select(Send)
            .where(
                col(Send.brief_id) == brief.id,
                col(Send.kind) == SendKind.BRIEF,
                col(Send.status) != SendStatus.CANCELLED,
            )
            .order_by(col(Send.id))
        )
    )


def _refuse_a_second_send(brief: Brief, earlier: list[Send], *, again: bool) -> None:
    if not earlier:
        return
    last = earlier[-1]
    said = f"send {last.id} ({last.status}, for {last.scheduled_at:%Y-%m-%d %H:%M} UTC)"
    if not again:
        raise ConflictError(f"brief {brief.slug!r} already has {said}", hint=_what_next(last))
    unplanned = [s for s in earlier if s.started_at is None]
    if unplanned:
        waiting = unplanned[-1]
        raise ConflictError(
            f"brief {brief.slug!r}: send {waiting.id} has not started yet and will reach "
            "every reader it matches then; --again only adds readers an earlier send missed",
            hint=f"wait for send {waiting.id}, or `newsletter sends cancel {waiting.id}`",
        )


def _what_next(last: Send) -> str:
    """What staff can do about the brief's last send, by its state: each hint once named a
    command that then refused (`sends cancel` of a finished send, `--again` beside one
    not yet started)."""
    cancel = f"`newsletter sends cancel {last.id}`"
    if last.started_at is None:
        return f"wait for send {last.id}, or {cancel} first to replace it"
    again = "--again sends it to the readers who have not received it yet"
    if last.status == SendStatus.FINISHED:
        return again
    return f"{again}; {cancel} first to replace it"


def get_send(send_id: int, *, session: Session) -> Send:
    send = session.get(Send, send_id)
    if send is None:
        raise NotFoundError(f"no send {send_id}", hint="see `newsletter sends list`")
    return send
