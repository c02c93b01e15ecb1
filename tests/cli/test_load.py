"""`harness load` refusing what it cannot run (exit 2, before any locust process starts), and --write-plan."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.processes import ROOT


def run(*args: str):
    return CliRunner().invoke(app, ["load", *args])


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["outpatient-peek", "-t", "127.0.0.1:2575"],
            ["no such profile", "known profiles", "outpatient-peak"],
        ),
        (["outpatient-peak", "-t", "127.0.0.1:2575", "--rate", "5", "--users", "5"], ["give one"]),
        (["outpatient-peak"], ["nothing to send", "mllp (no target"]),
        (["outpatient-peak", "-t", "hl7=127.0.0.1:1"], ["unknown kind 'hl7'"]),
        (
            ["outpatient-peak", "-t", "127.0.0.1:2575", "--from-store", "x.db"],
            ["--from-store and --day go together"],
        ),
        (
            ["outpatient-peak", "-t", "127.0.0.1:2575", "--channel", "adt"],
            ["--channel selects channels of --from-store"],
        ),
        (
            ["outpatient-peak", "-t", "127.0.0.1:2575", "--from-store", "missing.db", "--day", "2026-11-25"],
            ["no such capture store"],
        ),
        (["outpatient-peak", "--through", "nowhere.yaml"], ["--through nowhere.yaml", "cannot read"]),
        (["outpatient-peak", "--through", "nowhere.db"], ["no such proxy config or capture store"]),
        (
            ["outpatient-peak", "-t", "127.0.0.1:2575", "--threshold", "p95<=500"],
            ["unknown threshold", "p95_ms"],
        ),
        (["outpatient-peak", "-t", "127.0.0.1:2575", "--duration", "soon"], ["--duration", "90s"]),
    ],
)
def test_what_cannot_run_exits_2_and_says_why(args, words):
    result = run(*args)
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output


def test_targets_come_from_the_proxy_config_and_the_plan_can_be_written_for_plain_locust(tmp_path):
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "store: captures.db\nadmin: off\nchannels:\n"
        "  his-adt: {protocol: mllp, listen: 0.0.0.0:2575, upstream: 10.1.1.1:12575}\n"
        "  yb: {protocol: http, kind: medins, listen: 127.0.0.1:8080, upstream: 'http://10.1.1.2:80'}\n",
        encoding="utf-8",
    )
    plan_file = tmp_path / "plan.json"
    result = run(
        "outpatient-peak", "--through", str(config), "--write-plan", str(plan_file), "--out", str(tmp_path)
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(plan_file.read_text(encoding="utf-8"))
    assert plan["traffic"]["mllp"]["target"] == "127.0.0.1:2575"
    assert plan["traffic"]["medins"]["target"] == "http://127.0.0.1:8080"
    assert plan["results"].endswith("results.json") and plan["profile"] == "outpatient-peak"


def test_two_channels_of_one_kind_need_an_explicit_target(tmp_path):
    config = tmp_path / "proxy.yaml"
    config.write_text(
        "store: captures.db\nadmin: off\nchannels:\n"
        "  a: {protocol: mllp, listen: 127.0.0.1:2575, upstream: 10.1.1.1:12575}\n"
        "  b: {protocol: mllp, listen: 127.0.0.1:2576, upstream: 10.1.1.1:12576}\n",
        encoding="utf-8",
    )
    result = run("outpatient-peak", "--through", str(config))
    assert result.exit_code == 2 and "channels a, b all carry mllp; say which with --target" in result.output
    assert (ROOT / "loadtests" / "locustfile.py").is_file()
