"""HL7 v2 masked by terse path, datatype-aware, in the message's own delimiters and charset.

The message is read with the lossless model (`harness.hl7v2.message`): decoded before splitting, so a
GBK trail byte that equals `|` never moves a delimiter; each value is unescaped, masked and escaped
again, so pseudonyms can never break a field; only touched segments are re-encoded, in the message's
charset (a GBK message stays GBK), every other byte is the original's.

A rule on a field masks every repetition of that field in every occurrence of the segment, by the
field's datatype: `id` the CX.1 identifier; `name` XPN family (FN.1), given and middle names as one
name; `address` XAD street and other designation (city, province, postcode, country kept, as the
身份证 keeps its region); `phone` XTN.1, .4 (e-mail), .7 (local number) and .12; `date` the time stamp;
`text` every component; `redact` empties the field. A rule on a component (`PID-11.1`) masks that
component alone. Dates move by the offset of the patient of the PID the segment follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from harness.hl7v2.charset import CharsetError, encode
from harness.hl7v2.message import HL7ParseError, Message, parse_path
from harness.mask.error import MaskError
from harness.mask.policy import Rule
from harness.mask.sweep import Replacements

if TYPE_CHECKING:  # annotations only: importing the masker at run time would be a cycle
    from harness.mask.masker import Pass

_path = lru_cache(maxsize=8192)(parse_path)
"""Paths are built as text (`PID[1]-3[2].1`) and parsed once each: a message is read path by path."""

NAME_COMPONENTS = (1, 2, 3)
ADDRESS_COMPONENTS = (1, 2, 8)
PHONE_COMPONENTS = (1, 4, 7, 12)


class MaskedMessage:
    def __init__(self, msg: Message, as_text: bool) -> None:
        self.msg = msg
        self.as_text = as_text

    def render(self, replacements: Replacements) -> bytes | str:
        text = str(self.msg)
        swept = replacements.sweep(text)
        if self.as_text:
            return swept
        if swept == text:
            return self.msg.encode()
        try:
            return encode(swept, self.msg.charset.codec)
        except CharsetError as exc:  # pragma: no cover - pseudonyms use characters every CJK charset has
            raise MaskError(f"masked message cannot be written as {self.msg.charset.codec}: {exc}") from None


def mask(data: bytes | str, pass_: Pass, rules: Sequence[Rule], charset: str | None = None) -> MaskedMessage:
    try:
        msg = Message.parse(data, charset)
    except HL7ParseError as exc:
        raise MaskError(f"not a readable HL7 v2 message: {exc}") from None
    mask_message(msg, pass_, rules)
    return MaskedMessage(msg, isinstance(data, str))


def mask_message(msg: Message, pass_: Pass, rules: Sequence[Rule]) -> None:
    by_segment: dict[str, list[Rule]] = {}
    for rule in rules:
        if rule.how != "keep":
            by_segment.setdefault(rule.target[:3], []).append(rule)
    patients = [_patient_key(msg, pass_, n) for n in range(1, msg.count("PID") + 1)]
    pass_.patient = patients[0] if patients else None
    seen: dict[str, int] = {}
    try:
        for seg in msg.segment_ids:
            n = seen[seg] = seen.get(seg, 0) + 1
            if seg == "PID":
                pass_.patient = patients[n - 1]
            for rule in by_segment.get(seg, ()):
                _apply(msg, pass_, rule, seg, n)
    except (CharsetError, ValueError) as exc:
        raise MaskError(f"cannot mask this message: {exc}") from None
    finally:
        pass_.patient = None


def _patient_key(msg: Message, pass_: Pass, n: int) -> str | None:
    ids = []
    for field in (3, 2, 4):
        for r in _repetitions(msg, f"PID[{n}]-{field}"):
            value = msg.get(_path(f"{r}.1"))
            if value:
                ids.append(value)
    name = "".join(msg.get(_path(f"PID[{n}]-5.{c}")) or "" for c in NAME_COMPONENTS)
    return pass_.choose_patient(ids, [name] if name else [])


def _repetitions(msg: Message, field: str) -> list[str]:
    """Paths of the repetitions of a field that exist (`PID[1]-3[1]`, `PID[1]-3[2]`, ...)."""
    out = []
    r = 1
    while (value := msg.get_raw(_path(f"{field}[{r}]"))) is not None:
        if value:
            out.append(f"{field}[{r}]")
        r += 1
    return out


def _leaves(msg: Message, component: str) -> list[str]:
    """The leaf paths of one component: its subcomponents when it has any, else itself."""
    raw = msg.get_raw(_path(component))
    if not raw:
        return []
    sub = msg.delimiters.subcomponent
    if sub and sub in raw:
        return [f"{component}.{s}" for s in range(1, raw.count(sub) + 2)]
    return [component]


def _set(msg: Message, pass_: Pass, path: str, how: str, precision: str | None = None) -> None:
    value = msg.get(_path(path))
    if value:
        masked = pass_.value(how, value, precision=precision)
        if masked != value:
            msg.set(_path(path), masked)


def _apply(msg: Message, pass_: Pass, rule: Rule, seg: str, n: int) -> None:
    target = rule.target
    field_part = target[4:]
    number, _, rest = field_part.partition(".")
    field = f"{seg}[{n}]-{number}"
    if rule.how == "redact":
        for rep in reversed(_repetitions(msg, field)):
            msg.set_raw(_path(rep + (f".{rest}" if rest else "")), "")
        return
    for rep in _repetitions(msg, field):
        if rest:  # a rule on one component (or subcomponent): that value alone
            for leaf in _leaves(msg, f"{rep}.{rest}") if "." not in rest else [f"{rep}.{rest}"]:
                _set(msg, pass_, leaf, rule.how, rule.precision)
            continue
        if rule.how == "name":
            _name(msg, pass_, rep)
        elif rule.how == "address":
            for c in ADDRESS_COMPONENTS:
                for leaf in _leaves(msg, f"{rep}.{c}"):
                    _set(msg, pass_, leaf, "address")
        elif rule.how in ("phone", "email"):
            for c in PHONE_COMPONENTS:
                _set(msg, pass_, f"{rep}.{c}", "email" if c == 4 else "phone")
        elif rule.how == "text":
            raw = msg.get_raw(_path(rep)) or ""
            for c in range(1, raw.count(msg.delimiters.component) + 2):
                for leaf in _leaves(msg, f"{rep}.{c}"):
                    _set(msg, pass_, leaf, "text")
        else:  # id, date, region: the first component (CX.1, TS.1, the value of a plain field)
            for leaf in _leaves(msg, f"{rep}.1")[:1]:
                _set(msg, pass_, leaf, rule.how, rule.precision)


def _name(msg: Message, pass_: Pass, rep: str) -> None:
    """XPN family (its surname subcomponent FN.1 when it has subcomponents), given and middle names."""
    paths = []
    for c in NAME_COMPONENTS:
        leaves = _leaves(msg, f"{rep}.{c}")
        paths.append(leaves[0] if leaves else f"{rep}.{c}")
    parts = [msg.get(_path(p)) or "" for p in paths]
    if not any(parts):
        return
    for path, original, masked in zip(paths, parts, pass_.name(parts), strict=True):
        if original and masked != original:
            msg.set(_path(path), masked)
