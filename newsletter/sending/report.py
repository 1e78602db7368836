"""What a send did: its ledger counted per state, its rate and time to go, for the CLI
and the console alike (`SendSummary.as_dict()`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.models import OPEN_STATES, SETTLED_STATES, Brief, Send, SendKind, SendStatus
from newsletter.sending import ledger
from newsletter.sending.create import get_send
from subscribers.models import id_of, utcnow


@dataclass(frozen=True)
class SendSummary:
    id: int
    brief_slug: str
    status: str
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    planned: int
    counts: dict[str, int]
    failed_batches: int
    last_error: str
    rate: float  # rows workers handled a second since it started (0 for a send in waves)
    eta_seconds: float | None
    # When a worker next has something to do for it: its start, or the next local-time wave.
    next_action_at: datetime | None = None
    local_time: str = ""
    # When the oldest and the newest `unknown` rows became unknown (events may still come).
    unknown_since: tuple[datetime, datetime] | None = None
    # When the leases of its rows in a worker's hands (`claimed`) run out: a stopped
    # worker's come back to the queue then.
    held_until: datetime | None = None
    kind: str = SendKind.BRIEF.value
    subject: str = ""

    @property
    def label(self) -> str:
        """What staff call it: the brief's slug, or for a digest its subject (a digest was
        named by its last brief alone, and read as a second send of that brief)."""
        return f"digest: {self.subject}" if self.kind == SendKind.DIGEST else self.brief_slug

    @property
    def not_sent(self) -> int:
        """Skipped (the reader left, or stopped following its topics) or cancelled: with
        sent, failed, unknown and waiting, every planned row in one column."""
        return self.counts["skipped"] + self.counts["cancelled"]

    @property
    def waiting(self) -> int:
        return sum(self.counts[state.value] for state in OPEN_STATES)

    def parts_words(self) -> str:
        """Where its rows stand, each state named that holds any beyond the usual four:
        "2 sent, 0 failed, 0 unknown, 2 cancelled, 0 waiting" (the cancelled two went
        unnamed, and the parts did not add up to what the page called settled)."""
        parts = [f"{self.counts[state]:,} {state}" for state in ("sent", "failed", "unknown")]
        parts += [f"{self.counts[s]:,} {s}" for s in ("skipped", "cancelled") if self.counts[s]]
        return ", ".join([*parts, f"{self.waiting:,} waiting"])

    @property
    def errors_are_past(self) -> bool:
        """Finished with no row failed or in doubt: every batch that met an error (a 5xx or
        a 429 past the retries sends it back in line) was tried again and taken."""
        return (
            self.status == SendStatus.FINISHED
            and not self.counts["failed"]
            and not self.counts["unknown"]
        )

    def error_words(self) -> str:
        """`last_error` as an operator should read it, "" when there is none.

        The send keeps the last error a batch met after the batch went out on a retry. On
        a send that finished with every row sent (or skipped), "last error: 500 …" read as
        a fault still to mend where none was left, so it is told as the past. It is not
        dropped: a provider that needed retries (and the time they cost) is worth seeing
        on the send it slowed. A send still running, paused, or with rows failed or
        unknown shows it as it stands."""
        if not self.last_error:
            return ""
        if self.errors_are_past:
            return f"none now; an earlier one was retried and sent: {self.last_error}"
        return self.last_error

    def rate_words(self) -> str:
        if self.local_time:
            return f"in waves, at {self.local_time} in each reader's time zone"
        return f"{self.rate:,.0f} a second" if self.rate else "not sending"

    def next_due_words(self, now: datetime) -> str:
        """When its next readers fall due, if that is ahead ("" if not): a send at each
        reader's local time waits between its time zones, and "Time to go —" said nothing
        of when."""
        due = self.next_action_at
        return f"next readers due {due:%Y-%m-%d %H:%M} UTC" if due and due > now else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "brief": self.brief_slug,
            "kind": self.kind,
            "subject": self.subject,
            "status": self.status,
            "scheduled_at": self.scheduled_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "planned": self.planned,
            "counts": self.counts,
            "failed_batches": self.failed_batches,
            "last_error": self.last_error,
            "last_error_is_past": bool(self.last_error) and self.errors_are_past,
            "rate_per_second": round(self.rate, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "next_action_at": self.next_action_at.isoformat() if self.next_action_at else None,
            "local_time": self.local_time,
            "unknown_oldest_at": self.unknown_since[0].isoformat() if self.unknown_since else None,
            "unknown_newest_at": self.unknown_since[1].isoformat() if self.unknown_since else None,
            "held_until": self.held_until.isoformat() if self.held_until else None,
        }


def summarize_sends(
    *, session: Session, send_id: int | None = None, now: datetime | None = None
) -> list[SendSummary]:
    """Sends with their ledger counts per state, counted by the database in one query."""
    now = now or utcnow()
    statement = (
        sa.select(Send, col(Brief.slug))
        .join(Brief, col(Brief.id) == col(Send.brief_id))
        .order_by(col(Send.id).desc())
    )
    if send_id is not None:
        get_send(send_id, session=session)
        statement = statement.where(col(Send.id) == send_id)
    sends = session.execute(statement).all()
    ids = [id_of(send) for send, _ in sends]
    counts = ledger.counts_by_status(session, ids) if ids else {}
    next_due = ledger.next_due(session, ids) if ids else {}
    unknown = ledger.unknown_since(session, ids) if ids else {}
    held = ledger.in_hand(session, ids) if ids else {}
    summaries = []
    for send, slug in sends:
        rows_in_hand, held_until = held.get(id_of(send), (0, None))
        by_state = ledger.with_in_hand(counts.get(id_of(send), {}), rows_in_hand)
        # What workers went through: a cancelled row was never theirs (cancelling 1,699
        # rows at once read as 289 deliveries a second where 63 went).
        handled = sum(by_state[state.value] for state in SETTLED_STATES) - by_state["cancelled"]
        waiting = sum(by_state[state.value] for state in OPEN_STATES)
        elapsed = (
            ((send.finished_at or now) - send.started_at).total_seconds()
            if send.started_at
            else 0.0
        )
        # A send at each reader's local time goes in waves hours apart: a rate since it
        # started, and a time to go from it, said "about 433 s" of readers due in a day.
        rate = handled / elapsed if elapsed > 0 and not send.local_time else 0.0
        eta = waiting / rate if send.status == SendStatus.RUNNING and rate > 0 else None
        next_action: datetime | None = None
        if send.status == SendStatus.SCHEDULED:
            next_action = send.scheduled_at
        elif send.status == SendStatus.RUNNING and send.id in next_due:
            next_action = max(next_due[send.id], now)
        summaries.append(
            SendSummary(
                id=id_of(send),
                brief_slug=slug,
                kind=send.kind,
                subject=send.subject,
                status=send.status,
                scheduled_at=send.scheduled_at,
                started_at=send.started_at,
                finished_at=send.finished_at,
                planned=send.planned,
                counts=by_state,
                failed_batches=send.failed_batches,
                last_error=send.last_error,
                rate=rate,
                eta_seconds=eta,
                next_action_at=next_action,
                local_time=send.local_time,
                unknown_since=unknown.get(id_of(send)),
                held_until=held_until,
            )
        )
    return summaries
