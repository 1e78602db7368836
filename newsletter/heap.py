"""Keeping Python's cycle collector off the process's long-lived objects while a send or an
import runs.

A hand-off allocates a few dicts per recipient, and a 1,000-recipient batch outlives
several young-generation collections, so its objects are promoted and, every few batches,
set off a full collection. A full collection walks every object the process holds (about
130,000 in a worker: modules, SQLAlchemy's and pydantic's machinery), none of which the
send created or will free. Measured on 200,000 readers: 16 full collections of about 90 ms
each took 1.4–1.6 s of a 10–16 s hand-off, a fifth of the worker's CPU. An import of a
million rows builds a few objects per row in chunks of 5,000, alike: its full collections
took 4 of its 22.6 CPU seconds (readers/importing.py). The web process is frozen for good
once its app is built (`freeze_for_good`), for the webhook's sake.

`gc.freeze()` moves everything alive to a generation no collection visits; the send's own
objects are still collected as before. Unfreezing afterwards hands the old objects back, so
a cycle among them that died during the send is freed on the next full collection rather
than never: what a frozen send costs is at most that garbage, held until it ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0


def freeze_for_good() -> None:
    """Freeze what the process holds now for as long as it runs: for the web process, once
    its app is built. Each webhook post builds a few objects per event, 2,000 events a
    post, and the full collections that set off walked the app's every object again:
    with it frozen, 32,015 and 31,685 events/s against 23,061 and 22,685 (bench/webhook.py,
    alternating). Start-up's garbage is collected first, or it would be kept for good; a
    `frozen_heap` inside (an import from the console) leaves the heap frozen."""
    global _holders
    gc.collect()
    with _lock:
        _holders += 1
        if _holders == 1:
            gc.freeze()


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze what the process holds now for the duration; nests, and is shared by threads
    (the heap is unfrozen when the last holder leaves)."""
    global _holders
    with _lock:
        _holders += 1
        if _holders == 1:
            gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.unfreeze()
