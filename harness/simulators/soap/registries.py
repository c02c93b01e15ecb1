"""What the service remembers (moto's models.py): one bounded registry per kind of record.

Patients, cards, organisations, providers, terminology, documents, encounters, orders, applications,
schedules, appointments and statuses are each kept by their identifier with the payload element the
sender registered, so a query answers with what was registered, and an update needs it to exist.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(slots=True)
class Entry:
    key: str
    payload: str  # the controlActProcess/subject child as XML text
    action: str
    updates: int = 0


@dataclass
class Registries:
    limit: int = 10_000
    kinds: dict[str, OrderedDict[str, Entry]] = field(default_factory=dict)

    def of(self, name: str) -> OrderedDict[str, Entry]:
        return self.kinds.setdefault(name, OrderedDict())

    def get(self, name: str, key: str) -> Entry | None:
        return self.of(name).get(key)

    def put(self, name: str, entry: Entry) -> None:
        kind = self.of(name)
        old = kind.get(entry.key)
        if old is not None:
            entry.updates = old.updates + 1
        kind[entry.key] = entry
        kind.move_to_end(entry.key)
        while len(kind) > self.limit:
            kind.popitem(last=False)

    def remove(self, name: str, key: str) -> None:
        self.of(name).pop(key, None)
