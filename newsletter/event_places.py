"""Which of our deliveries each provider event is about, checked before anything is
applied (`events.apply_events`): a delivery id is trusted only with its reader's address,
and an event about a forgotten reader keeps nothing of them."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.db import any_of
from newsletter.providers.events import ProviderEvent
from newsletter.sending import ledger
from subscribers.errors import SubscriberError
from subscribers.models import Suppression
from subscribers.roster import normalize_email, suppression_hash


def placed(
    events: list[ProviderEvent], *, session: Session
) -> tuple[list[ProviderEvent], dict[int, tuple[int, int]]]:
    """The events, each naming a delivery only if that delivery's reader has the address
    the event is about (or was forgotten since: their address is gone); any other loses its
    delivery id and is placed by address, or not at all. A delivery id is a number another
    database of ours has too (a second install posting to the same webhook): trusted alone,
    a bounce or a spam report would mark whoever holds that number here. Also returns the
    deliveries the events name, as `deliveries_of` does, from the same lookup."""
    named = [e.delivery_id for e in events if e.delivery_id is not None]
    rows = ledger.addressed_deliveries(session, named)

    def ours(event: ProviderEvent) -> bool:
        row = rows.get(event.delivery_id) if event.delivery_id is not None else None
        if row is None:
            return False
        said = event.email.strip().casefold()
        return not said or row.forgotten or row.email.casefold() == said

    placed = [
        e if e.delivery_id is None or ours(e) else replace(e, delivery_id=None) for e in events
    ]
    placed = _forgetting(placed, rows, session)
    kept = {e.delivery_id for e in placed if e.delivery_id is not None}
    return placed, {d: (rows[d].send_id, rows[d].subscriber_id) for d in kept}


def _forgetting(
    events: list[ProviderEvent], rows: dict[int, ledger.Addressed], session: Session
) -> list[ProviderEvent]:
    """The events, those about a forgotten reader emptied as `forget` empties the events it
    finds (`readers.actions.erase_events_of`): what happened and when stay, the address,
    the payload (an IP address and a browser, for opens and clicks) and the receiving
    server's words do not. Events arriving after the forget once kept them all.

    A forgotten reader is known by their delivery, or, for an event of no delivery of ours,
    by the hash of the address `forget` keeps (one primary-key lookup per post, of those
    addresses alone)."""
    hashes: dict[str, str] = {}
    for address in {e.email for e in events if e.delivery_id is None and e.email}:
        try:
            hashes[suppression_hash(normalize_email(address))] = address
        except SubscriberError:  # not an address anyone could have been forgotten by
            continue
    gone = set()
    if hashes:
        suppressed = sa.select(col(Suppression.email_hash)).where(
            any_of(session, col(Suppression.email_hash), sorted(hashes))
        )
        gone = {hashes[found] for found in session.scalars(suppressed)}

    def forgotten(event: ProviderEvent) -> bool:
        if event.delivery_id is not None:
            row = rows.get(event.delivery_id)
            return row is not None and row.forgotten
        return event.email in gone

    return [replace(e, email="", raw={}, reason="") if forgotten(e) else e for e in events]
