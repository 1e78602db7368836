"""How often anyone may ask for something: counters kept in the database.

Every web process and worker shares one count per key, a restart forgets nothing, and old
counts are deleted as they expire. A window slides: the previous window's count still
weighs, in proportion to how much of it overlaps the last `window` seconds, so a burst
straddling a boundary gets no second allowance (the estimate Cloudflare describes for its
own limiter; exact enough, and two rows per key instead of one row per attempt).

Keys are hashes of what they count, so no address is kept here. An address is counted as
its mailbox: Unicode NFKC (a full-width `e` is an `e`), lower case, and without a `+tag`, since
`Victim+1@Example.com` reaches the same person as `victim@example.com`. An IPv6 client is
counted by its /64, which one household or one server usually has whole.
"""

from __future__ import annotations

import hashlib
import ipaddress
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.db import dialect_insert
from newsletter.models import RateLimitHit
from subscribers.models import table_of
from subscribers.sql import any_of


@dataclass(frozen=True)
class Rule:
    """At most `limit` attempts per key in any `window`."""

    limit: int
    window: timedelta


SIGNUPS_PER_ADDRESS = Rule(5, timedelta(minutes=10))
# An office behind one NAT signs several people up; a script from one network does not
# get to sign up the world.
SIGNUPS_PER_NETWORK = Rule(20, timedelta(minutes=10))
# However often, and from however many networks, one mailbox is asked: three confirmation
# emails a day at most.
CONFIRMATIONS_PER_ADDRESS = Rule(3, timedelta(days=1))


def mailbox(address: str) -> str:
    """The mailbox an address reaches, as limits count it (not as it is stored)."""
    text = unicodedata.normalize("NFKC", address).strip().lower()
    local, at, domain = text.rpartition("@")
    if at and "+" in local.strip('"'):
        local = local.split("+", 1)[0]
    return f"{local}{at}{domain}"


def network(ip: str) -> str:
    """The network a client address stands for: itself for IPv4, its /64 for IPv6."""
    try:
        parsed = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def key(kind: str, value: str) -> str:
    return hashlib.sha256(f"newsletter-limit:{kind}:{value}".encode()).hexdigest()


def hit(session: Session, key: str, rule: Rule, *, now: datetime) -> bool:
    """Count one attempt for `key`; True while the sliding count stays within the rule.
    Refused attempts count too: hammering keeps a key shut."""
    return hit_many(session, [key], rule, now=now)[0]


def hit_many(
    session: Session,
    keys: Sequence[str],
    rule: Rule,
    *,
    now: datetime,
    bulk: bool = False,
) -> list[bool]:
    """`hit` for many attempts at once, in order (a key may repeat): one upsert and one
    read for the lot, so an import of thousands of pending readers costs two statements
    per chunk, not three per reader. Attempt i of a key is allowed exactly when it would
    have been, had the attempts been counted one by one.

    `bulk` is for a long transaction (an import): it does not tidy expired counters
    (their row locks would hold every sign-up's tidying until it commits), and refused
    attempts are not counted: a file's two-hundred `+tag` variants of one mailbox are
    nobody hammering, and must not keep its owner from signing up tomorrow."""
    if not keys:
        return []
    window, seconds, overlap = _window(rule, now)
    # The next window still reads this one's count: keep it that long.
    expires_at = datetime.fromtimestamp(window + 2 * seconds, UTC)
    attempts = Counter(keys)  # one row per key: an upsert may touch a row only once
    insert = dialect_insert(session, RateLimitHit)
    # Many rows as one executemany (one compiled statement, the driver's batching), sorted
    # so two bulk callers lock rows in one order (a sign-up locks a few keys in its own;
    # PostgreSQL ends the rare cycle by aborting one side).
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["key", "window"],
            set_={"hits": col(RateLimitHit.hits) + insert.excluded.hits},
        ),
        [
            {"key": k, "window": window, "hits": n, "expires_at": expires_at}
            for k, n in sorted(attempts.items())
        ],
    )
    # Read back under the rows' locks (or SQLite's write lock): nobody else has moved them.
    after, previous = _counts(session, attempts, window, seconds)
    if not bulk and any(after[k] == n for k, n in attempts.items()):
        # A new window: a good moment to drop what nobody reads any more.
        session.execute(sa.delete(RateLimitHit).where(col(RateLimitHit.expires_at) < now))
    before = {k: after[k] - n for k, n in attempts.items()}  # counted before this call
    allowed = _judge(keys, before, previous, overlap, rule.limit)
    if bulk:
        refused = Counter(k for k, ok in zip(keys, allowed, strict=True) if not ok)
        if refused:
            table = table_of(RateLimitHit)
            session.execute(
                sa.update(table)
                .where(table.c.key == sa.bindparam("k"), table.c.window == window)
                .values(hits=table.c.hits - sa.bindparam("n")),
                [{"k": k, "n": n} for k, n in sorted(refused.items())],
            )
    return allowed


def peek_many(
    session: Session, keys: Sequence[str], rule: Rule, *, now: datetime, earlier: Counter[str]
) -> list[bool]:
    """What `hit_many(bulk=True)` would answer, writing nothing: an import's dry run says
    who would be held back. `earlier`: the attempts this caller was allowed by earlier
    calls (nothing was stored for them), updated with this call's."""
    if not keys:
        return []
    window, seconds, overlap = _window(rule, now)
    stored, previous = _counts(session, set(keys), window, seconds)
    before = {k: stored.get(k, 0) + earlier[k] for k in set(keys)}
    allowed = _judge(keys, before, previous, overlap, rule.limit)
    earlier.update(k for k, ok in zip(keys, allowed, strict=True) if ok)
    return allowed


def _window(rule: Rule, now: datetime) -> tuple[int, int, float]:
    """The current window's start (Unix seconds), its length, and how much of the previous
    window the last `rule.window` still overlaps."""
    seconds = int(rule.window.total_seconds())
    stamp = now.timestamp()
    window = int(stamp) - int(stamp) % seconds
    return window, seconds, 1 - (stamp - window) / seconds


def _counts(
    session: Session, keys: Iterable[str], window: int, seconds: int
) -> tuple[dict[str, int], dict[str, int]]:
    """Each key's count in the current window and in the previous one."""
    counts = session.execute(
        sa.select(col(RateLimitHit.key), col(RateLimitHit.window), col(RateLimitHit.hits)).where(
            any_of(session, col(RateLimitHit.key), keys),
            col(RateLimitHit.window).in_([window, window - seconds]),
        )
    ).all()
    current = {k: hits for k, w, hits in counts if w == window}
    return current, {k: hits for k, w, hits in counts if w != window}


def _judge(
    keys: Sequence[str],
    before: dict[str, int],
    previous: dict[str, int],
    overlap: float,
    limit: int,
) -> list[bool]:
    """Each attempt in order: allowed while the sliding count, this one included, stays
    within `limit`."""
    seen: Counter[str] = Counter()
    allowed: list[bool] = []
    for k in keys:
        seen[k] += 1
        allowed.append(before[k] + seen[k] + previous.get(k, 0) * overlap <= limit)
    return allowed
