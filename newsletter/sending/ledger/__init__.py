"""The delivery ledger: every statement that writes it, in this folder a reviewer can read
alone (`claims.py` and `answers.py`: the hand-off; `recovery.py`: dead workers' batches;
`rows.py`: everything else). The database holds all of a send's state, so any worker can
stop at any point and another carries on. A row moves

    queued ──claim──> claimed ──provider answers──> sent | failed | unknown
       ^                 │
       └── lease expired before the request began (batch `claimed`)
                         └──> unknown: lease expired mid-request (batch `sending`)

(and `skipped` when the reader left after planning, `cancelled` with its send). Whether a
claimed row's request has begun is recorded once per batch (`DeliveryBatch`, a one-row
update committed before the HTTP call), never guessed. No transaction stays open across a
network call: claiming, marking and recording are each their own short transaction.
"""

from newsletter.sending.ledger.answers import Recorded, record_batch
from newsletter.sending.ledger.claims import (
    Claim,
    Target,
    begin_handoff,
    claim_batch,
    give_back,
)
from newsletter.sending.ledger.recovery import Recovery, finish_sends, recover_expired_batches
from newsletter.sending.ledger.rows import (
    PLANNED_COLUMNS,
    Addressed,
    addressed_deliveries,
    cancel_queued,
    counts_by_status,
    deliveries_of,
    has_rows,
    in_hand,
    next_due,
    plan_rows,
    row_count,
    settle_by_events,
    settle_unknown,
    unknown_since,
    with_in_hand,
)

__all__ = [
    "PLANNED_COLUMNS",
    "Addressed",
    "Claim",
    "Recorded",
    "Recovery",
    "Target",
    "addressed_deliveries",
    "begin_handoff",
    "cancel_queued",
    "claim_batch",
    "counts_by_status",
    "deliveries_of",
    "finish_sends",
    "give_back",
    "has_rows",
    "in_hand",
    "next_due",
    "plan_rows",
    "record_batch",
    "recover_expired_batches",
    "row_count",
    "settle_by_events",
    "settle_unknown",
    "unknown_since",
    "with_in_hand",
]
