"""Each family's suite against its own simulator, in process: the simulator passes its suite, and the
cases test what they say (the spec's constraints, its flows, the answers)."""

from __future__ import annotations

import json

import pytest

from harness import idcard
from harness.simulators.cdc import CdcFrontEnd
from harness.simulators.fhir import FhirSimulator
from harness.simulators.medins import MedinsSimulator
from harness.simulators.soap import HipMessageServer
from tests.certify.broken import medins
from tests.certify.inprocess import certify


def _json(body: bytes) -> dict:
    try:
        value = json.loads(body)
    except ValueError:  # the envelope checks send bodies that are not JSON
        return {}
    return value if isinstance(value, dict) else {}


def _failed(run):
    return {
        k: c.evidence[0].finding if c.evidence else "" for k, c in run.cells.items() if c.status != "passed"
    }


def test_the_medins_simulator_passes_a_visit_and_its_flows():
    run, sender = certify("medins", MedinsSimulator(), operations=["9001", "1101", "2201", "2207", "flow"])
    assert run.verdict == "PASS", _failed(run)
    checks = {check for (op, check) in run.cells if op == "2207"}
    assert checks >= {
        "example",
        "generated",
        "response",
        "required",
        "type",
        "length",
        "code",
        "msgid",
        "envelope",
    }
    assert run.cells[("flow:outpatient", "flow")].cases >= 1
    assert "infcode -1" in run.cells[("2207", "required")].seen
    # every world's 1101 sends a person of its own, renumbered from the default or a generated one
    sent = [_json(c.request.body) for c in sender.sent]
    inputs = [e.get("input") for e in sent if e.get("infno") == "1101"]
    data = [i["data"] for i in inputs if isinstance(i, dict) and isinstance(i.get("data"), dict)]
    people = {d["certno"] for d in data if isinstance(d.get("certno"), str) and len(d["certno"]) == 18}
    assert len(people) > 3 and all(idcard.is_valid(n) for n in people)


@pytest.mark.parametrize(
    "variant", ["medins-codes", "medins-required", "medins-msgid", "medins-settles-twice"]
)
def test_a_broken_medins_simulator_fails_the_check_for_its_fault(variant):
    run, _ = certify("medins", medins(variant), operations=["2201", "2207", "flow"])
    expected = {
        "medins-codes": ("2201", "code"),
        "medins-required": ("2201", "required"),
        "medins-msgid": ("2201", "msgid"),
        "medins-settles-twice": ("flow:outpatient", "flow"),
    }[variant]
    assert run.verdict == "FAIL" and run.cells[expected].status == "failed"
    evidence = run.cells[expected].evidence[0]
    assert "although the spec says it must be refused" in evidence.finding
    assert evidence.request and evidence.reply and "--seed" in evidence.reproduce or evidence.reproduce == ""


def test_the_cdc_front_end_passes_its_suite_with_flows():
    run, _ = certify("cdc", CdcFrontEnd(), operations=["emr_patient_info", "emr_inf_report", "flow"])
    assert run.verdict == "PASS", _failed(run)
    assert (
        "身份证" in run.cells[("emr_inf_report", "code")].seen
        or run.cells[("emr_inf_report", "code")].cases > 3
    )
    assert run.cells[("flow:report-card", "flow")].status == "passed"


def test_the_hl7v3_service_passes_its_suite_with_flows():
    ops = ["PatientInfoRegister", "PatientInfoQuery", "PatientInfoMerge", "OrderInfoUpdate", "flow"]
    run, _ = certify("hl7v3", HipMessageServer(), operations=ops)
    assert run.verdict == "PASS", _failed(run)
    assert run.cells[("PatientInfoRegister", "envelope")].seen.startswith("SOAP Fault")
    assert run.cells[("PatientInfoQuery", "response")].seen.startswith("PRPA_IN201306UV02")


def test_the_fhir_server_passes_its_suite():
    run, _ = certify("fhir", FhirSimulator(), base="/fhir")
    assert run.verdict == "PASS", _failed(run)
    assert "422" in run.cells[("Patient", "code")].seen


def test_a_fhir_server_returning_a_patient_outside_a_required_binding_fails_response():
    from tests.certify.broken import fhir

    run, _ = certify("fhir", fhir(), operations=["Patient"], base="/fhir")
    cell = run.cells[("Patient", "response")]
    assert cell.status == "failed" and "administrative-gender" in cell.evidence[0].finding
