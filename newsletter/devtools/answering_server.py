"""A threaded HTTP server that counts the requests it is answering, so that stopping it can
wait for them: daemon threads are not joined by `server_close`, and a request thread still
answering when a test stopped the sandbox wrote to its closed inbox and printed a
traceback. A kept-alive connection's thread waits for its next request forever, so only
answers are counted."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class AnsweringServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        # Requests being answered, and what to do once there are none (set by `stop`).
        self._answers = threading.Condition()
        self._answering = 0
        self._stopping = False
        self._when_idle: Callable[[], None] | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away before its answer (a killed worker) is not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def begin_answer(self) -> bool:
        """Count a request as being answered; False once the server is stopping."""
        with self._answers:
            if self._stopping:
                return False
            self._answering += 1
            return True

    def end_answer(self) -> None:
        when_idle = None
        with self._answers:
            self._answering -= 1
            self._answers.notify_all()
            if self._answering == 0:  # a `stop` that gave up waiting left this to the last
                when_idle, self._when_idle = self._when_idle, None
        if when_idle is not None:
            when_idle()

    def refuse_new(self) -> None:
        """From now on every request is refused (a kept-alive connection's too)."""
        with self._answers:
            self._stopping = True

    def when_answered(self, when_idle: Callable[[], None], timeout: float) -> None:
        """Call `when_idle` once the requests being answered are done: here within
        `timeout` seconds, else from the last of them to finish."""
        with self._answers:
            self._stopping = True
            if not self._answers.wait_for(lambda: self._answering == 0, timeout):
                self._when_idle = when_idle
                return
        when_idle()
