"""Certifying an HL7 v2 receiver over MLLP against an interface profile (specs/hl7v2/*.yaml).

One operation per message type the profile allows. Every message has a control id, visit number and
patient of its own; it goes over MLLP with the harness's client, which waits for what MSH-15/16 ask
(harness.hl7v2.ackmode). Per message type:

- invalid messages, one per rule of the profile (a required field emptied, a code outside its value set,
  a value breaking its pattern or maximum length, a date that is not its datatype, too many repetitions,
  a forbidden field or segment, a required segment removed), a message type and a version the interface
  does not take, an empty MSH-10, MSH-18 naming a charset the bytes are not in, and a broken MSH: each
  must be refused (AE or AR; CE or CR in enhanced mode) with an ERR segment;
- the example, then generated messages (a generated patient: 身份证 in PID-3, name, sex, birth date,
  phone; coded fields given other codes of their value sets): accepted (AA, or CA then AA), and the ACK
  (`response`) must itself be valid HL7 v2 answering the message's control id.

Flows (examples.yaml) send message types in order for one patient and visit (ADT A01 → A08 → A03).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from hypothesis import strategies as st

from harness.certify.cases import ACCEPT, REJECT, Case, Judgement, Reply, Request
from harness.certify.engine import Context, Outcome, rows_of
from harness.certify.people import DEFAULT, Person, people
from harness.certify.results import Row
from harness.hl7v2.charset import declared_in, resolve
from harness.hl7v2.message import Message
from harness.hl7v2.meta import extract
from harness.hl7v2.validation.profile import FieldRule, Profile
from harness.hl7v2.validation.validator import Validator
from harness.spec.examples import Values, fill
from harness.spec.model import Interface

INVALID_CHECKS = (
    "required", "type", "length", "code", "datetime", "msgid",
    "envelope", "interaction", "charset", "structure",
)  # fmt: skip
DATES = {"DT": "2024/03/01", "DTM": "2024-03-01 08:30", "TS": "2024-03-01 08:30", "TM": "8:30 am"}


class Hl7v2Suite:
    family = "hl7v2"

    def __init__(self, interface: Interface) -> None:
        self.interface = interface
        self.profile: Profile = interface.native
        examples = interface.examples.body if interface.examples is not None else {}
        mine = (examples.get("profiles") or {}).get(self.profile.name) or {}
        folder = Path(interface.path).parent
        self.templates = {
            str(code): (folder / str(path)).read_text(encoding="utf-8")
            for code, path in (mine.get("messages") or {}).items()
            if (folder / str(path)).is_file()
        }
        self.flows = mine.get("flows") or {}
        self.validator = Validator()  # the standard alone: for the ACKs the target sends back
        self.interface_validator = Validator(profile=self.profile)  # the standard and the profile
        self.tag = f"{random.SystemRandom().randrange(36**3):03X}"
        self.cases = 0

    # -- rows and checks -------------------------------------------------------------------------
    def rows(self) -> Iterable[Row]:
        return rows_of(self.interface, self.flows)

    def checks(self, row: str) -> dict[str, str | None]:
        if row.startswith("flow:"):
            return {"flow": None}
        found = dict.fromkeys(("example", "generated", "response"))
        if row not in self.templates:
            return dict.fromkeys(
                (*found, "required"), f"no example message for {row} in specs/hl7v2/examples.yaml"
            )
        for check, *_ in self._invalid(row, self.message(row, DEFAULT)):
            found.setdefault(check, None)
        return {c: found[c] for c in _ORDER if c in found}

    # -- running ---------------------------------------------------------------------------------
    def run(self, row: str, ctx: Context) -> None:
        if row.startswith("flow:"):
            self._flow(row, ctx)
            return
        if any(ctx.wants(row, c) for c in INVALID_CHECKS):
            control = ctx.control(
                self.case(row, "example", "the unchanged message", self.message(row, DEFAULT), ACCEPT)
            )
            base = self.message(row, DEFAULT)
            for check, title, constraint, text, charset in self._invalid(row, base):
                if ctx.wants(row, check):
                    if check != "msgid" and not title.startswith("MSH-10"):
                        text = _msh(
                            [s for s in text.split("\r") if s], 10, self.next_id()
                        )  # one id a message
                    ctx.case(self.case(row, check, title, text, REJECT, constraint, charset=charset))
            ctx.unproven(row, INVALID_CHECKS, control)
        if ctx.wants(row, "example") or ctx.wants(row, "response"):
            outcome = ctx.case(self.case(row, "example", "the example", self.message(row, DEFAULT), ACCEPT))
            self._response(row, outcome, ctx)
        if ctx.wants(row, "generated"):
            coded = [r for r in self._rules(row) if r.component in (None, 1) and self._codes(r)]
            strategy = st.tuples(
                people(), st.tuples(*(st.one_of(st.none(), st.sampled_from(self._codes(r))) for r in coded))
            )

            def attempt(drawn: tuple[Person, tuple]) -> Outcome:
                person, codes = drawn
                text = self.message(row, person)
                for rule, code in zip(coded, codes, strict=True):
                    if code is not None and _get(text, rule) not in (None, ""):
                        text = _put(text, rule, code)
                outcome = ctx.exchange(
                    self.case(
                        row, "generated", f"a generated patient {person.name} ({person.certno})", text, ACCEPT
                    )
                )
                self._response(row, outcome, ctx)
                return outcome

            ctx.probe(row, "generated", strategy, attempt)

    def _rules(self, code: str) -> list[FieldRule]:
        rules = [r for rs in self.profile.common.fields.values() for r in rs]
        structure = code.replace("^", "_")
        for key in (code, structure):
            if key in self.profile.per_message:
                rules += [r for rs in self.profile.per_message[key].fields.values() for r in rs]
        return rules

    @staticmethod
    def _codes(rule: FieldRule) -> list[str]:
        """The codes a rule allows (its values, or its value set's codes, which the loader resolved)."""
        return sorted(rule.values) if rule.values else []

    def _invalid(self, code: str, text: str) -> list[tuple[str, str, str, str, str | None]]:
        """The invalid messages of a message type: (check, title, rule broken, message, charset to send in).

        Each candidate is kept only when the interface's validator (the standard and the profile) finds an
        error in it, so no case asks a target to refuse a message the spec allows (a segment the standard
        makes optional, a code that happens to be in a set).
        """
        out = []
        for check, title, constraint, message, charset in self._candidates(code, text):
            encoded = message.encode(charset or _codec(message), "replace")
            result = self.interface_validator.validate(encoded)
            if any(f.severity == "error" for f in result.findings):
                out.append((check, title, constraint, message, charset))
        return out

    def _candidates(self, code: str, text: str) -> Iterable[tuple[str, str, str, str, str | None]]:
        present = {s.split("|", 1)[0] for s in text.split("\r") if s}
        for rule in self._rules(code):
            if rule.segment not in present:
                continue
            value = _get(text, rule)
            where = f"{rule.path} ({self.profile.name})"
            if rule.usage == "R" and value not in (None, ""):
                check = "msgid" if rule.path == "MSH-10" else "required"
                yield check, f"{rule.path} emptied", f"{where}: usage R", _put(text, rule, ""), None
            if rule.usage == "X":
                yield (
                    "structure",
                    f"{rule.path} = 'X' (not supported)",
                    f"{where}: usage X",
                    _put(text, rule, "X"),
                    None,
                )
            if value in (None, ""):
                continue
            codes = self._codes(rule)
            if codes:
                bad = next(c for c in ("ZZ9", "QQ8", "XX7") if c not in codes)
                yield (
                    "code",
                    f"{rule.path} = {bad!r} (not in {rule.value_set or 'the allowed values'})",
                    f"{where}: {rule.value_set or ', '.join(codes)}",
                    _put(text, rule, bad),
                    None,
                )
            if rule.pattern is not None:
                bad = next(c for c in ("-", "?-?", "~x") if not rule.pattern.fullmatch(c))
                yield (
                    "code",
                    f"{rule.path} = {bad!r} (does not match {rule.pattern.pattern})",
                    f"{where}: pattern {rule.pattern.pattern}",
                    _put(text, rule, bad.replace("~", "")),
                    None,
                )
            if rule.max_length:
                bad = "9" * (rule.max_length + 1)
                yield (
                    "length",
                    f"{rule.path} of {len(bad)} characters (max {rule.max_length})",
                    f"{where}: max_length {rule.max_length}",
                    _put(text, rule, bad),
                    None,
                )
            if rule.datatype in DATES:
                bad = DATES[rule.datatype]
                yield (
                    "datetime",
                    f"{rule.path} = {bad!r} (not {rule.datatype})",
                    f"{where}: datatype {rule.datatype}",
                    _put(text, rule, bad),
                    None,
                )
            elif rule.datatype in ("NM", "SI"):
                yield (
                    "type",
                    f"{rule.path} = 'abc' (not {rule.datatype})",
                    f"{where}: datatype {rule.datatype}",
                    _put(text, rule, "abc"),
                    None,
                )
            if rule.max_repetitions and rule.max_repetitions > 0 and rule.component is None:
                reps = "~".join([value.split("~")[0]] * (rule.max_repetitions + 1))
                yield (
                    "structure",
                    f"{rule.path} repeated {rule.max_repetitions + 1} times (max {rule.max_repetitions})",
                    f"{where}: max {rule.max_repetitions}",
                    _put(text, rule, reps),
                    None,
                )
        segments = [s for s in text.split("\r") if s]
        for i, segment in enumerate(segments[1:], 1):
            name = segment.split("|", 1)[0]
            kept = "\r".join(segments[:i] + segments[i + 1 :]) + "\r"
            yield (
                "structure",
                f"the {name} segment removed",
                f"{name} required by the structure or the profile",
                kept,
                None,
            )
        if len(segments) > 2:
            moved = "\r".join([segments[0], segments[-1], *segments[1:-1]]) + "\r"
            last = segments[-1].split("|", 1)[0]
            yield (
                "structure",
                f"{last} moved right after MSH",
                "the segment order of the message structure",
                moved,
                None,
            )
        if isinstance(self.profile.z_segments, frozenset) or self.profile.z_segments == "forbid":
            z = "ZZZ|1|not an allowed Z-segment"
            yield (
                "structure",
                "a Z-segment ZZZ the interface does not take",
                f"z_segments {self.profile.z_segments}",
                "\r".join([*segments, z]) + "\r",
                None,
            )
        msh = segments[0].split("|")
        allowed = self.profile.message_types or {code}
        other = next(t for t in ("ADT^A99", "ORU^R01", "QRY^A19") if t not in allowed)
        yield (
            "interaction",
            f"MSH-9 {other} (a message type the interface does not take)",
            f"message_types {', '.join(sorted(allowed))}",
            _msh(segments, 9, other),
            None,
        )
        if self.profile.version:
            other_version = "2.3" if self.profile.version != "2.3" else "2.4"
            yield (
                "interaction",
                f"MSH-12 {other_version} (not the interface's version {self.profile.version})",
                f"version {self.profile.version}",
                _msh(segments, 12, other_version),
                None,
            )
        declared = msh[17] if len(msh) > 17 else ""
        if _has_non_ascii(text):
            if declared.upper().startswith("UNICODE") or not declared:
                yield (
                    "charset",
                    "MSH-18 says UTF-8 but the bytes are GB18030",
                    "the bytes are in the charset MSH-18 names",
                    text,
                    "gb18030",
                )
            else:
                yield (
                    "charset",
                    f"MSH-18 says {declared} but the bytes are UTF-8",
                    "the bytes are in the charset MSH-18 names",
                    text,
                    "utf-8",
                )
        broken = segments[0].replace("|^~\\&|", "|^~|", 1)
        yield (
            "envelope",
            "MSH-2 encoding characters cut to '^~' (a broken header)",
            "MSH-1/MSH-2 declare the delimiters",
            "\r".join([broken, *segments[1:]]) + "\r",
            None,
        )

    def _segment_rule(self, code: str, segment: str) -> str | None:
        for rules in (self.profile.per_message.get(code), self.profile.common):
            if rules is not None and segment in rules.segments:
                return rules.segments[segment].usage
        return None

    def _response(self, row: str, outcome: Outcome, ctx: Context) -> None:
        if not ctx.wants(row, "response") or not outcome.judgement.passed:
            return
        problems: list[str] = []
        sent = extract(outcome.case.request.body)
        for ack in outcome.reply.acks:
            result = self.validator.validate(ack)
            problems += [
                f"ACK {f.code} {f.location}: {f.message}" for f in result.findings if f.severity == "error"
            ]
            meta = extract(ack)
            if meta.ack_control_id != sent.control_id:
                problems.append(
                    f"ACK MSA-2 {meta.ack_control_id!r} is not the message's MSH-10 {sent.control_id!r}"
                )
        case = outcome.case
        judged = Judgement(
            not problems, "; ".join(problems[:5]) or "the ACK is valid HL7 v2 and names the message"
        )
        ctx.record(Outcome(replace(case, check="response"), outcome.reply, judged))

    def _flow(self, row: str, ctx: Context) -> None:
        flow = self.flows[row.removeprefix("flow:")]

        def steps(person: Person):
            values = self.values(person)
            for code in flow.get("steps") or []:
                values["control_id"] = self.next_id()
                yield self.case(row, "flow", str(code), self.message(str(code), person, values), ACCEPT)

        ctx.probe(row, "flow", people(), lambda person: ctx.walk(steps(person)))

    # -- judging ---------------------------------------------------------------------------------
    def judge(self, case: Case, reply: Reply) -> Judgement:
        codes = [extract(a).ack_code for a in reply.acks]
        shown = "+".join(c or "?" for c in codes) or "no ACK"
        if reply.error is not None and not reply.acks:
            return Judgement(False, f"no answer: {reply.error}")
        if case.expect == ACCEPT:
            if reply.outcome in ("ok", "no_ack_expected"):
                return Judgement(True, f"{shown} ({reply.outcome})")
            return Judgement(False, f"refused: {shown}: {_err_text(reply)}")
        if reply.outcome in ("ok", "no_ack_expected"):
            return Judgement(False, f"accepted ({shown}) although the spec says it must be refused")
        if reply.outcome != "nak":
            return Judgement(
                False, f"{reply.outcome} ({shown}); the spec refuses with AE or AR and an ERR segment"
            )
        if not any(re.search(rb"(^|\r)ERR\|", a) for a in reply.acks):
            return Judgement(False, f"{shown} without an ERR segment saying why")
        return Judgement(True, f"{shown}: {_err_text(reply)[:160]}")

    # -- passive ---------------------------------------------------------------------------------
    def passive(self, request: Request, reply: Reply) -> tuple[str | None, list[tuple[str, Judgement]]]:
        """A captured message: its type, and the request, rejection and response judgements."""
        meta = extract(request.body)
        code = meta.message_code
        if not code:
            return None, []
        result = self.interface_validator.validate(request.body)
        problems = [f"{f.code} {f.location}: {f.message}" for f in result.findings if f.severity == "error"]
        out: list[tuple[str, Judgement]] = [("request", Judgement.of(problems, "the message conforms"))]
        if problems:
            out.append(("rejected", self.judge(Case.captured(code, "rejected", request, REJECT), reply)))
        if reply.acks:
            found = []
            for ack in reply.acks:
                garbled = any(f.code == "HL7-PARSE-CHARSET" for f in result.findings)
                unreadable = any(f.code.startswith("HL7-PARSE-") for f in result.findings)
                for f in self.validator.validate(ack).findings:
                    # echoes of the message's own faults are not the ACK's: a message without MSH-10 (or one
                    # that cannot be read) gets an ACK without MSA-2, one whose bytes are not its MSH-18
                    # charset gets them echoed in MSH
                    nameless = not meta.control_id or unreadable
                    orphan = nameless and f.location.segment == "MSA" and f.location.field == 2
                    echoed = garbled and f.code == "HL7-PARSE-CHARSET"
                    if f.severity == "error" and not orphan and not echoed:
                        found.append(f"ACK {f.code} {f.location}: {f.message}")
                if extract(ack).ack_control_id not in (meta.control_id, None, ""):
                    found.append(
                        f"ACK MSA-2 {extract(ack).ack_control_id!r} is not MSH-10 {meta.control_id!r}"
                    )
            out.append(("response", Judgement.of(found, "the ACK is valid HL7 v2 and names the message")))
        return code, out

    # -- building --------------------------------------------------------------------------------
    def next_id(self) -> str:
        self.cases += 1
        return f"C{self.tag}{datetime.now():%H%M%S}{self.cases:05d}"

    def values(self, person: Person) -> Values:
        values = Values(person.values())
        self.cases += 1
        values.update(
            uniq=f"{self.tag}{self.cases:05d}",
            visit=f"{self.tag}{self.cases:06d}"[-12:],
            barcode=f"{random.SystemRandom().randrange(10**12):012d}",
            control_id=self.next_id(),
        )
        return values

    def message(self, code: str, person: Person, values: Values | None = None) -> str:
        """The example of a message type for a person, CR segment ends, placeholders filled."""
        values = values or self.values(person)
        lines = [line for line in self.templates[code].splitlines() if line.strip()]
        return "\r".join(fill(line, values) for line in lines) + "\r"

    def case(
        self,
        op: str,
        check: str,
        title: str,
        text: str,
        expect: str,
        constraint: str = "",
        *,
        charset: str | None = None,
    ) -> Case:
        codec = charset or _codec(text)
        body = text.encode(codec, "replace")
        return Case(op, check, title, Request(body, "SEND", "", {}, charset=codec), expect, constraint)


_ORDER = ("example", "generated", "response", "required", "type", "length", "code", "datetime", "msgid",
          "envelope", "interaction", "charset", "structure")  # fmt: skip


def _codec(text: str) -> str:
    declared = declared_in(text.split("\r", 1)[0].encode("utf-8", "replace"))
    return resolve(declared, None).codec


def _has_non_ascii(text: str) -> bool:
    return not text.isascii()


def _msh(segments: list[str], field: int, value: str) -> str:
    msh = segments[0].split("|")
    while len(msh) <= field - 1:
        msh.append("")
    msh[field - 1] = value
    return "\r".join(["|".join(msh), *segments[1:]]) + "\r"


def _get(text: str, rule: FieldRule) -> str | None:
    """The value a rule is about: the field as encoded (first repetition), or the component unescaped."""
    try:
        message = Message.parse(text)
    except ValueError:
        return None
    if rule.component is None:
        return message.get_raw(f"{rule.segment}-{rule.field}")
    return message.get(rule.path)


def _put(text: str, rule: FieldRule, value: str) -> str:
    """The message with the rule's field (all its repetitions) or component set to value."""
    segments = text.split("\r")
    for i, segment in enumerate(segments):
        parts = segment.split("|")
        if parts[0] != rule.segment:
            continue
        index = rule.field if rule.segment != "MSH" else rule.field - 1
        while len(parts) <= index:
            parts.append("")
        if rule.component is None:
            parts[index] = value
        else:
            comps = parts[index].split("~")[0].split("^")
            while len(comps) < rule.component:
                comps.append("")
            comps[rule.component - 1] = value
            parts[index] = "^".join(comps)
        segments[i] = "|".join(parts)
        break
    return "\r".join(segments)


def _err_text(reply: Reply) -> str:
    """What the ACKs say: ERR-8 (or ERR-1..3 before v2.5) and MSA-3, escapes resolved."""
    texts = []
    for ack in reply.acks:
        try:
            message = Message.parse(ack)
        except ValueError:
            continue
        for n in range(1, message.count("ERR") + 1):
            text = message.get(f"ERR[{n}]-8") or message.get(f"ERR[{n}]-3") or message.get(f"ERR[{n}]-1")
            if text:
                texts.append(text)
        if message.get("MSA-3"):
            texts.append(message.get("MSA-3") or "")
    return "; ".join(texts) or "(no ERR text)"
