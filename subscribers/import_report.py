"""What an import did, row by row: each row in exactly one bucket, with its line."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Addressed(Protocol):
    """A row of the file with its address (an import's Candidate)."""

    @property
    def line(self) -> int: ...

    @property
    def email(self) -> str: ...


@dataclass
class RowNote:
    line: int
    email: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "email": self.email, "detail": self.detail}


def _ranges(lines: Iterable[int], most: int = 0) -> str:
    """2,3,4,7 → "2–4, 7": a million line numbers read as a few ranges. `most`: at most so
    many ranges, then how many lines the rest hold (a file whose added rows alternate with
    skipped ones made 172 KB of ranges on a terminal)."""
    parts = _range_parts(lines)
    if not most or len(parts) <= most:
        return ", ".join(parts)
    rest = sum(_width(part) for part in parts[most:])
    return ", ".join(parts[:most]) + f" and {rest:,} more line{'s' if rest != 1 else ''}"


def _width(part: str) -> int:
    first, _, last = part.partition("–")
    return int(last or first) - int(first) + 1


def _range_parts(lines: Iterable[int]) -> list[str]:
    parts: list[str] = []
    start = previous = None
    for line in sorted(lines):
        if previous is not None and line == previous + 1:
            previous = line
            continue
        if start is not None:
            parts.append(f"{start}–{previous}" if previous != start else str(start))
        start = previous = line
    if start is not None:
        parts.append(f"{start}–{previous}" if previous != start else str(start))
    return parts


# Ranges of line numbers a report shows before it counts the rest.
RANGES_SHOWN = 20
# Added rows a report keeps with their address, in file order; the rest by line alone (a
# million addresses held for a page nobody reads to the end would be 60 MB).
ADDED_NAMED = 50


@dataclass
class ImportReport:
    file: str
    dry_run: bool
    added: array[int] = field(default_factory=lambda: array("q"))
    unchanged: array[int] = field(default_factory=lambda: array("q"))
    updated: list[RowNote] = field(default_factory=list)
    skipped: list[RowNote] = field(default_factory=list)
    merged: list[RowNote] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The first ADDED_NAMED added rows, addressed: which readers an import brings in is what
    # staff check before applying it, and line numbers alone do not say.
    added_named: list[RowNote] = field(default_factory=list)

    def note_added(self, rows: Sequence[Addressed]) -> None:
        """Rows added (or that would be), in file order: every line, the first few named."""
        self.added.extend(row.line for row in rows)
        room = ADDED_NAMED - len(self.added_named)
        if room > 0:
            self.added_named.extend(RowNote(row.line, row.email, "") for row in rows[:room])

    def added_unnamed_in_words(self, most: int = RANGES_SHOWN) -> str:
        """The added lines past those `added_named` holds, as ranges."""
        return _ranges(self.added[len(self.added_named) :], most)

    @property
    def rows(self) -> int:
        return (
            len(self.added)
            + len(self.unchanged)
            + len(self.updated)
            + len(self.skipped)
            + len(self.merged)
        )

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "skipped": len(self.skipped),
            "merged": len(self.merged),
        }

    def lines_in_words(self, outcome: str, most: int = RANGES_SHOWN) -> str:
        """The `added` or `unchanged` lines for a person to read: the first ranges, then
        a count (`as_dict` has every range)."""
        return _ranges(self.added if outcome == "added" else self.unchanged, most)

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "added_lines": _ranges(self.added),
            "added_first": [note.as_dict() for note in self.added_named],
            "unchanged_lines": _ranges(self.unchanged),
            "updated": [note.as_dict() for note in self.updated],
            "skipped": [note.as_dict() for note in self.skipped],
            "merged": [note.as_dict() for note in self.merged],
            "warnings": self.warnings,
        }
