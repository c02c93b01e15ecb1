"""HL7 v2 messages for load: real sample messages turned into templates, filled fresh for every send.

A template is any HL7 v2 message (a fixture, a file of the interface's own samples, a captured
request): it is decoded in its charset (MSH-18, else UTF-8, else GB18030), and the fields that must
differ between messages become slots: MSH-7 and EVN-2 (now), MSH-10 (a unique control id), PID-3 (a
new medical record number, and the 身份证 in the repetition typed ``ID`` or assigned by ``CHN``), PID-5
(a name), PID-7 and PID-8 (birth date and sex matching the 身份证), PV1-19 (a visit number), ORC-2/3 and
OBR-2/3 (order numbers). Everything else — segments, Z-segments, OBX values, the charset — stays as the
sample has it, so the load looks like the interface's own traffic.

Compiling happens once; filling a template is a join and an encode (a few microseconds), so the
factory is not what limits a load generator. MSH-15/16 may be overridden to ask for enhanced-mode
acknowledgements.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from harness.hl7v2.ackmode import AckMode
from harness.hl7v2.charset import declared_in, resolve
from harness.load.ids import ControlIds
from harness.load.people import People

__all__ = ["Hl7v2Factory", "Message", "Template", "TemplateError"]

_MARK = "\x00"


class TemplateError(ValueError):
    """A sample that cannot be a template (no MSH, undecodable, no message type)."""


@dataclass(frozen=True, slots=True)
class Message:
    name: str
    """``ADT^A04``: the request name load statistics use."""
    payload: bytes
    control_id: str
    mode: AckMode


class Template:
    """One sample message with slots (see the module docstring)."""

    def __init__(self, payload: bytes, *, source: str = "template", ack: str | None = None) -> None:
        self.source = source
        declared = declared_in(payload)
        self.codec = resolve(declared, data=payload).codec
        try:
            text = payload.decode(self.codec)
        except UnicodeDecodeError as exc:
            raise TemplateError(f"{source}: does not decode as {self.codec}: {exc}") from None
        text = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r\x0b\x1c")
        start = text.find("MSH")
        if start < 0 or len(text) < start + 8:
            raise TemplateError(f"{source}: no MSH segment")
        text = text[start:]
        if _MARK in text:
            raise TemplateError(f"{source}: holds a NUL character")
        self.field_sep = text[3]
        enc = text[4:].split(self.field_sep, 1)[0]
        self.comp = enc[0] if enc else "^"
        self.rep = enc[1] if len(enc) > 1 else "~"
        segments = [s.split(self.field_sep) for s in text.split("\r") if s]
        msh = segments[0]
        if len(msh) < 12:
            raise TemplateError(f"{source}: MSH has {len(msh)} fields; needs MSH-9 to MSH-12 at least")
        mtype = msh[8].split(self.rep)[0].split(self.comp)
        if not mtype[0]:
            raise TemplateError(f"{source}: MSH-9 (message type) is empty")
        self.name = f"{mtype[0]}^{mtype[1]}" if len(mtype) > 1 and mtype[1] else mtype[0]
        accept, app = _msh(msh, 15), _msh(msh, 16)
        if ack is not None:
            accept, app = _ack_fields(ack, source)
            while len(msh) < 16:
                msh.append("")
            msh[14], msh[15] = accept, app
        self.mode = AckMode.of(accept, app)
        self.slots: set[str] = set()
        for fields in segments:
            self._mark(fields)
        joined = "\r".join(self.field_sep.join(f) for f in segments) + "\r"
        self._parts = joined.split(_MARK)

    def _slot(self, name: str) -> str:
        self.slots.add(name)
        return f"{_MARK}{name}{_MARK}"

    def _mark(self, fields: list[str]) -> None:
        seg = fields[0]

        def put(n: int, name: str, only_if_valued: bool = True) -> None:
            index = n if seg != "MSH" else n - 1
            if index < len(fields) and (fields[index] or not only_if_valued):
                fields[index] = self._slot(name)

        if seg == "MSH":
            put(7, "now", only_if_valued=False)
            put(10, "control_id", only_if_valued=False)
        elif seg == "EVN":
            put(2, "now")
        elif seg == "PID":
            self._mark_pid(fields)
        elif seg == "PV1":
            put(19, "visit")
        elif seg in ("ORC", "OBR"):
            put(2, "placer")
            put(3, "filler")

    def _mark_pid(self, fields: list[str]) -> None:
        comp = self.comp
        if len(fields) > 3 and fields[3]:
            reps = fields[3].split(self.rep)
            out = []
            mrn_done = False
            for rep in reps:
                parts = rep.split(comp)
                typed = parts[4] if len(parts) > 4 else ""
                authority = parts[3] if len(parts) > 3 else ""
                if typed == "ID" or authority == "CHN":
                    parts[0] = self._slot("idcard")
                elif not mrn_done:
                    parts[0] = self._slot("mrn")
                    mrn_done = True
                out.append(comp.join(parts))
            fields[3] = self.rep.join(out)
        if len(fields) > 5 and fields[5]:
            first, *rest = fields[5].split(self.rep)
            parts = first.split(comp)
            if len(parts) > 1:
                parts[0], parts[1] = self._slot("family"), self._slot("given")
            else:
                parts[0] = self._slot("name")
            fields[5] = self.rep.join([comp.join(parts), *rest])
        if len(fields) > 7 and fields[7]:
            fields[7] = self._slot("birth")
        if len(fields) > 8 and fields[8]:
            fields[8] = self._slot("sex")

    def fill(self, values: Mapping[str, str]) -> bytes:
        parts = self._parts
        out = list(parts)
        for i in range(1, len(parts), 2):
            out[i] = values[parts[i]]
        return "".join(out).encode(self.codec)


def _msh(msh: list[str], n: int) -> str:
    return msh[n - 1] if len(msh) >= n else ""


ACK_MODES = {"original": ("", ""), "enhanced": ("AL", "AL")}


def _ack_fields(ack: str, source: str) -> tuple[str, str]:
    """'original', 'enhanced' or 'MSH15/MSH16' such as 'AL/NE'."""
    if ack in ACK_MODES:
        return ACK_MODES[ack]
    accept, sep, app = ack.partition("/")
    codes = ("", "AL", "NE", "ER", "SU")
    if not sep or accept not in codes or app not in codes:
        raise TemplateError(
            f"{source}: ack {ack!r}: expected original, enhanced or MSH-15/MSH-16 such as AL/NE"
        )
    return accept, app


class Hl7v2Factory:
    """Messages from weighted templates, each with fresh identifiers and an invented patient."""

    def __init__(
        self,
        templates: Mapping[str, tuple[Template, float]],
        ids: ControlIds,
        *,
        seed: int | None = None,
        people: People | None = None,
        clock=time.time,
    ) -> None:
        if not templates:
            raise TemplateError("no message templates")
        self.templates = dict(templates)
        self.names = list(self.templates)
        self.weights = [w for _, w in self.templates.values()]
        self._cumulative = list(itertools.accumulate(self.weights))
        self.ids = ids
        self.rng = random.Random(seed)
        self.people = people or People(self.rng.randrange(2**32))
        """Shared by the users of one process, so its pool of patients fills once."""
        self._mrn = "M" + ids.prefix[1:]
        self.clock = clock
        self._second = -1
        self._now = ""

    def pick(self, mix: Mapping[str, float] | None = None) -> str:
        """A message name by the profile's weights, or by `mix` (a captured minute) where it has any."""
        if mix:
            names = [n for n in mix if n in self.templates]
            if names:
                return self.rng.choices(names, [mix[n] for n in names])[0]
        if len(self.names) == 1:
            return self.names[0]
        return self.rng.choices(self.names, cum_weights=self._cumulative)[0]

    def make(self, name: str | None = None) -> Message:
        template = self.templates[name or self.pick()][0]
        now = int(self.clock())
        if now != self._second:
            self._second = now
            self._now = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
        control_id = self.ids.next()
        values = {"now": self._now, "control_id": control_id}
        slots = template.slots
        if slots & _PERSON_SLOTS:
            person = self.people.next()
            values.update(
                idcard=person.idcard,
                mrn=f"{self._mrn}{person.number:06d}",
                family=person.family,
                given=person.given,
                name=person.name,
                birth=person.birth8,
                sex=person.sex,
            )
        if "visit" in slots:
            values["visit"] = "V" + control_id[1:]
        if "placer" in slots:
            values["placer"] = "P" + control_id[1:]
        if "filler" in slots:
            values["filler"] = "F" + control_id[1:]
        return Message(template.name, template.fill(values), control_id, template.mode)


_PERSON_SLOTS = frozenset({"idcard", "mrn", "family", "given", "name", "birth", "sex"})


def templates_of(settings: Mapping[str, object]) -> dict[str, tuple[Template, float]]:
    """The compiled templates of a plan's ``traffic.mllp`` section (bytes embedded as base64)."""
    import base64

    out = {}
    for name, spec in settings["messages"].items():  # type: ignore[union-attr]
        payload = base64.b64decode(spec["template"])
        template = Template(payload, source=spec.get("source", name), ack=spec.get("ack"))
        out[name] = (template, float(spec.get("weight", 1.0)))
    return out
