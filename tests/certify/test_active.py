"""Active certification over real sockets: every family's suite passes against the harness's simulator.

The default run certifies a few operations and a flow of each family (seconds); `make test-slow` runs the
whole suites (every operation, every check).
"""

from __future__ import annotations

import pytest

from tests.certify.runs import certify, report

FAMILIES = {
    "medins": ("specs/medins", ["mock", "medins"], "http://127.0.0.1:{port}", "2207,outpatient"),
    "cdc": (
        "specs/cdc",
        ["mock", "cdc"],
        "http://127.0.0.1:{port}",
        "emr_patient_info,emr_inf_report,report-card",
    ),
    "hl7v3": (
        "specs/hl7v3",
        ["mock", "soap"],
        "http://127.0.0.1:{port}",
        "PatientInfoRegister,PatientInfoQuery,patient",
    ),
    "fhir": ("specs/fhir", ["mock", "fhir"], "http://127.0.0.1:{port}/fhir", "Patient,Observation,patient"),
    "adt": (
        "specs/hl7v2/yunnan-his-adt.yaml",
        ["mock", "mllp", "--profile", "specs/hl7v2/yunnan-his-adt.yaml"],
        "127.0.0.1:{port}",
        "ADT^A01,stay",
    ),
    "lis": (
        "specs/hl7v2/lis-oru.yaml",
        ["mock", "mllp", "--profile", "specs/hl7v2/lis-oru.yaml"],
        "127.0.0.1:{port}",
        "OUL^R24",
    ),
}


def _target(servers, name: str) -> tuple[str, str]:
    spec, command, url, _ = FAMILIES[name]
    port = servers.start(name, *command[:2], "--listen", "127.0.0.1:0", *command[2:])
    return spec, url.format(port=port)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_passes_against_its_simulator(servers, tmp_path, name):
    spec, target = _target(servers, name)
    code, summary, err = certify("--spec", spec, "--target", target, "--operation", FAMILIES[name][3],
                                 "--out", str(tmp_path))  # fmt: skip
    assert code == 0, (summary, err)
    assert summary["verdict"] == "PASS" and summary["failed"] == summary["skipped"] == 0
    assert summary["checks"] > 10 and summary["cases"] > summary["checks"]
    doc = report(summary)
    assert any(r["flow"] for r in doc["rows"]) or name == "lis"
    assert {c["status"] for c in doc["cells"]} == {"passed"}


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_passes_its_whole_suite(servers, tmp_path, name):
    spec, target = _target(servers, name)
    code, summary, err = certify("--spec", spec, "--target", target, "--out", str(tmp_path))
    assert code == 0 and summary["verdict"] == "PASS", (summary, err)
    assert summary["operations_covered"] == summary["operations"]
