"""Creating a send: the brief is rendered and checked now, so a bad one is refused before
anything is queued; the ledger is planned later, when the send falls due (`plan.py`)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import Session

from newsletter.briefs import brief_topics, get_brief
from newsletter.config import Settings
from newsletter.errors import NewsletterError, NotFoundError
from newsletter.models import Send
from newsletter.render import render_brief
from subscribers.models import id_of, utcnow

_LOCAL_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def create_send(
    brief_reference: str,
    *,
    session: Session,
    settings: Settings,
    when: datetime | None = None,
    local_time: str = "",
) -> Send:
    """Render and check the brief, and schedule its send for `when` (now if None).

    A worker plans the ledger when `when` comes (subscribers who join or leave meanwhile
    are counted as they are then). With `local_time` ("07:00") it is planned at once and
    each recipient's row falls due at the next 07:00 in their own timezone.
    """
    if local_time and not _LOCAL_TIME.fullmatch(local_time):
        raise NewsletterError(f"local time {local_time!r}: write it as HH:MM, e.g. 07:00")
    brief = get_brief(brief_reference, session=session)
    topics = brief_topics(brief, session=session)
    if not topics:
        raise NewsletterError(
            f"brief {brief.slug!r} has no topics, so it would reach no one",
            hint="add it again with `newsletter briefs add FILE --topics a,b`, or set "
            "'topics:' in its front matter",
        )
    rendered = render_brief(brief, topics, settings)
    if clipping := rendered.clipping():
        raise NewsletterError(f"brief {brief.slug!r}: {clipping}; shorten it")
    send = Send(
        brief_id=id_of(brief),
        scheduled_at=when or utcnow(),
        local_time=local_time,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
    )
    session.add(send)
    session.flush()
    return send


def get_send(send_id: int, *, session: Session) -> Send:
    send = session.get(Send, send_id)
    if send is None:
        raise NotFoundError(f"no send {send_id}", hint="see `newsletter sends list`")
    return send
