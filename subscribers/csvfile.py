"""The subscriber spreadsheet: its columns, reading it safely, writing it safely.

Import and export share this one definition, so a file exported here imports unchanged.
"""

from __future__ import annotations

import csv
import itertools
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from subscribers.errors import SubscriberError

# The header staff write (DESIGN.md); export adds the last two, import understands them.
COLUMNS = ("email", "name", "topics", "cadence", "timezone")
EXPORT_COLUMNS = (*COLUMNS, "status", "subscribed_at")
TOPIC_SEPARATOR = ";"
# A million rows is about 60 MB; past this, split the file.
CSV_MAX_BYTES = 256 * 2**20
# A row is a few hundred characters; a "line" of megabytes is not a subscriber.
LINE_MAX_CHARS = 64 * 2**10
# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# UTF-8's byte-order mark. Excel reads a CSV as UTF-8 only when it starts with one; without
# it, Excel takes the bytes in the machine's legacy code page (Windows-1252, Shift-JIS…) and
# 高市早苗 or Zoë arrive as mojibake. Our import reads files with or without it.
BOM = "\ufeff"


def neutralize(cell: str) -> str:
    """Defuse spreadsheet formula injection (OWASP): a leading quote makes it text."""
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell


def unneutralize(cell: str) -> str:
    """Undo `neutralize`, so an exported file imports as it was."""
    if len(cell) > 1 and cell[0] == "'" and cell[1:].startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell


class CsvFileError(SubscriberError):
    """The file as a whole cannot be read; nothing was imported."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class CsvRow:
    line: int  # where the row starts in the file, 1 being the header
    cells: dict[str, str]
    # Cells past the header's columns: an unquoted separator in a name, which shifts every
    # cell after it (the row is refused saying so, not for a wrong-looking address; even
    # when the cell pushed out is empty, the name was cut in two).
    extra: tuple[str, ...] = ()
    columns: int = 0  # the header's, blank or repeated names included
    separator: str = ","  # the file's (DELIMITERS), which that advice names


# Cell separators a spreadsheet writes: commas, or semicolons where the comma is the
# decimal mark (Excel in most of Europe saves "CSV" so), or tabs; each with its name, for
# the advice on a row one of them split (subscribers/import_rows.py).
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


def _delimiter(header_line: str) -> str:
    """The separator under which the header names an `email` column; a comma if none does
    (the file is then refused for its header). Excel's semicolon files were refused as
    having "no 'email' column" while plainly having one."""
    for delimiter in DELIMITERS:
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
        if "email" in (cell.strip().lower() for cell in cells):
            return delimiter
    return ","


class SubscriberCsv:
    """A subscriber CSV opened for reading: UTF-8 with or without BOM, any line ending,
    quoted cells. Iterating yields rows with the line each starts on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header: list[str] = []
        self.ignored_columns: list[str] = []
        self._stream: IO[str] | None = None

    def __enter__(self) -> SubscriberCsv:
        try:
            self._stream = self.path.open(encoding="utf-8-sig", newline="")
            info = os.fstat(self._stream.fileno())
        except OSError as exc:
            raise CsvFileError(str(self.path), None, exc.strerror or str(exc)) from exc
        if not stat.S_ISREG(info.st_mode):
            self._stream.close()
            raise CsvFileError(str(self.path), None, "not a regular file; give a CSV file's path")
        if info.st_size > CSV_MAX_BYTES:
            self._stream.close()
            raise CsvFileError(
                str(self.path),
                None,
                f"{info.st_size / 2**20:.0f} MB is more than an import takes "
                f"({CSV_MAX_BYTES // 2**20} MB, about four million rows); split the file",
            )
        lines = self._lines(self._stream)
        try:
            first = next(lines, "")
            delimiter = _delimiter(first)
            self._reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter)
            header = next(self._reader, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise self._unreadable(exc) from exc
        if not header:
            raise CsvFileError(str(self.path), 1, "the file is empty; expected a header row")
        self.header = [cell.strip().lower() for cell in header]
        if "email" not in self.header:
            raise CsvFileError(
                str(self.path),
                1,
                f"no 'email' column in the header ({', '.join(header)}); expected "
                f"{','.join(COLUMNS)}",
            )
        for column in EXPORT_COLUMNS:
            places = [str(i) for i, name in enumerate(self.header, start=1) if name == column]
            if len(places) > 1:
                raise CsvFileError(
                    str(self.path),
                    1,
                    f"the header has {len(places)} {column!r} columns (columns "
                    f"{', '.join(places)}); keep one, so no row's cell is guessed at",
                )
        self.ignored_columns = [c for c in self.header if c not in EXPORT_COLUMNS]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()

    def _lines(self, stream: IO[str]) -> Iterator[str]:
        """The file's lines, each at most LINE_MAX_CHARS: a file with no line ends would
        otherwise be read whole as one line."""
        number = 0
        while line := stream.readline(LINE_MAX_CHARS + 1):
            number += 1
            if len(line) > LINE_MAX_CHARS:
                raise CsvFileError(
                    str(self.path), number, f"a line longer than {LINE_MAX_CHARS} characters"
                )
            yield line

    def _unreadable(self, exc: Exception) -> CsvFileError:
        if isinstance(exc, UnicodeDecodeError):
            return CsvFileError(
                str(self.path),
                self._first_line_not_utf8(),
                "not UTF-8 text (save the spreadsheet as 'CSV UTF-8'); nothing was imported",
            )
        line = self._reader.line_num + 1
        return CsvFileError(str(self.path), line, f"not a readable CSV row ({exc})")

    def _first_line_not_utf8(self) -> int | None:
        """The decoder reads ahead in blocks, so its error does not say which line: look."""
        with self.path.open("rb") as raw:
            for number, line in enumerate(raw, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return number
        return None

    def __iter__(self) -> Iterator[CsvRow]:
        header = self.header
        width = len(header)
        separator = self._reader.dialect.delimiter
        for start, cells in self._cell_lists():
            if len(cells) < width:
                cells = cells + [""] * (width - len(cells))
            extra = tuple(cells[width:])
            yield CsvRow(start, dict(zip(header, cells, strict=False)), extra, width, separator)

    def emails(self) -> Iterator[str]:
        """Each row's `email` cell as written, and nothing else: the importer's first pass,
        which only looks for repeated addresses, need not build every row twice."""
        where = self.header.index("email")  # the one: see __enter__
        for _, cells in self._cell_lists():
            yield cells[where] if where < len(cells) else ""

    def _cell_lists(self) -> Iterator[tuple[int, list[str]]]:
        """(the line a row starts on, its cells) for every row that is not blank."""
        start = self._reader.line_num + 1
        while True:
            try:
                cells = next(self._reader, None)
            except (UnicodeDecodeError, csv.Error) as exc:
                raise self._unreadable(exc) from exc
            if cells is None:
                return
            # Blank lines are not rows. One join, not a generator over the cells: this runs
            # twice for every row of a million-row import.
            if "".join(cells).strip():
                yield start, cells
            start = self._reader.line_num + 1


def write_rows(stream: IO[str], rows: Iterable[Iterable[str]], *, bom: bool = False) -> int:
    """Write the export header and rows, every cell neutralized; returns the row count.
    `bom`: start with a byte-order mark, for a file a person opens in Excel (see BOM)."""
    if bom:
        stream.write(BOM)
    writer = csv.writer(stream, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow([neutralize(cell) for cell in row])
        count += 1
    return count
