"""Which exchanges a replay re-sends: from a capture store through `ExchangeFilter`, or from files.

Protocol-neutral: a `ReplayItem` carries the request bytes, when it was captured, its kind and the
captured exchange (for comparing against), whatever the protocol. Each item has a stable `key`
(`x<id>` for a stored exchange, `<file>#<index>` for a file message) by which a resumed run knows
what it already sent. Only originals are selected from a store, never earlier replays of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.exchange import Exchange
from harness.store import ExchangeFilter, Store, parse_time


@dataclass(slots=True)
class Selection:
    """Selection criteria as given on the command line; stored with the run so a resume reuses them."""

    channels: list[str] = field(default_factory=list)
    since: str | None = None
    until: str | None = None
    message_types: list[str] = field(default_factory=list)
    control_ids: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    path_values: dict[str, str] = field(default_factory=dict)
    ids: list[int] = field(default_factory=list)
    run_id: int | None = None
    """Select the exchanges of one capture run only."""
    kinds: list[str] = field(default_factory=list)
    """Exchange kinds the sender can carry (the MLLP sender: hl7v2); empty: all."""
    limit: int | None = None

    def __post_init__(self) -> None:
        # Fix relative times ("-8h") once, so a resume days later selects the same exchanges.
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not _absolute(value):
                setattr(self, name, str(parse_time(value)))

    def to_filter(self) -> ExchangeFilter:
        return ExchangeFilter(
            channel=self.channels or None,
            since=_time(self.since),
            until=_time(self.until),
            message_type=self.message_types or None,
            control_ids=self.control_ids or None,
            outcomes=self.outcomes or None,
            path_values=self.path_values or None,
            ids=self.ids or None,
            run_id=self.run_id,
            kind=self.kinds or None,
            replays=False,
            limit=self.limit,
            order="started_at",
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Selection:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _absolute(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _time(value: str | None) -> float | str | None:
    if value is None:
        return None
    return float(value) if _absolute(value) else value


@dataclass(slots=True)
class ReplayItem:
    key: str
    payload: bytes
    captured_at: float | None = None
    kind: str = "hl7v2"
    protocol: str = "mllp"
    channel: str | None = None
    message_type: str | None = None
    control_id: str | None = None
    charset: str | None = None
    original_id: int | None = None
    source: str = ""
    """Where it came from, for messages: 'exchange 42', 'adt.hl7 message 3'."""
    index: int = 0
    """Position in the selection (0-based), stable across a resume."""
    original: Exchange | None = None


def from_store(store: Store, selection: Selection) -> Iterator[ReplayItem]:
    """Stream the selected originals in captured order (raises StoreError/ValueError for bad filters)."""
    for index, ex in enumerate(store.query(selection.to_filter())):
        yield ReplayItem(
            key=f"x{ex.id}",
            payload=ex.request,
            captured_at=ex.started_at,
            kind=ex.kind,
            protocol=ex.protocol,
            channel=ex.channel,
            message_type=ex.message_type,
            control_id=ex.control_id,
            charset=ex.charset,
            original_id=ex.id,
            source=f"exchange {ex.id}",
            index=index,
            original=ex,
        )


def from_files(paths: Sequence[str], *, charset: str | None = None) -> Iterator[ReplayItem]:
    """HL7 v2 messages from files, folders and batch files, in order (raises HL7FileError on a bad file)."""
    from harness.hl7v2.files import iter_messages
    from harness.hl7v2.meta import extract

    for index, fm in enumerate(iter_messages(paths)):
        meta = extract(fm.payload, charset)
        yield ReplayItem(
            key=f"{fm.source}#{fm.index}",
            payload=fm.payload,
            kind="hl7v2",
            protocol="mllp",
            message_type=meta.message_code,
            control_id=meta.control_id,
            charset=meta.charset,
            source=f"{fm.source} message {fm.index + 1}",
            index=index,
        )
