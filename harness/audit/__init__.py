"""The audit trail: an append-only, hash-chained log of who exported, unmasked, replayed, compared,
masked, certified or load-tested from a store, changed fault rules or started and stopped a proxy.

`chain` is the sans-IO core (encoding, hashing, verification); `table` keeps the chain in the capture
store (SQLite or PostgreSQL), `jsonl` in an optional JSON-lines copy; `log.record` is what commands call.
"""

from harness.audit.chain import Entry, Problem, Verdict, compare, verify, verify_copy
from harness.audit.log import AuditError, id_details, os_actor, record, token_fingerprint

__all__ = [
    "AuditError",
    "Entry",
    "Problem",
    "Verdict",
    "compare",
    "id_details",
    "os_actor",
    "record",
    "token_fingerprint",
    "verify",
    "verify_copy",
]
