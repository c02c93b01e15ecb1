"""Certifying a medical-insurance (医保) interface: cases from specs/medins and its examples.

Every case runs on state built for it: a fresh "world" (sign-in, a person, a settled outpatient visit and
inpatient stay, from examples.yaml) and the steps the transaction's example needs first, so a case is
refused for the one thing it changes and a target's mistake on one case cannot spill into the next.
Per transaction:

- invalid cases, on one fresh world: for every field of the example the constraints of its rule
  (required, type, length, code set / values / pattern, date format) via harness.certify.fields, the
  envelope (not JSON, input not an object, a required envelope field missing), the msgid's composition
  (fixmedins_code + yyyyMMddHHmmss + 4-digit serial) and the transaction number; each must get infcode -1
  with an err_msg;
- the example, on its own fresh world: infcode 0, and its output must match the transaction's output
  nodes (`response`);
- generated valid cases (hypothesis): the example with optional fields left out or filled with
  generated values, each on a fresh world.

Flows (examples.yaml `flows`) run with a generated person: sign-in, 1101 with the person's 身份证, the
visit or stay, with every value chained from earlier answers and repeats that must be refused.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from hypothesis import strategies as st

from harness.certify import fields
from harness.certify.cases import ACCEPT, REJECT, Case, Judgement, Reply, Request
from harness.certify.engine import Context, Outcome, Unprepared, rows_of
from harness.certify.people import DEFAULT, Person, people
from harness.certify.results import Row
from harness.spec.examples import MissingValue, Values, dig, fill, shift_dates
from harness.spec.medins import checks as medins_checks
from harness.spec.medins.model import MedinsSpec, Transaction
from harness.spec.model import Interface

JSON = {"Content-Type": "application/json; charset=utf-8"}
INVALID = ("required", "type", "length", "code", "datetime")
INVALID_CHECKS = (*INVALID, "msgid", "envelope", "interaction")


class MedinsSuite:
    family = "medins"

    def __init__(
        self, interface: Interface, *, today: date | None = None, now: datetime | None = None
    ) -> None:
        self.interface = interface
        self.spec: MedinsSpec = interface.native
        self.now = now or datetime.now()
        loaded = interface.examples
        body = loaded.body if loaded is not None else {}
        self.data = shift_dates(copy.deepcopy(body), loaded.day if loaded else None, today or self.now.date())
        transports = self.spec.envelope.get("transports") or {}
        self.paths = {name: str(t.get("path") or "") for name, t in transports.items() if isinstance(t, dict)}
        self.serial = 0
        # Names no earlier run against the same target used: visit numbers, record keys, institutions.
        entropy = random.SystemRandom()
        self.tag = _base36(entropy.randrange(36**5)).rjust(5, "0")
        self.institution = entropy.randrange(100_000)
        self.worlds = 0

    # -- rows and checks -------------------------------------------------------------------------
    def rows(self) -> Iterable[Row]:
        return rows_of(self.interface, self.data.get("flows"))

    def checks(self, row: str) -> dict[str, str | None]:
        if row.startswith("flow:"):
            return {"flow": None}
        tx = self.spec.transactions[row]
        case = (self.data.get("cases") or {}).get(row)
        found: dict[str, str | None] = {"example": None, "generated": None}
        if tx.output:
            found["response"] = None
        if case is None:
            reason = "no example request for it in examples.yaml"
            return {**dict.fromkeys(found, reason), **dict.fromkeys(("required", "envelope"), reason)}
        for slot in fields.slots(case.get("input") or {}, tx.input, prefix="input"):
            for mutation in fields.mutations(slot, self._codes):
                found.setdefault(mutation.check, None)
        if self._transport(case) == "national":
            found["msgid"] = None
        found["envelope"] = None
        found["interaction"] = None
        return {c: found[c] for c in _ORDER if c in found}

    # -- running ---------------------------------------------------------------------------------
    def run(self, row: str, ctx: Context) -> None:
        if row.startswith("flow:"):
            self._flow(row, ctx)
            return
        tx = self.spec.transactions[row]
        case = self.data["cases"][row]
        if any(ctx.wants(row, c) for c in INVALID_CHECKS):
            self._invalid(tx, case, ctx)
        if ctx.wants(row, "example") or ctx.wants(row, "response"):
            world = self.world(ctx)
            world.after(case)
            outcome = ctx.exchange(
                world.case(tx.infno, case.get("input") or {}, case, "example", "the example")
            )
            ctx.record(outcome)
            self._response(tx, outcome, ctx)
        if ctx.wants(row, "generated"):
            template = case.get("input") or {}
            slots = fields.slots(template, tx.input, prefix="input")
            strategy = st.tuples(people(), fields.varied(template, slots, self._codes))

            def attempt(drawn: tuple[Person, dict]) -> Outcome:
                person, variant = drawn
                world = self.world(ctx, person)
                world.after(case)
                changed = fields.differences(template, variant, "input")
                title = f"for {person.name} ({person.certno})" + (
                    f", {'; '.join(changed)}" if changed else ""
                )
                outcome = ctx.exchange(world.case(tx.infno, variant, case, "generated", title))
                self._response(tx, outcome, ctx)
                return outcome

            ctx.probe(row, "generated", strategy, attempt)

    def _invalid(self, tx: Transaction, case: dict, ctx: Context) -> None:
        twin = self.world(ctx)
        twin.after(case)
        control = ctx.control(
            twin.case(tx.infno, case.get("input") or {}, case, "example", "the unchanged request")
        )
        world = self.world(ctx)
        world.after(case)
        base = world.fill(case.get("input") or {})
        envelope = world.envelope(tx.infno, base, case)
        transport = self._transport(case)
        for slot in fields.slots(base, tx.input, prefix="input"):
            for mutation in fields.mutations(slot, self._codes):
                if not ctx.wants(tx.infno, mutation.check):
                    continue

                def attempt(value: Any, slot=slot, mutation=mutation) -> Outcome:
                    env = dict(envelope, msgid=world.msgid(), input=fields.put(base, slot.path, value))
                    return ctx.exchange(
                        self._case(
                            tx.infno,
                            mutation.check,
                            mutation.title(value),
                            env,
                            transport,
                            REJECT,
                            mutation.constraint,
                        )
                    )

                ctx.probe(
                    tx.infno,
                    mutation.check,
                    mutation.values,
                    attempt,
                    examples=ctx.invalid_examples,
                    key=slot.shown,
                )
        if ctx.wants(tx.infno, "msgid"):
            code = str(envelope.get("fixmedins_code") or "")
            stamp = f"{self.now:%Y%m%d%H%M%S}"
            for title, msgid in (
                ("msgid without the fixmedins_code prefix", f"X{stamp}0001"),
                ("msgid with a 3-digit serial", f"{code}{stamp}001"),
                (
                    "msgid whose time is not a time (month 13)",
                    f"{code}{self.now:%Y}13{self.now:%d%H%M%S}0001",
                ),
            ):
                env = dict(envelope, msgid=msgid)
                ctx.case(
                    self._case(
                        tx.infno,
                        "msgid",
                        f"{title}: {msgid}",
                        env,
                        transport,
                        REJECT,
                        "msgid = fixmedins_code + yyyyMMddHHmmss + 4-digit serial (V)",
                    )
                )
        if ctx.wants(tx.infno, "envelope"):
            body = json.dumps(dict(envelope, msgid=world.msgid()), ensure_ascii=False).encode()
            ctx.case(
                self._raw(
                    tx.infno,
                    "envelope",
                    "the envelope cut short (not JSON)",
                    body[: len(body) // 2],
                    transport,
                    "the body is one JSON object (V)",
                )
            )
            env = dict(envelope, msgid=world.msgid(), input="data")
            ctx.case(
                self._case(
                    tx.infno,
                    "envelope",
                    "input is a string, not an object",
                    env,
                    transport,
                    REJECT,
                    "input is a JSON object (V)",
                )
            )
            required = [
                n for n, r in self.spec.envelope["request"].items() if r.get("required") and n != "input"
            ]
            optional = set(tx.behaviour.get("envelope_optional", ())) | set(case.get("envelope") or {})
            required = [n for n in required if n not in optional]
            if required:
                name = required[sorted(self.spec.transactions).index(tx.infno) % len(required)]
                env = {k: v for k, v in envelope.items() if k != name}
                env["msgid"] = world.msgid() if name != "msgid" else None
                env = {k: v for k, v in env.items() if v is not None}
                ctx.case(
                    self._case(
                        tx.infno,
                        "envelope",
                        f"envelope field {name} removed",
                        env,
                        transport,
                        REJECT,
                        f"envelope {name} required (V)",
                    )
                )
        if ctx.wants(tx.infno, "interaction"):
            unknown = "9999" if "9999" not in self.spec.transactions else "9998"
            env = dict(envelope, msgid=world.msgid(), infno=unknown)
            ctx.case(
                self._case(
                    tx.infno,
                    "interaction",
                    f"infno {unknown} (no such transaction)",
                    env,
                    transport,
                    REJECT,
                    "infno names a transaction of the interface",
                )
            )
        ctx.unproven(tx.infno, INVALID_CHECKS, control)

    def _response(self, tx: Transaction, outcome: Outcome, ctx: Context) -> None:
        if not ctx.wants(tx.infno, "response") or not outcome.judgement.passed:
            return
        answer = outcome.reply.json()
        case = replace(outcome.case, check="response")
        if answer is None:  # a file download (9102): the body is the file
            ctx.record(Outcome(case, outcome.reply, Judgement(True, "a file")))
            return
        problems = self._response_problems(answer)
        problems += medins_checks.check_output(self.spec, tx, answer.get("output"))
        ok = f"the envelope and output {', '.join(tx.output) or ''} match the spec".replace("  ", " ")
        ctx.record(Outcome(case, outcome.reply, Judgement.of(problems, ok)))

    def _flow(self, row: str, ctx: Context) -> None:
        flow = self.data["flows"][row.removeprefix("flow:")]

        def steps(person: Person):
            world = World(self, ctx, person, steps=False)
            sent: dict[str, tuple[str, dict, dict]] = {}
            for step in flow.get("steps") or []:
                again = step.get("again")
                if again:
                    infno, template, case = sent[again]
                    expect, title = (
                        step.get("expect", REJECT),
                        f"{again} ({infno}) sent again: {step.get('why', '')}",
                    )
                else:
                    infno, template, case = str(step["infno"]), step.get("input") or {}, {**flow, **step}
                    expect, title = step.get("expect", ACCEPT), f"{step.get('name', infno)} ({infno})"
                    case["envelope"] = {**(flow.get("envelope") or {}), **(step.get("envelope") or {})}
                try:
                    built = world.case(infno, template, case, "flow", title, expect=expect, operation=row)
                except MissingValue as exc:
                    raise Unprepared(f"{title}: {exc}") from None
                outcome = yield built
                if step.get("name"):
                    sent[step["name"]] = (infno, template, case)
                world.capture(step.get("capture") or {}, outcome.reply.json() or {})

        ctx.probe(row, "flow", people(), lambda person: ctx.walk(steps(person)))

    # -- judging ---------------------------------------------------------------------------------
    def judge(self, case: Case, reply: Reply) -> Judgement:
        if reply.error is not None:
            return Judgement(False, f"no answer: {reply.error}")
        if reply.status != 200:
            want = "infcode 0" if case.expect == ACCEPT else "infcode -1 with err_msg"
            return Judgement(False, f"HTTP {reply.status}; the spec answers HTTP 200 with {want}")
        answer = reply.json()
        if answer is None:
            if case.expect == ACCEPT and reply.headers.get("content-type", "").startswith(
                "application/octet"
            ):
                return Judgement(True, f"a file of {len(reply.body)} bytes")
            return Judgement(False, f"the answer is not a JSON envelope: {reply.body[:120]!r}")
        code = answer.get("infcode")
        try:
            infcode = int(str(code).strip())
        except ValueError:
            return Judgement(False, f"infcode {code!r} is not a number")
        message = str(answer.get("err_msg") or "").strip()
        if case.expect == ACCEPT:
            if infcode == 0:
                return Judgement(True, "infcode 0")
            return Judgement(False, f"refused: infcode {infcode}: {message or '(no err_msg)'}")
        if infcode == 0:
            return Judgement(False, "accepted (infcode 0) although the spec says it must be refused")
        if not message:
            return Judgement(False, f"infcode {infcode} without an err_msg saying why")
        return Judgement(True, f"infcode {infcode}: {message[:160]}")

    # -- passive ---------------------------------------------------------------------------------
    def passive(self, request: Request, reply: Reply) -> tuple[str | None, list[tuple[str, Judgement]]]:
        """A captured call: which transaction, and the request, rejection and response judgements."""
        try:
            env = json.loads(request.body)
        except ValueError:
            return None, []
        if not isinstance(env, dict) or not isinstance(env.get("infno"), str):
            return None, []
        infno = env["infno"]
        tx = self.spec.transactions.get(infno)
        national = not request.path.rstrip("/").endswith(self.paths.get("yunnan") or "/eapdomain/callService")
        problems = medins_checks.check_envelope(self.spec, env, tx, msgid_structure=national)
        if tx is None:
            problems.append(f"infno: transaction {infno} is not in the spec")
        elif isinstance(env.get("input"), dict):
            problems += medins_checks.check_input(self.spec, tx, env["input"], env.get("mdtrtarea_admvs"))
        out: list[tuple[str, Judgement]] = [("request", Judgement.of(problems, "the request conforms"))]
        if problems:
            out.append(("rejected", self.judge(Case.captured(infno, "rejected", request, REJECT), reply)))
        answer = reply.json()
        if answer is not None:
            found = self._response_problems(answer)
            if tx is not None and not problems and str(answer.get("infcode")).strip() == "0":
                found += medins_checks.check_output(self.spec, tx, answer.get("output"))
            out.append(
                ("response", Judgement.of(found, f"infcode {answer.get('infcode')}: the answer conforms"))
            )
        return infno, out

    def _response_problems(self, answer: dict) -> list[str]:
        """The response envelope against envelope.yaml `response` (lengths and yyyyMMddHHmmssSSS times)."""
        problems = []
        for name, rule in (self.spec.envelope.get("response") or {}).items():
            value = answer.get(name)
            if name == "infcode":
                try:
                    int(str(value).strip())
                except ValueError:
                    problems.append(f"infcode: {value!r} is not a number")
                continue
            if value in (None, ""):
                continue
            text = str(value)
            if "length" in rule and len(text) != rule["length"]:
                problems.append(f"{name}: {len(text)} characters, the spec says {rule['length']}")
            if "max" in rule and len(text) > rule["max"]:
                problems.append(f"{name}: longer than {rule['max']} characters")
            if rule.get("format") == "yyyyMMddHHmmssSSS" and not (len(text) == 17 and text.isdigit()):
                problems.append(f"{name}: {text!r} is not yyyyMMddHHmmssSSS")
        return problems

    # -- building --------------------------------------------------------------------------------
    def world(self, ctx: Context, person: Person = DEFAULT) -> World:
        """Fresh state for one case, for a person of its own (person's name, region and birth date)."""
        return World(self, ctx, person.renumbered(self.institution + self.worlds))

    def _codes(self, name: str) -> dict[str, str]:
        codes = dict(self.spec.codes.get(name, {}))
        for sets in self.spec.local_codes.values():
            codes.update(sets.get(name, {}))
        return codes

    def _transport(self, case: dict) -> str:
        return str(case.get("transport") or "national")

    def _case(
        self,
        operation: str,
        check: str,
        title: str,
        env: dict,
        transport: str,
        expect: str,
        constraint: str = "",
    ) -> Case:
        body = json.dumps(env, ensure_ascii=False).encode("utf-8")
        return self._raw(operation, check, title, body, transport, constraint, expect=expect)

    def _raw(
        self,
        operation: str,
        check: str,
        title: str,
        body: bytes,
        transport: str,
        constraint: str,
        expect: str = REJECT,
    ) -> Case:
        path = self.paths.get(transport) or self.paths.get("national") or "/"
        return Case(operation, check, title, Request(body, "POST", path, dict(JSON)), expect, constraint)

    def next_msgid(self, code: str) -> str:
        self.serial = (self.serial + 1) % 10_000
        return f"{code}{datetime.now():%Y%m%d%H%M%S}{self.serial:04d}"

    def next_world(self) -> tuple[str, str]:
        """`uniq` and `inst` for a fresh world: a run tag and a counter, and a 5-digit institution."""
        self.worlds += 1
        return f"{self.tag}{self.worlds:04d}", f"{(self.institution + self.worlds) % 100_000:05d}"


class World:
    """Fresh state on the target for one case: the examples' world requests, then the case's steps."""

    def __init__(self, suite: MedinsSuite, ctx: Context, person: Person, *, steps: bool = True) -> None:
        self.suite = suite
        self.ctx = ctx
        self.values = Values(suite.data.get("values") or {}, now=suite.now)
        self.values.update(person.values())
        self.values["uniq"], self.values["inst"] = suite.next_world()
        if steps:
            for step in suite.data.get("world") or []:
                self.step(step)

    def fill(self, template: Any) -> Any:
        try:
            return fill(template, self.values)
        except MissingValue as exc:
            raise Unprepared(str(exc)) from None

    def msgid(self) -> str:
        """A fresh msgid: this world's fixmedins_code + yyyyMMddHHmmss + a 4-digit serial."""
        code = self.fill(str(self.suite.data.get("envelope", {}).get("fixmedins_code") or ""))
        return self.suite.next_msgid(code)

    def envelope(self, infno: str, inp: Any, case: dict) -> dict:
        env = dict(self.suite.data.get("envelope") or {}, infno=infno, msgid=self.msgid())
        env.update(case.get("envelope") or {})
        env = self.fill(env)
        env["input"] = inp
        return env

    def case(
        self,
        infno: str,
        template: Any,
        case: dict,
        check: str,
        title: str,
        *,
        expect: str = ACCEPT,
        operation: str | None = None,
    ) -> Case:
        env = self.envelope(infno, self.fill(template), case)
        built = self.suite._case(operation or infno, check, title, env, self.suite._transport(case), expect)
        built.context["msgid"] = env["msgid"]
        return built

    def step(self, step: dict, name: str | None = None) -> Outcome:
        infno = str(step["infno"])
        built = self.case(
            infno, step.get("input") or {}, step, "example", f"{name or step.get('name') or infno}"
        )
        outcome = self.ctx.require(
            built, f"the state for the case ({infno} {step.get('name') or name or ''})"
        )
        if name:
            self.values[f"msgid:{name}"] = built.context["msgid"]
        self.capture(step.get("capture") or {}, outcome.reply.json() or {})
        return outcome

    def capture(self, capture: dict, answer: dict) -> None:
        for var, path in capture.items():
            try:
                self.values[var] = dig(answer.get("output"), str(path))
            except KeyError as exc:
                raise Unprepared(f"cannot capture {var} from the answer: {exc}") from None

    def after(self, case: dict) -> None:
        for name in case.get("after") or []:
            self.step(self.suite.data["steps"][name], name)


_ORDER = (
    "example", "generated", "response", "required", "type", "length", "code", "datetime", "msgid",
    "envelope", "interaction",
)  # fmt: skip


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out
