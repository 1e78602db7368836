"""A local stand-in for SendGrid's v3 `mail/send`, for tests, the demo and trying templates.

It answers as SendGrid does (202 with `X-Message-Id`; 401 for a wrong key; 400 with the
`{"errors": [{"message", "field", "help"}]}` envelope for a request that breaks SendGrid's
rules, every broken rule listed) and keeps what it accepted, one entry per
personalization, at `GET /sandbox/messages` (JSON). Nothing leaves the machine.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HELP = "https://www.twilio.com/docs/sendgrid/api-reference/mail-send/errors"

Error = dict[str, Any]


def _error(message: str, field: str | None = None) -> Error:
    return {"message": message, "field": field, "help": _HELP if field else None}


@dataclass
class Accepted:
    """One personalization SendGrid would have delivered, with tokens filled as it would."""

    message_id: str
    to: list[str]
    subject: str
    custom_args: dict[str, str]
    headers: dict[str, str]
    categories: list[str]
    text: str = field(repr=False, default="")
    html: str = field(repr=False, default="")


def _substitute(content: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        content = content.replace(key, value)
    return content


def validate_mail_send(body: Any) -> list[Error]:
    """SendGrid's rules for a `mail/send` body, as its documented errors state them."""
    if not isinstance(body, dict):
        return [_error("The request body must be a JSON object.")]
    errors: list[Error] = []
    sender = body.get("from")
    if not isinstance(sender, dict) or not _ADDRESS.match(str(sender.get("email", ""))):
        errors.append(
            _error(
                "The from object must be provided for every email send. It is an object that "
                "requires an email address and may contain a name.",
                "from.email",
            )
        )
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        errors.append(
            _error(
                "The personalizations field is required and must have at least one "
                "personalization.",
                "personalizations",
            )
        )
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            _error(
                "You may not include more than 1000 personalizations per API request.",
                "personalizations",
            )
        )
    total_recipients = 0
    for index, item in enumerate(personalizations):
        where = f"personalizations.{index}"
        if not isinstance(item, dict) or not item.get("to"):
            errors.append(
                _error(
                    "The to array is required for all personalization objects, and must have at "
                    "least one email object with a valid email address.",
                    f"{where}.to",
                )
            )
            continue
        seen: dict[str, str] = {}
        for kind in ("to", "cc", "bcc"):
            for position, recipient in enumerate(item.get(kind) or []):
                address = str((recipient or {}).get("email", "")).strip().lower()
                if not _ADDRESS.match(address):
                    errors.append(
                        _error(
                            "Does not contain a valid address.", f"{where}.{kind}.{position}.email"
                        )
                    )
                    continue
                total_recipients += 1
                if address in seen:
                    errors.append(
                        _error(
                            "Each email address in the personalization block should be unique "
                            "between to, cc, and bcc. We found the first duplicate instance of "
                            f"[{address}] in the {where}.{kind} field.",
                            where,
                        )
                    )
                seen[address] = kind
    if total_recipients > MAX_RECIPIENTS:
        errors.append(
            _error(
                "The total number of recipients must be less than 1000. This includes all "
                "recipients defined within the to, cc, and bcc parameters, across each object "
                "that you include in the personalizations array.",
                "personalizations",
            )
        )
    has_own_subjects = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    if not body.get("subject") and not has_own_subjects:
        errors.append(
            _error(
                "The subject is required. You can get around this requirement if you use a "
                "template with a subject defined or if every personalization has a subject "
                "defined.",
                "subject",
            )
        )
    content = body.get("content")
    if not isinstance(content, list) or not any(
        isinstance(c, dict) and c.get("value") for c in content
    ):
        errors.append(
            _error(
                "Unless a valid template_id is provided, the content parameter is required. There "
                "must be at least one defined content block.",
                "content",
            )
        )
    else:
        types = [c.get("type") for c in content if isinstance(c, dict)]
        if "text/plain" in types and types[0] != "text/plain":
            errors.append(
                _error(
                    "If present, text/plain must be first, followed by text/html, followed by any "
                    "other content.",
                    "content",
                )
            )
    if len(body.get("categories") or []) > MAX_CATEGORIES:
        errors.append(
            _error("Too many categories. You may only specify up to 10 categories.", "categories")
        )
    return errors


class SandboxState:
    """What the sandbox accepted; safe to read from tests while requests arrive."""

    def __init__(self, api_key: str, *, keep_content: bool = True) -> None:
        self.api_key = api_key
        # Off for benchmarks: filling each body per personalization costs memory and time
        # that SendGrid spends, not us.
        self.keep_content = keep_content
        self._lock = threading.Lock()
        self._accepted: list[Accepted] = []
        self.requests = 0

    def accept(self, body: dict[str, Any]) -> str:
        message_id = secrets.token_urlsafe(16)
        contents = {c.get("type"): c.get("value", "") for c in body.get("content", [])}
        accepted = []
        for item in body["personalizations"]:
            substitutions = item.get("substitutions") or {}
            subject = item.get("subject") or body.get("subject", "")
            accepted.append(
                Accepted(
                    message_id=message_id,
                    to=[r["email"] for r in item["to"]],
                    subject=_substitute(subject, substitutions),
                    custom_args={
                        **(body.get("custom_args") or {}),
                        **(item.get("custom_args") or {}),
                    },
                    headers={**(body.get("headers") or {}), **(item.get("headers") or {})},
                    categories=list(body.get("categories") or []),
                    text=_substitute(contents.get("text/plain", ""), substitutions),
                    html=_substitute(contents.get("text/html", ""), substitutions),
                )
            )
        with self._lock:
            self.requests += 1
            self._accepted.extend(accepted)
        return message_id

    def messages(self) -> list[Accepted]:
        with self._lock:
            return list(self._accepted)

    def clear(self) -> None:
        with self._lock:
            self._accepted.clear()
            self.requests = 0


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

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if urlsplit(self.path).path.rstrip("/") != "/v3/mail/send":
            self._reply(HTTPStatus.NOT_FOUND, {"errors": [_error("Not found")]})
            return
        state = self.server.state
        if self.headers.get("Authorization", "") != f"Bearer {state.api_key}":
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                {
                    "errors": [
                        _error("The provided authorization grant is invalid, expired, or revoked")
                    ]
                },
            )
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._reply(
                HTTPStatus.BAD_REQUEST, {"errors": [_error("Invalid JSON in the request body.")]}
            )
            return
        errors = validate_mail_send(body)
        if errors:
            self._reply(HTTPStatus.BAD_REQUEST, {"errors": errors})
            return
        message_id = state.accept(body)
        self._reply(HTTPStatus.ACCEPTED, headers={"X-Message-Id": message_id})

    def do_GET(self) -> None:
        if urlsplit(self.path).path.rstrip("/") == "/sandbox/messages":
            self._reply(HTTPStatus.OK, [asdict(m) for m in self.server.state.messages()])
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"errors": [_error("Not found")]})

    def do_DELETE(self) -> None:
        if urlsplit(self.path).path.rstrip("/") == "/sandbox/messages":
            self.server.state.clear()
            self._reply(HTTPStatus.NO_CONTENT)
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"errors": [_error("Not found")]})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

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
        keep_content: bool = True,
    ) -> None:
        self.state = SandboxState(api_key, keep_content=keep_content)
        self._server = _Server((host, port), self.state, verbose)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def messages(self) -> list[Accepted]:
        return self.state.messages()

    def start(self) -> Sandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="sendgrid-sandbox"
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
