"""Signing in and out of the console."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from newsletter.web.console.csrf import LOGIN_COOKIE, login_token, login_token_ok, new_nonce
from newsletter.web.console.deps import ConsoleDep, StaffRequired, current_staff, safe_next
from newsletter.web.console.sessions import set_cookie
from newsletter.web.console.signin import Refusal, sign_in
from newsletter.web.deps import ClientIp
from subscribers.models import utcnow

router = APIRouter(prefix="/admin")
FIELD_MAX = 1024  # an address or a password longer than this is not a sign-in


def _form(
    request: Request, console: ConsoleDep, next_path: str, status: int = 200, **extra: object
) -> Response:
    secret = console.settings.NEWSLETTER_SECRET_KEY.get_secret_value()
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    fresh = not nonce or len(nonce) > 64
    if fresh:
        nonce = new_nonce()
    response = console.page(
        request,
        "login.html",
        None,
        status,
        login_csrf=login_token(secret, nonce),
        next_path=safe_next(next_path),
        **extra,
    )
    if fresh:
        response.set_cookie(
            LOGIN_COOKIE,
            nonce,
            path="/admin",
            httponly=True,
            samesite="lax",
            secure=console.settings.NEWSLETTER_BASE_URL.startswith("https://"),
        )
    return response


@router.get("/login")
def login_page(request: Request, console: ConsoleDep, next: str = "/admin/") -> Response:
    try:
        current_staff(request, console)
        return RedirectResponse(safe_next(next), status_code=303)  # signed in already
    except StaffRequired:
        return _form(request, console, next)


@router.post("/login")
def login(
    request: Request,
    console: ConsoleDep,
    ip: ClientIp,
    email: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    password: Annotated[str, Form(max_length=FIELD_MAX)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=FIELD_MAX)] = "/admin/",
) -> Response:
    secret = console.settings.NEWSLETTER_SECRET_KEY.get_secret_value()
    if not login_token_ok(secret, request.cookies.get(LOGIN_COOKIE, ""), csrf):
        return console.page(request, "refused.html", None, 403)
    result = sign_in(console.engine, console.settings, email, password, ip=ip, now=utcnow())
    if result.refused is Refusal.THROTTLED:
        minutes = console.settings.NEWSLETTER_LOGIN_WINDOW_MINUTES
        return _form(
            request,
            console,
            next,
            429,
            email=email,
            error=f"Too many wrong passwords. Wait {minutes} minutes, then try again.",
        )
    if result.refused is Refusal.WRONG:
        return _form(
            request,
            console,
            next,
            401,
            email=email,
            error="That address and password do not match an account.",
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    set_cookie(response, result.token, console.settings)
    response.delete_cookie(LOGIN_COOKIE, path="/admin")
    return response
