"""SendGrid v3 `mail/send` through the official `sendgrid` client.

One request carries up to 1000 personalizations. What SendGrid answers maps onto our
outcomes by a table, not an if-chain: 2xx sent; 429 and 5xx retried with backoff (429
waits for `X-RateLimit-Reset`); 401/403 stop the whole send; other 4xx fail the batch with
SendGrid's own words. A timeout after the request went out is `unknown`: SendGrid has no
idempotency key, so resending could deliver twice.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
import urllib.error
from collections.abc import Callable
from dataclasses import replace
from email.utils import parseaddr
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from newsletter import metrics
from newsletter.config import Settings
from newsletter.providers.base import Batch, BatchResult, Outcome, RecipientResult
from newsletter.providers.sendgrid.body import CONTENT_TYPE, encode_body, masked

MAX_PERSONALIZATIONS = 1000
MAX_CATEGORIES = 10

# Status → what it means for the batch. Absent codes: 5xx retry, other 4xx fail.
_RETRY = "retry"
_FATAL = "fatal"
_FAIL = "fail"
STATUS_ACTIONS: dict[int, str] = {
    400: _FAIL,
    401: _FATAL,
    403: _FATAL,
    # "Content-Type should be application/json.": every request of the send would be
    # refused alike, so it stops, rather than being narrowed recipient by recipient.
    415: _FATAL,
    413: _FAIL,
    429: _RETRY,
}
# Errors raised while reading the response: the request body had been sent.
_AMBIGUOUS = (
    TimeoutError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
    ConnectionResetError,
)


def sendgrid_errors(body: bytes | str | None) -> list[dict[str, Any]]:
    """The entries of SendGrid's `{"errors": [...]}` envelope ([] if it is not one)."""
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        errors = json.loads(raw).get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _words(error: dict[str, Any]) -> str:
    field, message = error.get("field"), str(error.get("message") or "")
    return f"{field}: {message}" if field else message


def sendgrid_error_text(body: bytes | str | None) -> str:
    """SendGrid's own error words from its `{"errors": [...]}` envelope."""
    if not body:
        return "no error text"
    raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return "; ".join(_words(e) for e in sendgrid_errors(body)) or raw[:500]


_PERSONALIZATION = re.compile(r"^personalizations\.(\d+)(?:\.|$)")
# Fields every part of a split request carries alike: splitting cannot help.
_SHARED_FIELDS = (
    "from",
    "subject",
    "content",
    "categories",
    "headers",
    "custom_args",
    "asm",
    "mail_settings",
    "reply_to",
    "template_id",
    "tracking_settings",
)


def _named_personalizations(errors: list[dict[str, Any]], size: int) -> dict[int, str]:
    """Personalization index → SendGrid's words about it, for the errors that name one."""
    named: dict[int, list[str]] = {}
    for error in errors:
        match = _PERSONALIZATION.match(str(error.get("field") or ""))
        if match and int(match.group(1)) < size:
            named.setdefault(int(match.group(1)), []).append(_words(error))
    return {index: "400: " + "; ".join(words) for index, words in named.items()}


def _shared_fault(errors: list[dict[str, Any]]) -> bool:
    fields = [str(e.get("field") or "") for e in errors]
    return bool(fields) and all(f.split(".")[0] in _SHARED_FIELDS for f in fields)


def _answers_all(answer: BatchResult, errors: list[dict[str, Any]]) -> bool:
    """Whether one answer stands for every recipient of the request: anything but a refusal
    whose errors could name recipients (those are narrowed down instead)."""
    return answer.outcome is not Outcome.FAILED or not errors


def _combine(batch: Batch, answers: dict[int, RecipientResult], *, fatal: str) -> BatchResult:
    """Per-recipient answers as one BatchResult: one outcome for all (an accepted one if
    there is one), the others as exceptions. `fatal`: the account was refused; the send
    must stop."""
    # A batch the provider accepted any of is not a failed batch (a send pauses after
    # NEWSLETTER_PAUSE_AFTER_FAILED_BATCHES of those): an accepted answer leads.
    ordered = [answers[r.delivery_id] for r in batch.recipients]
    first = next((a for a in ordered if a.outcome is Outcome.SENT), ordered[0])
    if fatal:  # the refusal itself is the batch's outcome, whatever went before it
        first = RecipientResult(Outcome.FAILED, fatal)
    exceptions = {
        delivery_id: answer
        for delivery_id, answer in answers.items()
        if (answer.outcome, answer.error, answer.message_id)
        != (first.outcome, first.error, first.message_id)
    }
    return BatchResult(first.outcome, first.message_id, first.error, bool(fatal), exceptions)


