"""`newsletter staff …`: the accounts that sign in to the console at /admin."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli.common import JsonOption, err, out, print_json, settings_and_engine, user_errors
from newsletter.db import session_scope
from newsletter.errors import NewsletterError
from newsletter.staff import audit
from newsletter.staff.accounts import add_staff, list_staff, remove_staff, set_password

app = typer.Typer(help="Staff accounts for the web console.", no_args_is_help=True)

PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input."
    ),
]


def _password(from_stdin: bool) -> str:
    """From stdin (scripts), else asked twice at the terminal without echo."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            raise NewsletterError("--password-stdin: standard input had no password line")
        return password
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return prompted


@app.command("add")
@user_errors
def staff_add(
    email: str,
    name: Annotated[str, typer.Option(help="How the console greets them.")] = "",
    password_stdin: PasswordStdin = False,
    as_json: JsonOption = False,
) -> None:
    """Create an account; the password is asked for (or read with --password-stdin)."""
    password = _password(password_stdin)
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        staff = add_staff(email, password, session=session, name=name)
        audit.record(session, audit.cli_actor(), "staff.add", staff.email)
        shown = staff.as_dict()
    if as_json:
        print_json(shown)
        return
    err.print(f"staff account {shown['email']} added; sign in at /admin/login", highlight=False)


@app.command("list")
@user_errors
def staff_list(as_json: JsonOption = False) -> None:
    """Every account, with when it last signed in."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        rows = [staff.as_dict() for staff in list_staff(session=session)]
    if as_json:
        print_json(rows)
        return
    table = Table("email", "name", "added (UTC)", "last sign-in (UTC)")
    for row in rows:
        table.add_row(
            str(row["email"]),
            str(row["name"]),
            str(row["created_at"])[:16].replace("T", " "),
            str(row["last_login_at"] or "never")[:16].replace("T", " "),
        )
    out.print(table)


@app.command("remove")
@user_errors
def staff_remove(email: str, as_json: JsonOption = False) -> None:
    """Delete an account; a browser still signed in with it is signed out."""
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        staff = remove_staff(email, session=session)
        audit.record(session, audit.cli_actor(), "staff.remove", staff.email)
    if as_json:
        print_json({"email": staff.email, "removed": True})
        return
    err.print(f"staff account {staff.email} removed", highlight=False)


@app.command("password")
@user_errors
def staff_password(email: str, password_stdin: PasswordStdin = False) -> None:
    """Set a new password; every session of the account ends."""
    password = _password(password_stdin)
    _, engine = settings_and_engine()
    with session_scope(engine) as session:
        staff = set_password(email, password, session=session)
        audit.record(session, audit.cli_actor(), "staff.password", staff.email)
    err.print(f"new password set for {staff.email}; its sessions were ended", highlight=False)
