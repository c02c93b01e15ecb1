"""Recording: who did what to which store, appended to the store's audit chain and its JSON-lines copy.

`record(store, action, target, details)` is what commands call: `store` is an open Store or where one
is (a SQLite file or a postgresql:// URL). The actor is the OS user running the command (and the
user behind sudo); through the admin API also the token's fingerprint (`token_fingerprint`), never the
token. The JSON-lines copy is `audit_file` when given, else $HARNESS_AUDIT_FILE, else none.
A failure to record raises `AuditError`: a command whose audit entry cannot be written says so and
exits 2 rather than hand out unaudited data.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.audit import jsonl
from harness.audit.chain import Entry, link
from harness.audit.table import AuditTable

ACTIONS = (
    "capture.show", "capture.export", "mask", "replay", "compare", "certify", "load", "validate",
    "proxy.start", "proxy.stop", "fault.add", "fault.remove", "fault.clear",
)  # fmt: skip
"""What is recorded (README "Audit trail" says when)."""
MAX_IDS = 1000
"""Exchange ids listed in one entry's details; beyond, the count and the first and last id."""


class AuditError(Exception):
    """The audit entry could not be written: the store or the JSON-lines file refused it."""


def os_actor() -> dict[str, Any]:
    """The OS user running this process, and the one behind sudo when there is one."""
    uid = os.geteuid()
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        name = os.environ.get("USER") or str(uid)
    who: dict[str, Any] = {"user": name, "uid": uid}
    if os.environ.get("SUDO_USER"):
        who["sudo_user"] = os.environ["SUDO_USER"]
    return who


def token_fingerprint(token: str) -> str:
    """What names an admin token in the log: enough of its SHA-256 to tell tokens apart, nothing to
    replay (a token is at least 16 characters of secret; this reveals nothing usable)."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


def file_path(audit_file: str | Path | None = None) -> Path | None:
    value = audit_file or os.environ.get(jsonl.FILE_ENV) or None
    return Path(value).expanduser().resolve() if value else None


def id_details(ids: list[int]) -> dict[str, Any]:
    """Which exchanges, bounded: every id up to MAX_IDS, else the count and the range."""
    if len(ids) <= MAX_IDS:
        return {"exchanges": len(ids), "ids": ids}
    return {"exchanges": len(ids), "ids_first": ids[:MAX_IDS], "id_min": min(ids), "id_max": max(ids)}


@contextmanager
def _opened(store: Any, copy: Path | None, *, create: bool) -> Iterator[Any]:
    """`store` open (an open Store as it is, else opened and closed here); every way the store or the
    copy can fail becomes one AuditError saying which."""
    from harness.store import Store, StoreError

    opened = None
    try:
        if isinstance(store, Store):
            yield store
        else:
            opened = Store(store, create=create)
            yield opened
    except OSError as exc:
        raise AuditError(f"audit file {copy}: {exc.strerror or exc}") from None
    except StoreError as exc:
        raise AuditError(f"audit log in {getattr(store, 'path', store)}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a driver error of either backend, said in one line
        raise AuditError(
            f"audit log in {getattr(store, 'path', store)}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if opened is not None:
            opened.close()


def record(
    store: Any,
    action: str,
    target: str,
    details: Mapping[str, Any] | None = None,
    *,
    actor: Mapping[str, Any] | None = None,
    audit_file: str | Path | None = None,
) -> Entry:
    """Append one entry to `store`'s chain (and the JSON-lines copy); AuditError when it cannot."""
    copy = file_path(audit_file)
    who = dict(actor) if actor is not None else os_actor()
    host = socket.gethostname()
    with _opened(store, copy, create=True) as open_store:
        store_id = open_store.store_id

        def build(previous: Entry | None) -> Entry:
            return link(
                previous, when=time.time(), store=store_id, actor=who, host=host, action=action,
                target=target, details=details, file=str(copy) if copy else None,
            )  # fmt: skip

        def before_commit(entry: Entry) -> None:
            if copy is not None:
                jsonl.append(copy, entry)

        return AuditTable(open_store).append(build, before_commit)


def ready(store: Any, audit_file: str | Path | None = None) -> None:
    """Check, before any output is written, that an entry can be recorded afterwards: the store takes
    the audit table and the JSON-lines copy can be appended to; AuditError when not."""
    copy = file_path(audit_file)
    with _opened(store, copy, create=False) as open_store:
        AuditTable(open_store).ensure()
        if copy is not None:
            copy.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(copy, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
