"""Deliberately broken simulators, served on real sockets, that a contract suite must catch.

`python -m tests.certify.broken VARIANT --listen HOST:PORT` prints "... listening on HOST:PORT" and serves
until SIGTERM. Each variant is a real simulator with one fault an interface team has shipped before:

- medins-codes: accepts a code outside its code set (the spec's code sets are not checked);
- medins-required: ignores a missing required field (2201's dept_name and dr_name are not required);
- medins-msgid: answers success to a malformed msgid (the msgid's composition is not checked);
- medins-settles-twice: settles a visit twice (2207/2304 forget the earlier settlement);
- fhir-binding: returns Patients whose gender is outside administrative-gender (a required binding);
- mllp-structure: an HL7 v2 receiver that validates content but answers AA to structurally invalid
  messages (missing or misplaced segments).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json

from harness.address import parse_hostport


def _spec_without(key: str, only: dict[str, set[str]] | None = None):
    """The medins spec with `key` removed from input fields (every field, or only those named)."""
    from harness.simulators.medins import RULES, load_spec

    spec = copy.deepcopy(load_spec(rules=set(RULES)))

    def strip(fields: dict, infno: str) -> None:
        for name, rule in fields.items():
            if only is None or name in only.get(infno, set()):
                rule.pop(key, None)
            if isinstance(rule.get("fields"), dict):
                strip(rule["fields"], infno)

    for infno, tx in spec.transactions.items():
        strip(tx.input, infno)
    return spec


def medins(variant: str):
    from harness.simulators.medins import RULES, MedinsSimulator
    from harness.simulators.medins import visits as visit_rules

    if variant == "medins-codes":
        return MedinsSimulator(_spec_without("code"))
    if variant == "medins-required":
        return MedinsSimulator(_spec_without("required", {"2201": {"dept_name", "dr_name"}}))
    if variant == "medins-msgid":

        class LaxMsgid(MedinsSimulator):
            def serve(self, env: dict, transport: str = "national"):
                return super().serve(env, "yunnan")  # the msgid is only checked for length there

        return LaxMsgid()
    if variant == "medins-settles-twice":
        core = MedinsSimulator()

        def settle_again(centre, call):
            visit = centre.state.visits.get(str((call.node() or {}).get("mdtrt_id")))
            if visit is not None:
                for settlement in visit.active_settlements():
                    settlement.reversed_by = "forgotten"
                for fee in visit.fees.values():
                    fee.setl_id = None
            return visit_rules.settle(centre, call)

        core.table = {
            infno: (settle_again if RULES[tx.rule] is visit_rules.settle else core.table[infno])
            for infno, tx in core.spec.transactions.items()
        }
        return core
    raise SystemExit(f"unknown variant {variant}")


def fhir():
    from harness.simulators.fhir import FhirSimulator

    class WrongGender(FhirSimulator):
        def handle(self, request):
            response = super().handle(request)
            try:
                body = json.loads(response.body)
            except ValueError:
                return response
            if isinstance(body, dict) and body.get("resourceType") == "Patient":
                body["gender"] = "M"  # HL7 v2 table 0001, not FHIR administrative-gender
                response = dataclasses.replace(response, body=json.dumps(body, ensure_ascii=False).encode())
            return response

    return WrongGender()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--profile", default="specs/hl7v2/yunnan-his-adt.yaml")
    args = parser.parse_args()
    host, port = parse_hostport(args.listen, what="--listen")
    if args.variant == "mllp-structure":
        from harness.simulators.mllp import MockSettings, Responder, serve

        class StructureBlind(Responder):
            def _validated(self, payload: bytes):
                found = super()._validated(payload)
                if found is not None and any(e.code == "100" for e in found.errors):
                    return None  # structure errors ignored: the message is answered as if valid
                return found

        settings = MockSettings(profile=args.profile)
        raise SystemExit(serve(host, port, settings, responder=StructureBlind(settings)))
    from harness.simulators.http import serve

    core = fhir() if args.variant == "fhir-binding" else medins(args.variant)
    serve(core, host, port)


if __name__ == "__main__":
    main()
