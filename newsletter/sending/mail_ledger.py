"""Transactional mail's own ledger statements: a message claimed under a lease, marked on
the wire before its request, moved by compare-and-set so a lease that ran out (another
worker's recovery) is never overwritten; and a dead worker's messages recovered."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from newsletter.db import is_postgresql, session_scope
from newsletter.models import MailStatus, TransactionalMail


def recover(engine: Engine, now: datetime) -> int:
    """A dead worker's messages: back in the queue if not yet on the wire, else unknown."""
    expired = col(TransactionalMail.lease_expires_at) < now
    with session_scope(engine, immediate=True) as session:
        session.execute(
            sa.update(TransactionalMail)
            .where(col(TransactionalMail.status) == MailStatus.CLAIMED, expired)
            .values(status=MailStatus.QUEUED, lease_expires_at=None)
        )
        return int(
            session.execute(
                sa.update(TransactionalMail)
                .where(col(TransactionalMail.status) == MailStatus.SENDING, expired)
                .values(
                    status=MailStatus.UNKNOWN,
                    error="the worker stopped mid-request",
                    not_before=now,
                )
            ).rowcount  # type: ignore[attr-defined]
            or 0
        )


def claim(engine: Engine, now: datetime, lease: timedelta, limit: int) -> list[int]:
    picked = (
        sa.select(col(TransactionalMail.id))
        .where(
            col(TransactionalMail.status) == MailStatus.QUEUED,
            col(TransactionalMail.not_before) <= now,
        )
        # Newest due first: someone who just signed up is at their inbox now, and an
        # import's backlog of confirmations (or one left by an outage) drains behind
        # them instead of ahead. It is also the index's own order, read backwards from
        # `now`: a tick's worth of rows, not a sort of everything due.
        .order_by(col(TransactionalMail.not_before).desc(), col(TransactionalMail.id).desc())
        .limit(limit)
    )
    with session_scope(engine, immediate=True) as session:
        if is_postgresql(session):
            picked = picked.with_for_update(skip_locked=True)
        ids = [cast(int, i) for i in session.scalars(picked)]
        if ids:
            session.execute(
                sa.update(TransactionalMail)
                .where(col(TransactionalMail.id).in_(ids))
                .values(status=MailStatus.CLAIMED, lease_expires_at=now + lease)
            )
    return ids


def give_back(engine: Engine, mail_ids: list[int]) -> None:
    """Claimed messages not begun go back in line, for this worker's next start or another
    worker, at once rather than when their lease runs out."""
    with session_scope(engine) as session:
        session.execute(
            sa.update(TransactionalMail)
            .where(
                col(TransactionalMail.id).in_(mail_ids),
                col(TransactionalMail.status) == MailStatus.CLAIMED,
            )
            .values(status=MailStatus.QUEUED, lease_expires_at=None)
        )


def mark(engine: Engine, mail_ids: list[int], *, expect: MailStatus, **values: Any) -> list[int]:
    """Compare-and-set messages' status in one statement: those it moved (another worker
    may have moved some first: a lease that ran out)."""
    if not mail_ids:
        return []
    with session_scope(engine) as session:
        return [
            cast(int, i)
            for i in session.scalars(
                sa.update(TransactionalMail)
                .where(
                    col(TransactionalMail.id).in_(mail_ids),
                    col(TransactionalMail.status) == expect,
                )
                .values(**values)
                .returning(col(TransactionalMail.id))
            )
        ]
