"""Who should receive a brief: the one definition, used by dispatch and by staff listings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import sqlalchemy as sa
from sqlmodel import col

from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic


def matching_subscribers(
    topic_ids: Iterable[int], *, cadences: Iterable[str] | None = None
) -> sa.Select[tuple[int]]:
    """`SELECT subscriber.id` of everyone a brief on these topics should reach.

    Active subscribers who follow all topics or at least one of these. The topics are
    numbers, not a subquery: the planner then estimates their followers from
    `subscriber_topic`'s statistics (newsletter's `audience.brief_topic_ids` says what a
    subquery cost). `cadences` narrows to immediate readers once digests exist.
    """
    topic_filter = col(SubscriberTopic.topic_id).in_(list(topic_ids))
    follows_one = (
        sa.select(sa.literal(1))
        .where(col(SubscriberTopic.subscriber_id) == col(Subscriber.id), topic_filter)
        .exists()
    )
    statement = sa.select(col(Subscriber.id)).where(
        col(Subscriber.status) == SubscriberStatus.ACTIVE,
        sa.or_(col(Subscriber.all_topics).is_(True), follows_one),
    )
    if cadences is not None:
        statement = statement.where(col(Subscriber.cadence).in_(list(cadences)))
    return cast(sa.Select[tuple[int]], statement)
