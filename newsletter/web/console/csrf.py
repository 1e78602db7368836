"""CSRF tokens for the console's forms.

Signed in: every form carries the session's own random token (the synchronizer-token
pattern); a post whose token differs is refused. The sign-in form has no session yet, so
it pairs a random cookie with an HMAC of it in the form (a signed double-submit): another
site can neither read the cookie nor forge the HMAC, so it cannot sign a browser in to an
account of its choosing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

LOGIN_COOKIE = "nl_login"


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_token(secret: str, nonce: str) -> str:
    key = hashlib.sha256(b"newsletter-console-login:" + secret.encode("utf-8")).digest()
    return hmac.new(key, nonce.encode("ascii", "replace"), "sha256").hexdigest()


def login_token_ok(secret: str, nonce: str, token: str) -> bool:
    return bool(nonce) and hmac.compare_digest(login_token(secret, nonce), token)


def same_token(expected: str, given: str) -> bool:
    return bool(expected) and hmac.compare_digest(
        expected.encode("ascii", "replace"), given.encode("ascii", "replace")
    )
