"""Original response vs replayed response: ACK code first, then field by field with ignore rules (sans-IO).

Protocol-neutral: a `Comparator` turns two `Observed` responses into a `Comparison`; the generic
`classify` does the judging over flat path -> value views, so an HTTP kind only has to provide its own
flattening (JSON paths, XPaths) and ignore rules. The HL7 v2 comparator here flattens to terse field
paths (`MSA-1`, `ERR[2]-3`); in enhanced mode both replies are compared, the accept ACK's fields under
`accept/` (`accept/MSA-1`). Messages that ask for no acknowledgement (NE/NE) compare as ``exact``
when neither side got one.

Classes, in the order they are decided:
- ``missing``: the replay got no reply (timeout, connection closed), or only the accept ACK of the
  two its enhanced-mode message asks for;
- ``new_error``: the original was accepted (AA/CA) and the replay was not (AE/AR/CE/CR, an unreadable
  reply, a reply whose MSA-1 is not an acknowledgement code, or an error before anything came back);
- ``different``: ACK codes differ, or any field outside the ignore rules differs;
- ``equivalent``: only ignored fields differ;
- ``exact``: nothing differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal, Protocol

Classification = Literal["exact", "equivalent", "different", "missing", "new_error"]
CLASSES: tuple[Classification, ...] = ("exact", "equivalent", "different", "missing", "new_error")
FAILING: frozenset[str] = frozenset({"different", "missing", "new_error"})

ACCEPT_CODES = frozenset({"AA", "CA"})
ERROR_CODES = frozenset({"AE", "AR", "CE", "CR"})
_KNOWN_CODES = ACCEPT_CODES | ERROR_CODES

# Outcomes meaning nothing came back from the peer (as opposed to a local error before sending).
NO_REPLY_OUTCOMES = frozenset({"timeout", "upstream_down", "late_ack"})

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
    r"|\d{12,14}(?:\.\d{1,6})?(?:[+-]\d{4})?"
)


def _without_timestamps(value: str) -> str:
    return _TIMESTAMP.sub("<ts>", value)


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    """A flat path pattern (fnmatch: `MSH-7`, `ERR*`) whose differences do not count.

    `timestamps_only`: the values may differ only in the timestamps inside them (an ERR segment whose
    text embeds the time of the error still counts when its words change).
    """

    pattern: str
    timestamps_only: bool = False

    def covers(self, path: str, original: str | None, replay: str | None) -> bool:
        if not fnmatchcase(path, self.pattern):
            return False
        if not self.timestamps_only:
            return True
        if original is None or replay is None:
            return False
        return _without_timestamps(original) == _without_timestamps(replay)

    def __str__(self) -> str:
        return self.pattern + (" (timestamps)" if self.timestamps_only else "")


def parse_ignore(text: str) -> IgnoreRule:
    """`MSH-7`, or `ERR*:timestamps` to ignore only timestamp differences under a pattern."""
    pattern, _, flag = text.strip().partition(":")
    if not pattern:
        raise ValueError(f"ignore rule {text!r}: empty path pattern")
    if flag not in ("", "timestamps"):
        raise ValueError(f"ignore rule {text!r}: unknown flag {flag!r} (only ':timestamps')")
    return IgnoreRule(pattern, timestamps_only=flag == "timestamps")


HL7V2_DEFAULT_IGNORES: tuple[IgnoreRule, ...] = (
    IgnoreRule("MSH-7"),
    IgnoreRule("MSH-10"),
    IgnoreRule("ERR*", timestamps_only=True),
    IgnoreRule("accept/MSH-7"),
    IgnoreRule("accept/MSH-10"),
    IgnoreRule("accept/ERR*", timestamps_only=True),
)


@dataclass(frozen=True, slots=True)
class Observed:
    """One side of a comparison: what came back for one request, and which ids that request carried.

    `control_id` is the id the request was sent with; `original_control_id` the id of the captured
    message it stands for (equal unless the replay gave it a new one). Replies naming the sent id are
    read as naming the original, which is how MSA-2 is compared "through the id map".
    """

    response: bytes | None
    outcome: str | None = None
    error: str | None = None
    charset: str | None = None
    control_id: str | None = None
    original_control_id: str | None = None
    latency_ms: float | None = None
    accept_response: bytes | None = None
    """Enhanced mode: the accept ACK that came before `response` (the application ACK)."""

    def original_id_for(self, value: str | None) -> str | None:
        if value is not None and self.control_id is not None and value == self.control_id:
            return self.original_control_id if self.original_control_id is not None else value
        return value


@dataclass(slots=True)
class Difference:
    path: str
    original: str | None
    replay: str | None
    ignored: bool = False
    rule: str | None = None
    """Why it is ignored (the rule, or 'id map')."""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "original": self.original,
            "replay": self.replay,
            "ignored": self.ignored,
            "rule": self.rule,
        }


@dataclass(slots=True)
class Comparison:
    classification: Classification
    original_code: str | None = None
    replay_code: str | None = None
    differences: list[Difference] = field(default_factory=list)
    note: str | None = None
    recovered: bool = False
    """The original got no reply or a NAK and the replay was accepted: the point of most replays."""

    @property
    def failed(self) -> bool:
        return self.classification in FAILING

    def to_json(self) -> dict[str, Any]:
        return {
            "classification": self.classification,
            "original_code": self.original_code,
            "replay_code": self.replay_code,
            "recovered": self.recovered,
            "note": self.note,
            "differences": [d.to_json() for d in self.differences],
        }


class Comparator(Protocol):
    """Compares the original and replayed response of one kind of exchange."""

    kind: str

    def compare(self, original: Observed | None, replay: Observed) -> Comparison:
        """`original` None: no baseline (messages read from files); an accept is then expected."""
        ...


def diff_fields(
    original: Mapping[str, str],
    replay: Mapping[str, str],
    ignore: Sequence[IgnoreRule] = (),
    *,
    mapped: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> list[Difference]:
    """Every path whose value differs, in a stable order, each marked ignored or not.

    `mapped` holds paths whose values were translated before comparing (MSA-2 through the id map):
    equal after translation means ignored with rule 'id map'.
    """
    out: list[Difference] = []
    seen = set()
    for path in [*original, *(p for p in replay if p not in original)]:
        if path in seen:
            continue
        seen.add(path)
        a, b = original.get(path), replay.get(path)
        if a == b:
            continue
        if mapped and path in mapped:
            ma, mb = mapped[path]
            if ma == mb:
                out.append(Difference(path, a, b, ignored=True, rule="id map"))
                continue
        rule = next((r for r in ignore if r.covers(path, a, b)), None)
        out.append(Difference(path, a, b, ignored=rule is not None, rule=str(rule) if rule else None))
    return out


def classify(
    original_code: str | None,
    replay_code: str | None,
    differences: Sequence[Difference],
    *,
    accepted: frozenset[str] = ACCEPT_CODES,
) -> Classification:
    """The class once both sides have replied (missing and local errors are decided before)."""
    if original_code in accepted and replay_code not in accepted:
        return "new_error"
    if original_code != replay_code:
        return "different"
    if any(not d.ignored for d in differences):
        return "different"
    return "equivalent" if differences else "exact"


# HL7 v2


def hl7v2_fields(payload: bytes, charset: str | None = None, *, only: str | None = None) -> dict[str, str]:
    """A message as terse field path -> raw field text (`MSH-9`, `ERR[2]-3`), for comparing.

    Decoded before splitting (GBK trail bytes can equal `|`); MSH-1 is the field separator itself, as
    in the standard's numbering. `only` keeps just the segments of that name (and MSH): the ordering
    key of every replayed message needs PID alone. Raises ValueError when the bytes are not HL7 v2.
    """
    from harness.hl7v2 import charset as charsets

    codec = charsets.resolve(charsets.declared_in(payload), charset, data=payload).codec
    text = charsets.decode(payload, codec)
    segments = [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 4:
        raise ValueError("no MSH segment at start of message")
    sep = segments[0][3]
    out: dict[str, str] = {}
    counts: dict[str, int] = {}
    for line in segments:
        if only is not None and not line.startswith((only + sep, "MSH" + sep)):
            continue
        parts = line.split(sep)
        name = parts[0]
        n = counts[name] = counts.get(name, 0) + 1
        prefix = name if n == 1 else f"{name}[{n}]"
        if name == "MSH" and n == 1:
            out[f"{prefix}-1"] = sep
            fields = parts[1:]
            start = 2
        else:
            fields = parts[1:]
            start = 1
        for i, value in enumerate(fields, start):
            if value != "":
                out[f"{prefix}-{i}"] = value
    return out


def _ack_code(fields: Mapping[str, str], prefix: str = "") -> str | None:
    value = fields.get(prefix + "MSA-1")
    return value.split("^")[0].strip() or None if value else None


def _first_component(value: str | None) -> str | None:
    return value.split("^")[0] if value is not None else None


class HL7v2Comparator:
    """ACKs and application responses of HL7 v2 exchanges."""

    kind = "hl7v2"
    default_ignores = HL7V2_DEFAULT_IGNORES

    def __init__(self, ignore: Sequence[IgnoreRule] = HL7V2_DEFAULT_IGNORES) -> None:
        self.ignore = tuple(ignore)

    def compare(self, original: Observed | None, replay: Observed) -> Comparison:
        if replay.outcome == "no_ack_expected":
            if original is None or original.outcome == "no_ack_expected":
                return Comparison("exact", None, None, note="the message asks for no acknowledgement")
            return Comparison(
                "different", self._code_of(original), None,
                note="the replayed message asks for no acknowledgement; the original got one",
            )
        if replay.response is None:
            local = replay.outcome not in NO_REPLY_OUTCOMES and replay.error is not None
            original_code = self._code_of(original)
            if local:
                return Comparison("new_error", original_code, None, note=f"replay failed: {replay.error}")
            why = replay.error or replay.outcome or "no reply"
            if replay.accept_response is not None:
                why = f"the accept ACK came, the application ACK did not ({why})"
            return Comparison("missing", original_code, None, note=f"no reply to the replay ({why})")
        try:
            new = hl7v2_fields(replay.response, replay.charset)
        except ValueError as exc:
            return Comparison(
                "new_error", self._code_of(original), None, note=f"replay reply is not HL7 v2: {exc}"
            )
        replay_code = _ack_code(new)
        if replay.outcome == "bad_ack" or (replay_code is not None and replay_code not in _KNOWN_CODES):
            note = f"the replay's reply is not an acknowledgement (MSA-1 {replay_code!r})"
            return Comparison("new_error", self._code_of(original), replay_code, note=note)
        if original is None:
            if replay_code in ACCEPT_CODES:
                return Comparison("equivalent", None, replay_code, note="no captured reply; accepted")
            return Comparison("new_error", None, replay_code, note="no captured reply; not accepted")
        if original.response is None:
            note = f"the original got no reply ({original.outcome or 'none'}); the replay got {replay_code}"
            return Comparison(
                "different",
                None,
                replay_code,
                differences=[Difference("MSA-1", None, replay_code)],
                note=note,
                recovered=replay_code in ACCEPT_CODES,
            )
        try:
            old = hl7v2_fields(original.response, original.charset)
        except ValueError as exc:
            old = {}
            note = f"original reply is not HL7 v2: {exc}"
        else:
            note = None
        original_code = _ack_code(old)
        mapped = {
            "MSA-2": (
                original.original_id_for(_first_component(old.get("MSA-2"))),
                replay.original_id_for(_first_component(new.get("MSA-2"))),
            )
        }
        old_accept, new_accept = self._accept_fields(original), self._accept_fields(replay)
        if old_accept or new_accept:
            old.update(old_accept)
            new.update(new_accept)
            mapped["accept/MSA-2"] = (
                original.original_id_for(_first_component(old_accept.get("accept/MSA-2"))),
                replay.original_id_for(_first_component(new_accept.get("accept/MSA-2"))),
            )
        diffs = diff_fields(old, new, self.ignore, mapped=mapped)
        cls = classify(original_code, replay_code, diffs)
        accept_before, accept_now = _ack_code(old_accept, "accept/"), _ack_code(new_accept, "accept/")
        if accept_before in ACCEPT_CODES and accept_now is not None and accept_now not in ACCEPT_CODES:
            cls = "new_error"  # committed before, refused at commit now
        recovered = original_code not in ACCEPT_CODES and replay_code in ACCEPT_CODES
        return Comparison(cls, original_code, replay_code, diffs, note=note, recovered=recovered)

    @staticmethod
    def _accept_fields(observed: Observed) -> dict[str, str]:
        """The accept ACK (enhanced mode) as fields under `accept/`, compared like the final reply."""
        if observed.accept_response is None:
            return {}
        try:
            fields = hl7v2_fields(observed.accept_response, observed.charset)
        except ValueError:
            return {"accept/MSA-1": "?"}
        return {f"accept/{path}": value for path, value in fields.items()}

    @staticmethod
    def _code_of(observed: Observed | None) -> str | None:
        if observed is None or observed.response is None:
            return None
        try:
            return _ack_code(hl7v2_fields(observed.response, observed.charset))
        except ValueError:
            return None
