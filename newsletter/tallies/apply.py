"""A webhook batch's new events counted into the tallies, in the transaction that records
them (`newsletter/events.py` calls `tally_events` for the events it found new).

Uniqueness is decided by the database, not in Python: each per-reader row is upserted with
the batch's increments and RETURNs its new totals, so `total - increment == 0` says this
batch brought the reader's first event of that kind, even when another webhook request
counted the same reader a moment before (PostgreSQL's ON CONFLICT DO UPDATE waits for that
row and adds to what was committed). Then the per-send rows are upserted with the sums.
Every table's rows go in key order, so two requests at once take their row locks in the
same order and cannot deadlock.

Cost per batch: five statements whatever its size, each one JSON document
(`db/json_rows.py`); measured in bench/webhook.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.db.json_rows import json_text, rows_from_json
from newsletter.models import Send
from newsletter.providers.events import EventType, ProviderEvent

# The kinds a report counts readers of, in the order reports show them.
REPORTED = (
    EventType.DELIVERED,
    EventType.OPENED,
    EventType.CLICKED,
    EventType.BOUNCED,
    EventType.UNSUBSCRIBED,
    EventType.COMPLAINED,
)
# Our own kind: a reader who opened (a person, not a privacy proxy) or clicked, once.
READ = "read"


def url_key(url: str) -> str:
    """The key of a link in the tallies (a URL can outgrow an index entry; a digest cannot)."""
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def is_person(event: ProviderEvent) -> bool:
    """Whether a person made the event: every event but an open a machine made (Apple Mail
    Privacy Protection fetches every image of every message it receives)."""
    return not (event.type is EventType.OPENED and event.machine)


@dataclass
class _Add:
    send_id: int
    events: int = 0
    human: int = 0


@dataclass
class _LinkAdd:
    """Clicks on one link: one reader's (per reader and link), or a send's (per send and
    link, with the readers who clicked it for the first time)."""

    send_id: int
    url: str
    clicks: int = 0
    readers: int = 0


@dataclass
class _SendAdd:
    readers: int = 0
    people: int = 0
    events: int = 0
    human: int = 0


def tally_events(
    events: Iterable[ProviderEvent],
    deliveries: dict[int, tuple[int, int]],
    *,
    session: Session,
) -> None:
    """Count `events` (new ones, not rejected) into the tallies. `deliveries` maps delivery
    ids to (send id, subscriber id); events of no delivery of ours count nowhere."""
    per_reader: dict[tuple[int, str], _Add] = {}
    per_link: dict[tuple[int, str], _LinkAdd] = {}
    opens: list[tuple[int, datetime]] = []
    for event in events:
        owner = deliveries.get(event.delivery_id) if event.delivery_id is not None else None
        if owner is None or event.type not in REPORTED or event.delivery_id is None:
            continue
        send_id, person = owner[0], is_person(event)
        kinds = [event.type.value]
        if event.type is EventType.CLICKED or (event.type is EventType.OPENED and person):
            kinds.append(READ)
        for kind in kinds:
            add = per_reader.setdefault((event.delivery_id, kind), _Add(send_id))
            add.events += 1
            add.human += int(person)
        if event.type is EventType.CLICKED:
            key = (event.delivery_id, url_key(event.url))
            per_link.setdefault(key, _LinkAdd(send_id, event.url)).clicks += 1
        if event.type is EventType.OPENED and person:
            opens.append((send_id, event.occurred_at))
    if not per_reader:
        return
    sends = _count_readers(session, per_reader)
    links = _count_link_readers(session, per_link)
    hours = _hours(session, opens)
    _upsert(
        session,
        "send_tally",
        {"send_id": "bigint", "kind": "text"},
        {"readers": "integer", "people": "integer", "events": "integer", "human": "integer"},
        [{"send_id": s, "kind": k, **vars(add)} for (s, k), add in sorted(sends.items())],
    )
    if links:
        _upsert(
            session,
            "link_tally",
            {"send_id": "bigint", "url_key": "text", "url": "text"},
            {"clicks": "integer", "readers": "integer"},
            [
                {
                    "send_id": s,
                    "url_key": k,
                    "url": add.url,
                    "clicks": add.clicks,
                    "readers": add.readers,
                }
                for (s, k), add in sorted(links.items())
            ],
            keys=("send_id", "url_key"),
        )
    if hours:
        _upsert(
            session,
            "hour_tally",
            {"send_id": "bigint", "hour": "integer"},
            {"opens": "integer"},
            [{"send_id": s, "hour": h, "opens": n} for (s, h), n in sorted(hours.items())],
        )


def _count_readers(
    session: Session, per_reader: dict[tuple[int, str], _Add]
) -> dict[tuple[int, str], _SendAdd]:
    """Upsert the per-reader rows; per (send, kind), the readers and people this batch
    brought for the first time and its events."""
    totals = _upsert(
        session,
        "reader_tally",
        {"delivery_id": "bigint", "kind": "text", "send_id": "bigint"},
        {"events": "integer", "human": "integer"},
        [
            {
                "delivery_id": d,
                "kind": k,
                "send_id": add.send_id,
                "events": add.events,
                "human": add.human,
            }
            for (d, k), add in sorted(per_reader.items())
        ],
        keys=("delivery_id", "kind"),
        returning=("delivery_id", "kind", "events", "human"),
    )
    sends: dict[tuple[int, str], _SendAdd] = {}
    for delivery_id, kind, events, human in totals:
        add = per_reader[(int(delivery_id), str(kind))]
        out = sends.setdefault((add.send_id, str(kind)), _SendAdd())
        out.readers += int(events) == add.events  # nothing before this batch
        out.people += int(human) == add.human and int(human) > 0
        out.events += add.events
        out.human += add.human
    return sends


def _count_link_readers(
    session: Session, per_link: dict[tuple[int, str], _LinkAdd]
) -> dict[tuple[int, str], _LinkAdd]:
    """Upsert each reader's clicks per link; per (send, link): the batch's clicks and the
    readers who clicked it for the first time."""
    if not per_link:
        return {}
    totals = _upsert(
        session,
        "reader_link_tally",
        {"delivery_id": "bigint", "url_key": "text"},
        {"clicks": "integer"},
        [
            {"delivery_id": d, "url_key": k, "clicks": add.clicks}
            for (d, k), add in sorted(per_link.items())
        ],
        returning=("delivery_id", "url_key", "clicks"),
    )
    links: dict[tuple[int, str], _LinkAdd] = {}
    for delivery_id, key, clicks in totals:
        mine = per_link[(int(delivery_id), str(key))]
        link = links.setdefault((mine.send_id, str(key)), _LinkAdd(mine.send_id, mine.url))
        link.clicks += mine.clicks
        link.readers += int(clicks) == mine.clicks  # nothing before this batch
    return links


def _hours(session: Session, opens: list[tuple[int, datetime]]) -> dict[tuple[int, int], int]:
    """Opens per (send, whole hour since the send started); opens stamped before the start
    (a clock's error) count in no hour."""
    if not opens:
        return {}
    started = dict(
        session.execute(
            sa.select(col(Send.id), col(Send.started_at)).where(
                col(Send.id).in_(sorted({send_id for send_id, _ in opens}))
            )
        ).all()
    )
    hours: dict[tuple[int, int], int] = {}
    for send_id, moment in opens:
        start = started.get(send_id)
        if start is None or moment < start:
            continue
        hour = int((moment - start).total_seconds() // 3600)
        hours[(send_id, hour)] = hours.get((send_id, hour), 0) + 1
    return hours


def _upsert(
    session: Session,
    table: str,
    fixed: dict[str, str],
    added: dict[str, str],
    rows: list[dict[str, Any]],
    *,
    keys: Sequence[str] | None = None,
    returning: Sequence[str] = (),
) -> Sequence[Any]:
    """INSERT `rows` into `table`, adding the `added` columns to a row already there.
    `fixed` columns are written on insert only; the conflict key is `keys`, else every
    fixed column."""
    columns = {**fixed, **added}
    conflict = ", ".join(keys or fixed)
    sums = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in added)
    statement = (
        f"INSERT INTO {table} ({', '.join(columns)}) {rows_from_json(session, columns)} "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {sums}"
    )
    if returning:
        statement += f" RETURNING {', '.join(returning)}"
        return session.execute(sa.text(statement), {"rows": json_text(rows)}).all()
    session.execute(sa.text(statement), {"rows": json_text(rows)})
    return []
