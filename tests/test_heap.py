"""The process's heap during a send or an import: its own objects are frozen out of the
cycle collector's reach while the batches or rows are made, and handed back at the end."""

from __future__ import annotations

import gc
import weakref

from newsletter import heap
from newsletter.db import session_scope
from newsletter.heap import freeze_for_good, frozen_heap
from newsletter.providers.base import Batch, BatchResult, Outcome
from newsletter.providers.memory import MemoryTransport
from newsletter.readers import importing
from newsletter.sending.create import create_send
from newsletter.sending.dispatcher import Dispatcher
from tests.workers_support import seed_brief


class _Cycle:
    """An object that refers to itself: only the cycle collector can free it."""

    def __init__(self) -> None:
        self.me = self


def _planned_send(engine, settings) -> None:
    slug = seed_brief(engine, 3)
    with session_scope(engine) as session:
        create_send(slug, session=session, settings=settings)


def test_a_send_is_handed_off_with_the_process_heap_frozen(engine, settings):
    _planned_send(engine, settings)
    frozen_while_sending: list[int] = []

    def answer(_batch: Batch) -> BatchResult:
        frozen_while_sending.append(gc.get_freeze_count())
        return BatchResult(Outcome.SENT)

    transport = MemoryTransport(answer=answer)
    report = Dispatcher(engine, settings, transport).work_due()

    assert report.accepted == 3
    assert frozen_while_sending and all(count > 0 for count in frozen_while_sending)
    assert gc.get_freeze_count() == 0


def test_an_import_reads_its_rows_with_the_process_heap_frozen(engine, tmp_path, monkeypatch):
    """The spy wraps the real import: it only notes the heap's state as the rows are read."""
    frozen_while_importing: list[int] = []
    real = importing.import_subscribers

    def spy(*args: object, **options: object) -> object:
        frozen_while_importing.append(gc.get_freeze_count())
        return real(*args, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(importing, "import_subscribers", spy)
    sheet = tmp_path / "list.csv"
    sheet.write_text("email,name,topics\naiko@example.com,Aiko,all\n", encoding="utf-8")
    with session_scope(engine) as session:
        outcome = importing.import_readers(sheet, session=session, default_timezone="UTC")

    assert outcome.report.counts()["added"] == 1
    assert frozen_while_importing and frozen_while_importing[0] > 0
    assert gc.get_freeze_count() == 0


def test_garbage_that_died_during_a_send_is_freed_after_it():
    cycle = _Cycle()
    gone = weakref.ref(cycle)
    with frozen_heap():
        del cycle
        gc.collect()
        assert gone() is not None  # frozen: no collection looks at it
    gc.collect()
    assert gone() is None


def test_the_heap_stays_frozen_until_the_last_holder_leaves():
    with frozen_heap():
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_heap_frozen_for_good_stays_frozen_after_a_frozen_heap_inside_it(monkeypatch):
    """The web process: an import from the console must not thaw what start-up froze."""
    monkeypatch.setattr(heap, "_holders", 0)  # put back as it was when the test ends
    try:
        freeze_for_good()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_start_up_garbage_is_collected_before_the_heap_is_frozen_for_good(monkeypatch):
    monkeypatch.setattr(heap, "_holders", 0)
    cycle = _Cycle()
    gone = weakref.ref(cycle)
    del cycle
    try:
        freeze_for_good()
        assert gone() is None
    finally:
        gc.unfreeze()
