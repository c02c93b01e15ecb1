"""Reports lead with the verdict and carry the coverage matrix, the evidence and the sign-off block; waivers
accept a failing check with its reason."""

from __future__ import annotations

import json
from datetime import date

import pytest
from lxml import etree
from lxml import html as lxml_html

from harness.certify import report, waivers
from harness.certify.certification import write_reports
from tests.certify.broken import medins
from tests.certify.inprocess import certify


@pytest.fixture(scope="module")
def failed_run():
    run, _ = certify("medins", medins("medins-codes"), operations=["2201", "outpatient"])
    return run


def test_the_json_summary_says_what_was_certified_and_how_it_went(failed_run):
    s = failed_run.summary()
    for key in ("spec", "target", "verdict", "operations", "checks", "passed", "failed", "skipped", "seed"):
        assert key in s
    assert s["verdict"] == "FAIL" and s["failed"] >= 1 and s["operations"] == 1 and s["flows"] == 1
    doc = json.loads(report.render_json(failed_run))
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    assert failed and failed[0]["evidence"][0]["request"] and failed[0]["evidence"][0]["reply"]
    assert doc["sign_off"] == {
        "engineer": None,
        "role": None,
        "date": None,
        "signature": None,
        "remarks": None,
    }
    assert "patient data" in doc["patient_data"]


def test_junit_has_one_test_case_per_check_and_fails_the_failed_ones(failed_run):
    root = etree.fromstring(report.render_junit(failed_run).encode())
    cases = root.findall(".//testcase")
    assert len(cases) == len(failed_run.cells)
    failures = [c for c in cases if c.find("failure") is not None]
    assert {(c.get("classname"), c.get("name")) for c in failures} == {
        (c.operation, c.check) for c in failed_run.failed_cells()
    }
    assert "accepted (infcode 0)" in failures[0].find("failure").get("message")
    assert root.find("testsuite").get("failures") == str(len(failures))


def test_the_html_leads_with_the_verdict_and_ends_with_the_sign_off(failed_run, tmp_path):
    written = write_reports(failed_run, out=tmp_path)
    page = lxml_html.fromstring(written.html.read_text("utf-8"))
    verdict = page.get_element_by_id("verdict")
    assert verdict.text_content().strip().startswith("FAIL") and "FAIL" in verdict.get("class")
    matrix = page.get_element_by_id("matrix")
    assert [r.get("data-row") for r in matrix.iter("tr") if r.get("data-row")] == ["2201", "flow:outpatient"]
    failed = matrix.find_class("failed")
    assert failed and failed[0].find("a").get("href").startswith("#f-2201-")
    signoff = page.get_element_by_id("signoff")
    assert [td.get("data-field") for td in signoff.iter("td") if td.get("data-field")] == list(
        report.SIGN_OFF
    )
    assert "patient data" in page.get_element_by_id("patient-data").text_content()
    assert (
        b"<script" not in written.html.read_bytes()
        and b"http://" not in written.html.read_bytes().split(b"<body")[0]
    )
    assert written.json.is_file() and written.junit.is_file()


def test_a_waiver_accepts_a_failed_check_with_its_reason_until_it_expires(failed_run, tmp_path):
    cell = failed_run.failed_cells()[0]
    path = tmp_path / "waivers.yaml"
    path.write_text(
        f"waivers:\n  - {{operation: '{cell.operation}', check: {cell.check}, "
        "reason: 本院暂不对接 (ticket 1), expires: 2027-06-30}\n",
        "utf-8",
    )
    loaded = waivers.load(path)
    run, _ = certify("medins", medins("medins-codes"), operations=["2201"])
    waivers.apply(run, loaded, today=date(2027, 1, 1))
    waived = run.cells[(cell.operation, cell.check)]
    assert waived.status == "waived" and waived.waived_status == "failed" and "本院暂不对接" in waived.reason
    assert run.verdict == "PASS" and run.waivers[0]["used"] == 1
    later, _ = certify("medins", medins("medins-codes"), operations=["2201"])
    waivers.apply(later, waivers.load(path), today=date(2027, 7, 1))
    assert later.verdict == "FAIL" and any("expired" in n for n in later.notes)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("waivers: [{operation: '2201', check: code}]\n", "waivers[0].reason: missing"),
        ("waivers: [{operation: '2201', check: nope, reason: x}]\n", "check 'nope' matches no check"),
        (
            "waivers: [{operation: '2201', check: code, reason: x, until: 2027-01-01}]\n",
            "unknown key(s) until",
        ),
        (
            "waivers: [{operation: '2201', check: code, reason: x, expires: soon}]\n",
            "expires: 'soon' is not a date",
        ),
        ("nothing: here\n", "expected `waivers:`"),
    ],
)
def test_a_bad_waiver_file_names_the_entry_and_key(tmp_path, text, words):
    path = tmp_path / "w.yaml"
    path.write_text(text, "utf-8")
    with pytest.raises(waivers.WaiverError) as caught:
        waivers.load(path)
    assert words in str(caught.value) and "w.yaml" in str(caught.value)
