"""The fault action registry: one small class per action type, registered under its type name.

Shaped like Toxiproxy's toxics: an action holds its validated JSON parameters and has one method that
acts, `apply(plan, ctx)`, which edits a plan and never touches a socket. Actions are registered per
protocol ("mllp" edits `harness.proxy.faults.plan.Plan`; HTTP actions will edit an HTTP plan), so the rule
engine and the admin API stay the same for both.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, ClassVar

from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params, RuleError

DIRECTIONS = ("request", "response")


class Action:
    """Base of every action; subclasses set `type`, `protocol` and implement `parse` and `apply`."""

    type: ClassVar[str] = ""
    protocol: ClassVar[str] = "mllp"
    directions: ClassVar[tuple[str, ...]] = DIRECTIONS
    """Which matched directions make sense for this action (duplicate cannot act on a reply)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        """The normalised JSON parameters (defaults filled in), as listed and recorded."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "action") -> Action:
        p = Params(data, where)
        params = cls.parse(p)
        p.finish(also=("type",))
        return cls(params)

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        """Validate and normalise the parameters; raise RuleError naming the bad key."""
        return {}

    def check_direction(self, direction: str, where: str = "match.direction") -> None:
        if direction not in self.directions:
            raise RuleError(
                where,
                f"action {self.type!r} cannot act on a {direction}; it acts on: {', '.join(self.directions)}",
            )

    def apply(self, plan: Any, ctx: ActionContext) -> None:
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, **self.params}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.params}>"


_REGISTRY: dict[str, dict[str, type[Action]]] = {}

_BUILTIN = {
    "mllp": (
        "delay",
        "drop",
        "nak",
        "late_ack",
        "corrupt",
        "close",
        "reset",
        "duplicate",
        "throttle",
        "hold_reply",
    ),
    "http": ("http",),  # the package harness.proxy.faults.actions.http registers every HTTP action
}


def register(cls: type[Action]) -> type[Action]:
    """Class decorator: make `cls` available under its `type` for its `protocol`."""
    if not cls.type:
        raise TypeError(f"{cls.__name__} has no type name")
    _REGISTRY.setdefault(cls.protocol, {})[cls.type] = cls
    return cls


def _load(protocol: str) -> dict[str, type[Action]]:
    """The protocol's actions, built-in ones first in their documented order."""
    builtin = _BUILTIN.get(protocol, ())
    for name in builtin:
        importlib.import_module(f"{__name__}.{name}")
    registered = _REGISTRY.get(protocol, {})
    order = {name: i for i, name in enumerate(builtin)}
    return dict(sorted(registered.items(), key=lambda item: order.get(item[0], len(order))))


def known_types(protocol: str = "mllp") -> list[str]:
    return list(_load(protocol))


def action_class(type_name: str, protocol: str = "mllp") -> type[Action]:
    actions = _load(protocol)
    try:
        return actions[type_name]
    except KeyError:
        known = ", ".join(actions) or "(none yet)"
        raise RuleError(
            "action.type", f"unknown action type {type_name!r} for {protocol}; known types: {known}"
        ) from None


def parse_action(data: Any, protocol: str = "mllp", where: str = "action") -> Action:
    """Build a validated action from its JSON object (`{"type": "nak", "code": "AE", ...}`)."""
    if not isinstance(data, Mapping):
        raise RuleError(where, f"expected a JSON object with a 'type', got {type(data).__name__}")
    type_name = data.get("type")
    if not isinstance(type_name, str) or not type_name:
        known = ", ".join(known_types(protocol))
        raise RuleError(f"{where}.type", f"required (one of: {known})")
    try:
        cls = action_class(type_name, protocol)
    except RuleError as exc:
        raise RuleError(f"{where}.type", exc.problem) from None
    return cls.from_json(data, where)
