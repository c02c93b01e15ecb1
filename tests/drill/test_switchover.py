"""The switchover drill through a real proxy: the engine is two `harness mock mllp` processes and the switch
kills the primary (kill -9) while it holds a message."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from harness.child_output import LISTENING
from tests.browser import needs_chromium, rendered, screenshot
from tests.ports import free_port
from tests.processes import HARNESS, Processes
from tests.proxy.proxy_process import start_proxy

DRILL = [
    "--rate",
    "10",
    "--duration",
    "3",
    "--switch-at",
    "1.2",
    "--retry-interval",
    "0.2",
    "--drain",
    "5",
    "--timeout",
    "3",
]


def start_engine(processes, log: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """`harness mock mllp` with its log in a file (one line per message received), and its port."""
    with log.open("w") as out:
        proc = processes.harness("mock", "mllp", "--listen", "127.0.0.1:0", *args, stdout=out)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        m = LISTENING.search(log.read_text())
        if m:
            return proc, int(m.group("port"))
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"the mock did not start: {log.read_text()}")


def config(tmp_path: Path, upstreams: list[int], port: int = 0, **channel) -> Path:
    path = tmp_path / "proxy.yaml"
    body = {
        "protocol": "mllp",
        "listen": f"127.0.0.1:{port}",
        "capture": "fast",
        "connect_timeout_s": 1,
        "upstream": [f"127.0.0.1:{p}" for p in upstreams],
        **channel,
    }
    path.write_text(
        yaml.safe_dump({"store": str(tmp_path / "captures.db"), "admin": False, "channels": {"adt": body}})
    )
    return path


def drill(processes, tmp_path: Path, *args: str) -> tuple[int, dict, str]:
    out = tmp_path / "drill.out"
    with out.open("w") as f:
        proc = processes.start(
            [
                *HARNESS,
                "drill",
                "switchover",
                "--channel",
                "adt",
                *args,
                "--html",
                str(tmp_path / "drill.html"),
                "--report-json",
                str(tmp_path / "drill.json"),
            ],
            stdout=f,
        )
    code = proc.wait(timeout=90)
    text = out.read_text()
    report = json.loads((tmp_path / "drill.json").read_text()) if (tmp_path / "drill.json").exists() else {}
    return code, report, text


@pytest.fixture
def engines(processes, tmp_path):
    """A primary that takes 300 ms a message (so one is always in its hands) and a quick backup."""
    primary, primary_port = start_engine(processes, tmp_path / "primary.log", "--delay-ms", "300")
    _, backup_port = start_engine(processes, tmp_path / "backup.log")
    return primary, primary_port, backup_port


def received(tmp_path: Path) -> list[str]:
    return ["--received", str(tmp_path / "primary.log"), "--received", str(tmp_path / "backup.log")]


@pytest.fixture(scope="module")
def killed_primary(tmp_path_factory):
    """One drill: the proxy started by the drill, close on upstream down, the primary killed mid-message."""
    tmp_path = tmp_path_factory.mktemp("killed-primary")
    processes = Processes()
    try:
        primary, primary_port = start_engine(processes, tmp_path / "primary.log", "--delay-ms", "300")
        _, backup_port = start_engine(processes, tmp_path / "backup.log")
        cfg = config(tmp_path, [primary_port, backup_port], on_upstream_down="close")
        code, report, out = drill(
            processes,
            tmp_path,
            "--config",
            str(cfg),
            "--start-proxy",
            *DRILL,
            "--switch-cmd",
            f"kill -9 {primary.pid}",
            *received(tmp_path),
            "--operator",
            "张工",
        )
        yield code, report, out, tmp_path, primary.wait(timeout=60)
    finally:
        processes.stop_all()


def test_killing_the_primary_mid_message_loses_nothing_and_the_backup_takes_over(killed_primary):
    code, report, out, tmp_path, primary_exit = killed_primary
    assert code == 0, out
    assert primary_exit == -9
    assert report["verdict"] == "PASS" and report["lost"] == 0 and report["reordered"] == 0
    assert report["sent"] == 30 and report["acknowledged"] == 30
    closed = [a for a in report["failed_attempts"] if a["result"] == "closed"]
    assert closed, report["failed_attempts"]  # the proxy closed on the message the primary held
    outage = report["outage"]
    assert 0 < outage["seconds"] < 5 and outage["results"].get("closed", 0) >= 1
    assert 0 < report["recovery_s"] < 5
    served = {s["role"]: s for s in report["served_by"]}
    assert served["backup"]["after_switch"] > 0 and served["primary"]["after_switch"] == 0
    assert report["backup_took_over"] is True
    # the message the primary held when it died reached it, and then the backup: delivered twice, not lost
    lines = (tmp_path / "primary.log").read_text() + (tmp_path / "backup.log").read_text()
    for dup in report["duplicates"]:
        assert len(re.findall(dup["control_id"], lines)) == 2
    assert "PASS" in out and "HTML report" in out
    page = (tmp_path / "drill.html").read_text()
    assert "主备切换演练" in page and "演练负责人" in page and "<script" not in page


@needs_chromium
def test_the_drill_report_in_a_browser(killed_primary, tmp_path):
    code, report, out, folder, _ = killed_primary
    dom = rendered(tmp_path, folder / "drill.html")
    verdict = dom.get_element_by_id("verdict")
    assert "PASS" in verdict.get("class") and " ".join(verdict.itertext()).split()[0] == "PASS"
    figures = " ".join(" ".join(dom.get_element_by_id("figures").itertext()).split())
    assert "30 sent" in figures and "0 lost" in figures and "outage window" in figures
    signoff = " ".join(" ".join(dom.get_element_by_id("signoff").itertext()).split())
    assert "演练负责人 Drill lead 张工" in signoff and "harness verdict: PASS" in signoff
    [chart] = dom.find_class("timeline")
    assert len(chart.find_class("bucket")) == len(report["timeline"]["failed"])
    labels = {" ".join(t.itertext()) for t in chart.find_class("marker-label")}
    outage = report["outage"]["seconds"]
    assert labels == {"switch", f"outage {outage * 1000:.0f} ms" if outage < 1 else f"outage {outage:.2f} s"}
    screenshot(tmp_path, folder / "drill.html", "drill.png", "1200,1800")


def test_with_naks_from_the_proxy_the_sender_retries_and_nothing_is_lost(processes, tmp_path, engines):
    primary, primary_port, backup_port = engines
    port = free_port()
    cfg = config(tmp_path, [primary_port, backup_port], port=port, on_upstream_down="nak")
    start_proxy(processes, cfg, port)  # already running: the drill uses it as it is
    code, report, out = drill(
        processes,
        tmp_path,
        "--config",
        str(cfg),
        *DRILL,
        "--switch-cmd",
        f"kill -9 {primary.pid}",
        *received(tmp_path),
    )
    assert code == 0, out
    assert report["lost"] == 0 and report["acknowledged"] == 30
    naks = [a for a in report["failed_attempts"] if a["result"] == "nak"]
    assert naks and naks[0]["code"] == "AR" and "upstream unavailable" in naks[0]["text"]
    assert report["outage"]["results"].get("nak", 0) >= 1


@pytest.mark.slow
def test_without_a_backup_the_drill_fails_and_says_what_was_lost(processes, tmp_path):
    """A quick primary (idle between messages when it dies): the next message on each connection never
    reaches an engine and is lost; the messages behind it are never sent."""
    primary, primary_port = start_engine(processes, tmp_path / "primary.log")
    cfg = config(tmp_path, [primary_port])
    code, report, out = drill(
        processes,
        tmp_path,
        "--config",
        str(cfg),
        "--start-proxy",
        "--connections",
        "2",
        "--rate",
        "10",
        "--duration",
        "2",
        "--switch-at",
        "0.8",
        "--retry-interval",
        "0.2",
        "--drain",
        "1",
        "--timeout",
        "2",
        "--switch-cmd",
        f"kill -9 {primary.pid}",
        "--received",
        str(tmp_path / "primary.log"),
    )
    assert code == 1, out
    assert report["verdict"] == "FAIL" and report["lost"] >= 1 and report["not_sent"] > 0
    assert any("lost" in r for r in report["reasons"]) and any(
        "did not recover" in r for r in report["reasons"]
    )
    assert any("no backup upstream" in n for n in report["notes"])
    assert "FAIL: " in out


def test_bad_setups_exit_2_and_say_what_to_change(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    cfg = config(tmp_path, [free_port()], port=free_port())
    for args, message in [
        (["--config", str(cfg), "--channel", "lab"], "--channel 'lab': not in"),
        (["--config", str(cfg), "--channel", "adt"], "nothing accepts connections at 127.0.0.1"),
        (["--config", str(cfg), "--channel", "adt", "--switch-at", "90"], "--switch-at 90: must be within"),
        (["--config", str(cfg), "--channel", "adt", "--message-type", "ADT"], "expected TYPE^TRIGGER"),
        (["--config", str(tmp_path / "none.yaml"), "--channel", "adt"], "--config: cannot read"),
        (
            ["--config", str(cfg), "--channel", "adt", "--rate", "5000", "--duration", "3600"],
            "at most 1,000,000",
        ),
    ]:
        result = CliRunner().invoke(app, ["drill", "switchover", "--duration", "10", *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (message, result.output)
