"""The centre's business core, sans-IO: one envelope in, its `output` (or a MedinsError) out.

The pipeline for every call: envelope checks -> transaction lookup -> repeated msgid (strict) ->
sign-in -> input checks from the spec -> insurance area of the person -> the transaction's rule ->
remember the call by msgid (for 2601). The rule a transaction runs is named in its spec; the table
from rule names to code is explicit (responses.RULES) and checked against the spec at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from harness.simulators.medins.call import Call, FileReply, MedinsError
from harness.simulators.medins.state import CentreState, Logged, Person, Visit
from harness.spec.medins import checks
from harness.spec.medins.model import MedinsSpec

CENT = Decimal("0.01")
Rule = Callable[["Centre", Call], "dict | FileReply"]


def money(value: Decimal) -> float:
    return float(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


def _now() -> datetime:
    return datetime.now()


class Centre:
    def __init__(
        self,
        spec: MedinsSpec,
        rules: dict[str, Rule],
        *,
        pre_checks: list[Callable[[Centre, Call], None]] = (),
        strict: bool = False,
        clock: Callable[[], datetime] = _now,
        max_entries: int = 10_000,
    ) -> None:
        self.spec = spec
        self.rules = rules
        self.pre_checks = list(pre_checks)
        self.strict = strict
        self.clock = clock
        self.state = CentreState(max_entries)
        self.pricing = spec.simulator["pricing"]
        # The explicit transaction table: infno -> the code that serves it (a KeyError here is a spec bug).
        self.table: dict[str, Rule] = {infno: rules[tx.rule] for infno, tx in spec.transactions.items()}

    # ------------------------------------------------------------------------------- the pipeline
    def serve(self, env: dict, transport: str = "national") -> dict | FileReply:
        infno = env.get("infno")
        tx = self.spec.transactions.get(infno) if isinstance(infno, str) else None
        structure = self.strict or transport != "yunnan"
        problems = checks.check_envelope(self.spec, env, tx, msgid_structure=structure)
        if problems:
            raise MedinsError("; ".join(problems))
        if tx is None:
            raise MedinsError(f"infno: transaction {infno} is not supported by this centre")
        wanted = tx.behaviour.get("transport")
        if wanted and wanted != transport:
            raise MedinsError(f"infno: transaction {infno} is only served on the {wanted} transport")
        if self.strict and env["msgid"] in self.state.messages:
            raise MedinsError(f"msgid: {env['msgid']} was already used (报文ID重复)")
        if not tx.behaviour.get("no_sign_in"):
            self._check_sign_no(env)
        inp = env["input"]
        problems = checks.check_input(self.spec, tx, inp, env.get("mdtrtarea_admvs"))
        if problems:
            raise MedinsError("; ".join(problems))
        psn_no = _psn_no_of(inp)
        if psn_no is not None and not tx.behaviour.get("new_person"):
            self._check_insuplc(env, psn_no)
        call = Call(env, tx, transport)
        for check in self.pre_checks:
            check(self, call)
        result = self.table[infno](self, call)
        self.state.messages[env["msgid"]] = Logged(infno, psn_no, call.effect)
        return result

    def _check_sign_no(self, env: dict) -> None:
        sign_no = env.get("sign_no") or ""
        if not sign_no:
            if self.strict:
                raise MedinsError("sign_no: missing; sign in with 9001 first (strict mode)")
            return
        owner = self.state.sign_ins.get(sign_no)
        if owner is None:
            raise MedinsError(f"sign_no: {sign_no} was not issued by 9001 or is signed out")
        if owner != env["fixmedins_code"]:
            raise MedinsError(
                f"sign_no: {sign_no} belongs to institution {owner}, not {env['fixmedins_code']}"
            )

    def _check_insuplc(self, env: dict, psn_no: str) -> None:
        person = self.person(psn_no)
        insuplc = env.get("insuplc_admdvs")
        if not insuplc:
            raise MedinsError(
                "insuplc_admdvs: missing (required when input carries psn_no; take it from 1101)"
            )
        if insuplc != person.insuplc_admdvs:
            raise MedinsError(
                f"insuplc_admdvs: {insuplc} is not person {psn_no}'s insurance area {person.insuplc_admdvs}"
            )

    # ---------------------------------------------------------------------------- shared lookups
    def now(self) -> datetime:
        return self.clock()

    def stamp(self) -> str:
        return f"{self.clock():%Y-%m-%d %H:%M:%S}"

    def next_id(self, prefix: str) -> str:
        self.state.serial += 1
        return f"{prefix}{self.clock():%Y%m%d}{self.state.serial:010d}"

    def person(self, psn_no: Any) -> Person:
        person = self.state.persons.get(str(psn_no))
        if person is None:
            raise MedinsError(f"psn_no: person {psn_no} not found (get it from 1101 first)")
        return person

    def visit(self, mdtrt_id: Any, psn_no: Any, kind: str | None = None) -> Visit:
        visit = self.state.visits.get(str(mdtrt_id))
        if visit is None:
            raise MedinsError(f"mdtrt_id: visit {mdtrt_id} not found")
        if kind and visit.kind != kind:
            what = "an outpatient" if visit.kind == "otp" else "an inpatient"
            raise MedinsError(f"mdtrt_id: visit {mdtrt_id} is {what} visit")
        if visit.psn_no != str(psn_no):
            raise MedinsError(f"psn_no: visit {mdtrt_id} belongs to person {visit.psn_no}, not {psn_no}")
        if visit.status == "cancelled":
            raise MedinsError(f"mdtrt_id: visit {mdtrt_id} was cancelled")
        return visit

    def codes(self, name: str) -> dict[str, str]:
        return self.spec.codes[name]


def _psn_no_of(inp: dict) -> str | None:
    for value in inp.values():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and item.get("psn_no") and isinstance(item["psn_no"], (str, int)):
                return str(item["psn_no"])
    return None
