"""Fault rules: what a rule matches, how often it fires, and its action.

Matching runs cheap checks first: direction, then conditions on the message's cheap metadata
(`harness.hl7v2.meta.Meta`), and only when a rule has `paths` is the message parsed (once per message,
shared by every rule that asks). Counting gates come after the content checks: `first_n` and
`every_nth` count the messages a rule's content conditions accepted, `probability` draws from the
rule's own RNG (seeded with `seed`, so a run repeats exactly), and `limit` exhausts the rule after that
many hits.

Content condition keys are registered per protocol (`CONDITIONS`), so HTTP rules reuse the gating,
counting, ids and admin API and only add their own keys (method, path, header, json, ...).
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

from harness.proxy.faults.actions import Action, parse_action
from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.linear_regex import compile_regex
from harness.proxy.faults.params import Params, RuleError

DIRECTIONS = ("request", "response")

META_FIELDS = (
    "message_type",
    "trigger",
    "structure",
    "control_id",
    "processing_id",
    "version",
    "accept_ack_type",
    "app_ack_type",
    "ack_code",
    "ack_control_id",
    "charset",
    "sending_app",
    "sending_facility",
    "receiving_app",
    "receiving_facility",
)


class Subject:
    """One message under decision; parses it at most once, and only if a rule asks for paths."""

    __slots__ = ("direction", "payload", "meta", "ctx", "_message", "parse_error")

    def __init__(self, direction: str, payload: bytes, meta: Any, ctx: FaultContext) -> None:
        self.direction = direction
        self.payload = payload
        self.meta = meta
        self.ctx = ctx
        self._message: Any = None
        self.parse_error: str | None = None

    def message(self) -> Any:
        """The parsed message, or None when it does not parse (the reason is kept in parse_error)."""
        if self._message is None and self.parse_error is None:
            from harness.hl7v2.message import Message

            charset = self.ctx.charset or getattr(self.meta, "charset", None)
            try:
                self._message = Message.parse(self.payload, charset=charset)
            except (ValueError, LookupError) as exc:
                self.parse_error = str(exc)
        return self._message


# --- value matchers -----------------------------------------------------------------------------

ValueTest = Callable[[str | None], bool]


def value_matcher(spec: Any, where: str) -> ValueTest:
    """`"text"` equals, `"re:REGEX"` searches, a list matches any of its items, null means absent."""
    if spec is None:
        return lambda value: value is None or value == ""
    if isinstance(spec, list):
        if not spec:
            raise RuleError(where, "an empty list matches nothing")
        tests = [value_matcher(item, f"{where}[{i}]") for i, item in enumerate(spec)]
        return lambda value: any(test(value) for test in tests)
    if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
        raise RuleError(where, f"expected a string, 're:REGEX', a list or null, got {type(spec).__name__}")
    text = str(spec)
    if text.startswith("re:"):
        pattern = compile_regex(text[3:], where)
        return lambda value: value is not None and pattern.search(value) is not None
    return lambda value: value == text


# --- content conditions (per protocol) ----------------------------------------------------------


class Condition:
    """A content check on one message. `cost` orders checks: metadata (0) before parsing (10)."""

    cost = 0

    def test(self, subject: Subject) -> bool:
        raise NotImplementedError


_CODE = re.compile(r"^[A-Z0-9*?\[\]!]+(\^[A-Z0-9*?\[\]!]+)?$")


class MessageType(Condition):
    """`"ADT^A01"`, `"ADT"` (any trigger), globs such as `"ADT^A0*"`, `"re:..."`, or a list of these.

    All globs compile into one regular expression over `TYPE^TRIGGER`, so a rule costs one match.
    """

    def __init__(self, spec: Any, where: str) -> None:
        specs = spec if isinstance(spec, list) else [spec]
        if not specs:
            raise RuleError(where, "an empty list matches nothing")
        globs: list[str] = []
        self.searches: list[Any] = []
        for i, item in enumerate(specs):
            at = f"{where}[{i}]" if isinstance(spec, list) else where
            if not isinstance(item, str) or not item:
                raise RuleError(at, f"expected a message type such as 'ADT^A01', got {item!r}")
            if item.startswith("re:"):
                self.searches.append(compile_regex(item[3:], at))
                continue
            pattern = item.strip().upper()
            if not _CODE.match(pattern):
                raise RuleError(
                    at, f"{item!r} is not a message type ('ADT^A01', 'ADT', 'ADT^A0*' or 're:REGEX')"
                )
            regex = fnmatch.translate(pattern).removesuffix(r"\Z")
            globs.append(regex if "^" in pattern else regex + r"(?:\^.*)?")
        self.glob = re.compile(r"(?:" + "|".join(globs) + r")\Z") if globs else None

    def test(self, subject: Subject) -> bool:
        meta = subject.meta
        if meta is None:
            return False
        code = _code(meta.message_type, meta.trigger)
        if code is None:
            return False
        if self.glob is not None and self.glob.match(code):
            return True
        return any(search.search(code) for search in self.searches)


def _code(mtype: str | None, trigger: str | None) -> str | None:
    if mtype is None:
        return None
    return f"{mtype}^{trigger}" if trigger else mtype


class MetaFields(Condition):
    """`{"sending_app": "HIS", "processing_id": "P"}`: fields of the cheap metadata."""

    def __init__(self, spec: Any, where: str) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise RuleError(where, "expected a JSON object of metadata field -> value")
        self.tests: list[tuple[str, ValueTest]] = []
        for key, value in spec.items():
            if key not in META_FIELDS:
                raise RuleError(f"{where}.{key}", f"unknown metadata field; known: {', '.join(META_FIELDS)}")
            self.tests.append((key, value_matcher(value, f"{where}.{key}")))

    def test(self, subject: Subject) -> bool:
        meta = subject.meta
        if meta is None:
            return False
        return all(test(getattr(meta, key, None)) for key, test in self.tests)


_PATH = re.compile(r"^[A-Z][A-Z0-9]{2}\S*$")


class Paths(Condition):
    """`{"PID-3.1": "re:^9"}`: terse-path values of the parsed message (all must match)."""

    cost = 10

    def __init__(self, spec: Any, where: str) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise RuleError(where, 'expected a JSON object of terse path -> value, e.g. {"PID-3.1": "re:^9"}')
        self.tests: list[tuple[str, ValueTest]] = []
        for path, value in spec.items():
            if not isinstance(path, str) or not _PATH.match(path):
                raise RuleError(f"{where}.{path}", "not a terse path such as 'PID-3.1' or 'MSH-9.2'")
            self.tests.append((path, value_matcher(value, f"{where}.{path}")))

    def test(self, subject: Subject) -> bool:
        message = subject.message()
        if message is None:
            return False
        for path, test in self.tests:
            try:
                value = message.get(path)
            except (ValueError, KeyError, IndexError):
                return False
            if not test(value):
                return False
        return True


REPLY_KINDS = ("accept", "application", "bad")


class ReplyKind(Condition):
    """`"accept"` (CA CE CR), `"application"` (AA AE AR, and original mode's one ACK) or `"bad"` (no
    usable MSA-1), or a list: which of a message's replies a response rule acts on. Enhanced mode sends
    two replies per message; without this key a response rule is offered each of them."""

    def __init__(self, spec: Any, where: str) -> None:
        kinds = spec if isinstance(spec, list) else [spec]
        if not kinds or any(kind not in REPLY_KINDS for kind in kinds):
            raise RuleError(where, f"expected {' | '.join(REPLY_KINDS)} or a list of them, got {spec!r}")
        self.kinds = frozenset(kinds)

    def test(self, subject: Subject) -> bool:
        return subject.direction == "response" and getattr(subject.ctx, "reply", None) in self.kinds


CONDITIONS: dict[str, dict[str, Callable[[Any, str], Condition]]] = {
    "mllp": {"message_type": MessageType, "meta": MetaFields, "paths": Paths, "reply": ReplyKind},
}
"""Content condition keys by protocol; HTTP registers its own (method, path, header, json, xpath, meta)."""


# --- rules ---------------------------------------------------------------------------------------


class Match:
    """The `match` object: direction, content conditions, counting gates."""

    __slots__ = ("direction", "conditions", "every_nth", "first_n", "probability", "seed", "source")

    def __init__(self, data: Any, protocol: str, where: str = "match") -> None:
        data = {} if data is None else data
        p = Params(data, where)
        self.direction: str = p.choice("direction", DIRECTIONS, "request")
        self.every_nth: int | None = p.integer("every_nth", None, minimum=1)
        self.first_n: int | None = p.integer("first_n", None, minimum=1)
        self.probability: float | None = p.number("probability", None, minimum=0, maximum=1)
        self.seed: int | None = p.integer("seed", None)
        if protocol not in CONDITIONS:
            from harness.proxy.faults.actions import known_types

            known_types(protocol)  # loading a protocol's actions registers its conditions too
        known = CONDITIONS.get(protocol, {})
        conditions: list[Condition] = []
        for key, make in known.items():
            value = p.raw(key)
            if value is not None:
                conditions.append(make(value, f"{where}.{key}"))
        p.finish()
        conditions.sort(key=lambda c: c.cost)
        self.conditions = tuple(conditions)
        self.source = {k: v for k, v in data.items() if v is not None}
        self.source.setdefault("direction", self.direction)

    def test_content(self, subject: Subject) -> bool:
        for condition in self.conditions:
            if not condition.test(subject):
                return False
        return True


class Rule:
    """One fault rule with its counters. Not thread-safe by itself: the engine serialises decisions."""

    __slots__ = (
        "id", "match", "action", "limit", "description", "rng",
        "seen", "hits", "errors", "last_error",
    )  # fmt: skip

    def __init__(
        self, rule_id: str, match: Match, action: Action, limit: int | None, description: str | None
    ) -> None:
        self.id = rule_id
        self.match = match
        self.action = action
        self.limit = limit
        self.description = description
        self.rng = random.Random(match.seed)
        self.seen = 0
        """Messages whose content matched (what every_nth and first_n count)."""
        self.hits = 0
        """Times the action was applied (what limit counts)."""
        self.errors = 0
        self.last_error: str | None = None

    @property
    def direction(self) -> str:
        return self.match.direction

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.hits >= self.limit

    def fires(self, subject: Subject) -> bool:
        """Whether this rule applies to the message; advances its counters and RNG."""
        match = self.match
        if not match.test_content(subject):
            return False
        self.seen += 1
        if match.first_n is not None and self.seen > match.first_n:
            return False
        if match.every_nth is not None and self.seen % match.every_nth:
            return False
        if match.probability is not None and self.rng.random() >= match.probability:
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "match": dict(self.match.source),
            "action": self.action.to_json(),
            "limit": self.limit,
            "seen": self.seen,
            "hits": self.hits,
            "exhausted": self.exhausted,
        }
        if self.description:
            data["description"] = self.description
        if self.errors:
            data["errors"] = self.errors
            data["last_error"] = self.last_error
        return data


RULE_KEYS = ("id", "match", "action", "limit", "description")


def parse_rule(data: Any, protocol: str = "mllp", rule_id: str | None = None) -> Rule:
    """Validate one rule's JSON; RuleError names the bad key (`match.every_nth`, `action.type`, ...)."""
    p = Params(data, "")
    given_id = p.string("id", None)
    if given_id is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", given_id):
        raise RuleError("id", f"{given_id!r}: use 1-64 letters, digits, '_', '.', '-'")
    if not p.has("action"):
        from harness.proxy.faults.actions import known_types

        raise RuleError(
            "action", f'required, e.g. {{"type": "nak"}}; types: {", ".join(known_types(protocol))}'
        )
    match = Match(p.raw("match"), protocol)
    action = parse_action(p.raw("action"), protocol)
    action.check_direction(match.direction)
    limit = p.integer("limit", None, minimum=1)
    description = p.string("description", None)
    p.finish()
    return Rule(given_id or rule_id or "", match, action, limit, description)


def parse_rules(items: Any, protocol: str = "mllp", where: str = "faults") -> list[Rule]:
    """A list of rules (a channel's `faults:` in the config); errors say which item (`faults[2].limit`)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise RuleError(where, f"expected a list of rules, got {type(items).__name__}")
    rules = []
    for i, item in enumerate(items):
        try:
            rules.append(parse_rule(item, protocol))
        except RuleError as exc:
            raise exc.within(f"{where}[{i}]") from None
    return rules
