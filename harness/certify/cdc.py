"""Certifying the CDC reporting front end (传染病智能监测预警前置软件): cases from specs/cdc and its examples.

One operation per table (its camelCase endpoint). Every case builds its own rows: the example row of the
table and the rows it names (a patient before the visit that names it), each key given a suffix of the
case's own, so a case neither replaces nor deletes another's rows. Per table:

- invalid rows: every column's constraints (required, type, length, code set, date format) and the
  table's row checks (身份证 check digit, notifiable disease code, zone and organisation codes, dates in
  order), the body (not JSON, not rows) and the endpoint (a table that does not exist): each must get
  `result: false` with the reasons;
- the example row, then generated rows (a generated patient: name, 身份证 with its sex and birth date,
  mobile number; optional coded columns filled): `result: true` naming the row's key (`response`).

Flows (examples.yaml) send rows in order, with deletes the front end must refuse while rows still name
the row.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from harness.certify import fields
from harness.certify.cases import ACCEPT, REJECT, Case, Judgement, Reply, Request
from harness.certify.engine import Context, Outcome, Unprepared, rows_of
from harness.certify.people import DEFAULT, Person, people
from harness.certify.results import Row
from harness.spec.cdc import CdcSpec, check_row, split_rows
from harness.spec.examples import Values, fill
from harness.spec.model import Interface

JSON = {"Content-Type": "application/json; charset=utf-8"}
API = "/hclient/emr/receive/"
INVALID = ("required", "type", "length", "code", "datetime")
INVALID_CHECKS = (*INVALID, "envelope", "interaction")
ANSWER = ("result", "desc", "id", "errorCode", "errorName")
"""The front end's answer (SynchroResponseVo): every answer carries these keys."""


