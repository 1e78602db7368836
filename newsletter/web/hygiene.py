"""Requests no route is written for, answered as a person or a monitor would expect.

* HEAD: uptime monitors and feed readers ask it of every page; FastAPI answers a route
  declared GET with 405 to it. `HeadAsGet` answers it as the GET, without the body.
* A NUL byte in the path or query (`/archive/a%00b`): PostgreSQL refuses NUL in text, so
  the lookup it reached failed with a 500. `has_nul` lets the app refuse it first.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: HEAD runs the GET route and sends its status and headers, no body
    (the server, seeing HEAD in its own scope, expects none). Only on the reader's side:
    a console GET may do work a HEAD must not (an export writes its audit entry)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or is_console(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


def is_console(path: str) -> bool:
    """Whether a path is the staff console's (`/admin`, `/admin/…`; not `/administer`)."""
    return path == "/admin" or path.startswith("/admin/")


def has_nul(scope: Scope) -> bool:
    """Whether the request's path or query holds a NUL, escaped or not."""
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query
