"""The operator's commands: `doctor` (is this configuration ready?) and `backup FILE`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.common import JsonOption, err, out, print_json, user_errors
from newsletter.config import get_settings
from newsletter.db.backup import backup_database
from newsletter.doctor import Status, load_settings, run_checks

STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "red"}


@user_errors
def doctor(
    host: Annotated[
        str, typer.Option(help="The address `newsletter serve --host` listens on.")
    ] = "127.0.0.1",
    as_json: JsonOption = False,
) -> None:
    """Check the configuration before the first real send: one line per check, each saying
    what to fix; exits 1 if any check fails."""
    settings, results = load_settings()
    if settings is not None:
        results += run_checks(settings, host=host)
    failed = [result for result in results if result.status is Status.FAIL]
    if as_json:
        print_json({"ok": not failed, "checks": [result.as_dict() for result in results]})
    else:
        for result in results:
            out.print(result.line, style=STYLE[result.status], highlight=False, soft_wrap=True)
        err.print(
            f"{len(failed)} of {len(results)} checks failed" if failed else "all checks passed",
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


@user_errors
def backup(
    file: Annotated[Path, typer.Argument(help="A new file for the copy.")],
    as_json: JsonOption = False,
) -> None:
    """A consistent copy of the SQLite database, safe while the worker runs (PostgreSQL:
    use pg_dump)."""
    report = backup_database(get_settings().DATABASE_URL, file)
    if as_json:
        print_json(report.as_dict())
        return
    err.print(
        f"backed up {report.source} to {report.target} ({report.size:,} bytes, "
        f"schema {report.revision or 'unknown'})",
        highlight=False,
    )
