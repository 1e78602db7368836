"""The console's doors, through real HTTP: every /admin page refuses a visitor and shows
nothing; forms need the session's CSRF token; guesses are throttled per account and per IP;
a tampered, expired or signed-out session cookie opens nothing."""

from __future__ import annotations

import http.client
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.responses import Response
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.models import Brief
from newsletter.staff import accounts
from newsletter.staff.accounts import set_password
from newsletter.staff.models import LoginFailure, StaffSession
from newsletter.web.console import ROUTERS, signin
from newsletter.web.console.sessions import set_cookie
from subscribers.models import utcnow
from subscribers.topics import add_topic
from tests.conftest import sqlite_only, test_settings
from tests.console_support import (  # noqa: F401 - a fixture
    EDITOR,
    PASSWORD,
    Client,
    cheap_passwords,
    make_editor,
)

pytestmark = pytest.mark.usefixtures("cheap_passwords")
COOKIE = "nl_staff"


def _console_routes():
    """(method, path) of every console route but the sign-in form, ids filled in."""
    for router in ROUTERS:
        for route in router.routes:
            path = route.path.replace("{brief_id}", "1").replace("{send_id}", "1")
            path = path.replace("{action}", "pause")
            for method in sorted(route.methods - {"HEAD"}):
                if path != "/admin/login":
                    yield method, path


@pytest.fixture
def console(web, engine):
    url, _ = web
    make_editor(engine)
    return Client(url)


@pytest.fixture
def signed_in(console):
    assert console.sign_in().status == 303
    return console


def _briefs(engine):
    with session_scope(engine) as session:
        return list(session.exec(select(Brief)))


def _sessions(engine):
    with session_scope(engine) as session:
        return list(session.exec(select(StaffSession)))


def test_every_console_page_refuses_a_visitor_and_shows_nothing(console):
    routes = list(_console_routes())
    assert len(routes) >= 15
    for method, path in routes:
        answer = console.call(path, {"csrf": "x"} if method == "POST" else None, method=method)
        if method == "GET" and not path.endswith(".json"):
            assert answer.status == 303, path
            assert answer.location.startswith("/admin/login?next="), path
        else:
            assert answer.status == 401, (method, path)
        assert "Dashboard" not in answer.body and "<table" not in answer.body, path


def test_signing_in_opens_the_console_and_signing_out_ends_the_session(signed_in, engine):
    page = signed_in.call("/admin/")
    assert page.status == 200 and "<h1>Dashboard</h1>" in page.body
    assert "<td>Signed in</td>" in page.body  # the audit log on the dashboard
    cookie = signed_in.cookie(COOKIE)
    [row] = _sessions(engine)
    assert row.token_hash != cookie  # only a hash is stored

    out = signed_in.call("/admin/logout", {"csrf": signed_in.csrf()})
    assert out.status == 303 and out.location == "/admin/login"
    assert _sessions(engine) == []
    signed_in.jar.clear()
    replayed = Client(signed_in.base)
    replayed.jar = signed_in.jar
    replayed.call("/admin/login")  # gets the login cookie only
    answer = replayed.call("/admin/", headers={"Cookie": f"{COOKIE}={cookie}"})
    assert answer.status == 303 and answer.location.startswith("/admin/login")


def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(console):
    answer = console.sign_in()
    [session_cookie] = [c for c in answer.set_cookies if c.startswith(f"{COOKIE}=")]
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
    assert "Secure" not in session_cookie  # the test server is plain http on loopback

    response = Response()
    set_cookie(response, "token", test_settings(NEWSLETTER_BASE_URL="https://news.example.com"))
    header = response.headers["set-cookie"]
    assert header.startswith("__Host-nl_staff=token") and "Secure" in header


def test_a_post_without_the_sessions_csrf_token_changes_nothing(signed_in, engine):
    source = "---\ntitle: Forged\ndate: 2026-06-01\n---\n\nBody.\n"
    for token in ("", "not-the-token", signed_in.csrf() + "x"):
        answer = signed_in.call("/admin/briefs/write", {"csrf": token, "source": source})
        assert answer.status == 403 and "out of date" in answer.body
    assert _briefs(engine) == []
    assert (
        signed_in.call("/admin/briefs/write", {"csrf": signed_in.csrf(), "source": source}).status
        == 303
    )
    assert [b.title for b in _briefs(engine)] == ["Forged"]


def test_every_console_form_checks_the_csrf_token(signed_in):
    for method, path in _console_routes():
        if method == "POST":
            answer = signed_in.call(path, {"csrf": "forged"})
            assert answer.status == 403, path


def test_a_sign_in_post_without_its_form_cookie_is_refused(console):
    answer = Client(console.base).call(
        "/admin/login", {"email": EDITOR, "password": PASSWORD, "csrf": "0" * 64}
    )
    assert answer.status == 403 and not answer.set_cookies


def test_wrong_passwords_lock_the_account_even_against_the_right_one(console, engine):
    for _ in range(5):
        assert console.sign_in(password="wrong password guess").status == 401
    answer = console.sign_in()
    assert answer.status == 429 and "Too many wrong passwords" in answer.body
    assert console.cookie(COOKIE) == ""
    with session_scope(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(LoginFailure)) == 5


