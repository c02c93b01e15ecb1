"""`harness inspect` and `harness capture summary --html` as a user runs them: exit codes, files, messages."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from harness.cli import app

WINDOW = ["--since", "2026-03-02T08:00+08:00", "--until", "2026-03-02T12:00+08:00"]


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_breaches_exit_1_naming_each_and_every_report_is_written(synthetic_store, shanghai, tmp_path):
    folder = synthetic_store.parent
    out = tmp_path / "out"
    r = run(
        "inspect",
        "--store",
        str(synthetic_store),
        *WINDOW,
        "--sla",
        str(folder / "sla.yaml"),
        "--config",
        str(folder / "proxy.yaml"),
        "--html",
        str(out / "i.html"),
        "--report-json",
        str(out / "i.json"),
        "--summary",
        str(out / "i.txt"),
        "--compare-previous",
    )
    assert r.exit_code == 1, r.output
    assert "verdict FAIL (5 SLA breaches" in r.output
    assert "lab: success rate 86 % < minimum 99 %" in r.output
    assert "adt: failovers 1 > maximum 0" in r.output
    assert "cdc: exchanges 0 < minimum 1" in r.output
    assert "adt: 2026-03-02T11:22:30+08:00 failover 10.10.1.21:12575 -> 10.10.1.22:12575" in r.output
    data = json.loads((out / "i.json").read_text(encoding="utf-8"))
    assert data["verdict"] == "FAIL" and len(data["sla"]["breaches"]) == 5
    assert (out / "i.txt").read_text(encoding="utf-8") in r.output
    page = (out / "i.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http://" not in page and "https://" not in page  # offline
    assert "接口巡检" in page and "巡检人" in page


def test_without_an_sla_the_figures_are_printed_and_the_exit_is_0(synthetic_store, shanghai):
    r = run("inspect", "--store", str(synthetic_store), *WINDOW, "--channel", "lab", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["verdict"] == "NO SLA" and [c["channel"] for c in data["channels"]] == ["lab"]
    assert data["channels"][0]["success_rate"] == 86.0


def test_an_sla_met_exits_0(synthetic_store, shanghai, tmp_path):
    sla = tmp_path / "ok.yaml"
    sla.write_text("channels:\n  medins: {success_rate_min: 90, p95_ms_max: 50}\n", encoding="utf-8")
    r = run("inspect", "--store", str(synthetic_store), *WINDOW, "--channel", "medins", "--sla", str(sla))
    assert r.exit_code == 0, r.output
    assert "verdict PASS" in r.output


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "--since/--until: time 'yesterday'"),
    (["--since", "1h", "--until", "2h"], "must be after --since"),
    (["--message-tz", "Mars/Olympus"], "--message-tz 'Mars/Olympus': expected an offset"),
    (["--business-hours", "8-18"], "business hours '8-18'"),
])  # fmt: skip
def test_bad_options_exit_2_and_say_which(synthetic_store, args, message):
    r = run("inspect", "--store", str(synthetic_store), *args)
    assert r.exit_code == 2, r.output
    assert message in r.output


def test_a_bad_sla_file_or_store_exits_2(synthetic_store, tmp_path):
    sla = tmp_path / "bad.yaml"
    sla.write_text("channels:\n  adt: {p95: 3}\n", encoding="utf-8")
    r = run("inspect", "--store", str(synthetic_store), "--sla", str(sla))
    assert r.exit_code == 2 and "channels.adt.p95: unknown key" in r.output
    r = run("inspect", "--store", str(tmp_path / "none.db"))
    assert r.exit_code == 2 and "no such file" in r.output
    not_a_store = tmp_path / "x.db"
    not_a_store.write_text("hello")
    r = run("inspect", "--store", str(not_a_store))
    assert r.exit_code == 2 and "error:" in r.output


def test_capture_summary_html_has_the_inspection_look_for_any_selection(synthetic_store, shanghai, tmp_path):
    page = tmp_path / "summary.html"
    r = run(
        "capture",
        "summary",
        "--store",
        str(synthetic_store),
        "--channel",
        "lab",
        "--outcome",
        "nak,timeout",
        "--html",
        str(page),
    )
    assert r.exit_code == 0, r.output
    text = page.read_text(encoding="utf-8")
    assert "Capture summary" in text and "channel lab; outcome nak, timeout" in text
    assert 'class="chart time volume"' in text and "巡检人" not in text  # charts, but no sign-off block
    assert "28</b> exchanges" in text  # 20 NAKs, 8 timeouts: live traffic (the 5 replayed NAKs need --runs)
