"""Transactional mail (confirmation, welcome, the console's test copies): queued by a web
request in the same transaction as the change that calls for it, sent by a worker. No page
waits on a provider, and a provider that is slow or down delays a confirmation, never a page.

Each message is rendered when it is sent, from the reader's row as it is then: a
confirmation goes only to a reader still pending, a welcome only to one still active, so a
reader who left (or complained, bounced, was forgotten) meanwhile is never mailed. Like the
ledger, a message is marked on the wire (`sending`) before its request, so a worker killed
mid-request leaves it `unknown`, never sent twice blindly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.db import is_postgresql, session_scope
from newsletter.fields import tokens_in
from newsletter.links import Links
from newsletter.models import Brief, MailKind, MailStatus, TransactionalMail
from newsletter.providers.base import Batch, BatchResult, Outcome, Transport
from newsletter.render import RenderedEmail, render_confirmation, render_welcome
from newsletter.sending.testsend import batch_for_test_copy
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic, Topic, id_of

log = logging.getLogger("newsletter.transactional")

# The status a reader must still have for each kind to be worth sending.
DUE_WHILE = {
    MailKind.CONFIRMATION: SubscriberStatus.PENDING,
    MailKind.WELCOME: SubscriberStatus.ACTIVE,
}
CLAIM_LIMIT = 50


def queue_mail(session: Session, kind: MailKind, subscriber_id: int, *, now: datetime) -> None:
    """Queue one message, in the caller's transaction (so it exists iff the change does)."""
    queue_many(session, kind, [subscriber_id], now=now)


def queue_many(
    session: Session, kind: MailKind, subscriber_ids: list[int], *, now: datetime
) -> None:
    """`queue_mail` for many readers at once (an import's confirmations): one statement."""
    if subscriber_ids:
        session.execute(
            sa.insert(TransactionalMail),
            [
                {
                    "kind": kind.value,
                    "subscriber_id": subscriber_id,
                    "status": MailStatus.QUEUED.value,
                    "attempts": 0,
                    "not_before": now,
                    "created_at": now,
                    "to_email": "",
                    "to_name": "",
                    "message_id": "",
                }
                for subscriber_id in subscriber_ids
            ],
        )


def queue_test_copy(
    session: Session, brief_id: int, to_email: str, to_name: str, *, now: datetime
) -> TransactionalMail:
    """Queue a [TEST] copy of a brief for a member of staff (the console's test-send). It
    is rendered when sent, so it shows the brief as it is then."""
    mail = TransactionalMail(
        kind=MailKind.TEST_COPY,
        brief_id=brief_id,
        to_email=to_email,
        to_name=to_name,
        not_before=now,
        created_at=now,
    )
    session.add(mail)
    session.flush()
    return mail


def recent_test_copies(
    session: Session, brief_id: int, *, limit: int = 5
) -> list[TransactionalMail]:
    """A brief's newest test copies, for the console to say what became of them."""
    return list(
        session.exec(
            select(TransactionalMail)
            .where(
                col(TransactionalMail.kind) == MailKind.TEST_COPY,
                col(TransactionalMail.brief_id) == brief_id,
            )
            .order_by(col(TransactionalMail.id).desc())
            .limit(limit)
        )
    )


@dataclass
class MailReport:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    unknown: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.sent + self.failed + self.retried + self.unknown


def waiting_mail(session: Session) -> int:
    """Messages queued or in hand: what `/metrics` and `sends status` call waiting."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(TransactionalMail)
            .where(col(TransactionalMail.status).in_([MailStatus.QUEUED, MailStatus.CLAIMED]))
        )
        or 0
    )


def _recover(engine: Engine, now: datetime) -> int:
    """A dead worker's messages: back in the queue if not yet on the wire, else unknown."""
    expired = col(TransactionalMail.lease_expires_at) < now
    with session_scope(engine, immediate=True) as session:
        session.execute(
            sa.update(TransactionalMail)
            .where(col(TransactionalMail.status) == MailStatus.CLAIMED, expired)
            .values(status=MailStatus.QUEUED, lease_expires_at=None)
        )
        return int(
            session.execute(
                sa.update(TransactionalMail)
                .where(col(TransactionalMail.status) == MailStatus.SENDING, expired)
                .values(status=MailStatus.UNKNOWN, error="the worker stopped mid-request")
            ).rowcount  # type: ignore[attr-defined]
            or 0
        )


