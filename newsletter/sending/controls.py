"""What staff do to a send while it runs: pause, resume, cancel, and decide the deliveries
whose hand-off was ambiguous. The send's status column is the control: workers read it
before every claim and every request, so nothing here talks to a worker."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel import Session

from newsletter.errors import ConflictError
from newsletter.models import Send, SendStatus
from newsletter.sending import ledger
from newsletter.sending.create import get_send


class ResolveAction(StrEnum):
    RESEND = "resend"
    DROP = "drop"


def _transition(session: Session, send_id: int, allowed: tuple[SendStatus, ...], verb: str) -> Send:
    send = get_send(send_id, session=session)
    if send.status not in allowed:
        raise ConflictError(
            f"send {send_id} is {send.status}; only a {' or '.join(allowed)} send can be {verb}"
        )
    return send


def pause_send(send_id: int, *, session: Session) -> Send:
    """Workers stop claiming at once; batches already on the wire finish and are recorded.
    Its status says it is paused; its last error stays what it was (a pause by staff is no
    error, and "Last error: paused by staff" read as one)."""
    send = _transition(session, send_id, (SendStatus.SCHEDULED, SendStatus.RUNNING), "paused")
    send.status = SendStatus.PAUSED
    session.add(send)
    return send


def resume_send(send_id: int, *, session: Session) -> Send:
    """Back to work; the failed-batch count starts again from zero, and the reason it
    paused is no longer shown as its last error (the audit log keeps who resumed it)."""
    send = _transition(session, send_id, (SendStatus.PAUSED,), "resumed")
    send.status = SendStatus.RUNNING if send.started_at else SendStatus.SCHEDULED
    send.failed_batches = 0
    send.last_error = ""
    session.add(send)
    return send


def cancel_send(send_id: int, *, session: Session, now: datetime) -> int:
    """Stop for good: queued rows become cancelled; returns how many. In-flight batches
    finish (their request may already be out) and are recorded as usual."""
    send = _transition(
        session,
        send_id,
        (SendStatus.SCHEDULED, SendStatus.RUNNING, SendStatus.PAUSED),
        "cancelled",
    )
    send.status = SendStatus.CANCELLED
    send.finished_at = now
    session.add(send)
    session.flush()
    return ledger.cancel_queued(session, send_id, now=now)


def resolve_unknown(
    send_id: int,
    action: ResolveAction,
    *,
    session: Session,
    now: datetime,
    wait: timedelta = timedelta(0),
) -> int:
    """Staff decide the ambiguous rows: resend them (risking a duplicate for some) or drop
    them (risking a miss for some). Returns how many rows changed.

    Resending is refused while the newest unknown row is younger than `wait`: the
    provider's events, which settle the rows it did accept, can lag by minutes."""
    send = get_send(send_id, session=session)
    since = ledger.unknown_since(session, [send_id]).get(send_id)
    if action is ResolveAction.RESEND and wait and since is not None and now - since[1] < wait:
        age = (now - since[1]).total_seconds()
        raise ConflictError(
            f"send {send_id}: its newest unknown delivery became unknown {age:,.0f} s ago; "
            f"the provider's events may still show it was accepted (they can lag by minutes), "
            f"and resending now could give those readers a second copy",
            hint=f"try again after {since[1] + wait:%Y-%m-%d %H:%M:%S} UTC, or add --now to "
            "resend them anyway",
        )
    changed = ledger.settle_unknown(
        session, send_id, resend=action is ResolveAction.RESEND, now=now
    )
    if changed and action is ResolveAction.RESEND and send.status == SendStatus.FINISHED:
        send.status = SendStatus.RUNNING
        send.finished_at = None
        session.add(send)
    return changed
