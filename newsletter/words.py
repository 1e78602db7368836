"""Counts and durations as people read them: "1 reader", "2,000 readers", never "1 readers";
"about 7 minutes", not "433 s"."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str = "") -> str:
    """`number` with thousands separators and `noun`, plural unless it is one."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def duration(seconds: float) -> str:
    """A rough time span: seconds under two minutes, minutes under two hours, then hours."""
    if seconds < 120:
        return counted(max(1, round(seconds)), "second")
    if seconds < 7200:
        return counted(round(seconds / 60), "minute")
    return counted(round(seconds / 3600), "hour")
