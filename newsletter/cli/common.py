"""What every command shares: output, the one-line error contract, settings and engine.

Every failure a user can fix prints one line on stderr (and the next step, if any) and
exits 1 (`worker` and `serve`: 78 for a setting to fix), never a traceback. `--json`
prints exactly one JSON document on stdout.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TextIO, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from newsletter.config import Settings, get_settings
from newsletter.db import fits_row_id, make_engine, require_current_schema
from newsletter.errors import ConfigurationError, NewsletterError, NotFoundError

# A path or a message is one line, whatever the width. Markup off: what these print is
# people's text (titles, names, a provider's words), and rich reads "[/b]" in a reader's
# name as a closing tag and raises. The few styled words ask for markup themselves.
#
# Piped or redirected (a script, `| grep`, a file), a table is as wide as its cells: at rich's
# default of 80 columns it cut addresses to "aiko@exampl…", which no script can use.
# COLUMNS, when set, still decides.
UNCUT_WIDTH = 10_000


def _width(stream: TextIO) -> int | None:
    return None if stream.isatty() or "COLUMNS" in os.environ else UNCUT_WIDTH


out = Console(soft_wrap=True, markup=False, width=_width(sys.stdout))
err = Console(stderr=True, soft_wrap=True, markup=False, width=_width(sys.stderr))

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
P = ParamSpec("P")
R = TypeVar("R")


def fail(message: str, hint: str = "") -> None:
    """The one line a failed command prints: what is wrong, then what to do about it."""
    text = f"{message}: {hint}" if hint else message
    err.print("[red]error:[/red] " + escape(text), markup=True, highlight=False)


def warn(text: str) -> None:
    """A warning line on stderr: the command went on, but something needs a look."""
    err.print("[yellow]warning:[/yellow] " + escape(text), markup=True, highlight=False)


# sysexits.h's EX_CONFIG: what the worker exits with when a person must act first (a bad
# setting, a database never migrated). Its systemd unit does not restart on it, and does
# restart without limit on anything else (a database still starting at boot).
EX_CONFIG = 78


def user_errors(function: Callable[P, R]) -> Callable[P, R]:
    """One line on stderr and exit 1 for anything the user can fix."""
    return _one_line(function, configuration=1)


def process_errors(function: Callable[P, R]) -> Callable[P, R]:
    """`user_errors` for a process under a supervisor: a configuration to fix exits
    EX_CONFIG, so it is not restarted in a loop; anything else exits 1."""
    return _one_line(function, configuration=EX_CONFIG)


def _one_line(function: Callable[P, R], *, configuration: int) -> Callable[P, R]:
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        code = configuration
        try:
            return function(*args, **kwargs)
        except ConfigurationError as exc:
            fail(str(exc), exc.hint)
        except NewsletterError as exc:
            fail(str(exc), exc.hint)
            code = 1
        except ValidationError as exc:
            for problem in exc.errors():
                field = ".".join(str(part) for part in problem["loc"]) or "settings"
                fail(f"setting {field}: {problem['msg']}")
        except OperationalError as exc:
            fail(f"database: {exc.orig or exc}")
            code = 1
        raise typer.Exit(code)

    return wrapper


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")


def settings_and_engine() -> tuple[Settings, Engine]:
    """Settings and an engine for a database that `newsletter init` has prepared."""
    settings = get_settings()
    engine = make_engine(settings.DATABASE_URL)
    require_current_schema(engine, settings.NEWSLETTER_MIGRATIONS_DIR)
    return settings, engine


def row_id(value: int, what: str) -> int:
    """An id typed on the command line, checked before any database sees it."""
    if not fits_row_id(value):
        raise NotFoundError(f"no {what} {value}", hint=f"see `newsletter {what}s list`")
    return value


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]
