"""How often one address or one IP may ask for something (the subscribe form)."""

from __future__ import annotations

import threading
import time
from collections import deque


class AttemptLimiter:
    """At most `limit` attempts per key in `window` seconds (in this process)."""

    def __init__(self, limit: int = 5, window: float = 600.0) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and now - hits[0] > self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True
