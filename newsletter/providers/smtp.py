"""The SMTP transport, for a self-hosted MTA (Postfix, Exim, a relay).

SMTP answers per message, so one refused address fails that recipient only. What an SMTP
answer means for a ledger row:

* 250 → sent;
* 5xx → failed, with the server's words; 4xx → back in the queue for a later batch;
* the connection breaks after DATA was sent → `unknown` for that message (the server may
  have queued it), and the batch's remaining messages, never attempted, go back to the
  queue.

Each sender thread keeps its own connection and reuses it across batches.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading

from newsletter.config import Settings
from newsletter.providers.base import Batch, BatchResult, Outcome, RecipientResult
from newsletter.providers.mime import BUILD_ERRORS, build_message, unbuildable

_CONNECTION_ERRORS = (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, OSError)


class SmtpTransport:
    name = "smtp"
    # Small enough that a batch finishes well inside its lease, one message at a time.
    max_batch_size = 200

    def __init__(
        self,
        *,
        host: str,
        port: int,
        from_header: str,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self._from = from_header
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout
        self._local = threading.local()
        # Every thread's connection, so `close()` (called from one thread) reaches them all.
        self._open: set[smtplib.SMTP] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTransport:
        return cls(
            host=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            from_header=settings.NEWSLETTER_FROM,
            username=settings.SMTP_USERNAME,
            password=settings.SMTP_PASSWORD.get_secret_value(),
            starttls=settings.SMTP_STARTTLS,
            timeout=settings.SMTP_TIMEOUT_SECONDS,
        )

    def _connection(self) -> smtplib.SMTP:
        connection: smtplib.SMTP | None = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                if connection.noop()[0] == 250:
                    return connection
            except _CONNECTION_ERRORS:
                pass
            self._drop()
        connection = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
        if self._starttls:
            connection.starttls(context=ssl.create_default_context())
        if self._username:
            connection.login(self._username, self._password)
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._lock:
                self._open.discard(connection)
            with contextlib.suppress(*_CONNECTION_ERRORS):
                connection.close()

    def interrupt(self) -> None:
        """Nothing here waits to retry: a deferral (4xx) goes back in line at once."""

    def close(self) -> None:
        """QUIT every sender thread's connection."""
        with self._lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            with contextlib.suppress(smtplib.SMTPException, *_CONNECTION_ERRORS):
                connection.quit()

    def send_batch(self, batch: Batch) -> BatchResult:
        try:
            connection = self._connection()
        except smtplib.SMTPAuthenticationError as exc:
            return BatchResult(
                Outcome.FAILED,
                error=f"SMTP login refused: {exc.smtp_code} {_text(exc)}",
                fatal=True,
            )
        except (smtplib.SMTPException, *_CONNECTION_ERRORS) as exc:
            return BatchResult(
                Outcome.RETRY_LATER, error=f"cannot reach {self.host}:{self.port}: {exc}"
            )
        exceptions: dict[int, RecipientResult] = {}
        for index, recipient in enumerate(batch.recipients):
            try:
                message = build_message(batch, recipient, from_header=self._from)
            except BUILD_ERRORS as exc:
                exceptions[recipient.delivery_id] = unbuildable(exc)
                continue
            try:
                connection.send_message(message)
            except smtplib.SMTPNotSupportedError as exc:  # e.g. an address needing SMTPUTF8
                exceptions[recipient.delivery_id] = RecipientResult(Outcome.FAILED, str(exc))
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                exceptions[recipient.delivery_id] = _refusal(code, text)
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                exceptions[recipient.delivery_id] = _refusal(exc.smtp_code, exc.smtp_error)
            except _CONNECTION_ERRORS as exc:
                self._drop()
                exceptions[recipient.delivery_id] = RecipientResult(
                    Outcome.UNKNOWN, f"the connection broke while sending: {exc}"
                )
                for untried in batch.recipients[index + 1 :]:
                    exceptions[untried.delivery_id] = RecipientResult(
                        Outcome.RETRY_LATER, "not attempted: the connection broke"
                    )
                break
        return BatchResult(Outcome.SENT, exceptions=exceptions)


def _text(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)


def _refusal(code: int, text: bytes | str) -> RecipientResult:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    if 400 <= code < 500:
        return RecipientResult(Outcome.RETRY_LATER, f"{code} {words}")
    return RecipientResult(Outcome.FAILED, f"{code} {words}")
