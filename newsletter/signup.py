"""Double opt-in: the subscribe form, the confirmation email, the confirm link, the welcome.

Plain functions the web handlers call (and tests call directly). The confirm link carries a
token signed for a different purpose than the unsubscribe/preferences links, so one cannot
stand in for the other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.dispatch import LINK_TOKEN_PURPOSE
from newsletter.errors import NewsletterError
from newsletter.render import RenderedEmail, render_confirmation, render_welcome
from newsletter.transactional import send_one
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic, Topic
from subscribers.roster import confirm, sign_up
from subscribers.tokens import TokenSigner

log = logging.getLogger("newsletter.signup")
CONFIRM_PURPOSE = "confirm-subscription"


class AttemptLimiter:
    """At most `limit` attempts per key in `window` seconds (in this process)."""

    def __init__(self, limit: int = 5, window: float = 600.0) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


def _topics_of(person: Subscriber, session: Session) -> list[Topic]:
    if person.all_topics:
        return []
    return list(
        session.exec(
            select(Topic)
            .join(SubscriberTopic, col(SubscriberTopic.topic_id) == col(Topic.id))
            .where(col(SubscriberTopic.subscriber_id) == person.id)
            .order_by(Topic.name)
        )
    )


def start_signup(
    engine: Engine,
    settings: Settings,
    *,
    email: str,
    name: str,
    topics: list[str],
    cadence: str,
    timezone: str,
    ip: str,
) -> None:
    """Record the wish and send the confirmation email if one is due. Raises only for input
    the person can fix (an invalid address, an unknown topic)."""
    signer = TokenSigner(settings.NEWSLETTER_SECRET_KEY.get_secret_value())
    with session_scope(engine) as session:
        outcome = sign_up(
            email,
            session=session,
            name=name,
            topics=topics,
            cadence=cadence,
            timezone=timezone,
            ip=ip,
        )
        person = outcome.subscriber
        if person is None or not outcome.needs_confirmation:
            return
        chosen = _topics_of(person, session)
        confirm_url = (
            f"{settings.NEWSLETTER_BASE_URL}/confirm/{signer.sign(CONFIRM_PURPOSE, person.id or 0)}"
        )
        rendered = render_confirmation(chosen, settings)
        address, who = person.email, person.name
        link_token = signer.sign(LINK_TOKEN_PURPOSE, person.id or 0)
    _send_quietly(
        rendered,
        "confirmation",
        settings=settings,
        email=address,
        name=who,
        link_token=link_token,
        confirm_url=confirm_url,
    )


def finish_signup(engine: Engine, settings: Settings, token: str, *, ip: str) -> bool:
    """The confirm link: activate and send the welcome email. False for a bad link."""
    signer = TokenSigner(settings.NEWSLETTER_SECRET_KEY.get_secret_value())
    subscriber_id = signer.verify(CONFIRM_PURPOSE, token)
    if subscriber_id is None:
        return False
    with session_scope(engine) as session:
        before = session.get(Subscriber, subscriber_id)
        was_pending = before is not None and before.status == SubscriberStatus.PENDING
        person = confirm(subscriber_id, session=session, ip=ip)
        if person is None:
            return False
        rendered = render_welcome(_topics_of(person, session), person.cadence, settings)
        address, who = person.email, person.name
    if was_pending:  # a second click on the link does not send a second welcome
        _send_quietly(
            rendered,
            "welcome",
            settings=settings,
            email=address,
            name=who,
            link_token=signer.sign(LINK_TOKEN_PURPOSE, subscriber_id),
        )
    return True


def _send_quietly(rendered: RenderedEmail, what: str, **details: Any) -> None:
    """Send one transactional email; a failure is logged for staff, never shown on the page
    (it would tell a stranger something about the address)."""
    try:
        send_one(rendered, categories=[what], **details)
    except NewsletterError as exc:
        log.error("%s email to %s not sent: %s", what, details.get("email"), exc)
