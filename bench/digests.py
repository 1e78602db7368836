"""Digests planned for a big list: daily readers in four time zones, three briefs published
in their window on three topics (so readers fall into several sets of briefs), then one
`create_due_digests`: seconds, and ledger rows written."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.briefs import add_brief, parse_brief
from newsletter.config import get_settings
from newsletter.db import make_engine, migrate, session_scope
from newsletter.sending.create import create_send
from newsletter.sending.digests import create_due_digests, digest_moment
from newsletter.sending.plan import start_due_sends
from subscribers.models import Subscriber, SubscriberTopic, UTCDateTime, utcnow
from subscribers.topics import add_topic

ZONES = ["UTC", "Europe/London", "Europe/Paris", "Africa/Cairo"]
TOPICS = ["t0", "t1", "t2"]


def _seed_readers(engine: sa.Engine, readers: int) -> None:
    """`readers` daily readers, each following one of three topics: INSERT … SELECT from
    a counting CTE, on either database (the importer's own speed is measured elsewhere)."""
    created = utcnow() - timedelta(days=30)
    table: sa.Table = Subscriber.__table__  # type: ignore[attr-defined]
    counter = sa.select(sa.literal(1).label("i")).cte("g", recursive=True)
    counter = counter.union_all(sa.select(counter.c.i + 1).where(counter.c.i < readers))
    zone = sa.case(
        *((counter.c.i % len(ZONES) == n, sa.literal(z)) for n, z in enumerate(ZONES)),
        else_=sa.literal("UTC"),
    )
    when = sa.literal(created, type_=UTCDateTime)
    rows = sa.select(
        sa.literal("digest") + sa.cast(counter.c.i, sa.String) + sa.literal("@example.com"),
        sa.literal("Reader"),
        sa.literal("active"),
        sa.literal("daily"),
        zone,
        sa.false(),
        when,
        when,
        sa.literal(""),
        sa.literal(""),
        sa.literal(""),
        sa.literal(0),
    )
    columns = [
        "email",
        "name",
        "status",
        "cadence",
        "timezone",
        "all_topics",
        "created_at",
        "updated_at",
        "status_changed_by",
        "consent_source",
        "consent_ip",
        "soft_bounces",
    ]
    with engine.begin() as connection:
        connection.execute(sa.insert(table).from_select(columns, rows))
        topic_ids = [
            connection.execute(sa.text("SELECT id FROM topic WHERE slug = :s"), {"s": s}).scalar()
            for s in TOPICS
        ]
        follows: sa.Table = SubscriberTopic.__table__  # type: ignore[attr-defined]
        topic = sa.case(
            *((table.c.id % 3 == n, sa.literal(t)) for n, t in enumerate(topic_ids)),
        )
        connection.execute(
            sa.insert(follows).from_select(
                ["subscriber_id", "topic_id"], sa.select(table.c.id, topic)
            )
        )
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")


def bench_digests(label: str, url: str, *, readers: int) -> dict[str, Any]:
    migrate(url, get_settings().NEWSLETTER_MIGRATIONS_DIR)
    engine = make_engine(url)
    settings = get_settings(DATABASE_URL=url, NEWSLETTER_ENV="development")
    with session_scope(engine) as session:
        for slug in TOPICS:
            add_topic(slug, slug.upper(), session=session)
    _seed_readers(engine, readers)
    now = utcnow()
    hour, weekday = settings.NEWSLETTER_DIGEST_HOUR, settings.NEWSLETTER_DIGEST_WEEKDAY.number
    first = min(digest_moment("daily", zone, now=now, hour=hour, weekday=weekday) for zone in ZONES)
    # Three briefs in every zone's window: one on t0, one on t1, one on all three.
    for n, topics in enumerate([["t0"], ["t1"], TOPICS]):
        at = first - timedelta(hours=3 - n)
        text = f"---\ntitle: Digest brief {n}\ndate: {at:%Y-%m-%d}\n---\n\nWhat happened {n}.\n"
        with session_scope(engine) as session:
            brief = add_brief(
                parse_brief(text, source_name=f"d{n}.md"), session=session, topics=topics
            ).brief
            create_send(brief.slug, session=session, settings=settings, when=at, now=at)
        start_due_sends(engine, now=at)
    start = time.perf_counter()
    made = create_due_digests(engine, settings, now=now)
    seconds = time.perf_counter() - start
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT count(*) FROM delivery d JOIN send s ON s.id = d.send_id "
                "WHERE s.kind = 'digest'"
            )
        ).scalar_one()
    engine.dispose()
    print(
        f"[{label}] digests: {rows:,} digest deliveries for {readers:,} daily readers in "
        f"{len(ZONES)} zones ({len(made)} digest sends) planned in {seconds:.2f} s"
    )
    return {"readers": readers, "rows": rows, "sends": len(made), "seconds": seconds}
