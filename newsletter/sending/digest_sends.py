"""A digest as a Send: one per distinct set of briefs in a (cadence, timezone) group,
rendered once and handed off like any send (`digests.py` makes its ledger), its briefs
kept in order in `send_brief`, so reports and later digests know what it carried."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.models import Brief, BriefTopic, Send, SendBrief, SendKind, SendStatus
from newsletter.render import render_digest
from subscribers.models import Topic, id_of


def digest_brief_ids(send_id: int, *, session: Session) -> list[int]:
    """A digest's briefs, oldest first."""
    return list(
        session.scalars(
            sa.select(col(SendBrief.brief_id))
            .where(col(SendBrief.send_id) == send_id)
            .order_by(col(SendBrief.position))
        )
    )


def digest_send(
    session: Session,
    settings: Settings,
    cadence: str,
    brief_ids: tuple[int, ...],
    members: int,
    now: datetime,
    on: date,
) -> int:
    """One digest's Send, rendered once for every reader whose set of briefs it is
    (`members` of them), ready to hand off; its briefs in `send_brief`, in order."""
    briefs = [session.get_one(Brief, brief_id) for brief_id in brief_ids]
    topics = list(
        session.exec(
            select(Topic)
            .join(BriefTopic, col(BriefTopic.topic_id) == col(Topic.id))
            .where(col(BriefTopic.brief_id).in_(brief_ids))
            .distinct()
            .order_by(Topic.name)
        )
    )
    rendered = render_digest(briefs, topics, settings, cadence=cadence, on=on)
    send = Send(
        kind=SendKind.DIGEST,
        brief_id=brief_ids[-1],
        status=SendStatus.RUNNING,
        scheduled_at=now,
        started_at=now,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        planned=members,
    )
    session.add(send)
    session.flush()
    session.execute(
        sa.insert(SendBrief),
        [
            {"send_id": id_of(send), "brief_id": brief_id, "position": position}
            for position, brief_id in enumerate(brief_ids)
        ],
    )
    return id_of(send)
