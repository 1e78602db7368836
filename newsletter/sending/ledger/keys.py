"""A batch's delivery ids as ranges: how a claim is recorded on its `DeliveryBatch` instead
of on each row, and how the rows of a batch are found again in one statement.

An ordinary batch is one range ("101-1100"): the rows of a send have adjacent ids
(planning writes them with one INSERT … SELECT) and claiming takes them in due order. Holes
come from readers who left (skipped at the claim) and rows a 4xx put back in line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session

from newsletter.db import any_of

Ranges = list[tuple[int, int]]

# Past this many ranges a batch's rows are matched as a list (one array parameter) rather
# than as an OR of BETWEENs, which the planner costs one by one.
_MAX_RANGES = 16


def to_ranges(ids: Iterable[int]) -> Ranges:
    """Sorted, merged inclusive ranges covering exactly `ids`."""
    values = sorted(set(ids))
    if values and values[-1] - values[0] == len(values) - 1:
        return [(values[0], values[-1])]  # the usual batch: no holes, one range
    ranges: Ranges = []
    for value in values:
        if ranges and ranges[-1][1] == value - 1:
            ranges[-1] = (ranges[-1][0], value)
        else:
            ranges.append((value, value))
    return ranges


def encode(ranges: Ranges) -> str:
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def decode(text: str) -> Ranges:
    ranges: Ranges = []
    for part in filter(None, text.split(",")):
        first, _, last = part.partition("-")
        ranges.append((int(first), int(last or first)))
    return ranges


def ids_of(ranges: Ranges) -> list[int]:
    return [value for first, last in ranges for value in range(first, last + 1)]


def within(bind: Connection | Session, column: Any, ranges: Ranges) -> Any:
    """`column` lies in one of `ranges`: primary-key range scans for the usual few ranges,
    one array (`any_of`) for a batch full of holes; false for no ranges."""
    if not ranges:
        return sa.false()
    if len(ranges) > _MAX_RANGES:
        return any_of(bind, column, ids_of(ranges))
    return sa.or_(*(column.between(first, last) for first, last in ranges))
