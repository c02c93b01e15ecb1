"""Which comparator judges which exchange kind: HL7 v2 field by field, every HTTP kind by its body.

The one place that knows both protocols' comparators, so neither comparison module imports the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness import codecs
from harness.replay.compare import Comparator, HL7v2Comparator, IgnoreRule
from harness.replay.http_compare import HttpComparator


def _hl7v2(ignore: Sequence[IgnoreRule]) -> Comparator:
    return HL7v2Comparator((*HL7v2Comparator.default_ignores, *ignore))


def _http(kind: str) -> Callable[[Sequence[IgnoreRule]], Comparator]:
    def make(ignore: Sequence[IgnoreRule]) -> Comparator:
        return HttpComparator(kind, ignore)  # the kind's own ignores come from its codec

    return make


COMPARATORS: dict[str, Callable[[Sequence[IgnoreRule]], Comparator]] = {
    "hl7v2": _hl7v2,
    **{kind: _http(kind) for kind in codecs.KINDS},
}
"""Exchange kind -> a comparator given the extra ignore rules (added to the kind's defaults)."""


def comparator_for(kind: str, ignore: Sequence[IgnoreRule] | None = None) -> Comparator:
    """The comparator of an exchange kind; extra ignore rules add to its defaults."""
    make = COMPARATORS.get(kind)
    if make is None:
        raise ValueError(f"no comparator for exchange kind {kind!r} (known: {', '.join(COMPARATORS)})")
    return make(tuple(ignore or ()))
