"""`harness certify` refuses what it cannot use with exit 2 and a message saying what and where."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.certify.runs import certify
from tests.ports import free_port
from tests.processes import ROOT


def run(*args: str):
    """`harness certify ARGS` in process: exit code and stderr."""
    result = CliRunner().invoke(app, ["certify", *args])
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--spec", "specs/medins"], "give either --target URL|HOST:PORT (active) or --store FILE (passive)"),
        (
            ["--spec", "specs/nope", "--target", "http://127.0.0.1:1"],
            "--spec: specs/nope: no such spec folder",
        ),
        (["--spec", "specs/hl7v2", "--target", "127.0.0.1:1"], "name one: specs/hl7v2/yunnan-his-adt.yaml"),
        (
            ["--spec", "specs/medins", "--target", "http://127.0.0.1:1", "--check", "nope"],
            "--check nope: unknown",
        ),
        (
            ["--spec", "specs/medins", "--target", "http://127.0.0.1:1", "--operation", "9999"],
            "--operation 9999: not in",
        ),
        (["--spec", "specs/medins", "--target", "ftp://x"], "expected http://HOST:PORT"),
        (["--spec", "specs/hl7v2/lis-oru.yaml", "--target", "nohost"], "HL7 v2 is certified over MLLP"),
        (["--spec", "specs/medins", "--store", "nope.db"], "--store nope.db: no such capture store"),
        (["--spec", "specs/medins", "--target", "http://127.0.0.1:1", "--store", "x.db"], "give either"),
        (
            ["--spec", "specs/medins", "--target", "http://127.0.0.1:1", "--through", "nope.yaml"],
            "--through nope.yaml",
        ),
    ],
)
def test_usage_errors_exit_2_and_say_what(args, words, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, err = run(*args)
    assert code == 2 and words in err, err


def test_a_target_that_is_not_listening_is_an_environment_error(monkeypatch):
    monkeypatch.chdir(ROOT)
    port = free_port()
    code, err = run("--spec", "specs/cdc", "--target", f"http://127.0.0.1:{port}")
    assert code == 2 and f"cannot connect to 127.0.0.1:{port}" in err


def test_a_bad_waiver_file_is_a_usage_error_naming_the_entry(tmp_path):
    waivers = tmp_path / "w.yaml"
    waivers.write_text("waivers: [{operation: '2201', check: code}]\n", "utf-8")
    code, _, err = certify(
        "--spec", "specs/medins", "--target", "http://127.0.0.1:1", "--waivers", str(waivers)
    )
    assert code == 2 and "w.yaml: waivers[0].reason: missing" in err


def test_the_text_output_leads_with_the_verdict_and_says_where_the_reports_are(servers, tmp_path):
    import subprocess

    from tests.processes import HARNESS

    port = servers.mock("cdc")
    proc = subprocess.run(
        [*HARNESS, "certify", "--spec", "specs/cdc", "--target", f"http://127.0.0.1:{port}", "--operation",
         "base_dept", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0].startswith("PASS: cdc spec specs/cdc against http://127.0.0.1:")
    assert [line.split(":")[0] for line in lines[1:]] == ["html report", "json report", "junit report"]
    assert all((tmp_path / line.rsplit("/", 1)[1]).is_file() for line in lines[1:])
