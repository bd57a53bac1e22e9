"""The dead-letter archive, its redrive and its operator tools: one bounded module.

- parsing.py    a dead letter as RabbitMQ hands it over (Celery task message or not)
- archive.py    the archiver's work: DLQ → PostgreSQL, then ack; ends a non-terminal order failed
- records.py    dead letters without a RabbitMQ death (the reconciler's: lost or stuck), in the format redrive reads
- redrive.py    redrive (after the order services re-open the order) and discard
- selectors.py  lists and failure groups
- apis.py       the staff REST API under /ops/dead-letters
- admin.py      the admin's list, filters and actions
The CLI is `manage.py dlq` and the archiver `manage.py archive_dead_letters` (orders/management/commands).
"""

from orders.dead_letters.archive import (
    ArchiveFailed,
    dead_letter_archive,
    dead_letter_store_raw,
    dlq_archive_batch,
    dlq_depth,
)
from orders.dead_letters.parsing import MALFORMED, UNDECODABLE, ParsedDeadLetter, parse_dead_letter
from orders.dead_letters.redrive import (
    BulkRedriveResult,
    RedriveRefused,
    dead_letter_discard,
    dead_letter_redrive,
    dead_letter_redrive_many,
)
from orders.dead_letters.selectors import dead_letter_groups, dead_letter_list

__all__ = [
    "MALFORMED",
    "UNDECODABLE",
    "ArchiveFailed",
    "BulkRedriveResult",
    "ParsedDeadLetter",
    "RedriveRefused",
    "dead_letter_archive",
    "dead_letter_discard",
    "dead_letter_groups",
    "dead_letter_list",
    "dead_letter_redrive",
    "dead_letter_redrive_many",
    "dead_letter_store_raw",
    "dlq_archive_batch",
    "dlq_depth",
    "parse_dead_letter",
]
