"""Policies load from specs/masking/; every mistake names the file, the line and the key."""

from __future__ import annotations

import pytest

from harness.mask.policy import PolicyError, load

from .support import ROOT


def test_the_default_policy_covers_every_kind_and_the_elements_the_interfaces_use():
    policy = load(ROOT / "specs" / "masking" / "default.yaml")
    targets = {kind: {r.target: r.how for r in policy.for_kind(kind)} for kind in policy.rules}
    for path in ("PID-3", "PID-5", "PID-11", "PID-13", "PID-14", "PID-19", "PID-20", "NK1-2", "NK1-4",
                 "NK1-5", "IN1-16", "GT1-3"):  # fmt: skip
        assert targets["hl7v2"][path] != "keep"
    assert {"Patient.name", "Patient.telecom", "Patient.address", "Patient.identifier"} <= set(
        targets["fhir"]
    )
    assert {"psn_name", "certno", "mdtrt_cert_no", "psn_cert_no", "tel", "addr"} <= set(targets["medins"])
    assert targets["medins"]["insu_admdvs"] == "keep"
    assert {"patient_name", "id_card", "tel", "contacts", "current_addr_detail"} <= set(targets["cdc"])
    assert any("patientPerson/v3:name" in t for t in targets["hl7v3"])
    assert policy.shift_dates and policy.max_shift_days == 365
    assert "authorization" in policy.redact_headers


def test_a_policy_is_found_by_name_in_specs_masking(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert load("default").name == "default"
    with pytest.raises(PolicyError, match="not found.*known policies: default"):
        load("no-such-policy")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("hl7v2:\n  elements:\n    PID-5: scramble\n", r":3: hl7v2\.elements\.PID-5: unknown masking"),
        ("hl7v2:\n  elements:\n    PID[2]-5: name\n", r":3: hl7v2\.elements\.PID\[2\]-5: .*without \[n\]"),
        ("fhir:\n  elements:\n    name: name\n", r":3: fhir\.elements\.name: expected ResourceType\.element"),
        ("hl7v3:\n  elements:\n    '//v3:name[': name\n", r":3: hl7v3\.elements\..*not a valid XPath"),
        ("dates:\n  max_shift_days: 0\n", r":2: dates\.max_shift_days: expected a whole number"),
        ("dates:\n  shfit: true\n", r":2: dates\.shfit: unknown key; known keys here: shift, max_shift_days"),
        ("medins:\n  elements:\n    brdy: {as: date, precision: week}\n", r":3: .*precision: expected"),
        ("medins:\n  elements:\n    tel: {as: phone, precision: year}\n", r"only dates have a precision"),
        ("cdc: [1]\n", r":1: cdc: expected a mapping"),
        ("policy: [\n", r"not valid YAML"),
    ],
)
def test_mistakes_name_the_file_line_and_key(tmp_path, text, where):
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=where) as info:
        load(path)
    assert str(path) in str(info.value)
