"""`newsletter staff …`: accounts for the console, passwords hashed with argon2id."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.db import session_scope
from newsletter.staff.accounts import find_staff, verify_password
from newsletter.staff.audit import recent
from newsletter.staff.models import Staff, StaffSession
from subscribers.models import utcnow
from tests.console_support import cheap_passwords  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("cheap_passwords")
GOOD = "a long enough password"


@pytest.fixture
def staff(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()

    def run(*args: str, input: str | None = None, ok: bool = True):
        result = runner.invoke(app, ["staff", *args], input=input, env={"COLUMNS": "200"})
        assert (result.exit_code == 0) is ok, result.output
        return result

    return run


def _account(engine, email="ed@example.com") -> Staff | None:
    with session_scope(engine) as session:
        return find_staff(email, session=session)


def test_add_reads_the_password_from_stdin_and_stores_only_an_argon2_hash(staff, engine):
    staff(
        "add", "Ed@Example.com", "--name", "Ed, “the editor”", "--password-stdin", input=GOOD + "\n"
    )
    account = _account(engine)
    assert account is not None and account.name == "Ed, “the editor”"
    assert account.password_hash.startswith("$argon2id$") and GOOD not in account.password_hash
    assert verify_password(account, GOOD) and not verify_password(account, GOOD + "!")


def test_add_asks_for_the_password_twice_when_not_given_on_stdin(staff, engine):
    staff("add", "ed@example.com", input=f"{GOOD}\n{GOOD}\n")
    assert verify_password(_account(engine), GOOD)


def test_a_short_password_is_refused_in_one_line_and_nothing_is_stored(staff, engine):
    result = staff("add", "ed@example.com", "--password-stdin", input="short\n", ok=False)
    assert "at least 12 characters" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert _account(engine) is None


def test_a_second_account_for_one_address_is_refused(staff):
    staff("add", "ed@example.com", "--password-stdin", input=GOOD)
    result = staff("add", "ED@example.com", "--password-stdin", input=GOOD, ok=False)
    assert "already has a staff account" in result.stderr and "staff password" in result.stderr


def test_list_shows_accounts_and_remove_signs_them_out(staff, engine):
    staff("add", "ed@example.com", "--password-stdin", input=GOOD)
    staff("add", "flo@example.com", "--password-stdin", input=GOOD)
    with session_scope(engine) as session:
        session.add(
            StaffSession(
                token_hash="x" * 64,
                staff_id=_account(engine).id,
                csrf_token="c",
                created_at=utcnow(),
            )
        )
    listed = json.loads(staff("list", "--json").stdout)
    assert [row["email"] for row in listed] == ["ed@example.com", "flo@example.com"]
    staff("remove", "ed@example.com")
    assert [row["email"] for row in json.loads(staff("list", "--json").stdout)] == [
        "flo@example.com"
    ]
    with session_scope(engine) as session:
        assert session.get(StaffSession, "x" * 64) is None
        assert [e.action for e in recent(session)][:1] == ["staff.remove"]


def test_password_sets_a_new_one(staff, engine):
    staff("add", "ed@example.com", "--password-stdin", input=GOOD)
    staff("password", "ed@example.com", "--password-stdin", input="another long password\n")
    account = _account(engine)
    assert verify_password(account, "another long password") and not verify_password(account, GOOD)


def test_removing_an_unknown_account_says_so(staff):
    result = staff("remove", "nobody@example.com", ok=False)
    assert "no staff account" in result.stderr
