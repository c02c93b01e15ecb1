"""Reading a fault rule's JSON parameters with errors that name the key and the value.

Rules come from engineers typing JSON on a command line or in YAML, so every complaint says where
(`action.ms`, `faults[2].match.every_nth`) and what was wrong, and unknown keys are refused with the
list of known ones instead of being silently ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

MAX_INTEGER = 2**63 - 1
"""The largest whole number a rule parameter may hold unless the key sets its own maximum: a 64-bit
value, so no count, offset or seed can overflow a float or a C long when the rule acts."""
MAX_JSON_DEPTH = 16
"""Rules nest a few levels (rule, match, paths); deeper JSON is refused before it is walked."""
MAX_NUMBER_CHARS = 24


class RuleError(ValueError):
    """A fault rule that cannot be accepted; the message names the bad key and value."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}" if where else problem)

    def within(self, prefix: str) -> RuleError:
        """The same error located inside `prefix` (e.g. `faults[2]`)."""
        where = f"{prefix}.{self.where}" if self.where else prefix
        return RuleError(where, self.problem)


_MISSING = object()


class Params:
    """Validated access to one JSON object; call `finish()` last to refuse unknown keys."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise RuleError(where, f"expected a JSON object, got {_show(data)}")
        self.data = data
        self.where = where
        self._used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, default: Any) -> Any:
        self._used.add(key)
        value = self.data.get(key, _MISSING)
        if value is _MISSING or value is None:
            return _MISSING if default is _MISSING else default
        return value

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def required(self, key: str, what: str) -> None:
        if not self.has(key):
            raise RuleError(self._key(key), f"required ({what})")

    def number(
        self,
        key: str,
        default: Any = None,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
    ) -> float | Any:
        value = self._get(key, default)
        if value is _MISSING or value is default:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RuleError(self._key(key), f"expected a number, got {_show(value)}")
        if minimum is not None and value < minimum:
            raise RuleError(self._key(key), f"must be at least {minimum:g}, got {value!r}")
        if maximum is not None and value > maximum:
            raise RuleError(self._key(key), f"must be at most {maximum:g}, got {value!r}")
        if above is not None and value <= above:
            raise RuleError(self._key(key), f"must be greater than {above:g}, got {value!r}")
        return value

    def integer(
        self, key: str, default: Any = None, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | Any:
        value = self._get(key, default)
        if value is _MISSING or value is default:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleError(self._key(key), f"expected an integer, got {_show(value)}")
        if maximum is None and abs(value) > MAX_INTEGER:
            raise RuleError(self._key(key), f"{_show(value)} is out of range (at most {MAX_INTEGER})")
        if minimum is not None and value < minimum:
            raise RuleError(self._key(key), f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise RuleError(self._key(key), f"must be at most {maximum}, got {value}")
        return value

    def string(self, key: str, default: Any = None) -> str | Any:
        value = self._get(key, default)
        if value is _MISSING or value is default:
            return default
        if not isinstance(value, str):
            raise RuleError(self._key(key), f"expected a string, got {_show(value)}")
        return value

    def choice(self, key: str, choices: Iterable[str], default: Any = None) -> str | Any:
        options = tuple(choices)
        value = self.string(key, default)
        if value is default:
            return default
        if value not in options:
            raise RuleError(self._key(key), f"{value!r} is not one of {', '.join(options)}")
        return value

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise RuleError(self._key(key), f"expected a JSON object, got {_show(value)}")
        return value

    def raw(self, key: str) -> Any:
        value = self._get(key, None)
        return value

    def finish(self, *, also: Iterable[str] = ()) -> None:
        """Refuse keys nobody read (typos such as `evry_nth`), listing the known ones."""
        known = self._used | set(also)
        unknown = [k for k in self.data if k not in known]
        if unknown:
            key = unknown[0]
            raise RuleError(
                self._key(str(key)),
                f"unknown key; known keys here: {', '.join(sorted(known)) or '(none)'}",
            )


class _NumberTooLong(ValueError):
    pass


def _bounded_number(kind: type) -> Any:
    def convert(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            raise _NumberTooLong(text[:20])
        value = kind(text)
        if kind is float and not math.isfinite(value):
            raise _NumberTooLong(text[:20])
        return value

    return convert


def _refuse_constant(name: str) -> Any:
    raise RuleError("", f"{name} is not a number a rule can use")


def _depth(value: Any) -> int:
    """How deeply `value` nests (walked without recursion, stopping past MAX_JSON_DEPTH)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return deepest


def load_rule_json(text: str) -> Any:
    """Rule JSON from an admin request or the command line; every way it can be unusable is a RuleError.

    Numbers longer than 24 characters, NaN/Infinity and nesting deeper than 16 levels are refused here,
    so neither the JSON decoder (its digit limit, its recursion) nor a rule ever sees them.
    """
    try:
        data = json.loads(
            text,
            parse_int=_bounded_number(int),
            parse_float=_bounded_number(float),
            parse_constant=_refuse_constant,
        )
    except _NumberTooLong as exc:
        limit = f"at most {MAX_NUMBER_CHARS} characters, finite"
        raise RuleError("", f"number {exc} is too large for a rule ({limit})") from None
    except RuleError:
        raise
    except json.JSONDecodeError as exc:
        raise RuleError("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise RuleError("", f"JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:
        raise RuleError("", f"not usable JSON: {exc}") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise RuleError("", f"JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    return data


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
