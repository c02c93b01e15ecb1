"""The pytest route: `pytest specs/... --target URL` collects one item per operation and check, -k selects,
pytest's own --junitxml writes one test case per check, failures carry their evidence."""

from __future__ import annotations

import subprocess
import sys

from lxml import etree

from tests.processes import ROOT


def pytest_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_spec_folders_collect_one_item_per_operation_and_check():
    proc = pytest_run("specs/medins", "specs/hl7v2", "--collect-only", "-p", "no:randomly")
    assert proc.returncode == 0, proc.stdout[-2000:]
    ids = [line for line in proc.stdout.splitlines() if "::" in line]
    assert "specs/medins::medins::2207::required" in ids
    assert "specs/medins::medins::flow:outpatient::flow" in ids
    assert "specs/hl7v2::yunnan-his-adt.yaml::ADT^A01::structure" in ids
    assert len([i for i in ids if i.startswith("specs/medins::")]) > 800


def test_without_a_target_every_item_is_skipped_saying_why():
    proc = pytest_run("specs/cdc", "-k", "emr_patient_info and required", "-rs")
    assert proc.returncode == 0 and "1 skipped" in proc.stdout
    assert "needs --target URL|HOST:PORT (active) or --store FILE (passive)" in proc.stdout


def test_a_selected_suite_runs_once_and_junit_has_one_case_per_check(servers, tmp_path):
    port = servers.mock("medins")
    junit = tmp_path / "certify.xml"
    proc = pytest_run("specs/medins", "--target", f"http://127.0.0.1:{port}", "-k", "2207 or outpatient",
                      f"--junitxml={junit}", "--certify-report", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    cases = etree.parse(str(junit)).findall(".//testcase")
    assert len(cases) == 11 and {c.get("name") for c in cases} >= {"example", "required", "msgid", "flow"}
    assert all(c.find("failure") is None and c.find("skipped") is None for c in cases)
    assert len(list(tmp_path.glob("certify-medins-*.html"))) == 1


def test_a_failing_check_fails_its_item_with_the_evidence(servers, tmp_path):
    port = servers.broken("medins-required")
    junit = tmp_path / "certify.xml"
    target = f"http://127.0.0.1:{port}"
    proc = pytest_run(
        "specs/medins", "--target", target, "-k", "2201 and (required or code)", f"--junitxml={junit}"
    )
    assert proc.returncode == 1
    failed = [c for c in etree.parse(str(junit)).findall(".//testcase") if c.find("failure") is not None]
    assert [(c.get("classname").rsplit(".", 1)[-1], c.get("name")) for c in failed] == [("2201", "required")]
    text = failed[0].find("failure").text
    assert "removed" in text and "accepted (infcode 0)" in text and "reproduce: harness certify" in text
