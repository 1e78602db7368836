"""One email to one person outside any send: a test copy, a confirmation, a welcome.

Through the configured transport like everything else, but with no ledger: these are not
part of a send, and `sends` never counts them.
"""

from __future__ import annotations

from newsletter.config import Settings
from newsletter.errors import NewsletterError
from newsletter.render import RenderedEmail, recipient_values
from newsletter.transports import Batch, Outcome, Recipient, make_transport


def send_one(
    rendered: RenderedEmail,
    *,
    settings: Settings,
    email: str,
    name: str,
    link_token: str,
    confirm_url: str | None = None,
    categories: list[str] | None = None,
    test: bool = False,
) -> str:
    """Send it; returns what the transport said, or raises NewsletterError."""
    base = settings.NEWSLETTER_BASE_URL
    unsubscribe_url = f"{base}/unsubscribe/{link_token}"
    recipient = Recipient(
        delivery_id=0,
        email=email,
        name=name,
        values=recipient_values(
            name=name,
            email=email,
            unsubscribe_url=unsubscribe_url,
            preferences_url=f"{base}/preferences/{link_token}",
            confirm_url=confirm_url,
        ),
        headers={}
        if confirm_url or test
        else {
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    batch = Batch(
        send_id=0,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        recipients=[recipient],
        categories=categories or [],
        test=test,
    )
    transport = make_transport(settings)
    result = transport.send_batch(batch)
    outcome = result.exceptions.get(0, result)
    if outcome.outcome is not Outcome.SENT:
        raise NewsletterError(f"the email was not sent ({outcome.outcome}): {outcome.error}")
    return f"sent through {transport.name}" + (
        f" (message id {result.message_id})" if result.message_id else ""
    )