def _claim(engine: Engine, now: datetime, lease: timedelta) -> list[int]:
    picked = (
        sa.select(col(TransactionalMail.id))
        .where(
            col(TransactionalMail.status) == MailStatus.QUEUED,
            col(TransactionalMail.not_before) <= now,
        )
        # Newest due first: someone who just signed up is at their inbox now, and an
        # import's backlog of confirmations (or one left by an outage) drains behind
        # them instead of ahead. It is also the index's own order, read backwards from
        # `now`: fifty rows, not a sort of everything due.
        .order_by(col(TransactionalMail.not_before).desc(), col(TransactionalMail.id).desc())
        .limit(CLAIM_LIMIT)
    )
    with session_scope(engine, immediate=True) as session:
        if is_postgresql(session):
            picked = picked.with_for_update(skip_locked=True)
        ids = [cast(int, i) for i in session.scalars(picked)]
        if ids:
            session.execute(
                sa.update(TransactionalMail)
                .where(col(TransactionalMail.id).in_(ids))
                .values(status=MailStatus.CLAIMED, lease_expires_at=now + lease)
            )
    return ids


def _give_back(engine: Engine, mail_ids: list[int]) -> None:
    """Claimed messages not begun go back in line, for this worker's next start or another
    worker, at once rather than when their lease runs out."""
    with session_scope(engine) as session:
        session.execute(
            sa.update(TransactionalMail)
            .where(
                col(TransactionalMail.id).in_(mail_ids),
                col(TransactionalMail.status) == MailStatus.CLAIMED,
            )
            .values(status=MailStatus.QUEUED, lease_expires_at=None)
        )


def _set(engine: Engine, mail_id: int, *, expect: MailStatus, **values: Any) -> bool:
    """Compare-and-set one message's status; False if another worker moved it first."""
    with session_scope(engine) as session:
        return bool(
            session.execute(
                sa.update(TransactionalMail)
                .where(
                    col(TransactionalMail.id) == mail_id, col(TransactionalMail.status) == expect
                )
                .values(**values)
            ).rowcount  # type: ignore[attr-defined]
        )


def _topics_of(person: Subscriber, session: Session) -> list[Topic]:
    if person.all_topics:
        return []
    return list(
        session.exec(
            select(Topic)
            .join(SubscriberTopic, col(SubscriberTopic.topic_id) == col(Topic.id))
            .where(col(SubscriberTopic.subscriber_id) == person.id)
            .order_by(col(Topic.name))
        )
    )


def _render(kind: str, person: Subscriber, session: Session, settings: Settings) -> RenderedEmail:
    topics = _topics_of(person, session)
    if kind == MailKind.CONFIRMATION:
        return render_confirmation(topics, settings)
    return render_welcome(topics, person.cadence, settings)


def _batch(
    mail: TransactionalMail, person: Subscriber, rendered: RenderedEmail, links: Links
) -> Batch:
    confirmation = mail.kind == MailKind.CONFIRMATION
    recipient = links.recipient(
        delivery_id=0,
        subscriber_id=id_of(person),
        email=person.email,
        name=person.name,
        confirm=confirmation,
        # Nothing to unsubscribe from before confirming.
        one_click=not confirmation,
        used=tokens_in(rendered.html, rendered.text),
    )
    return Batch(
        send_id=0,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        recipients=[recipient],
        categories=[mail.kind],
        # The welcome is the list's first message; a confirmation is not list mail yet.
        headers={} if confirmation else links.list_headers(),
    )


