"""One recipient's message as MIME, for transports that hand over whole messages (SMTP,
outbox). SendGrid fills tokens itself; these fill them here with `render.fill`, which
refuses to leave a token unfilled."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

from newsletter.errors import TemplateError
from newsletter.fields import fill
from newsletter.providers.base import Batch, Outcome, Recipient, RecipientResult

# What building one recipient's message can raise: a value no header or part can carry.
BUILD_ERRORS = (ValueError, TypeError, UnicodeError, TemplateError)


def unbuildable(exc: Exception) -> RecipientResult:
    """One recipient whose message cannot be built fails alone, saying why."""
    return RecipientResult(Outcome.FAILED, f"the message could not be built: {exc}")


def sender_domain(from_header: str) -> str:
    return parseaddr(from_header)[1].rpartition("@")[2] or "localhost"


def build_message(batch: Batch, recipient: Recipient, *, from_header: str) -> EmailMessage:
    """The whole message. Names, subject and headers arrive header-safe (`headers.py`)."""
    message = EmailMessage(policy=SMTP)
    message["From"] = from_header
    message["To"] = formataddr((recipient.name, recipient.email))
    message["Subject"] = f"[TEST] {batch.subject}" if batch.test else batch.subject
    # "+0000": the time is known to be UTC (RFC 5322 §3.3; "-0000" would say it is not).
    message["Date"] = format_datetime(datetime.now(UTC))
    kind = "m" if batch.transactional else "d"
    message["Message-ID"] = make_msgid(
        idstring=f"{kind}{recipient.delivery_id}", domain=sender_domain(from_header)
    )
    for name, value in {**batch.headers, **recipient.headers}.items():
        message[name] = value
    # What SendGrid carries as custom_args: lets bounces be traced to the row.
    if batch.transactional:
        message["X-Newsletter-Mail"] = str(recipient.delivery_id)
    else:
        message["X-Newsletter-Delivery"] = str(recipient.delivery_id)
        message["X-Newsletter-Send"] = str(batch.send_id)
    if batch.test:
        message["X-Newsletter-Test"] = "yes"
    message.set_content(fill(batch.text, recipient.values))
    message.add_alternative(fill(batch.html, recipient.values), subtype="html")
    return message
