"""`briefs test-send`: one copy of a brief, as a reader would get it, to a member of staff.

It goes through the configured transport like any send, marked as a test ("[TEST]" in the
subject, a `test` category or `X-Newsletter-Test` header) and touches no ledger: no Send,
no Delivery, nothing a report would count.
"""

from __future__ import annotations

from sqlmodel import Session

from newsletter.briefs import brief_topics, get_brief
from newsletter.config import Settings
from newsletter.render import render_brief
from newsletter.transactional import send_one
from subscribers.roster import normalize_email


def send_test_copy(
    reference: str, to: str, *, session: Session, settings: Settings, name: str = "Test Reader"
) -> str:
    """Send it; returns the transport's outcome in words, or raises with its error."""
    brief = get_brief(reference, session=session)
    rendered = render_brief(brief, brief_topics(brief, session=session), settings)
    return send_one(
        rendered,
        settings=settings,
        email=normalize_email(to),
        name=name,
        link_token="test",  # noqa: S106 - a placeholder path, not a secret
        categories=[brief.slug],
        test=True,
    )