def test_an_unknown_address_is_answered_like_a_wrong_password(console):
    unknown = console.sign_in(email="nobody@example.com")
    wrong = console.sign_in(password="not the password!")
    assert unknown.status == wrong.status == 401
    assert "do not match" in unknown.body and "do not match" in wrong.body


def test_guesses_from_one_ip_are_throttled_across_accounts(console, engine):
    with session_scope(engine) as session:
        session.add_all(
            LoginFailure(email=f"guess{i}@example.com", ip="127.0.0.1", at=utcnow())
            for i in range(20)
        )
    assert console.sign_in().status == 429


def test_a_good_sign_in_clears_the_accounts_count(console, engine):
    for _ in range(4):
        console.sign_in(password="wrong password guess")
    assert console.sign_in().status == 303
    with session_scope(engine) as session:
        left = session.scalar(sa.select(sa.func.count()).select_from(LoginFailure))
    assert left == 0


@sqlite_only
@pytest.mark.parametrize(("password", "status"), [(PASSWORD, 303), ("a wrong password!", 401)])
def test_a_sign_in_during_a_workers_write_is_answered_not_a_500(
    console, engine, monkeypatch, password, status
):
    """SQLite refuses a transaction's write at once when another connection wrote after it
    read. Here the other writer (the worker, in life) writes during the password check, so
    that the moment is certain: a running worker hit it about once in eighteen guesses."""
    checked = []

    def verify_while_another_writes(staff, password):
        with session_scope(engine) as session:
            add_topic(f"written-meanwhile-{len(checked)}", "Meanwhile", session=session)
        checked.append(staff)
        return accounts.verify_password(staff, password)

    monkeypatch.setattr(signin, "verify_password", verify_while_another_writes)
    assert console.sign_in(password=password).status == status and checked


@sqlite_only
@pytest.mark.parametrize("change", ["new password", "removed"])
def test_an_account_changed_while_its_password_is_checked_opens_no_session(
    console, engine, monkeypatch, change
):
    def verify_while_staff_change_it(staff, password):
        with session_scope(engine) as session:
            if change == "removed":
                accounts.remove_staff(EDITOR, session=session)
            else:
                set_password(EDITOR, "an entirely new password", session=session)
        return accounts.verify_password(staff, password)

    monkeypatch.setattr(signin, "verify_password", verify_while_staff_change_it)
    assert console.sign_in().status == 401  # the old password, checked against the old hash
    assert _sessions(engine) == []


def test_a_tampered_session_cookie_opens_nothing_and_is_cleared(signed_in):
    cookie = signed_in.cookie(COOKIE)
    signed_in.set_cookie(COOKIE, cookie[:-1] + ("A" if cookie[-1] != "A" else "B"))
    answer = signed_in.call("/admin/briefs")
    assert answer.status == 303 and answer.location == "/admin/login?next=/admin/briefs"
    assert any(c.startswith(f"{COOKIE}=") and "Max-Age=0" in c for c in answer.set_cookies)


def test_an_idle_session_expires_and_is_deleted(signed_in, engine):
    with session_scope(engine) as session:
        session.execute(
            sa.update(StaffSession).values(last_seen_at=utcnow() - timedelta(minutes=31))
        )
    assert signed_in.call("/admin/").status == 303
    assert _sessions(engine) == []


def test_a_busy_session_still_ends_after_its_lifetime(signed_in, engine):
    with session_scope(engine) as session:
        session.execute(
            sa.update(StaffSession).values(
                created_at=utcnow() - timedelta(hours=13), last_seen_at=utcnow()
            )
        )
    assert signed_in.call("/admin/").status == 303


def test_a_new_password_ends_every_session_of_the_account(signed_in, engine):
    with session_scope(engine) as session:
        set_password(EDITOR, "another long password", session=session)
    assert signed_in.call("/admin/").status == 303


def test_sign_in_never_redirects_off_the_console(console):
    answer = console.sign_in(next_path="//evil.example.com/admin")
    assert answer.status == 303 and answer.location == "/admin/"


def test_an_oversized_post_is_refused_before_it_is_read(signed_in):
    host, port = signed_in.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest("POST", "/admin/briefs/write")
    connection.putheader("Content-Type", "application/x-www-form-urlencoded")
    connection.putheader("Content-Length", str(2 * 1024 * 1024))
    connection.endheaders()  # and not one byte of the body
    response = connection.getresponse()
    assert response.status == 413
    connection.close()


def test_a_visitor_at_a_console_address_that_does_not_exist_is_sent_to_sign_in(console):
    """As at one that does: a stranger learns nothing of which addresses exist."""
    answer = console.call("/admin/nope")
    assert answer.status == 303 and answer.location == "/admin/login?next=/admin/nope"


def test_a_visitor_at_a_malformed_console_address_is_sent_to_sign_in(console):
    answer = console.call("/admin/briefs/abc")
    assert answer.status == 303 and answer.location.startswith("/admin/login?next=")