def _prepare(engine: Engine, mail_id: int, settings: Settings, links: Links) -> Batch | None:
    """The message as it would go now; None when it is no longer due."""
    with session_scope(engine) as session:
        mail = session.get_one(TransactionalMail, mail_id)
        if mail.kind == MailKind.TEST_COPY:
            brief = session.get(Brief, mail.brief_id) if mail.brief_id is not None else None
            if brief is None:  # deleted meanwhile
                return None
            return batch_for_test_copy(
                brief, mail.to_email, session=session, settings=settings, name=mail.to_name
            )
        if mail.subscriber_id is None:
            return None
        person = session.get(Subscriber, mail.subscriber_id)
        if person is None or person.status != DUE_WHILE.get(MailKind(mail.kind)):
            return None
        return _batch(mail, person, _render(mail.kind, person, session, settings), links)


def send_queued_mail(
    engine: Engine,
    settings: Settings,
    transport: Transport,
    *,
    now: datetime,
    stopping: Callable[[], bool] = lambda: False,
) -> MailReport:
    """Send what is due, one message per request (each is its own email). Asked to stop
    (`stopping`), it finishes the message in hand and gives the rest of its claim back:
    with a provider answering in 3 s, the fifty it may hold took minutes, far past
    systemd's stop timeout."""
    report = MailReport()
    report.unknown = _recover(engine, now)
    lease = timedelta(seconds=settings.NEWSLETTER_LEASE_SECONDS)
    links = Links.from_settings(settings)
    claimed = _claim(engine, now, lease)
    for n, mail_id in enumerate(claimed):
        if stopping():
            _give_back(engine, claimed[n:])
            break
        batch = _prepare(engine, mail_id, settings, links)
        if batch is None:
            _set(engine, mail_id, expect=MailStatus.CLAIMED, status=MailStatus.SKIPPED)
            report.skipped += 1
            continue
        attempts = col(TransactionalMail.attempts) + 1
        if _set(
            engine, mail_id, expect=MailStatus.CLAIMED, status=MailStatus.SENDING, attempts=attempts
        ):
            _record(engine, mail_id, transport.send_batch(batch), settings, now, report)
    return report


def _record(
    engine: Engine,
    mail_id: int,
    result: BatchResult,
    settings: Settings,
    now: datetime,
    report: MailReport,
) -> None:
    answer = result.exceptions.get(0)
    outcome, error = (answer.outcome, answer.error) if answer else (result.outcome, result.error)
    if result.fatal or outcome is Outcome.RETRY_LATER:
        # Nothing was accepted: try again later, a bounded number of times.
        with session_scope(engine) as session:
            attempts = session.get_one(TransactionalMail, mail_id).attempts
        if not result.fatal and attempts >= settings.NEWSLETTER_MAX_ATTEMPTS:
            _set(
                engine,
                mail_id,
                expect=MailStatus.SENDING,
                status=MailStatus.FAILED,
                error=f"{error} (gave up after {attempts} attempts)",
            )
            report.failed += 1
        else:
            delay = timedelta(seconds=min(3600, 30 * 2 ** min(attempts, 7)))
            _set(
                engine,
                mail_id,
                expect=MailStatus.SENDING,
                status=MailStatus.QUEUED,
                not_before=now + delay,
                lease_expires_at=None,
                error=error,
            )
            report.retried += 1
        report.errors.append(error)
        return
    status = {Outcome.SENT: MailStatus.SENT, Outcome.FAILED: MailStatus.FAILED}.get(
        outcome, MailStatus.UNKNOWN
    )
    _set(
        engine,
        mail_id,
        expect=MailStatus.SENDING,
        status=status,
        error=error,
        message_id=result.message_id,
        sent_at=now if status is MailStatus.SENT else None,
    )
    if status is MailStatus.SENT:
        report.sent += 1
    elif status is MailStatus.FAILED:
        report.failed += 1
        report.errors.append(error)
    else:
        report.unknown += 1
