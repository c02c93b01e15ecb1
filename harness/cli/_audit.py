"""How commands record in the audit trail, defined once: check first, record after, exit 2 on failure.

`preflight(store)` runs before a command writes anything out, so output is never handed out when its
audit entry could not be written; `audited(store, action, target, details)` records once it is done.
The JSON-lines copy follows $HARNESS_AUDIT_FILE.
"""

from __future__ import annotations

from typing import Any

from harness.cli._common import fail_usage


def preflight(store: Any) -> None:
    from harness.audit.log import AuditError, ready

    try:
        ready(store)
    except AuditError as exc:
        raise fail_usage(
            f"{exc}; nothing written (every export and report is recorded in the audit log)"
        ) from None


def audited(store: Any, action: str, target: str, details: dict[str, Any]) -> None:
    from harness.audit import AuditError, record

    try:
        record(store, action, target, details)
    except AuditError as exc:
        raise fail_usage(f"{exc}: this {action} was NOT recorded in the audit log") from None


def masking(chosen: Any) -> dict[str, Any]:
    """What an entry says about masking: unmasked, or the policy and the key's id (never the key)."""
    if chosen is None:
        return {"unmasked": True}
    return {"unmasked": False, "policy": chosen.policy.name, "key_id": chosen.key_id}


def exchanges(ids: list[int]) -> dict[str, Any]:
    from harness.audit import id_details

    return id_details(ids)
