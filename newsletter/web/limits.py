"""What the web side lets in: who the client is (forwarded-for headers only from proxies
the operator trusts), who may read /metrics, and how big a request body may be.

The counters themselves live in the database (`newsletter/limits.py`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Callable, Iterable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# A reader's form is a few hundred bytes; 64 KiB is room for every topic there is.
FORM_MAX_BYTES = 64 * 2**10
# SendGrid posts event batches of up to about 768 KB; twice that, and no more.
WEBHOOK_MAX_BYTES = 2 * 2**20
# The staff console: a brief file (at most 512 KB) and the form around it.
CONSOLE_MAX_BYTES = 2**20
# A subscriber CSV uploaded in the console (about 5,000 rows); its apply step posts it back
# base64-encoded, a third larger, and both fit CONSOLE_MAX_BYTES and Starlette's 1 MiB per
# form field. Bigger lists go through `newsletter subscribers import` (up to 256 MB).
CONSOLE_CSV_MAX_BYTES = 512 * 2**10
_LIMITS_BY_PREFIX = (("/webhooks/", WEBHOOK_MAX_BYTES), ("/admin/", CONSOLE_MAX_BYTES))
# A body declared too large, but no larger than this, is read and thrown away before the
# refusal: a server that closes with unread bytes makes the client's TCP stack reset the
# connection, and the person sees "connection reset" instead of the page that says why.
# Larger than this, and the connection is simply closed after the answer.
DRAIN_MAX_BYTES = 16 * 2**20
DRAIN_PAUSE_SECONDS = 1.0


def trusted_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _parsed(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def client_address(peer: str, forwarded_for: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """The client of a request. With no trusted proxy (the default) that is the socket's
    peer, whatever the headers say. When the peer is a trusted proxy, X-Forwarded-For is
    read from the right (each proxy appends the address it saw): the first address that is
    not a trusted proxy is the client."""

    def is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in net for net in trusted)

    client = _parsed(peer)
    if not is_trusted(client):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parsed(hop)
        if address is None:  # not written by a proxy of ours: stop at the last good one
            break
        client = address
        if not is_trusted(address):
            break
    return str(client)


# Headers a proxy adds: a request carrying one came through a proxy, from elsewhere.
_PROXIED = ("x-forwarded-for", "forwarded", "x-real-ip")


def may_read_metrics(request: Request, token: str, proxies: tuple[Network, ...] = ()) -> bool:
    """Whether this request may read /metrics: Prometheus on this machine, or one with
    `token` as its bearer token. The figures are the list's size and the ledger's state,
    and a scrape counts the whole ledger (about a third of a second per million rows): on a
    bare `serve` any stranger could read them, and make the database count, at will.

    "This machine" is a loopback peer that is not a proxy: not one of the trusted
    `proxies` (a proxy on this machine, set up as the README says, is 127.0.0.1 there, and
    Prometheus beside it then needs the token), and with no header a proxy adds. A proxy
    that adds none (nginx's bare proxy_pass, stunnel, an SSH tunnel) is told apart only by
    being listed."""
    if token:
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        if hmac.compare_digest(given, f"Bearer {token}".encode()):
            return True
    if any(name in request.headers for name in _PROXIED):
        return False
    try:
        peer = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False
    return peer.is_loopback and not any(peer in network for network in proxies)


def max_body_bytes(path: str) -> int:
    return next(
        (limit for prefix, limit in _LIMITS_BY_PREFIX if path.startswith(prefix)), FORM_MAX_BYTES
    )


class BodyTooLargeError(HTTPException):
    """A request body past its limit; answered 413 by the app's handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"more than {limit // 1024} KiB")


class BodyLimit:
    """ASGI middleware: a body declared larger than its path's limit is refused before a
    byte is read (`refusal` answers it); one that streams past it (chunked) is refused as
    it crosses it, by BodyTooLargeError, which the app answers like any HTTP error. Either
    way the handler never holds more than the limit."""

    def __init__(self, app: ASGIApp, refusal: Callable[[str, int], Response]) -> None:
        self.app = app
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = max_body_bytes(scope["path"])
        declared = Headers(scope=scope).get("content-length", "0")
        readable = declared.isascii() and declared.isdigit() and len(declared) < 16
        if not readable or int(declared) > limit:
            if readable and int(declared) <= DRAIN_MAX_BYTES:
                await _drain(receive)
            await self.refusal(scope["path"], limit)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLargeError(limit)
            return message

        await self.app(scope, counted, send)


async def _drain(receive: Receive) -> None:
    """Read a refused body to its end, keeping none of it (the declared length is capped by
    the caller). A client that stops sending gets its answer after DRAIN_PAUSE_SECONDS: a
    refusal never waits on a body that is not coming."""
    while True:
        try:
            message = await asyncio.wait_for(receive(), DRAIN_PAUSE_SECONDS)
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
