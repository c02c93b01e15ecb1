"""The fault engine of one channel: its rules in order, and the per-message decision.

`decide` is the only call on the proxy's per-message path. With no rules for the direction it returns
None after one dict lookup; otherwise it walks the rules in order (first firing rule wins), so the cost
is O(rules) with the message parsed at most once. The rule list is replaced, never mutated, when rules
are added or removed, and a lock serialises decisions and edits, so the engine works the same from a
reactor thread, a worker thread or a test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.proxy.faults.context import ActionContext, FaultContext
from harness.proxy.faults.params import RuleError
from harness.proxy.faults.plan import Plan
from harness.proxy.faults.rules import Rule, Subject, parse_rule

_EMPTY: tuple[Rule, ...] = ()

PLAN_TYPES: dict[str, Callable[[], Any]] = {"mllp": Plan}
"""The plan a protocol's actions edit; HTTP registers its own plan type here."""


@dataclass(slots=True)
class AppliedFault:
    """A rule fired on a message: the plan it produced and what to record on the exchange."""

    rule_id: str
    action: str
    params: dict[str, Any]
    direction: str
    hit: int
    """Which hit of the rule this was (1 = first)."""
    plan: Any
    notes_from: int = 0
    """Where this fault's lines start in `plan.notes` (a passed-in plan may hold earlier ones)."""

    @property
    def done(self) -> list[str]:
        """What the fault did, including lines added when the reply is transformed later."""
        return list(self.plan.notes[self.notes_from :])

    def record(self) -> dict[str, Any]:
        """The exchange's `fault` field: rule id, action type, params and what was done."""
        return {
            "rule_id": self.rule_id,
            "action": self.action,
            "params": dict(self.params),
            "direction": self.direction,
            "hit": self.hit,
            "done": self.done,
        }


class FaultEngine:
    """Fault rules of one channel, for one protocol ("mllp" rules edit a `Plan`)."""

    def __init__(self, channel: str = "", protocol: str = "mllp", rules: Iterable[Any] = ()) -> None:
        self.channel = channel
        self.protocol = protocol
        self._new_plan = PLAN_TYPES.get(protocol, Plan)
        self._lock = threading.Lock()
        self._rules: tuple[Rule, ...] = _EMPTY
        self._by_direction: dict[str, tuple[Rule, ...]] = {}
        self._next_id = 1
        self.applied = 0
        """Faults applied on this channel since start (survives rule removal)."""
        for rule in rules:
            self.add(rule)

    # --- editing (admin API, config) -------------------------------------------------------------

    def add(self, rule: Any) -> Rule:
        """Add a rule (its JSON or a parsed `Rule`) at the end; returns it with its id set."""
        if not isinstance(rule, Rule):
            rule = parse_rule(rule, self.protocol)
        with self._lock:
            if rule.id:
                if any(r.id == rule.id for r in self._rules):
                    raise RuleError("id", f"a rule with id {rule.id!r} already exists on this channel")
            else:
                while any(r.id == f"r{self._next_id}" for r in self._rules):
                    self._next_id += 1
                rule.id = f"r{self._next_id}"
                self._next_id += 1
            self._set(self._rules + (rule,))
        return rule

    def list(self) -> list[Rule]:
        return list(self._rules)

    def get(self, rule_id: str) -> Rule | None:
        for rule in self._rules:
            if rule.id == rule_id:
                return rule
        return None

    def remove(self, rule_id: str) -> Rule:
        """Remove a rule by id; KeyError when there is none."""
        with self._lock:
            for rule in self._rules:
                if rule.id == rule_id:
                    self._set(tuple(r for r in self._rules if r is not rule))
                    return rule
        raise KeyError(rule_id)

    def reset(self) -> int:
        """Remove every rule (Toxiproxy's reset); returns how many there were."""
        with self._lock:
            count = len(self._rules)
            self._set(_EMPTY)
        return count

    def _set(self, rules: tuple[Rule, ...]) -> None:
        self._rules = rules
        self._by_direction = {
            d: tuple(r for r in rules if r.direction == d) for d in {r.direction for r in rules}
        }

    def has_rules(self, direction: str = "request") -> bool:
        """Whether `decide` could fire for this direction (lets the proxy skip work for replies)."""
        return direction in self._by_direction

    def __len__(self) -> int:
        return len(self._rules)

    # --- the per-message decision --------------------------------------------------------------

    def decide(
        self,
        direction: str,
        payload: bytes,
        meta: Any,
        ctx: FaultContext | None = None,
        plan: Any = None,
    ) -> AppliedFault | None:
        """The fault for this message, or None. `plan` is edited when given, else a fresh plan.

        A rule whose action fails (a bug, or e.g. a NAK without a request to answer) does not fire: the
        message goes on unharmed and the rule shows the error in `list()`.
        """
        rules = self._by_direction.get(direction)
        if not rules:
            return None
        ctx = ctx or FaultContext(channel=self.channel)
        subject = Subject(direction, payload, meta, ctx)
        with self._lock:
            for rule in rules:
                if rule.exhausted or not rule.fires(subject):
                    continue
                target = plan if plan is not None else self._new_plan()
                before = len(target.notes)
                actx = ActionContext(direction, payload, meta, rule.rng, rule.id, ctx)
                try:
                    rule.action.apply(target, actx)
                except Exception as exc:  # noqa: BLE001 - a rule must never take the channel down
                    rule.errors += 1
                    rule.last_error = f"{type(exc).__name__}: {exc}"
                    continue
                rule.hits += 1
                self.applied += 1
                return AppliedFault(
                    rule_id=rule.id,
                    action=rule.action.type,
                    params=rule.action.params,
                    direction=direction,
                    hit=rule.hits,
                    plan=target,
                    notes_from=before,
                )
        return None
