"""Provider webhooks: verified first, then applied in our own vocabulary."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

from newsletter.db import session_scope
from newsletter.errors import WebhookRejectedError
from newsletter.events import apply_events
from newsletter.providers.sendgrid import webhook as sendgrid
from newsletter.web.deps import Web
from newsletter.web.limits import WEBHOOK_MAX_BYTES, BodyTooLargeError
from subscribers.models import utcnow

log = logging.getLogger("newsletter.web")
router = APIRouter()


async def raw_body(request: Request) -> bytes:
    """The body as it came: the signature covers these exact bytes. Read on the event loop
    (it is I/O); the handler that verifies and applies it runs in the thread pool. Refused
    (413) as soon as it is declared, or streams, past WEBHOOK_MAX_BYTES: an unsigned post
    is never held in memory whole before its signature is checked."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared[:16]) > WEBHOOK_MAX_BYTES:
        raise BodyTooLargeError(WEBHOOK_MAX_BYTES)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > WEBHOOK_MAX_BYTES:
            raise BodyTooLargeError(WEBHOOK_MAX_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhooks/sendgrid")
def sendgrid_events(
    request: Request, web: Web, body: Annotated[bytes, Depends(raw_body)]
) -> PlainTextResponse:
    settings = web.settings
    now = utcnow()
    try:
        sendgrid.verify(
            settings.SENDGRID_WEBHOOK_PUBLIC_KEY,
            body,
            request.headers.get(sendgrid.SIGNATURE_HEADER, ""),
            request.headers.get(sendgrid.TIMESTAMP_HEADER, ""),
            now=now,
        )
        events = sendgrid.normalize(body, received_at=now)
    except WebhookRejectedError as exc:
        log.warning("SendGrid webhook refused: %s", exc)
        return PlainTextResponse(f"refused: {exc}", status_code=403)
    try:
        # Immediate: SQLite's write lock from the start, so two posts at once queue for it
        # instead of one failing to upgrade its read lock (no effect on PostgreSQL).
        with session_scope(web.engine, immediate=True) as session:
            report = apply_events(
                events, session=session, soft_bounce_limit=settings.NEWSLETTER_SOFT_BOUNCE_LIMIT
            )
    except Exception:  # the database is away: SendGrid retries a batch not answered 2xx
        log.exception("SendGrid webhook: events not applied")
        return PlainTextResponse("not applied; try again later", status_code=503)
    words = f"applied {report.applied}, duplicates {report.duplicates}"
    if report.rejected:
        words += f", rejected {report.rejected}"
        log.warning("SendGrid webhook: %s malformed events recorded as rejected", report.rejected)
    return PlainTextResponse(words)
