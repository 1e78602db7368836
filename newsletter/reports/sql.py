"""What the reports share: rates as people read them."""

from __future__ import annotations


def rate(part: int, whole: int) -> float | None:
    """`part` of `whole` as a share (0.25), rounded for people; None when there is no whole."""
    return round(part / whole, 4) if whole else None
