"""Double opt-in: the subscribe form, the confirm link. Plain functions the web handlers
call (and tests call directly); the emails they call for are queued for the worker
(`sending/transactional.py`) in the same transaction, never sent from here."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from newsletter.db import session_scope
from newsletter.links import Links
from newsletter.models import MailKind
from newsletter.sending.transactional import queue_mail
from subscribers.models import Subscriber, SubscriberStatus, id_of, utcnow
from subscribers.roster import confirm, sign_up


def start_signup(
    engine: Engine,
    *,
    email: str,
    name: str,
    topics: list[str],
    cadence: str,
    timezone: str,
    ip: str,
) -> None:
    """Record the wish and queue the confirmation email if one is due. Raises only for
    input the person can fix (an invalid address, an unknown topic)."""
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
        if outcome.subscriber is not None and outcome.needs_confirmation:
            queue_mail(session, MailKind.CONFIRMATION, id_of(outcome.subscriber), now=utcnow())


def finish_signup(engine: Engine, links: Links, token: str, *, ip: str) -> bool:
    """The confirm link: activate, and queue the welcome email. False for a bad link."""
    subscriber_id = links.confirmed_subscriber(token)
    if subscriber_id is None:
        return False
    with session_scope(engine) as session:
        before = session.get(Subscriber, subscriber_id)
        was_pending = before is not None and before.status == SubscriberStatus.PENDING
        person = confirm(subscriber_id, session=session, ip=ip)
        if person is None:
            return False
        if was_pending:  # a second click on the link does not send a second welcome
            queue_mail(session, MailKind.WELCOME, subscriber_id, now=utcnow())
    return True
