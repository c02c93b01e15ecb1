"""Certifying a FHIR R4 server: cases from specs/fhir (required bindings) and its example resources.

One operation per resource type the examples create. Every case creates its own resources (the Patient
an Observation's subject names first), with identifiers of its own. Per resource type:

- invalid resources: each bound element (administrative-gender, identifier-use, ...) given a code outside
  its value set, each element the FHIR model requires removed, a bound element of the wrong JSON type,
  a date that is not a FHIR date, a body that is not JSON or whose resourceType is not the URL's, and a
  resource type that does not exist: each must get a 4xx with an OperationOutcome;
- the example, then generated ones (a generated patient: 身份证 identifier, Chinese name, sex, birth date,
  mobile number; bound elements given other codes of their value sets): 201, and what the server returns
  on create and on read must itself conform (`response`: structure and every required binding).

Flows (examples.yaml) run create, read, update, delete and a read after the delete (410 Gone).
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from harness.certify import fields
from harness.certify.cases import ACCEPT, REJECT, Case, Judgement, Reply, Request
from harness.certify.engine import Context, Outcome, Unprepared, rows_of
from harness.certify.people import DEFAULT, Person, people
from harness.certify.results import Row
from harness.spec.examples import Values, fill
from harness.spec.fhir import Validator
from harness.spec.model import Interface

FHIR_JSON = {"Content-Type": "application/fhir+json; charset=utf-8", "Accept": "application/fhir+json"}
INVALID_CHECKS = ("required", "type", "code", "datetime", "envelope", "interaction")
DATE_ELEMENTS = ("birthDate", "effectiveDateTime", "issued", "authoredOn", "recordedDate", "onsetDateTime")


class FhirSuite:
    family = "fhir"

    def __init__(self, interface: Interface) -> None:
        self.interface = interface
        self.validator: Validator = interface.native
        self.data = interface.examples.body if interface.examples is not None else {}
        folder = Path(interface.path)
        self.resources: dict[str, dict] = {}
        self.needs: dict[str, list[str]] = {}
        for rtype, entry in (self.data.get("resources") or {}).items():
            path = folder / str(entry["file"])
            if path.is_file():
                self.resources[rtype] = json.loads(path.read_text(encoding="utf-8"))
                self.needs[rtype] = [str(n) for n in entry.get("needs") or []]
        self.tag = f"{random.SystemRandom().randrange(36**4):04x}"
        self.cases = 0

    # -- rows and checks -------------------------------------------------------------------------
    def rows(self) -> Iterable[Row]:
        return rows_of(self.interface, self.data.get("flows"))

    def checks(self, row: str) -> dict[str, str | None]:
        if row.startswith("flow:"):
            return {"flow": None}
        if row not in self.resources:
            return dict.fromkeys(("example", "generated"), f"no example resource for {row} in examples.yaml")
        found = dict.fromkeys(("example", "generated", "response"))
        world = self.values(DEFAULT, "")
        example = self.resource(row, world)
        if self._required(example):
            found["required"] = None
        if self.validator.bound(example):
            found["type"] = found["code"] = None
        if any(e in example for e in DATE_ELEMENTS):
            found["datetime"] = None
        found["envelope"] = found["interaction"] = None
        return found

    # -- running ---------------------------------------------------------------------------------
    def run(self, row: str, ctx: Context) -> None:
        if row.startswith("flow:"):
            self._flow(row, ctx)
            return
        rtype = row
        if any(ctx.wants(rtype, c) for c in INVALID_CHECKS):
            twin = self.resource(rtype, self.world(ctx, DEFAULT, rtype))
            control = ctx.control(self.create(rtype, "example", "the unchanged resource", twin))
            base = self.resource(rtype, self.world(ctx, DEFAULT, rtype))
            self._invalid(rtype, base, ctx)
            ctx.unproven(rtype, INVALID_CHECKS, control)
        if ctx.wants(rtype, "example") or ctx.wants(rtype, "response"):
            values = self.world(ctx, DEFAULT, rtype)
            outcome = ctx.case(self.create(rtype, "example", "the example", self.resource(rtype, values)))
            self._response(rtype, outcome, ctx)
        if ctx.wants(rtype, "generated"):
            bound = self.validator.bound(self.resource(rtype, self.values(DEFAULT, "")))
            variants = [
                st.one_of(st.just(None), st.sampled_from([str(c) for c in binding["codes"]]))
                for _, binding in bound
            ]
            strategy = st.tuples(people(), st.tuples(*variants))

            def attempt(drawn: tuple[Person, tuple]) -> Outcome:
                person, codes = drawn
                values = self.world(ctx, person, rtype)
                resource = self.resource(rtype, values)
                for (path, _), code in zip(bound, codes, strict=True):
                    if code is not None:
                        resource = fields.put(resource, path, code)
                title = f"a generated {rtype} for {person.name} ({person.certno})"
                outcome = ctx.exchange(self.create(rtype, "generated", title, resource))
                self._response(rtype, outcome, ctx)
                return outcome

            ctx.probe(rtype, "generated", strategy, attempt)

    def _invalid(self, rtype: str, base: dict, ctx: Context) -> None:
        for path, binding in self.validator.bound(base):
            shown = _shown(path)
            if ctx.wants(rtype, "code"):
                ctx.case(
                    self.create(
                        rtype,
                        "code",
                        f"{shown} = 'toto' (not in {binding['valueset']})",
                        fields.put(base, path, "toto"),
                        REJECT,
                        f"{rtype}.{shown} in the required value set {binding['valueset']} (M)",
                    )
                )
            if ctx.wants(rtype, "type") and path[-1] != "code":
                ctx.case(
                    self.create(
                        rtype,
                        "type",
                        f"{shown} = 1 (a number, not a code)",
                        fields.put(base, path, 1),
                        REJECT,
                        f"{rtype}.{shown} is a code",
                    )
                )
        for name in self._required(base):
            if ctx.wants(rtype, "required"):
                ctx.case(
                    self.create(
                        rtype,
                        "required",
                        f"{name} removed",
                        fields.put(base, (name,), fields.MISSING),
                        REJECT,
                        f"{rtype}.{name} is required (1..1, fhir.resources R4B)",
                    )
                )
        for name in DATE_ELEMENTS:
            if name in base and ctx.wants(rtype, "datetime"):
                bad = str(base[name])[:10].replace("-", "/")
                ctx.case(
                    self.create(
                        rtype,
                        "datetime",
                        f"{name} = {bad!r} (not a FHIR date)",
                        fields.put(base, (name,), bad),
                        REJECT,
                        f"{rtype}.{name} is a FHIR date/dateTime",
                    )
                )
        if ctx.wants(rtype, "envelope"):
            text = json.dumps(base, ensure_ascii=False).encode()
            ctx.case(
                self.raw(
                    rtype,
                    "envelope",
                    "the body cut short (not JSON)",
                    "POST",
                    f"/{rtype}",
                    text[: len(text) // 2],
                    "the body is a JSON resource",
                )
            )
            other = next((t for t in ("Organization", "Patient") if t != rtype), "Organization")
            ctx.case(
                self.create(
                    rtype,
                    "envelope",
                    f"resourceType {other} posted to /{rtype}",
                    dict(base, resourceType=other),
                    REJECT,
                    "the resourceType is the URL's type",
                )
            )
        if ctx.wants(rtype, "interaction"):
            ctx.case(
                self.raw(
                    rtype,
                    "interaction",
                    "POST to /NoSuchType (no such resource type)",
                    "POST",
                    "/NoSuchType",
                    json.dumps(base, ensure_ascii=False).encode(),
                    "the URL names an R4 resource type",
                )
            )

    def _required(self, resource: dict) -> list[str]:
        """The top-level elements the FHIR model will not do without (each one removed, it says so)."""
        out = []
        for name in resource:
            if name == "resourceType":
                continue
            status, _ = self.validator.validate({k: v for k, v in resource.items() if k != name})
            if status == 400:
                out.append(name)
        return out

    def _response(self, rtype: str, outcome: Outcome, ctx: Context) -> None:
        if not ctx.wants(rtype, "response") or not outcome.judgement.passed:
            return
        problems: list[str] = []
        created = outcome.reply.json()
        location = outcome.reply.headers.get("location", "")
        rid = created.get("id") if isinstance(created, dict) else None
        if not isinstance(created, dict) or created.get("resourceType") != rtype:
            problems.append(f"the create answer is not a {rtype}")
        else:
            problems += [f"created {i['diagnostics']}" for i in self.validator.validate(created)[1]]
        if not rid:
            problems.append("the created resource has no id")
        elif f"/{rtype}/{rid}" not in location:
            problems.append(f"Location {location!r} does not name {rtype}/{rid}")
        read = None
        if rid:
            read = ctx.exchange(
                self.raw(
                    rtype, "response", f"read {rtype}/{rid}", "GET", f"/{rtype}/{rid}", b"", "", expect=ACCEPT
                )
            )
            body = read.reply.json()
            if read.reply.status != 200 or not isinstance(body, dict):
                problems.append(f"read {rtype}/{rid}: HTTP {read.reply.status}")
            else:
                problems += [f"read {i['diagnostics']}" for i in self.validator.validate(body)[1]]
                if body.get("id") != rid:
                    problems.append(f"read {rtype}/{rid} returned id {body.get('id')!r}")
        case = outcome.case
        judged = Judgement(
            not problems, "; ".join(problems[:6]) or f"{rtype}/{rid} conforms on create and read"
        )
        reply = (
            read.reply if read is not None and problems and problems[-1].startswith("read") else outcome.reply
        )
        ctx.record(Outcome(Case(rtype, "response", case.title, case.request, ACCEPT), reply, judged))

    def _flow(self, row: str, ctx: Context) -> None:
        flow = self.data["flows"][row.removeprefix("flow:")]

        def steps(person: Person):
            ids: dict[str, str] = {}
            values: Values | None = None
            for step in flow.get("steps") or []:
                action, rtype = str(step["do"]), str(step["type"])
                values = values or self.world(ctx, person, rtype)
                title = f"{action} {rtype}" + (f": {step['why']}" if step.get("why") else "")
                if action == "create":
                    case = self.create(row, "flow", title, self.resource(rtype, values))
                else:
                    if rtype not in ids:
                        raise Unprepared(f"{title}: no {rtype} was created before it")
                    method = {"read": "GET", "update": "PUT", "delete": "DELETE"}[action]
                    body = b""
                    if action == "update":
                        resource = dict(self.resource(rtype, values), id=ids[rtype], active=False)
                        body = json.dumps(resource, ensure_ascii=False).encode()
                    case = self.raw(
                        row, "flow", title, method, f"/{rtype}/{ids[rtype]}", body, "", expect=ACCEPT
                    )
                case.context.update(step.get("expect") or {})
                outcome = yield case
                answer = outcome.reply.json()
                if action == "create" and answer and answer.get("id"):
                    ids[rtype] = str(answer["id"])

        ctx.probe(row, "flow", people(), lambda person: ctx.walk(steps(person)))

    # -- judging ---------------------------------------------------------------------------------
    def judge(self, case: Case, reply: Reply) -> Judgement:
        if reply.error is not None:
            return Judgement(False, f"no answer: {reply.error}")
        body = reply.json()
        want_status = case.context.get("status")
        if want_status is not None:
            if reply.status == want_status:
                return Judgement(True, f"HTTP {reply.status}")
            return Judgement(False, f"HTTP {reply.status}, the spec answers HTTP {want_status}")
        if case.expect == ACCEPT:
            if reply.status is None or not 200 <= reply.status < 300:
                return Judgement(
                    False, f"refused: HTTP {reply.status}: {_issues(body) or reply.body[:160]!r}"
                )
            version = case.context.get("version")
            if version is not None:
                got = ((body or {}).get("meta") or {}).get("versionId") if isinstance(body, dict) else None
                if str(got) != str(version):
                    return Judgement(
                        False, f"HTTP {reply.status}, meta.versionId {got!r}, expected {version}"
                    )
            return Judgement(True, f"HTTP {reply.status}")
        if reply.status is not None and 200 <= reply.status < 300:
            return Judgement(
                False, f"accepted (HTTP {reply.status}) although the spec says it must be refused"
            )
        if reply.status is None or not 400 <= reply.status < 500:
            return Judgement(
                False, f"HTTP {reply.status}; the spec refuses with a 4xx and an OperationOutcome"
            )
        if (
            not isinstance(body, dict)
            or body.get("resourceType") != "OperationOutcome"
            or not body.get("issue")
        ):
            return Judgement(False, f"HTTP {reply.status} without an OperationOutcome saying why")
        return Judgement(True, f"HTTP {reply.status}: {_issues(body)[:160]}")

    # -- passive ---------------------------------------------------------------------------------
    def passive(self, request: Request, reply: Reply) -> tuple[str | None, list[tuple[str, Judgement]]]:
        """A captured interaction: its resource type, and the request, rejection and response judgements."""
        parts = [p for p in request.path.split("?", 1)[0].split("/") if p]
        rtype = next((p for p in parts if self.validator.is_resource_type(p)), None)
        if rtype is None:
            return None, []
        out: list[tuple[str, Judgement]] = []
        problems: list[str] = []
        if request.method in ("POST", "PUT") and request.body:
            sent = Reply(body=request.body).json()
            if not isinstance(sent, dict):
                problems.append("the body is not a JSON resource")
            else:
                status, issues = self.validator.validate(sent)
                problems += [str(i.get("diagnostics")) for i in issues]
                if sent.get("resourceType") not in (rtype, "Bundle") and not problems:
                    problems.append(f"resourceType {sent.get('resourceType')!r} is not the URL's {rtype}")
            out.append(
                ("request", Judgement.of(problems, f"{request.method} {rtype}: the resource conforms"))
            )
        if problems:
            out.append(("rejected", self.judge(Case.captured(rtype, "rejected", request, REJECT), reply)))
        answer = reply.json()
        if isinstance(answer, dict) and answer.get("resourceType") and reply.status and reply.status < 300:
            found = [str(i.get("diagnostics")) for i in self.validator.validate(answer)[1]]
            out.append(
                ("response", Judgement.of(found, f"HTTP {reply.status} {answer['resourceType']} conforms"))
            )
        return rtype, out

    # -- building --------------------------------------------------------------------------------
    def values(self, person: Person, uniq: str) -> Values:
        values = Values(person.values())
        values["uniq"] = uniq
        for rtype in self.resources:
            values.setdefault(rtype, "unknown")
        return values

    def world(self, ctx: Context, person: Person, rtype: str) -> Values:
        """Values for one case: a person, a fresh suffix, and the resources rtype needs, created first."""
        self.cases += 1
        values = self.values(person, f"{self.tag}{self.cases:04d}")
        for need in self.needs.get(rtype, []):
            outcome = ctx.require(
                self.create(need, "example", f"the {need} it names", self.resource(need, values)),
                f"the {need} {rtype} names",
            )
            created = outcome.reply.json() or {}
            if not created.get("id"):
                raise Unprepared(f"the {need} {rtype} names was created without an id")
            values[need] = str(created["id"])
        return values

    def resource(self, rtype: str, values: Values) -> dict:
        return fill(copy.deepcopy(self.resources[rtype]), values)

    def create(
        self, op: str, check: str, title: str, resource: Any, expect: str = ACCEPT, constraint: str = ""
    ) -> Case:
        rtype = resource.get("resourceType") if isinstance(resource, dict) else op
        target = op if op in self.resources else str(rtype)
        body = json.dumps(resource, ensure_ascii=False).encode("utf-8")
        return self.raw(op, check, title, "POST", f"/{target}", body, constraint, expect=expect)

    def raw(
        self,
        op: str,
        check: str,
        title: str,
        method: str,
        path: str,
        body: bytes,
        constraint: str,
        expect: str = REJECT,
    ) -> Case:
        return Case(op, check, title, Request(body, method, path, dict(FHIR_JSON)), expect, constraint)


def _shown(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _issues(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    return "; ".join(str(i.get("diagnostics") or i.get("code") or "") for i in body.get("issue") or [])
