"""What each send's readers did, counted as the provider's events arrive, so a report reads
a few rows per send instead of millions of events (`apply.py` writes, `models.py` holds)."""
