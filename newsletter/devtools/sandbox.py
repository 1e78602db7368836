"""A local stand-in for SendGrid's v3 `mail/send` (and `GET /v3/scopes`, which `newsletter
doctor` asks), for tests, the demo, benchmarks and trying templates. Nothing leaves the
machine.

It answers as SendGrid does: 202 with `X-Message-Id` and `X-RateLimit-*` headers; 401 for a
wrong key; 400 with the `{"errors": [{"message", "field", "help"}]}` envelope for a request
that breaks SendGrid's rules, every broken rule listed. It keeps every accepted
personalization (`GET /sandbox/messages`) and counts them, with any delivery id seen twice
(`GET /sandbox/stats`), so tests can prove exactly-once. Its inbox (`GET /`, see
`inbox.py`) shows each message as its reader sees it, and can keep them in a file.

Given a webhook URL (`Sandbox.send_events_to`, `newsletter sandbox --webhook-url`), it
posts signed `processed` and `delivered` events for everything it accepted, as SendGrid's
Event Webhook does, optionally late (`--events-delay`): the events that settle deliveries a
sender could not be sure of. Readers opening and clicking (`engagement.py`) are posted on
request: `Sandbox.engage`, or `POST /sandbox/engage` with an `Engagement` as JSON.

Faults can be injected (`Faults`, or `PUT /sandbox/faults` with the same fields as JSON,
which `GET /sandbox/faults` answers with): a share of 429/500/503 answers, slow answers,
and connections dropped *after* the body was read and accepted — the case where the sender
cannot know whether the mail went out.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from newsletter.devtools.answering_server import AnsweringServer
from newsletter.devtools.engagement import Engagement
from newsletter.devtools.faults import Faults, unnamed_refusal
from newsletter.devtools.inbox import Accepted, Inbox, inbox_page
from newsletter.devtools.mail_send_errors import error as _error
from newsletter.devtools.mail_send_rules import TOO_LARGE, media_type_errors, validate_mail_send
from newsletter.devtools.sandbox_input import (
    BodyRefusedError,
    FieldRefusedError,
    NestedTooDeepError,
    drain,
    message_page,
    read_body,
    read_json,
)
from newsletter.devtools.sandbox_state import SandboxState
from newsletter.devtools.webhook_signer import (
    EventPoster,
    EventSigner,
    event_for,
    post_events,
)

__all__ = ["Accepted", "EventSigner", "Faults", "Inbox", "Sandbox", "SandboxState", "event_for"]

_BAD_KEY = "The provided authorization grant is invalid, expired, or revoked"

# How long `Sandbox.stop` waits for requests still being answered (an injected delay): a
# request slower than that closes the inbox itself when it is done.
STOP_WAIT_SECONDS = 10.0


def _answered_while_open(method: Callable[[_Handler], None]) -> Callable[[_Handler], None]:
    """Run a `do_*` method as one answer `Sandbox.stop` waits for, or refuse it with
    SendGrid's 503 once stopping began: a request thread still answering when a test
    stopped the sandbox wrote to the closed inbox and printed a traceback."""

    def answer(handler: _Handler) -> None:
        if not handler.server.begin_answer():
            handler._reply(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"errors": [_error("the sandbox is stopping")]},
                {"Connection": "close"},  # its body may be left unread
            )
            return
        try:
            method(handler)
        except Exception:  # a sandbox bug: reported as the server reports one, then answered
            handler.server.handle_error(handler.request, handler.client_address)
            handler._reply(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"errors": [_error("the sandbox could not answer this request: see its log")]},
                {"Connection": "close"},
            )
        finally:
            handler.server.end_answer()

    return answer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _reply(
        self, status: int, payload: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> bytes | None:
        """The request's body, every method's read here (`sandbox_input.read_body`: as
        long as declared, within the path's limit); None once refused, answered, and the
        connection marked to close."""
        try:
            return read_body(self.rfile, self.connection, self.headers, urlsplit(self.path).path)
        except BodyRefusedError as refused:
            self._reply(
                refused.status,
                {"errors": [_error(str(refused), refused.field)]},
                {"Connection": "close"},
            )
            drain(self.rfile, self.connection, refused.unread)
            return None

    @_answered_while_open
    def do_POST(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        if urlsplit(self.path).path.rstrip("/") == "/sandbox/engage":
            self._engage(raw)
            return
        if urlsplit(self.path).path.rstrip("/") != "/v3/mail/send":
            self._reply(HTTPStatus.NOT_FOUND, {"errors": [_error("Not found")]})
            return
        state = self.server.state
        if not self._authorized():
            return
        fault, delay = state.draw_fault()
        if delay:
            time.sleep(delay)
        limits = state.rate_limit_headers()
        if fault == "429":
            limits["X-RateLimit-Remaining"] = "0"
            limits["X-RateLimit-Reset"] = str(int(time.time()) + state.faults.retry_after)
            self._reply(
                HTTPStatus.TOO_MANY_REQUESTS, {"errors": [_error("too many requests")]}, limits
            )
            return
        if fault in ("500", "503"):
            self._reply(
                int(fault), {"errors": [_error("internal error (injected by the sandbox)")]}
            )
            return
        if refused := media_type_errors(self.headers.get("Content-Type")):
            self._reply(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"errors": refused})
            return
        try:
            body = read_json(raw)
        except ValueError as exc:  # NestedTooDeepError too: no RecursionError gets out
            deep = (
                " It is nested too deeply to read." if isinstance(exc, NestedTooDeepError) else ""
            )
            invalid = _error(f"Invalid JSON in the request body.{deep}")
            self._reply(HTTPStatus.BAD_REQUEST, {"errors": [invalid]})
            return
        errors = validate_mail_send(body, size=len(raw)) or unnamed_refusal(body, state.faults)
        if errors:
            too_large = any(e["message"] == TOO_LARGE for e in errors)
            status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if too_large else HTTPStatus.BAD_REQUEST
            self._reply(status, {"errors": errors}, limits)
            return
        message_id = state.accept(body, raw)
        if fault == "drop":
            # Accepted, but the answer never arrives: the client cannot tell.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._reply(HTTPStatus.ACCEPTED, headers={"X-Message-Id": message_id, **limits})

    def _engage(self, raw: bytes) -> None:
        try:
            engagement = Engagement.from_json(raw or b"{}")
        except FieldRefusedError as exc:  # nothing is posted
            self._reply(HTTPStatus.BAD_REQUEST, {"errors": [_error(str(exc), exc.field)]})
            return
        try:
            posted = self.server.state.engage(engagement)
        except LookupError as exc:  # no webhook to post to
            self._reply(HTTPStatus.BAD_REQUEST, {"errors": [_error(str(exc))]})
            return
        self._reply(HTTPStatus.ACCEPTED, {"events": posted})

    @_answered_while_open
    def do_PUT(self) -> None:
        raw = self._read_body()
        if raw is None:
            return
        if urlsplit(self.path).path.rstrip("/") != "/sandbox/faults":
            self._reply(HTTPStatus.NOT_FOUND, {"errors": [_error("Not found")]})
            return
        try:
            faults = Faults.from_json(raw or b"{}")
        except FieldRefusedError as exc:  # the faults in force stay as they were
            self._reply(HTTPStatus.BAD_REQUEST, {"errors": [_error(str(exc), exc.field)]})
            return
        self.server.state.set_faults(faults)
        self._reply(HTTPStatus.OK, asdict(faults))

    def _authorized(self) -> bool:
        """SendGrid's 401 for a wrong key; True when the key is the sandbox's."""
        if self.headers.get("Authorization", "") == f"Bearer {self.server.state.api_key}":
            return True
        self._reply(HTTPStatus.UNAUTHORIZED, {"errors": [_error(_BAD_KEY)]})
        return False

    @_answered_while_open
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        if path == "/v3/scopes":
            if self._authorized():
                self._reply(HTTPStatus.OK, {"scopes": self.server.state.scopes})
            return
        page = inbox_page(self.server.state.inbox, path, url.query)
        if page is not None:
            status, csp, html = page
            data = html.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", csp)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path == "/sandbox/messages":
            self._messages(url.query)
        elif path == "/sandbox/stats":
            self._reply(HTTPStatus.OK, self.server.state.snapshot())
        elif path == "/sandbox/faults":  # as PUT takes them: a developer can put them back
            self._reply(HTTPStatus.OK, asdict(self.server.state.faults))
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"errors": [_error("Not found")]})

    def _messages(self, query: str) -> None:
        """A page of what was accepted, oldest first: after a big send the whole list was
        tens of megabytes in one answer. `Link: rel="next"` names the next page."""
        try:
            offset, limit = message_page(query)
        except ValueError as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"errors": [_error(str(exc), "query")]})
            return
        messages = self.server.state.messages()
        page = messages[offset : offset + limit]
        headers = {"X-Total-Count": str(len(messages))}
        if offset + limit < len(messages):
            nxt = urlencode({"offset": offset + limit, "limit": limit})
            headers["Link"] = f'</sandbox/messages?{nxt}>; rel="next"'
        self._reply(HTTPStatus.OK, [m.as_dict() for m in page], headers)

    @_answered_while_open
    def do_DELETE(self) -> None:
        if urlsplit(self.path).path.rstrip("/") == "/sandbox/messages":
            self.server.state.clear()
            self._reply(HTTPStatus.NO_CONTENT)
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"errors": [_error("Not found")]})


class _Server(AnsweringServer):
    def __init__(self, address: tuple[str, int], state: SandboxState, verbose: bool) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.verbose = verbose


class Sandbox:
    """The sandbox server; `with Sandbox(api_key) as sandbox:` runs it on a free port."""

    def __init__(
        self,
        api_key: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbose: bool = False,
        keep_messages: bool = True,
        faults: Faults | None = None,
        scopes: list[str] | None = None,
        inbox_path: Path | None = None,
        webhook_key: Path | None = None,
    ) -> None:
        """`inbox_path`: a SQLite file that keeps accepted messages across restarts.
        `webhook_key`: a PEM file that keeps the key events are signed with (made on first
        use), so the public key a web app was given still verifies them after a restart."""
        # First: a key file refused leaves no inbox open behind it.
        self.events = EventSigner.kept_in(webhook_key) if webhook_key else EventSigner()
        self.state = SandboxState(
            api_key,
            keep_messages=keep_messages,
            faults=faults,
            scopes=scopes,
            inbox=Inbox(inbox_path),
        )
        self._server = _Server((host, port), self.state, verbose)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def messages(self) -> list[Accepted]:
        return self.state.messages()

    def send_events_to(self, url: str, *, delay: float = 0.0) -> None:
        """From now on, post signed processed/delivered events for what is accepted to
        `url`, `delay` seconds after each acceptance."""
        if self.state.events is not None:
            self.state.events.stop()
        self.state.events = EventPoster(self.events, url, delay=delay)

    def post_events(self, url: str, events: list[dict[str, Any]]) -> int:
        """POST a signed Event Webhook batch to `url`, as SendGrid would; the HTTP status."""
        return post_events(url, self.events, events)

    def start(self) -> Sandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True, name="sendgrid-sandbox"
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:  # seen within 20 ms (start's poll), not socketserver's 0.5 s
        self._server.refuse_new()
        if self.state.events is not None:
            self.state.events.stop()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server.when_answered(self.state.inbox.close, STOP_WAIT_SECONDS)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
