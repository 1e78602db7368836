"""The sandbox's inbox, as MailHog and Mailpit give developers: every message the sandbox
accepted, newest first, each shown as its reader sees it (that reader's substitutions
filled), with its text part, its headers and the raw request as it arrived.

Messages live in a SQLite file (`newsletter sandbox --inbox var/sandbox/inbox.sqlite3`),
so they outlast a restart; tests and the benchmark use an in-memory one. A request is
stored once with its content; each personalization is a row pointing at it, so a
1000-recipient request costs one copy of the HTML, not a thousand.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2

PAGE_SIZE = 200
_MESSAGE = re.compile(r"^/inbox/([0-9]{1,12})(/html)?$")
_ID = re.compile(r"[0-9]{1,12}")


def substitute(content: str, substitutions: dict[str, str]) -> str:
    for key, value in substitutions.items():
        content = content.replace(key, value)
    return content


@dataclass
class Accepted:
    """One personalization SendGrid would have delivered, with tokens filled as it would.

    The content is shared by every personalization of a request and filled on reading, so
    accepting 1000 personalizations costs the sandbox almost nothing.
    """

    message_id: str
    to: list[str]
    subject: str
    custom_args: dict[str, str]
    headers: dict[str, str]
    categories: list[str]
    substitutions: dict[str, str] = field(repr=False, default_factory=dict)
    content: dict[str, str] = field(repr=False, default_factory=dict)  # shared per request

    @property
    def text(self) -> str:
        return substitute(self.content.get("text/plain", ""), self.substitutions)

    @property
    def html(self) -> str:
        return substitute(self.content.get("text/html", ""), self.substitutions)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["content"], data["substitutions"]
        return {**data, "text": self.text, "html": self.html}


def accepted_from(body: dict[str, Any], message_id: str) -> list[Accepted]:
    """Each personalization of a valid mail/send body, as its reader would get it."""
    content = {c.get("type"): c.get("value", "") for c in body.get("content", [])}
    shared_args = body.get("custom_args") or {}
    shared_headers = body.get("headers") or {}
    categories = list(body.get("categories") or [])
    accepted = []
    for item in body["personalizations"]:
        substitutions = item.get("substitutions") or {}
        accepted.append(
            Accepted(
                message_id=message_id,
                to=[r["email"] for r in item["to"]],
                subject=substitute(item.get("subject") or body.get("subject", ""), substitutions),
                custom_args={**shared_args, **(item.get("custom_args") or {})},
                headers={**shared_headers, **(item.get("headers") or {})},
                categories=categories,
                substitutions=substitutions,
                content=content,
            )
        )
    return accepted


@dataclass(frozen=True)
class Stored:
    """One message in the inbox, with what the page shows beside it."""

    id: int
    received_at: str
    sender: str
    message: Accepted
    raw: str  # the request's JSON body, as it came (every personalization of it)


def _fold(text: str | None) -> str | None:
    return text.casefold() if text is not None else None


class Inbox:
    """Accepted messages in SQLite; safe to use from the sandbox's request threads."""

    def __init__(self, path: Path | None = None) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        # SQLite's lower() folds ASCII only: `søren` must find `SØREN@…`.
        self._db.create_function("fold", 1, _fold, deterministic=True)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS request (
                    id INTEGER PRIMARY KEY, received_at TEXT NOT NULL, body TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS message (
                    id INTEGER PRIMARY KEY, request_id INTEGER NOT NULL,
                    position INTEGER NOT NULL, message_id TEXT NOT NULL,
                    recipients TEXT NOT NULL, subject TEXT NOT NULL);
                """
            )

    def add(self, raw: bytes, accepted: list[Accepted]) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock, self._db:
            cursor = self._db.execute(
                "INSERT INTO request (received_at, body) VALUES (?, ?)",
                (now, raw.decode("utf-8", "replace")),
            )
            self._db.executemany(
                "INSERT INTO message (request_id, position, message_id, recipients, subject) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (cursor.lastrowid, i, m.message_id, ", ".join(m.to), m.subject)
                    for i, m in enumerate(accepted)
                ],
            )

    def listing(
        self, limit: int = PAGE_SIZE, *, to: str = "", before: int = 0
    ) -> list[tuple[int, str, str, str]]:
        """(id, received, to, subject), newest first: those whose recipients hold `to`
        (any case), older than message `before` (0: from the newest)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT m.id, r.received_at, m.recipients, m.subject FROM message m "
                "JOIN request r ON r.id = m.request_id "
                "WHERE instr(fold(m.recipients), ?) > 0 AND (? = 0 OR m.id < ?) "
                "ORDER BY m.id DESC LIMIT ?",
                (to.casefold(), before, before, limit),
            ).fetchall()
        return [(int(a), str(b), str(c), str(d)) for a, b, c, d in rows]

    def count(self, *, to: str = "") -> int:
        with self._lock:
            return int(
                self._db.execute(
                    "SELECT count(*) FROM message WHERE instr(fold(recipients), ?) > 0",
                    (to.casefold(),),
                ).fetchone()[0]
            )

    def get(self, message_id: int) -> Stored | None:
        with self._lock:
            row = self._db.execute(
                "SELECT m.position, m.message_id, r.received_at, r.body FROM message m "
                "JOIN request r ON r.id = m.request_id WHERE m.id = ?",
                (message_id,),
            ).fetchone()
        if row is None:
            return None
        position, sendgrid_id, received_at, raw = row
        body = json.loads(raw)
        sender = body.get("from") or {}
        name, address = sender.get("name", ""), sender.get("email", "")
        return Stored(
            id=message_id,
            received_at=received_at,
            sender=f"{name} <{address}>" if name else address,
            message=accepted_from(body, sendgrid_id)[position],
            raw=json.dumps(body, indent=2, ensure_ascii=False),
        )

    def clear(self) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM message")
            self._db.execute("DELETE FROM request")

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --- the pages ------------------------------------------------------------------------------

