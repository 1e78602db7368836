"""A small HTTP client for the console tests: keeps cookies like a browser, never follows
redirects (tests look at them), and knows how to sign in and read a page's CSRF token."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher

from newsletter.db import session_scope
from newsletter.staff import accounts
from newsletter.staff.accounts import add_staff

EDITOR = "editor@example.com"
PASSWORD = "correct horse battery staple"


@dataclass
class Answer:
    status: int
    body: str
    headers: dict[str, str]
    set_cookies: list[str]

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


class Client:
    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect
        )

    def call(
        self,
        path: str,
        data: dict[str, str] | list[tuple[str, str]] | None = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> Answer:
        body = (
            raw
            if raw is not None
            else (urllib.parse.urlencode(data).encode() if data is not None else None)
        )
        request = urllib.request.Request(  # noqa: S310 - the local test server
            self.base + path,
            data=body,
            headers=headers or {},
            method=method or ("POST" if body is not None else "GET"),
        )
        try:
            response = self.opener.open(request, timeout=20)
        except urllib.error.HTTPError as exc:
            response = exc
        with response:
            text = response.read().decode("utf-8", "replace")
            return Answer(
                response.status if hasattr(response, "status") else response.code,
                text,
                {k.lower(): v for k, v in response.headers.items()},
                response.headers.get_all("Set-Cookie") or [],
            )

    def upload(
        self,
        path: str,
        csrf: str,
        filename: str,
        content: bytes,
        fields: dict[str, str] | None = None,
    ) -> Answer:
        """A multipart/form-data post with one file (and any other fields), as a browser
        sends it."""
        boundary = "----console-test-boundary"
        body = (
            (
                "".join(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                    f"\r\n\r\n{value}\r\n"
                    for name, value in {"csrf": csrf, **(fields or {})}.items()
                )
                + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{filename}"\r\nContent-Type: text/markdown\r\n\r\n'
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        return self.call(
            path, raw=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )

    def cookie(self, name: str) -> str:
        return next((c.value for c in self.jar if c.name == name), "")

    def set_cookie(self, name: str, value: str) -> None:
        for cookie in list(self.jar):
            if cookie.name == name:
                cookie.value = value

    def sign_in(
        self, email: str = EDITOR, password: str = PASSWORD, next_path: str = "/admin/"
    ) -> Answer:
        form = self.call(f"/admin/login?next={urllib.parse.quote(next_path)}")
        return self.call(
            "/admin/login",
            {"email": email, "password": password, "csrf": csrf_of(form.body), "next": next_path},
        )

    def csrf(self, path: str = "/admin/") -> str:
        return csrf_of(self.call(path).body)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def make_editor(engine, email: str = EDITOR, password: str = PASSWORD, name: str = "Eda Editor"):
    with session_scope(engine) as session:
        return add_staff(email, password, session=session, name=name).id


@pytest.fixture
def cheap_passwords(monkeypatch):
    """argon2id still, at its lowest cost: the console tests sign in dozens of times on a
    shared 2-core machine, where the production parameters cost up to 2 s a hash. The
    parameters are not what these tests check."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", lambda: cheap)
    accounts._decoy_hash.cache_clear()
    yield
    accounts._decoy_hash.cache_clear()
