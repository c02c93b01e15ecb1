"""Deliberately broken simulators on real sockets: the suite catches each one, and the report names the
failing check with its evidence (request, reply, finding, how to reproduce it). The medins variants are
also run in process for every fault (test_suites.py); here one of each kind crosses real sockets."""

from __future__ import annotations

import pytest

from tests.certify.runs import certify, report

MEDINS = ("specs/medins", "http://127.0.0.1:{port}")
CASES = {
    "medins-codes": (*MEDINS, "2201", ("2201", "code"), "not a mdtrt_cert_type code"),
    "medins-settles-twice": (*MEDINS, "outpatient", ("flow:outpatient", "flow"), "settle (2207) sent again"),
    "fhir-binding": (
        "specs/fhir", "http://127.0.0.1:{port}/fhir", "Patient", ("Patient", "response"), "value set",
    ),
    "mllp-structure": (
        "specs/hl7v2/yunnan-his-adt.yaml", "127.0.0.1:{port}", "ADT^A01", ("ADT^A01", "structure"), "segment",
    ),
}  # fmt: skip


@pytest.mark.parametrize("variant", CASES)
def test_the_suite_catches_the_broken_simulator_and_names_the_check(servers, tmp_path, variant):
    spec, url, operation, (row, check), words = CASES[variant]
    target = url.format(port=servers.broken(variant))
    code, summary, err = certify(
        "--spec", spec, "--target", target, "--operation", operation, "--out", str(tmp_path)
    )
    assert code == 1 and summary["verdict"] == "FAIL", (summary, err)
    cells = {(c["operation"], c["check"]): c for c in report(summary)["cells"]}
    cell = cells[(row, check)]
    assert cell["status"] == "failed", cell
    evidence = cell["evidence"][0]
    assert words in evidence["title"] or words in evidence["finding"]
    assert evidence["request"] and evidence["reply"] and evidence["finding"]
    assert (
        evidence["reproduce"].startswith(f"harness certify --spec {spec} --target ")
        and "--seed" in evidence["reproduce"]
    )
    html = open(summary["reports"]["html"], encoding="utf-8").read()
    assert f'id="f-{"".join(ch if ch.isalnum() else "-" for ch in f"{row}-{check}")}"' in html
    # the other checks of the operation still run and pass: the fault is pinned to its check
    others = [c for k, c in cells.items() if k[0] == row and k[1] != check]
    assert others == [] or any(c["status"] == "passed" for c in others)
