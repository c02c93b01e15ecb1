"""Example requests kept beside a spec (`examples.yaml`, kind `examples`): templates with placeholders.

An example is a request written by hand for one operation, in the shape real senders use, with the values
a peer assigns (a sign-in number, a visit id) left as placeholders filled from earlier answers. The same
examples drive the simulators' tests and certification, so both agree on what a valid request is.

Placeholders, in any string of a template:

- `{{name}}` alone in a string is replaced by the value, keeping its type (a number stays a number);
- inside a longer string it is replaced by the value's text (`MZ{{uniq}}01`);
- names are values captured from earlier answers, `person.<field>` (the person the run uses),
  `uniq` (a token unique to one run of the examples), `msgid:<step>` (the message id a step was sent
  with) and `now:<strftime format>` (the run's start time).

Dates: an examples file written for one day (`day: 2026-01-05`) is moved to the month it runs in: every
date or date-time string within a year of that day, and every `yyyyMM` month, moves by the same number of
whole months, so a settlement month and its first and last days stay one calendar month.
A template that names an unknown placeholder is an error naming the placeholder.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from harness import specfile
from harness.specfile import SpecError

_WHOLE = re.compile(r"^\{\{([^{}]+)\}\}$")
_INLINE = re.compile(r"\{\{([^{}]+)\}\}")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?=$|[ T])")
_MONTH = re.compile(r"^(\d{4})(\d{2})$")


class MissingValue(KeyError):
    """A placeholder with no value (yet): the message names it and where it was used."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(slots=True)
class Examples:
    """One `examples.yaml`: its body as written, and the day its dates were written for."""

    path: Path
    family: str
    body: dict[str, Any]
    day: date | None = None
    spec: specfile.SpecFile | None = field(default=None, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


def load(path: Path, *, family: str | None = None) -> Examples:
    spec = specfile.load(path, family=family, kind="examples")
    day = spec.body.get("day")
    if day is not None and not isinstance(day, date):
        try:
            day = date.fromisoformat(str(day))
        except ValueError:
            raise SpecError(f"{path}: day: {day!r} is not a date (yyyy-mm-dd)") from None
    return Examples(path, spec.family, spec.body, day, spec)


def find(folder: Path) -> Path | None:
    """The examples file of a spec folder, when it has one."""
    path = folder / "examples.yaml"
    return path if path.is_file() else None


class Values(dict):
    """What placeholders resolve to: captured values, `person.*`, `uniq`, `msgid:*` and `now:FMT`."""

    def __init__(self, *args: Any, now: datetime | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now or datetime.now()

    def resolve(self, name: str) -> Any:
        if name.startswith("now:"):
            return f"{self.now:{name[4:]}}"
        if name in self:
            return self[name]
        known = ", ".join(sorted(self)) or "none"
        raise MissingValue(f"placeholder {{{{{name}}}}} has no value (known: {known})")


def fill(template: Any, values: Values) -> Any:
    """A deep copy of template with every placeholder replaced (see the module docstring)."""
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    if isinstance(template, str) and "{{" in template:
        whole = _WHOLE.match(template)
        if whole:
            return values.resolve(whole.group(1).strip())
        return _INLINE.sub(lambda m: str(values.resolve(m.group(1).strip())), template)
    return template


def placeholders(template: Any) -> set[str]:
    """Every placeholder name a template uses."""
    found: set[str] = set()
    stack = [template]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found.update(m.group(1).strip() for m in _INLINE.finditer(item))
    return found


def dig(value: Any, path: str) -> Any:
    """The value at a path such as `setlinfo.setl_id` or `insuinfo[0].insuplc_admdvs` (KeyError if absent)."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(value, list) or index >= len(value):
                raise KeyError(f"{path}: no item {index}")
            value = value[index]
        else:
            if not isinstance(value, dict) or part not in value:
                raise KeyError(f"{path}: no {part!r}")
            value = value[part]
    return value


def shift_dates(template: Any, written: date | None, today: date) -> Any:
    """template with its dates moved from the month it was written for to the month of `today`.

    Whole months, keeping the day of the month (clamped to the month's last day), so a period written
    as a calendar month (2026-01-01 to 2026-01-31, settlement month 202601) stays one.
    """
    if written is None:
        return template
    months = (today.year - written.year) * 12 + today.month - written.month
    if not months:
        return template

    def moved(year: int, month: int) -> tuple[int, int]:
        total = year * 12 + month - 1 + months
        return total // 12, total % 12 + 1

    def near(year: int, month: int) -> bool:
        return abs((year - written.year) * 12 + month - written.month) <= 12

    def move(text: str) -> str:
        m = _DATE.match(text)
        if m:
            year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if not (1 <= month <= 12 and near(year, month)):
                return text
            year, month = moved(year, month)
            day = min(day, calendar.monthrange(year, month)[1])
            return f"{year:04d}-{month:02d}-{day:02d}" + text[10:]
        m = _MONTH.match(text)
        if m and 1 <= int(m.group(2)) <= 12 and near(int(m.group(1)), int(m.group(2))):
            year, month = moved(int(m.group(1)), int(m.group(2)))
            return f"{year:04d}{month:02d}"
        return text

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, str):
            return move(item)
        return item

    return walk(template)
