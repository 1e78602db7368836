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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from newsletter.db import dialect_insert
from newsletter.models import RateLimitHit


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
    seconds = int(rule.window.total_seconds())
    stamp = now.timestamp()
    window = int(stamp) - int(stamp) % seconds
    insert = dialect_insert(session, RateLimitHit).values(
        key=key,
        window=window,
        hits=1,
        # The next window still reads this one's count: keep it that long.
        expires_at=datetime.fromtimestamp(window + 2 * seconds, UTC),
    )
    hits: int = session.execute(
        insert.on_conflict_do_update(
            index_elements=["key", "window"], set_={"hits": col(RateLimitHit.hits) + 1}
        ).returning(col(RateLimitHit.hits))
    ).scalar_one()
    previous = session.scalar(
        sa.select(col(RateLimitHit.hits)).where(
            col(RateLimitHit.key) == key, col(RateLimitHit.window) == window - seconds
        )
    )
    if hits == 1:  # a new window: a good moment to drop what nobody reads any more
        session.execute(sa.delete(RateLimitHit).where(col(RateLimitHit.expires_at) < now))
    overlap = 1 - (stamp - window) / seconds
    return bool(hits + (previous or 0) * overlap <= rule.limit)
