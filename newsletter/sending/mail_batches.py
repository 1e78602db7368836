"""Claimed transactional mail as batches: readers whose message reads alike share a request.

A confirmation's content depends only on the reader's topics, a welcome's on their topics
and cadence; what is each reader's own (their name, their confirm, preferences and
unsubscribe links) travels as token values, as a brief's does. So an import's 50,000
confirmations, most of them alike, go as a few dozen requests of up to 1,000 readers each
and are rendered once per kind of reader. One request per message drained the queue at
about ten a second: a re-permission import took over an hour (stop 28's trial).

Each message is still judged and rendered when it is sent, from the reader's row as it is
then (`DUE_WHILE`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from newsletter.config import Settings
from newsletter.db import session_scope
from newsletter.fields import tokens_in
from newsletter.links import Links
from newsletter.models import Brief, MailKind, TransactionalMail
from newsletter.providers.base import Batch
from newsletter.render import RenderedEmail, render_confirmation, render_welcome
from newsletter.sending.testsend import batch_for_test_copy
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic, Topic, id_of

# The status a reader must still have for each kind to be worth sending.
DUE_WHILE = {
    MailKind.CONFIRMATION: SubscriberStatus.PENDING,
    MailKind.WELCOME: SubscriberStatus.ACTIVE,
}
# What a confirmation or welcome's content depends on: its kind, whether the reader follows
# every topic, the topics they follow (none listed for a reader of every topic) and, for a
# welcome, their cadence.
Look = tuple[str, bool, tuple[int, ...], str]


@dataclass
class Prepared:
    """What a tick's claim comes to. In every batch, a recipient's `delivery_id` is its
    `TransactionalMail` id."""

    batches: list[Batch] = field(default_factory=list)
    # The reader left, the brief is gone, or the same message is already in a batch.
    not_due: list[int] = field(default_factory=list)
    left_over: list[int] = field(default_factory=list)  # past this tick's requests: give back


def prepare(
    engine: Engine,
    mail_ids: list[int],
    settings: Settings,
    links: Links,
    *,
    batch_size: int,
    max_requests: int,
) -> Prepared:
    """The claimed messages (newest first) as at most `max_requests` batches, each of one
    look and at most `batch_size` readers, the newest messages' batches first; what does
    not fit is `left_over`. Four queries, whatever the claim's size."""
    prepared = Prepared()
    with session_scope(engine) as session:
        mails = session.exec(
            select(TransactionalMail).where(col(TransactionalMail.id).in_(mail_ids))
        ).all()
        by_id = {id_of(mail): mail for mail in mails}
        people = _readers(session, [m.subscriber_id for m in mails if m.subscriber_id])
        topics = _topics(session, [id_of(p) for p in people.values() if not p.all_topics])
        groups: dict[Look, list[list[tuple[TransactionalMail, Subscriber]]]] = {}
        order: list[tuple[Look, int]] = []  # each batch, in the order it is first needed
        taken: set[tuple[str, int]] = set()  # (kind, reader) already in this claim's batches
        for mail_id in mail_ids:
            mail = by_id.get(mail_id)
            if mail is None:  # a test copy deleted with its brief since the claim
                continue
            full = len(order) + len(prepared.batches) >= max_requests
            if mail.kind == MailKind.TEST_COPY:
                if full:
                    prepared.left_over.append(mail_id)
                elif (batch := _test_copy(session, mail, settings)) is None:
                    prepared.not_due.append(mail_id)
                else:
                    prepared.batches.append(batch)
                continue
            person = people.get(mail.subscriber_id or 0)
            if person is None or person.status != DUE_WHILE.get(MailKind(mail.kind)):
                prepared.not_due.append(mail_id)
                continue
            if (mail.kind, id_of(person)) in taken:
                # The same message twice (asked for again before the first went): one is
                # enough, and SendGrid refuses a request naming an address twice.
                prepared.not_due.append(mail_id)
                continue
            look = _look(mail, person, topics)
            parts = groups.setdefault(look, [])
            if not parts or len(parts[-1]) >= batch_size:
                if full:
                    prepared.left_over.append(mail_id)
                    continue
                parts.append([])
                order.append((look, len(parts) - 1))
            parts[-1].append((mail, person))
            taken.add((mail.kind, id_of(person)))
        looks = {look for look, _ in order}
        named = _topic_names(session, {t for look in looks for t in look[2]})
        rendered = {look: _render(look, named, settings) for look in looks}
    for look, n in order:
        prepared.batches.append(_batch(look, rendered[look], groups[look][n], links))
    return prepared


