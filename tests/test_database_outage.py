"""The database stops answering while the web process runs (a server restarting, a failover):
strangers get "try again shortly" (503) with Retry-After, SendGrid a 503 it retries, and the
log one line, never a 500 or a traceback. A real outage: the running app's database is
dropped from under it on a real PostgreSQL server."""

from __future__ import annotations

import logging
import sqlite3

import psycopg
import pytest
import sqlalchemy as sa

from newsletter.db.outage import is_outage
from newsletter.web.console.sessions import cookie_name
from scheduler import _guarded
from tests.conftest import _admin_engine, _admin_url, scratch_postgres, serve_app
from tests.web_support import call


@pytest.fixture
def outage(postgres_template, settings):
    """The web app serving a database of its own, then that database gone: its URL and
    settings."""
    with (
        scratch_postgres("nl_outage", template=postgres_template) as url,
        serve_app(settings, DATABASE_URL=url) as (base, served),
    ):
        admin = _admin_engine(_admin_url() or "")
        with admin.connect() as connection:
            name = sa.make_url(url).database
            connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()
        yield base, served


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("path", ["/archive", "/subscribe", "/archive/feed.atom"])
def test_a_readers_page_is_briefly_unavailable_when_the_database_is_gone(outage, path, caplog):
    caplog.set_level(logging.WARNING, logger="newsletter.web")
    status, body, headers = call(outage[0] + path)
    assert status == 503 and headers["retry-after"] == "30"
    assert "Briefly unavailable" in body and "Nothing you sent was lost" in body
    [line] = [r for r in caplog.records if "database not answering" in r.getMessage()]
    assert line.exc_info is None and "Background on this error" not in line.getMessage()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_console_says_the_database_is_not_answering(outage):
    base, served = outage
    signed_in = {"Cookie": f"{cookie_name(served)}=a-session-it-cannot-look-up"}
    status, body, _ = call(base + "/admin/", headers=signed_in)
    assert status == 503 and "The database is not answering" in body


def _refused() -> None:
    try:
        psycopg.connect("host=127.0.0.1 port=1 connect_timeout=2")  # nothing listens on 1
    except psycopg.OperationalError as exc:
        raise sa.exc.OperationalError("connect", {}, exc) from exc


def test_a_worker_tick_without_its_database_logs_one_line_and_goes_on(caplog):
    """It logged SQLAlchemy's two lines and their web link every five seconds."""
    caplog.set_level(logging.ERROR)
    _guarded(_refused, "tick")()
    [line] = caplog.records
    assert line.getMessage().startswith("tick: the database is not answering (connection")
    assert "next tick tries again" in line.getMessage() and "sqlalche.me" not in line.getMessage()


def test_a_worker_tick_that_fails_for_another_reason_is_not_taken_for_an_outage():
    def broken() -> None:
        raise sa.exc.ProgrammingError("SELECT", {}, Exception("column send.x does not exist"))

    with pytest.raises(sa.exc.ProgrammingError):
        _guarded(broken, "tick")()


def _sqlite_error(tmp_path, sql: str, *, locked: bool = False) -> sa.exc.DBAPIError:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}", connect_args={"timeout": 0})
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE t (a int)")
    holder = sqlite3.connect(tmp_path / "x.db")
    if locked:
        holder.execute("BEGIN EXCLUSIVE")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(sql)
    except sa.exc.DBAPIError as exc:
        return exc
    finally:
        holder.close()
        engine.dispose()
    raise AssertionError("no error")


def test_a_sqlite_database_held_by_another_writer_is_an_outage(tmp_path):
    assert is_outage(_sqlite_error(tmp_path, "INSERT INTO t VALUES (1)", locked=True))


def test_a_sqlite_statement_naming_no_such_column_is_a_bug_not_an_outage(tmp_path):
    """SQLite raises OperationalError for it too: readers got "briefly unavailable" and the
    log no traceback, where PostgreSQL's ProgrammingError gave a 500 and one."""
    assert not is_outage(_sqlite_error(tmp_path, "SELECT nope FROM t"))
