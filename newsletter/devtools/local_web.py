"""The web app in a thread of this process, on 127.0.0.1: for tests and benchmarks.

The socket is bound first (port 0) and handed to uvicorn, so there is no window in which
another process could take the port; the app runs as `newsletter serve` runs it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from newsletter.config import Settings
from newsletter.web.app import create_app, server_config


@contextmanager
def serving(settings: Settings, *, log_level: str = "warning") -> Iterator[str]:
    """Serve the app for `settings` (its NEWSLETTER_BASE_URL set to where it listens, so
    links in emails lead back to it); yields that URL, stops on exit."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listening.getsockname()[1]}"
    app = create_app(settings.model_copy(update={"NEWSLETTER_BASE_URL": url}))
    port = listening.getsockname()[1]
    server = uvicorn.Server(server_config(app, "127.0.0.1", port, log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the web app did not start")
            time.sleep(0.02)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listening.close()
