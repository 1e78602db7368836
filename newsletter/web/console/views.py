"""What the brief pages show, gathered by plain functions the routes call once each."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlmodel import Session, col

from newsletter.briefs import BriefState, brief_state, brief_topics, suggested_topics
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.fields import SAMPLE_READER, fill, sample_values
from newsletter.links import Links
from newsletter.models import Brief, TransactionalMail
from newsletter.render import RenderedEmail, render_brief
from newsletter.sending.transactional import recent_test_copies
from newsletter.staff.accounts import list_staff
from newsletter.staff.models import Staff
from subscribers.matching import matching_subscribers
from subscribers.models import Subscriber, SubscriberStatus, Topic, id_of, utcnow
from subscribers.roster import get_subscriber
from subscribers.topics import Suggestion, list_topics

_DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")


@dataclass(frozen=True)
class Reader:
    """Whose values fill the preview: a real reader's, or the sample reader's."""

    label: str
    values: dict[str, str]
    missing: str = ""  # the address asked for, when no such reader exists
    subscriber: Subscriber | None = None  # the real reader, when there is one


def reader_values(address: str, *, session: Session, settings: Settings) -> Reader:
    address = address.strip()[:320]
    if address:
        try:
            person: Subscriber | None = get_subscriber(address, session=session)
        except NewsletterError:
            person = None
        if person is not None and person.id is not None:
            recipient = Links.from_settings(settings).recipient(
                delivery_id=0, subscriber_id=person.id, email=person.email, name=person.name
            )
            label = f"{person.name or 'no name'} <{person.email}>"
            return Reader(label, recipient.values, subscriber=person)
        return Reader(_sample_label(), sample_values(settings.NEWSLETTER_BASE_URL), missing=address)
    return Reader(_sample_label(), sample_values(settings.NEWSLETTER_BASE_URL))


def _sample_label() -> str:
    return f"{SAMPLE_READER['name']} <{SAMPLE_READER['email']}>"


def dark(html: str) -> str:
    """The email as a client in dark mode shows it: its dark-mode rules always on."""
    return _DARK_QUERY.sub("@media all", html)


@dataclass(frozen=True)
class BriefView:
    brief: Brief
    state: BriefState
    topics: list[Topic]
    all_topics: list[Topic]
    rendered: RenderedEmail
    reader: Reader
    text: str  # the text part as the reader gets it
    suggestions: list[Suggestion] = field(default_factory=list)
    test_copies: list[TransactionalMail] = field(default_factory=list)
    staff: list[Staff] = field(default_factory=list)
    # Why a send of it would pass the chosen reader by ("" when it would not).
    passed_by: str = ""

    @property
    def editable(self) -> bool:
        return self.state.status == "draft" and not self.state.published

    @property
    def in_archive(self) -> bool:
        """The archive shows it now (its link would be a 404 before its first readers are
        due)."""
        return self.state.public_from is not None and self.state.public_from <= utcnow()


# A reader mailed no brief, by status, as the preview's warning says it.
_NOT_MAILED = {
    SubscriberStatus.PENDING: "they have not confirmed their subscription yet",
    SubscriberStatus.PAUSED: "they paused their mail",
    SubscriberStatus.UNSUBSCRIBED: "they unsubscribed",
    SubscriberStatus.BOUNCED: "their address bounced",
    SubscriberStatus.COMPLAINED: "they marked a brief as spam",
    SubscriberStatus.FORGOTTEN: "they asked to be forgotten",
}


def _passed_by(person: Subscriber | None, topics: list[Topic], *, session: Session) -> str:
    """Why a send of a brief on `topics` would pass `person` by, or "". Staff previewing
    "as" such a reader were shown the email with nothing saying they would not get it. The
    verdict is the send's own matching (subscribers/matching.py), asked of this one reader;
    only its words are chosen here."""
    if person is None:
        return ""
    matched = matching_subscribers([id_of(topic) for topic in topics]).where(
        col(Subscriber.id) == id_of(person)
    )
    if session.scalar(matched) is not None:
        return ""
    if person.status in _NOT_MAILED:
        return _NOT_MAILED[SubscriberStatus(person.status)]
    names = ", ".join(topic.name for topic in topics) or "it has none yet"
    return f"they follow none of its topics ({names})"


def brief_view(brief: Brief, reader: str, *, session: Session, settings: Settings) -> BriefView:
    topics = brief_topics(brief, session=session)
    rendered = render_brief(brief, topics, settings)
    chosen = reader_values(reader, session=session, settings=settings)
    return BriefView(
        brief=brief,
        state=brief_state(brief, session=session),
        topics=topics,
        all_topics=list_topics(session=session),
        rendered=rendered,
        reader=chosen,
        text=fill(rendered.text, chosen.values),
        suggestions=[] if topics else suggested_topics(brief, session=session),
        test_copies=recent_test_copies(session, id_of(brief)),
        staff=list_staff(session=session),
        passed_by=_passed_by(chosen.subscriber, topics, session=session),
    )
