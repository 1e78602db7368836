"""An import as staff run it (command line or console): the list's rows through
`subscribers/importer.py` and, when staff ask that new readers confirm first, a
confirmation queued for each new pending reader in the same transaction, so none of them
is left with nothing to confirm. (Without it, a row whose status column says `pending`
stays so, as exported: `subscribers resubscribe` sends it one.)

Confirmations are counted per mailbox like a sign-up's (`newsletter/signup.py`): a file
of many `+tag` variants of one address sends that mailbox three a day, not one each. The
ones held back are named, and `newsletter subscribers resubscribe` sends them later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from newsletter.errors import ConflictError
from newsletter.heap import frozen_heap
from newsletter.signup import held_back, queue_confirmations
from newsletter.words import counted
from subscribers.import_report import ImportReport
from subscribers.importer import import_subscribers
from subscribers.models import utcnow

# Held-back addresses named in a report; beyond that, a count.
HELD_NAMED = 20


@dataclass
class ListImport:
    """An import's report, and what became of the confirmations it called for."""

    report: ImportReport
    require_confirmation: bool
    confirmations: int = 0
    held: int = 0
    held_named: list[str] = field(default_factory=list)  # the first HELD_NAMED of them

    def confirmation_lines(self) -> list[str]:
        """What staff need to know about the new pending readers, in words."""
        added = self.report.counts()["added"]
        if not self.require_confirmation or not added:
            return []
        dry = self.report.dry_run
        lines = []
        if self.confirmations:
            lines.append(
                f"{_readers(self.confirmations)} would be added as pending and sent a "
                "confirmation; they would receive nothing until they confirm"
                if dry
                else f"{_readers(self.confirmations)} added as pending: a confirmation is "
                "queued for each (a worker sends it); they receive nothing until they confirm"
            )
        if self.held:
            named = ", ".join(self.held_named)
            more = (
                f" and {self.held - len(self.held_named):,} more" if self.held > HELD_NAMED else ""
            )
            lines.append(
                f"{_readers(self.held)} {'would be ' if dry else ''}added as pending with no "
                f"confirmation: their mailbox {'would have' if dry else 'already had'} three "
                f'today ({named}{more}); send one tomorrow ("Send the confirmation again" on '
                'the reader\'s console page, or "newsletter subscribers resubscribe ADDRESS")'
            )
        return lines

    def audit_detail(self) -> str:
        """The audit log's words for it: the counts, and whether readers must confirm and
        how many were sent a confirmation (the log said neither)."""
        counts = ", ".join(f"{n} {what}" for what, n in self.report.counts().items())
        if not self.require_confirmation:
            return counts
        return (
            f"{counts}; confirmation required: {self.confirmations} queued, "
            f"{self.held} held back (their mailbox had three today)"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            **self.report.as_dict(),
            "confirmations_queued": self.confirmations,
            "confirmations_held": self.held,
            "confirmations_held_named": self.held_named,
        }


def _readers(count: int) -> str:
    return counted(count, "new reader")


def import_readers(
    path: Path,
    *,
    session: Session,
    default_timezone: str,
    dry_run: bool = False,
    require_confirmation: bool = False,
) -> ListImport:
    """Import `path` in the caller's transaction; with `require_confirmation`, new readers
    start pending and each is sent a confirmation (bar a mailbox's daily share)."""
    now = utcnow()
    outcome = ListImport(
        report=ImportReport(file=str(path), dry_run=dry_run),
        require_confirmation=require_confirmation,
    )

    would_queue: Counter[str] = Counter()  # a dry run's confirmations so far, per mailbox

    def confirm(chunk_session: Session, readers: list[tuple[int, str]]) -> None:
        if dry_run:
            addresses = [address for _, address in readers]
            held = held_back(chunk_session, addresses, now=now, earlier=would_queue)
        else:
            held = queue_confirmations(chunk_session, readers, now=now, bulk=True)
        outcome.confirmations += len(readers) - len(held)
        outcome.held += len(held)
        outcome.held_named.extend(held[: HELD_NAMED - len(outcome.held_named)])

    # The bulk insert writes through the driver itself (COPY): its errors come unwrapped.
    raced = (sa.exc.IntegrityError, session.get_bind().dialect.loaded_dbapi.IntegrityError)
    try:
        with frozen_heap():  # a million rows are millions of objects: see newsletter/heap.py
            outcome.report = import_subscribers(
                path,
                session=session,
                default_timezone=default_timezone,
                dry_run=dry_run,
                require_confirmation=require_confirmation,
                on_pending=confirm if require_confirmation else None,
            )
            session.flush()
    except raced as exc:
        raise ConflictError(
            f"{path.name}: some of its addresses were added by someone else at the same "
            "moment (the same import twice?); nothing of this import was kept: run it again, "
            "and it adds what is still missing"
        ) from exc
    return outcome