def _readers(session: Session, ids: Iterable[int]) -> dict[int, Subscriber]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    found = session.exec(select(Subscriber).where(col(Subscriber.id).in_(wanted)))
    return {id_of(person): person for person in found}


def _topics(session: Session, reader_ids: list[int]) -> dict[int, tuple[int, ...]]:
    """Each reader's topic ids, sorted (readers of no topic are absent)."""
    found: dict[int, list[int]] = defaultdict(list)
    if reader_ids:
        rows = session.exec(
            select(SubscriberTopic.subscriber_id, SubscriberTopic.topic_id)
            .where(col(SubscriberTopic.subscriber_id).in_(sorted(set(reader_ids))))
            .order_by(col(SubscriberTopic.topic_id))
        )
        for reader, topic in rows:
            found[reader].append(topic)
    return {reader: tuple(ids) for reader, ids in found.items()}


def _look(mail: TransactionalMail, person: Subscriber, topics: dict[int, tuple[int, ...]]) -> Look:
    chosen = () if person.all_topics else topics.get(id_of(person), ())
    cadence = person.cadence if mail.kind == MailKind.WELCOME else ""
    return (mail.kind, person.all_topics, chosen, cadence)


def _topic_names(session: Session, topic_ids: set[int]) -> dict[int, Topic]:
    """Every topic the tick's looks name, in one query (not one per look)."""
    if not topic_ids:
        return {}
    return {id_of(t): t for t in session.exec(select(Topic).where(col(Topic.id).in_(topic_ids)))}


def _render(look: Look, named: dict[int, Topic], settings: Settings) -> RenderedEmail:
    kind, every_topic, topic_ids, cadence = look
    topics = sorted((named[t] for t in topic_ids if t in named), key=lambda t: t.name)
    if kind == MailKind.CONFIRMATION:
        return render_confirmation(topics, settings, every_topic=every_topic)
    return render_welcome(topics, cadence, settings, every_topic=every_topic)


def _batch(
    look: Look,
    rendered: RenderedEmail,
    members: list[tuple[TransactionalMail, Subscriber]],
    links: Links,
) -> Batch:
    confirmation = look[0] == MailKind.CONFIRMATION
    used = tokens_in(rendered.html, rendered.text)
    return Batch(
        send_id=0,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        recipients=[
            links.recipient(
                delivery_id=id_of(mail),
                subscriber_id=id_of(person),
                email=person.email,
                name=person.name,
                confirm=confirmation,
                # Nothing to unsubscribe from before confirming.
                one_click=not confirmation,
                used=used,
            )
            for mail, person in members
        ],
        categories=[look[0]],
        # The welcome is the list's first message; a confirmation is not list mail yet.
        headers={} if confirmation else links.list_headers(),
        transactional=True,
    )


def _test_copy(session: Session, mail: TransactionalMail, settings: Settings) -> Batch | None:
    """A console test copy: one request each, as the CLI's (it is for one member of staff)."""
    brief = session.get(Brief, mail.brief_id) if mail.brief_id is not None else None
    if brief is None:  # deleted meanwhile
        return None
    batch = batch_for_test_copy(
        brief, mail.to_email, session=session, settings=settings, name=mail.to_name
    )
    recipients = [r._replace(delivery_id=id_of(mail)) for r in batch.recipients]
    return replace(batch, recipients=recipients, transactional=True)
