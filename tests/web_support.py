"""Helpers for the tests that talk to the web app over real HTTP."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request

from newsletter.db import session_scope
from newsletter.links import LINK_TOKEN_PURPOSE, Links
from subscribers.roster import get_subscriber
from subscribers.tokens import TokenSigner


def call(url, *, data=None, raw: bytes | None = None, headers=None, method: str | None = None):
    """One request; (status, body text, headers). `data` is a form: a dict, or a list of
    pairs for repeated fields."""
    body = raw if raw is not None else (urllib.parse.urlencode(data).encode() if data else None)
    request = urllib.request.Request(  # noqa: S310 - the local test server
        url,
        data=body,
        headers=headers or {},
        method=method or ("POST" if body is not None else "GET"),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local test server
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def token(settings, subscriber_id: int) -> str:
    return TokenSigner(settings.NEWSLETTER_SECRET_KEY.get_secret_value()).sign(
        LINK_TOKEN_PURPOSE, subscriber_id
    )


def confirm_token(settings, subscriber_id: int) -> str:
    return Links.from_settings(settings).confirm_url(subscriber_id).rsplit("/", 1)[1]


def form_csrf(page: str) -> str:
    return page.split('name="csrf" value="')[1].split('"')[0]


def without_csrf(page: str) -> str:
    """A page with its form token blanked, to compare two pages made at different times."""
    return re.sub(r'name="csrf" value="[^"]*"', 'name="csrf" value=""', page)


def subscribe(url, *, headers=None, **fields):
    """Open the form, then post it with `fields` (a list value repeats the field)."""
    _, page, _ = call(f"{url}/subscribe")
    pairs = [("csrf", form_csrf(page))]
    for name, value in fields.items():
        pairs.extend((name, item) for item in (value if isinstance(value, list) else [value]))
    return call(f"{url}/subscribe", data=pairs, headers=headers)


def status_of(engine, email: str) -> str:
    with session_scope(engine) as session:
        return get_subscriber(email, session=session).status


def link_in(message, path: str) -> str:
    return next(word for word in message.text.split() if f"/{path}/" in word)
