"""`briefs test-send`: one copy of a brief, as a reader would get it, to a member of staff.

It goes through the configured transport like any send, marked as a test ("[TEST]" in the
subject, a `test` category or `X-Newsletter-Test` header) and touches no ledger: no Send,
no Delivery, nothing a report would count. Staff run it from a terminal and wait for the
provider's answer on purpose: that answer is what they want to see. The console queues its
test copies instead (`transactional.queue_test_copy`): no page waits on a provider.
"""

from __future__ import annotations

from sqlmodel import Session

from newsletter.briefs import brief_topics, get_brief
from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.fields import tokens_in
from newsletter.links import TEST_COPY_READER, Links
from newsletter.models import Brief
from newsletter.providers.base import Batch, Outcome, make_transport
from newsletter.render import render_brief
from subscribers.roster import normalize_email


def batch_for_test_copy(
    brief: Brief, to: str, *, session: Session, settings: Settings, name: str = "Test Reader"
) -> Batch:
    """One copy of `brief` for `to`, marked as a test: what the CLI sends at once and what
    a worker sends for the console (`transactional.queue_test_copy`)."""
    rendered = render_brief(brief, brief_topics(brief, session=session), settings)
    recipient = Links.from_settings(settings).recipient(
        delivery_id=0,
        subscriber_id=TEST_COPY_READER,
        email=normalize_email(to),
        name=name,
        one_click=False,
        used=tokens_in(rendered.html, rendered.text),
    )
    return Batch(
        send_id=0,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        recipients=[recipient],
        categories=[brief.slug],
        test=True,
    )


def send_test_copy(
    reference: str, to: str, *, session: Session, settings: Settings, name: str = "Test Reader"
) -> str:
    """Send it; returns the transport's outcome in words, or raises with its error."""
    brief = get_brief(reference, session=session)
    batch = batch_for_test_copy(brief, to, session=session, settings=settings, name=name)
    transport = make_transport(settings)
    try:
        result = transport.send_batch(batch)
    finally:
        transport.close()
    outcome = result.exceptions.get(0, result)
    if outcome.outcome is not Outcome.SENT:
        raise NewsletterError(f"the test copy was not sent ({outcome.outcome}): {outcome.error}")
    return f"sent through {transport.name}" + (
        f" (message id {result.message_id})" if result.message_id else ""
    )