# The inbox's own pages are plain; a message's HTML is served apart, framed and sandboxed.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
MESSAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "frame-ancestors 'self'; sandbox"
)
_STYLE = (
    "body{font:15px/1.5 Helvetica,Arial,sans-serif;margin:0;color:#1f2430}"
    "header{background:#1d2a3a;color:#fff;padding:10px 20px}main{padding:16px 20px}"
    "table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:6px 8px;"
    "border-bottom:1px solid #e3e6ea}a{color:#1d4e89}pre{white-space:pre-wrap;"
    "background:#f9fafb;border:1px solid #e3e6ea;padding:10px;font-size:13px}"
    "iframe{width:660px;max-width:100%;height:720px;border:1px solid #9aa5b4}"
)
_TEMPLATES = {
    "_page.html": (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{% block title %}'
        "{% endblock %} · sandbox inbox</title><style>" + _STYLE + "</style></head><body>"
        '<header><a href="/inbox" style="color:#fff">Sandbox inbox</a> · nothing here left '
        "the machine</header><main>{% block main %}{% endblock %}</main></body></html>"
    ),
    "list.html": (
        '{% extends "_page.html" %}{% block title %}Inbox{% endblock %}{% block main %}'
        "<h1>Inbox</h1>"
        '<form method="get" action="/inbox"><label>Messages to <input name="to" '
        'value="{{ to }}" maxlength="320" placeholder="an address, or part of one"></label> '
        '<button type="submit">Find</button></form>'
        "<p>{{ total }} message{{ '' if total == 1 else 's' }}{% if to %} to an address "
        "holding “{{ to }}”{% endif %}"
        "{% if total > rows|length %}; {{ rows|length }} below{% endif %}.</p>"
        "<table><caption>Newest first</caption>"
        '<thead><tr><th scope="col">Received (UTC)</th><th scope="col">To</th>'
        '<th scope="col">Subject</th></tr></thead><tbody>{% for id, at, to, subject in rows %}'
        '<tr><td>{{ at }}</td><td>{{ to }}</td><td><a href="/inbox/{{ id }}">{{ subject }}'
        '</a></td></tr>{% else %}<tr><td colspan="3">Nothing yet.</td></tr>{% endfor %}'
        '</tbody></table>{% if older %}<p><a href="{{ older }}">Older messages</a></p>'
        "{% endif %}{% endblock %}"
    ),
    "message.html": (
        '{% extends "_page.html" %}{% block title %}{{ m.message.subject }}{% endblock %}'
        "{% block main %}<h1>{{ m.message.subject }}</h1><p>From {{ m.sender }} to "
        "{{ m.message.to|join(', ') }}, received {{ m.received_at }}.</p>"
        '<h2>As the reader sees it</h2><iframe title="The message" '
        'src="/inbox/{{ m.id }}/html"></iframe><h2>Text part</h2><pre>{{ m.message.text }}'
        "</pre><h2>Headers</h2><table><tbody>{% for name, value in headers %}<tr>"
        '<th scope="row">{{ name }}</th><td>{{ value }}</td></tr>{% endfor %}</tbody>'
        "</table><h2>The raw request</h2><pre>{{ m.raw }}</pre>{% endblock %}"
    ),
}
_pages = jinja2.Environment(loader=jinja2.DictLoader(_TEMPLATES), autoescape=True)


def _headers(stored: Stored) -> list[tuple[str, str]]:
    message = stored.message
    fixed = [
        ("From", stored.sender),
        ("To", ", ".join(message.to)),
        ("Subject", message.subject),
        ("X-Message-Id", message.message_id),
        ("Categories", ", ".join(message.categories)),
    ]
    args = [(f"custom_args.{k}", v) for k, v in sorted(message.custom_args.items())]
    return fixed + sorted(message.headers.items()) + args


def inbox_page(inbox: Inbox, path: str, query: str = "") -> tuple[int, str, str] | None:
    """(status, CSP, HTML) for an inbox path; None when the path is not the inbox's.
    `query`: the list's `to` (part of an address) and `before` (a message id, for older
    ones): thousands of confirmations after an import hid the one being looked for."""
    if path in ("", "/", "/inbox"):
        asked = parse_qs(query)
        to = asked.get("to", [""])[0].strip()[:320]
        before = asked.get("before", ["0"])[0]
        # An id as `_MESSAGE` takes one: "²" passes isdigit(), and 10^20 overflows SQLite.
        start = int(before) if _ID.fullmatch(before) else 0
        rows = inbox.listing(PAGE_SIZE + 1, to=to, before=start)
        older = ""
        if len(rows) > PAGE_SIZE:  # one more than the page: there are older ones
            rows = rows[:PAGE_SIZE]
            older = "/inbox?" + urlencode({**({"to": to} if to else {}), "before": rows[-1][0]})
        html = _pages.get_template("list.html").render(
            rows=rows, total=inbox.count(to=to), to=to, older=older
        )
        return 200, PAGE_CSP, html
    match = _MESSAGE.match(path)
    if match is None:
        return None
    stored = inbox.get(int(match.group(1)))
    if stored is None:
        return 404, PAGE_CSP, "No such message."
    if match.group(2):
        return 200, MESSAGE_CSP, stored.message.html
    html = _pages.get_template("message.html").render(m=stored, headers=_headers(stored))
    return 200, PAGE_CSP, html