class CdcSuite:
    family = "cdc"

    def __init__(self, interface: Interface) -> None:
        self.interface = interface
        self.spec: CdcSpec = interface.native
        self.data = interface.examples.body if interface.examples is not None else {}
        folder = Path(interface.path) / "examples"
        self.rows_: dict[str, dict] = {}
        for table in self.spec.tables:
            path = folder / f"{table}.json"
            if path.is_file():
                self.rows_[table] = json.loads(path.read_text(encoding="utf-8"))
        self.prefix = str(self.spec.transport.get("path") or API + "{api}").split("{", 1)[0]
        self.tag = f"{random.SystemRandom().randrange(36**4):04x}"
        self.worlds = 0

    # -- rows and checks -------------------------------------------------------------------------
    def rows(self) -> Iterable[Row]:
        return rows_of(self.interface, self.data.get("flows"))

    def checks(self, row: str) -> dict[str, str | None]:
        if row.startswith("flow:"):
            return {"flow": None}
        found: dict[str, str | None] = {"example": None, "generated": None, "response": None}
        example = self.rows_.get(row)
        if example is None:
            return dict.fromkeys((*found, "required"), f"no example row specs/cdc/examples/{row}.json")
        for slot in self._slots(row, example):
            for mutation in fields.mutations(slot, self.spec.codes.get):
                found.setdefault(mutation.check, None)
        for mutation in self._rule_mutations(row, example):
            found.setdefault(mutation[0], None)
        found["envelope"] = None
        found["interaction"] = None
        return {c: found[c] for c in _ORDER if c in found}

    def _slots(self, table: str, row: dict) -> list[fields.Slot]:
        rules = self.spec.tables[table]["fields"]
        label = str(self.spec.tables[table].get("label") or "")
        return fields.slots(row, rules, label=label)

    # -- running ---------------------------------------------------------------------------------
    def run(self, row: str, ctx: Context) -> None:
        if row.startswith("flow:"):
            self._flow(row, ctx)
            return
        table = row
        if any(ctx.wants(table, c) for c in INVALID_CHECKS):
            twin = World(self, ctx)
            twin.prepare(table)
            control = ctx.control(self.case(table, "example", "the unchanged row", twin.row(table), ACCEPT))
            world = World(self, ctx)
            world.prepare(table)
            base = world.row(table)
            for slot in self._slots(table, base):
                for mutation in fields.mutations(slot, self.spec.codes.get):
                    if not ctx.wants(table, mutation.check):
                        continue

                    def attempt(value: Any, slot=slot, mutation=mutation) -> Outcome:
                        body = fields.put(base, slot.path, value)
                        return ctx.exchange(
                            self.case(
                                table,
                                mutation.check,
                                mutation.title(value),
                                body,
                                REJECT,
                                mutation.constraint,
                            )
                        )

                    ctx.probe(
                        table,
                        mutation.check,
                        mutation.values,
                        attempt,
                        examples=ctx.invalid_examples,
                        key=slot.shown,
                    )
            for check, title, column, value, constraint in self._rule_mutations(table, base):
                if ctx.wants(table, check):
                    body = dict(base, **{column: value})
                    ctx.case(self.case(table, check, title, body, REJECT, constraint))
            if ctx.wants(table, "envelope"):
                text = json.dumps(base, ensure_ascii=False).encode()
                ctx.case(
                    self.raw(
                        table,
                        "envelope",
                        "the body cut short (not JSON)",
                        text[: len(text) // 2],
                        "the body is JSON: one row or a list of rows (V)",
                    )
                )
                ctx.case(
                    self.raw(
                        table,
                        "envelope",
                        "the body is a JSON number, not a row",
                        b"42",
                        "the body is one row (an object) or a list of rows (V)",
                    )
                )
            if ctx.wants(table, "interaction"):
                case = self.case(
                    table,
                    "interaction",
                    "an endpoint no table has (emrNoSuchTable)",
                    base,
                    REJECT,
                    "the endpoint names one of the front end's tables (V)",
                )
                case.request.path = f"{self.prefix}emrNoSuchTable"
                ctx.case(case)
            ctx.unproven(table, INVALID_CHECKS, control)
        if ctx.wants(table, "example") or ctx.wants(table, "response"):
            world = World(self, ctx)
            world.prepare(table)
            outcome = ctx.case(self.case(table, "example", "the example row", world.row(table), ACCEPT))
            self._response(table, outcome, world, ctx)
        if ctx.wants(table, "generated"):
            example = self.rows_[table]
            slots = self._slots(table, example)
            strategy = st.tuples(people(), fields.varied(example, slots, self.spec.codes.get))

            def attempt(drawn: tuple[Person, dict]) -> Outcome:
                person, variant = drawn
                world = World(self, ctx, person)
                world.prepare(table)
                changed = fields.differences(example, variant)
                title = f"a generated row for {person.name} ({person.certno})" + (
                    f", {'; '.join(changed)}" if changed else ""
                )
                outcome = ctx.exchange(
                    self.case(table, "generated", title, world.row(table, variant), ACCEPT)
                )
                self._response(table, outcome, world, ctx)
                return outcome

            ctx.probe(table, "generated", strategy, attempt)

    def _response(self, table: str, outcome: Outcome, world: World, ctx: Context) -> None:
        if not ctx.wants(table, "response") or not outcome.judgement.passed:
            return
        answer = outcome.reply.json() or {}
        key = self.spec.tables[table]["key"]
        want = str(world.row(table).get(key))
        problems = [
            f"{name}: missing"
            for name in ("result", "desc", "id", "errorCode", "errorName")
            if name not in answer
        ]
        if str(answer.get("id")) != want:
            problems.append(f"id: {answer.get('id')!r}, expected the row's {key} {want!r}")
        case = outcome.case
        judged = Judgement(not problems, "; ".join(problems) or f"result true, id {want}")
        ctx.record(
            Outcome(Case(table, "response", case.title, case.request, case.expect), outcome.reply, judged)
        )

    def _rule_mutations(self, table: str, row: dict) -> list[tuple[str, str, str, Any, str]]:
        """The table's row checks broken one at a time: (check, title, column, value, constraint)."""
        checks = self.spec.tables[table].get("checks") or {}
        out: list[tuple[str, str, str, Any, str]] = []
        column = checks.get("idcard")
        number = row.get(column) if column else None
        if (
            column
            and isinstance(number, str)
            and len(number) == 18
            and str(row.get("id_card_type_code")) == "01"
        ):
            wrong = number[:17] + ("0" if number[17] != "0" else "1")
            out.append(
                (
                    "code",
                    f"{column} = {wrong} (wrong 身份证 check digit)",
                    column,
                    wrong,
                    f"{column}: a valid 身份证 (GB 11643) when id_card_type_code is 01",
                )
            )
        column = checks.get("disease")
        if column and column in row:
            out.append(
                (
                    "code",
                    f"{column} = '9999' (no notifiable disease, nor ICD-10)",
                    column,
                    "9999",
                    f"{column}: a notifiable disease code (diseases.yaml) or ICD-10",
                )
            )
            parent = next(iter(self.spec.parents), None)
            if parent:
                out.append(
                    (
                        "code",
                        f"{column} = {parent!r} (a disease reported by its subtypes)",
                        column,
                        parent,
                        f"{column}: diseases with subtypes are reported as the subtype",
                    )
                )
        for column in [*checks.get("zone9", ()), *checks.get("zone", ())]:
            if row.get(column):
                out.append(
                    (
                        "code",
                        f"{column} = '5301' (too short for a zone code)",
                        column,
                        "5301",
                        f"{column}: a 6- or 9-digit zone code",
                    )
                )
        for column in checks.get("org9", ()):
            if row.get(column):
                out.append(
                    (
                        "code",
                        f"{column} = 'ABC' (not a 9-character organisation code)",
                        column,
                        "ABC",
                        f"{column}: a 9-character organisation code",
                    )
                )
        for earlier, later in checks.get("order", ()):
            if isinstance(row.get(earlier), str) and isinstance(row.get(later), str) and row[later]:
                day = date.fromisoformat(row[earlier][:10]) - timedelta(days=1)
                value = day.isoformat() + row[later][10:]
                out.append(
                    (
                        "datetime",
                        f"{later} = {value} (before {earlier})",
                        later,
                        value,
                        f"{later} is not before {earlier}",
                    )
                )
        return out

    def _flow(self, row: str, ctx: Context) -> None:
        flow = self.data["flows"][row.removeprefix("flow:")]

        def steps(person: Person):
            world = World(self, ctx, person)
            for step in flow.get("steps") or []:
                table, method = str(step["table"]), str(step.get("method") or "POST").upper()
                body = world.row(table)
                body.update(fill(step.get("set") or {}, world.values))
                title = f"{method} {table}" + (f": {step['why']}" if step.get("why") else "")
                case = self.case(row, "flow", title, body, step.get("expect", ACCEPT))
                case.request.method = method
                case.request.path = f"{self.prefix}{self.spec.tables[table]['api']}"
                yield case

        ctx.probe(row, "flow", people(), lambda person: ctx.walk(steps(person)))

    # -- judging ---------------------------------------------------------------------------------
    def judge(self, case: Case, reply: Reply) -> Judgement:
        if reply.error is not None:
            return Judgement(False, f"no answer: {reply.error}")
        answer = reply.json()
        if answer is None or "result" not in answer:
            return Judgement(
                False,
                f"HTTP {reply.status}, not the front end's answer {{result, desc, ...}}: "
                f"{reply.body[:120]!r}",
            )
        result = answer.get("result")
        why = str(answer.get("errorName") or answer.get("desc") or "").strip()
        if case.expect == ACCEPT:
            if reply.status == 200 and result is True:
                return Judgement(True, f"result true, id {answer.get('id')}")
            return Judgement(False, f"refused: HTTP {reply.status}, result {result}: {why or '(no reason)'}")
        if result is True:
            return Judgement(False, "accepted (result true) although the spec says it must be refused")
        if not why:
            return Judgement(False, "result false without errorName or desc saying why")
        return Judgement(True, f"result false: {why[:160]}")

    # -- passive ---------------------------------------------------------------------------------
    def passive(self, request: Request, reply: Reply) -> tuple[str | None, list[tuple[str, Judgement]]]:
        """A captured POST of rows: which table, and the request, rejection and response judgements."""
        path = request.path.split("?", 1)[0].rstrip("/")
        if request.method != "POST" or not path.startswith(self.prefix):
            return None, []
        table = self.spec.by_api.get(path[len(self.prefix) :])
        if table is None:
            return None, []
        try:
            value = json.loads(request.body)
        except ValueError:
            value = None
        rows, problems = split_rows(value) if value is not None else ([], ["the body is not JSON"])
        for at, row in rows:
            if isinstance(row, dict):
                problems += check_row(self.spec, table, row, at, date.today())[0]
            else:
                problems.append(f"{at.rstrip('.')}: a row must be a JSON object")
        out: list[tuple[str, Judgement]] = [("request", Judgement.of(problems, "the rows conform"))]
        if problems:
            out.append(("rejected", self.judge(Case.captured(table, "rejected", request, REJECT), reply)))
        answer = reply.json()
        if answer is not None:
            missing = [f"{name}: missing" for name in ANSWER if name not in answer]
            out.append(
                (
                    "response",
                    Judgement.of(
                        missing, f"the answer {{{', '.join(ANSWER)}}} (result {answer.get('result')})"
                    ),
                )
            )
        return table, out

    # -- building --------------------------------------------------------------------------------
    def case(self, op: str, check: str, title: str, row: Any, expect: str, constraint: str = "") -> Case:
        body = json.dumps(row, ensure_ascii=False).encode("utf-8")
        return self.raw(op, check, title, body, constraint, expect=expect)

    def raw(
        self, op: str, check: str, title: str, body: bytes, constraint: str, expect: str = REJECT
    ) -> Case:
        table = op if op in self.spec.tables else next(iter(self.spec.tables))
        path = f"{self.prefix}{self.spec.tables[table]['api']}"
        return Case(op, check, title, Request(body, "POST", path, dict(JSON)), expect, constraint)

    def next_world(self) -> str:
        self.worlds += 1
        return f"{self.tag}{self.worlds:04d}"


class World:
    """Rows of one case: example rows with keys of their own, the rows they name sent first."""

    def __init__(self, suite: CdcSuite, ctx: Context, person: Person | None = None) -> None:
        self.suite = suite
        self.ctx = ctx
        self.person = person
        self.values = Values({"uniq": suite.next_world()})
        self.values.update((person or DEFAULT).values())
        self.sent: set[str] = set()

    def row(self, table: str, example: dict | None = None) -> dict:
        spec = self.suite.spec.tables[table]
        out = copy.deepcopy(example if example is not None else self.suite.rows_[table])
        suffix = f"-{self.values['uniq']}"
        key = spec["key"]
        if out.get(key):
            out[key] = f"{out[key]}{suffix}"
        for column in spec.get("references") or {}:
            if out.get(column):
                out[column] = f"{out[column]}{suffix}"
        if self.person is not None:
            for column, template in (self.suite.data.get("person") or {}).items():
                if column in out:
                    out[column] = fill(template, self.values)
        return out

    def prepare(self, table: str) -> None:
        """Send the rows `table`'s example names (and what those name), once each."""
        for column, ref in (self.suite.spec.tables[table].get("references") or {}).items():
            target = ref["table"]
            if target in self.sent or not self.suite.rows_.get(table, {}).get(column):
                continue
            if target not in self.suite.rows_:
                raise Unprepared(f"{table}.{column} names {target}, which has no example row")
            self.prepare(target)
            self.ctx.require(
                self.suite.case(target, "example", f"the {target} row it names", self.row(target), ACCEPT),
                f"the rows {table} names",
            )
            self.sent.add(target)


_ORDER = ("example", "generated", "response", "required", "type", "length", "code", "datetime", "envelope",
          "interaction")  # fmt: skip
