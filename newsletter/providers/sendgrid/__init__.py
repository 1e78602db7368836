"""SendGrid: the v3 `mail/send` transport and the Event Webhook."""

from newsletter.providers.sendgrid.transport import SendGridTransport

__all__ = ["SendGridTransport"]
