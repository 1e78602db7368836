"""Sending, in the order it happens: create a send (`create.py`), plan its ledger when due
(`plan.py`), hand it off in batches (`dispatcher.py`, writing through `ledger/`), report on it
(`report.py`); staff controls (`controls.py`); digests, transactional mail and test copies;
and what one worker tick does (`worker.py`)."""
