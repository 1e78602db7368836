"""Counts as people read them: "1 reader", "2,000 readers", never "1 readers"."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str = "") -> str:
    """`number` with thousands separators and `noun`, plural unless it is one."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"
