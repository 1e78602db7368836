"""An import's rows, understood: cells checked and turned into what a subscriber should
look like afterwards (`Candidate`), before anything is compared with the database
(subscribers/importer.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from subscribers.csvfile import DELIMITERS, TOPIC_SEPARATOR, CsvRow, unneutralize
from subscribers.errors import InvalidSubscriberError
from subscribers.models import SubscriberStatus, Topic, id_of
from subscribers.roster import (
    ALL_TOPICS,
    NAME_MAX,
    check_cadence,
    check_text,
    check_timezone,
    normalize_email,
)
from subscribers.topics import by_name_or_slug, topic_key

# Why a new reader's row with no topics is refused. For a reader already on the list an
# empty `topics` cell keeps what they follow, as other empty cells keep theirs: a file of
# addresses and names corrects names, and every row of it was refused for its topics.
NO_TOPICS = str(InvalidSubscriberError("topics", "", f"name at least one topic, or '{ALL_TOPICS}'"))
# Distinct `topics` cells an import remembers having read (see RowReader._topics).
TOPIC_CELLS_KEPT = 10_000
_IMPORTABLE_STATUSES = {s.value for s in SubscriberStatus} - {SubscriberStatus.FORGOTTEN.value}


@dataclass(slots=True)
class Candidate:
    """One row, understood: what the subscriber should look like after the import. Not
    frozen, though nothing changes one (`merged_with` makes a new one): a frozen
    dataclass sets each field through `object.__setattr__`, three times the cost of
    building it, a million times an import."""

    line: int
    email: str
    name: str
    all_topics: bool
    topic_ids: frozenset[int]
    cadence: str
    timezone: str
    status: str | None  # None: the file did not say
    given: frozenset[str]  # the optional columns the row filled in, for merging

    def merged_with(self, later: Candidate) -> Candidate:
        """Two rows for one address: topics joined, the later row's filled cells win."""

        def pick(column: str, mine: Any, theirs: Any) -> Any:
            return theirs if column in later.given else mine

        return Candidate(
            line=self.line,
            email=self.email,
            name=pick("name", self.name, later.name),
            all_topics=self.all_topics or later.all_topics,
            topic_ids=self.topic_ids | later.topic_ids,
            cadence=pick("cadence", self.cadence, later.cadence),
            timezone=pick("timezone", self.timezone, later.timezone),
            status=pick("status", self.status, later.status),
            given=self.given | later.given,
        )


def _split_cell_advice(row: CsvRow) -> str:
    """Why a row has more cells than the header, in the file's own separator: a semicolon
    file was told to quote its commas, which split nothing there. A tab gets no example:
    one cannot be seen in it."""
    sign = row.separator
    example = "" if sign == "\t" else f' ("Doe{sign} Jane")'
    return (
        f"the header has {row.columns} columns: a {DELIMITERS[sign]} in a name or list? "
        f"Put that cell in double quotes{example}"
    )


class RowReader:
    """Turns cells into Candidates; knows the topics, the defaults and the file's name."""

    def __init__(self, session: Session, *, default_timezone: str, default_status: str) -> None:
        every = list(session.exec(select(Topic)))
        self.slugs = sorted(t.slug for t in every)
        # By slug or by name, as the rest of the product takes them.
        self.topics = {key: id_of(t) for key, t in by_name_or_slug(every).items()}
        self.default_timezone = default_timezone
        self._topic_cells: dict[str, tuple[bool, frozenset[int]]] = {}
        self.default_status = default_status

    def _topics(self, cell: str) -> tuple[bool, frozenset[int]] | None:
        """(all topics?, the topic ids) a `topics` cell names; None when it names none,
        which keeps a listed reader's topics (see `NO_TOPICS`). A list repeats a few cells
        a million times, so each is read once (up to TOPIC_CELLS_KEPT of them); a refused
        cell is not kept, it raises every time."""
        known = self._topic_cells.get(cell)
        if known is not None:
            return known
        slugs = [topic_key(s) for s in cell.split(TOPIC_SEPARATOR)]
        slugs = [s for s in slugs if s]
        if not slugs:
            return None
        unknown = sorted({s for s in slugs if s != ALL_TOPICS and s not in self.topics})
        if unknown:
            known_slugs = ", ".join(self.slugs) or "none yet"
            raise InvalidSubscriberError(
                "topics", ";".join(unknown), f"unknown topic (known topics: {known_slugs})"
            )
        all_topics = ALL_TOPICS in slugs
        ids = frozenset() if all_topics else frozenset(self.topics[s] for s in slugs)
        if len(self._topic_cells) < TOPIC_CELLS_KEPT:
            self._topic_cells[cell] = (all_topics, ids)
        return all_topics, ids

    def understand(self, row: CsvRow) -> Candidate:
        if row.extra:
            cells_found = f"{row.columns + len(row.extra)} cells"
            raise InvalidSubscriberError("row", cells_found, _split_cell_advice(row))
        cells = {key: unneutralize(value.strip()) for key, value in row.cells.items() if key}
        email = normalize_email(cells.get("email", ""))
        name = check_text("name", cells.get("name", ""), longest=NAME_MAX, line_breaks=True)
        topics = self._topics(cells.get("topics", ""))
        all_topics, topic_ids = topics or (False, frozenset())
        status = cells.get("status", "").lower() or None
        if status is not None and status not in _IMPORTABLE_STATUSES:
            raise InvalidSubscriberError(
                "status", status, f"choose one of {', '.join(sorted(_IMPORTABLE_STATUSES))}"
            )
        given = frozenset(c for c in ("name", "cadence", "timezone", "status") if cells.get(c))
        if topics is not None:
            given |= {"topics"}
        return Candidate(
            line=row.line,
            email=email,
            name=name,
            all_topics=all_topics,
            topic_ids=topic_ids,
            cadence=check_cadence(cells.get("cadence", "")),
            timezone=check_timezone(cells.get("timezone", "") or self.default_timezone),
            status=status,
            given=given,
        )