class SendGridTransport:
    name = "sendgrid"
    max_batch_size = MAX_PERSONALIZATIONS

    def __init__(
        self,
        *,
        api_key: str,
        host: str,
        timeout: float,
        from_header: str,
        max_retries: int = 5,
        asm_group_id: int | None = None,
        sandbox_mode: bool = False,
        track_opens: bool = True,
        track_clicks: bool = True,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._api_key = api_key
        self._host = host
        self._timeout = timeout
        self._local = threading.local()
        name, address = parseaddr(from_header)
        self._from: dict[str, str] = {"email": address}
        if name:
            self._from["name"] = name
        self._max_retries = max_retries
        self._asm_group_id = asm_group_id
        self._sandbox_mode = sandbox_mode
        self._track_opens = track_opens
        self._track_clicks = track_clicks
        self._sleep = sleep  # None: wait on `_interrupted`, which `interrupt()` sets
        self._interrupted = threading.Event()

    @property
    def _client(self) -> SendGridAPIClient:
        """One client per sender thread: the client keeps per-request state on itself. Its
        requests say `CONTENT_TYPE`, so it sends the bytes `encode_body` makes as they are
        and refuses dicts: post through `_post`, not the client's own `send`."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = SendGridAPIClient(api_key=self._api_key, host=self._host)
            # The client's default is no timeout at all; a hung socket would hold the batch.
            client.client.timeout = self._timeout
            headers = client.client.request_headers
            headers["Content-Type"] = CONTENT_TYPE
            headers["Authorization"] = masked(headers["Authorization"])
            self._local.client = client
        return client

    @classmethod
    def from_settings(cls, settings: Settings) -> SendGridTransport:
        return cls(
            api_key=settings.SENDGRID_API_KEY.get_secret_value(),
            host=settings.SENDGRID_API_HOST,
            timeout=settings.SENDGRID_TIMEOUT_SECONDS,
            from_header=settings.NEWSLETTER_FROM,
            max_retries=settings.NEWSLETTER_MAX_RETRIES,
            asm_group_id=settings.SENDGRID_ASM_GROUP_ID,
            sandbox_mode=settings.SENDGRID_SANDBOX_MODE,
            track_opens=settings.NEWSLETTER_TRACK_OPENS,
            track_clicks=settings.NEWSLETTER_TRACK_CLICKS,
        )

    def request_body(self, batch: Batch) -> dict[str, Any]:
        if len(batch.recipients) > MAX_PERSONALIZATIONS:
            raise ValueError(f"{len(batch.recipients)} recipients: SendGrid takes at most 1000")
        send_id = str(batch.send_id)
        # Our own ids, which SendGrid's events carry back: a ledger row, or a message row.
        row_key = "mail_id" if batch.transactional else "delivery_id"
        personalizations = [
            {
                "to": [
                    {"email": recipient.email, "name": recipient.name}
                    if recipient.name
                    else {"email": recipient.email}
                ],
                "substitutions": recipient.values,
                "headers": recipient.headers,
                "custom_args": {row_key: str(recipient.delivery_id), "send_id": send_id},
            }
            for recipient in batch.recipients
        ]
        body: dict[str, Any] = {
            "from": self._from,
            "subject": f"[TEST] {batch.subject}" if batch.test else batch.subject,
            # SendGrid requires text/plain first when both are present.
            "content": [
                {"type": "text/plain", "value": batch.text},
                {"type": "text/html", "value": batch.html},
            ],
            "personalizations": personalizations,
            "categories": (["test"] if batch.test else []) + batch.categories[:MAX_CATEGORIES],
        }
        if batch.headers:
            body["headers"] = batch.headers
        body["categories"] = body["categories"][:MAX_CATEGORIES]
        if self._asm_group_id is not None:
            # SendGrid then adds its own unsubscribe-from-this-group handling and honours it.
            body["asm"] = {"group_id": self._asm_group_id}
        if self._sandbox_mode:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        body["tracking_settings"] = self.tracking_settings(batch)
        return body

    def tracking_settings(self, batch: Batch) -> dict[str, Any]:
        """Open and click tracking as the settings say, for a send's messages; always off
        for mail outside a send (a confirmation, a welcome: send_id 0) and test copies,
        whose events belong to no report, and whose confirm link must not pass through a
        redirect. Said explicitly either way, so the account's own defaults never decide.
        Click tracking leaves the text part alone (`enable_text`): rewritten links there
        are long and read as suspicious."""
        reported = batch.send_id > 0 and not batch.test
        return {
            "click_tracking": {"enable": reported and self._track_clicks, "enable_text": False},
            "open_tracking": {"enable": reported and self._track_opens},
        }

    def close(self) -> None:
        """The client opens a connection per request; there is nothing held to let go."""
        self._local = threading.local()

    def send_batch(self, batch: Batch) -> BatchResult:
        """Hand the batch to SendGrid; one bad recipient costs that recipient only.

        A 400 naming `personalizations.N` fails N with SendGrid's words and sends the rest
        at once (a 400 means nothing of the request was accepted). A 400 or 413 naming no
        recipient is narrowed by halves until the recipient who causes it stands alone,
        unless it names a field every part would share (the content, the subject …)."""
        if not batch.recipients:
            return BatchResult(Outcome.SENT)
        answer, errors = self._post(self.request_body(batch))
        if not answer.fatal and _answers_all(answer, errors):
            return answer  # the usual case: one answer for all, no per-recipient bookkeeping
        answers: dict[int, RecipientResult] = {}
        fatal = self._deliver(batch, answers, first=(answer, errors))
        return _combine(batch, answers, fatal=fatal)

    def _deliver(
        self,
        batch: Batch,
        answers: dict[int, RecipientResult],
        first: tuple[BatchResult, list[dict[str, Any]]] | None,
    ) -> str:
        """Fill `answers` for every recipient, from the answer to the whole batch (`first`)
        on; SendGrid's words when it refused the account (whatever was not sent yet is then
        answered with that refusal, unsent), else ""."""
        pending = [batch.recipients]
        while pending:
            part = pending.pop()
            if not part:
                continue
            if first is not None:  # the whole batch was asked already
                (answer, errors), first = first, None
            else:
                answer, errors = self._post(self.request_body(replace(batch, recipients=part)))
            if answer.fatal:
                for recipient in [r for rest in [part, *pending] for r in rest]:
                    answers[recipient.delivery_id] = RecipientResult(Outcome.FAILED, answer.error)
                return answer.error
            if _answers_all(answer, errors):
                for recipient in part:
                    answers[recipient.delivery_id] = RecipientResult(
                        answer.outcome, answer.error, answer.message_id
                    )
                continue
            named = _named_personalizations(errors, len(part))
            if named:
                for index, words in named.items():
                    answers[part[index].delivery_id] = RecipientResult(Outcome.FAILED, words)
                pending.append([r for i, r in enumerate(part) if i not in named])
            elif len(part) > 1 and not _shared_fault(errors):
                middle = len(part) // 2
                pending += [part[middle:], part[:middle]]
            else:
                for recipient in part:
                    answers[recipient.delivery_id] = RecipientResult(Outcome.FAILED, answer.error)
        return ""

    def _post(self, body: dict[str, Any]) -> tuple[BatchResult, list[dict[str, Any]]]:
        """One request, retried on 429, 5xx and refused connections: the answer, and
        SendGrid's errors when it refused the request (400, 413)."""
        last_error = ""
        for attempt in range(self._max_retries + 1):
            try:
                with metrics.provider_request(self.name):
                    # What `SendGridAPIClient.send` does with a body, serialized by us.
                    response = self._client.client.mail.send.post(request_body=encode_body(body))
            except HTTPError as exc:
                status = int(exc.status_code)
                detail = sendgrid_error_text(exc.body)
                action = STATUS_ACTIONS.get(status, _RETRY if status >= 500 else _FAIL)
                if action == _FATAL:
                    return BatchResult(Outcome.FAILED, error=f"{status}: {detail}", fatal=True), []
                if action == _FAIL:
                    failed = BatchResult(Outcome.FAILED, error=f"{status}: {detail}")
                    return failed, sendgrid_errors(exc.body) or [{"field": None}]
                last_error = f"{status}: {detail}"
                if attempt < self._max_retries:
                    metrics.provider_retry(self.name, str(status))
                    if self._wait(self._retry_delay(status, exc.headers, attempt)):
                        break
                continue
            except _AMBIGUOUS as exc:
                unknown = f"no answer after the request was sent: {exc!r}"
                return BatchResult(Outcome.UNKNOWN, error=unknown), []
            except urllib.error.URLError as exc:
                # Raised before the body was fully sent (refused, reset, connect timeout).
                last_error = f"connection failed: {exc.reason}"
                if attempt < self._max_retries:
                    metrics.provider_retry(self.name, "connection")
                    if self._wait(self._backoff(attempt)):
                        break
                continue
            headers = response.headers
            message_id = headers.get("X-Message-Id", "") if headers is not None else ""
            return BatchResult(Outcome.SENT, message_id=message_id or ""), []
        if self._interrupted.is_set():
            last_error += "; not retried: the worker is stopping"
        return BatchResult(Outcome.RETRY_LATER, error=last_error), []

    def interrupt(self) -> None:
        self._interrupted.set()

    def _wait(self, seconds: float) -> bool:
        """Wait before a retry; True if the process is stopping (then do not retry)."""
        if self._sleep is None:
            return self._interrupted.wait(seconds)
        self._sleep(seconds)
        return self._interrupted.is_set()

    def _retry_delay(self, status: int, headers: Any, attempt: int) -> float:
        """429: until `X-RateLimit-Reset`, a moment (Unix seconds), not a number of seconds
        to wait; anything else: backoff."""
        if status == 429 and headers is not None:
            reset = headers.get("X-RateLimit-Reset")
            if reset and reset.isdigit():
                return min(max(int(reset) - time.time(), 0.0) + random.uniform(0, 0.25), 60.0)
        return self._backoff(attempt)

    @staticmethod
    def _backoff(attempt: int) -> float:
        """Exponential with full jitter, capped: 0.5 s, 1 s, 2 s … up to 30 s."""
        return random.uniform(0, min(30.0, 0.5 * 2**attempt))
