"""`harness inspect` on a store a real proxy wrote: `harness send` through `harness proxy` to
`harness mock mllp`, which NAKs every fourth message."""

from __future__ import annotations

import json
import subprocess

import yaml

from tests.mock_mllp_process import start_mock
from tests.ports import free_port
from tests.processes import HARNESS, ROOT
from tests.proxy.proxy_process import start_proxy


def test_inspect_reads_what_the_proxy_captured_from_the_simulators(processes, tmp_path):
    mock = start_mock(processes, "--nak-every", "4")
    port = free_port()
    config = tmp_path / "proxy.yaml"
    channel = {
        "protocol": "mllp",
        "listen": f"127.0.0.1:{port}",
        "upstream": [f"127.0.0.1:{mock.port}"],
        "capture": "durable",
    }
    config.write_text(
        yaml.safe_dump({"store": str(tmp_path / "captures.db"), "admin": False, "channels": {"adt": channel}})
    )
    proxy = start_proxy(processes, config, port)
    folder = tmp_path / "messages"
    folder.mkdir()
    for i in range(12):
        (folder / f"m{i:02d}.hl7").write_text(
            f"MSH|^~\\&|HIS|H1|HC|H1|20260302093000||ADT^A0{1 + i % 2}|SIM{i}|P|2.5\rPID|1||{i}^^^H1^MR\r"
        )
    sent = subprocess.run(
        [*HARNESS, "send", f"127.0.0.1:{port}", str(folder), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert sent.returncode == 1, sent.stdout + sent.stderr  # the NAKs
    proxy.terminate()
    proxy.wait(timeout=60)
    sla = tmp_path / "sla.yaml"
    sla.write_text("channels:\n  adt: {success_rate_min: 99, volume_min: 12}\n")
    out = tmp_path / "inspection.json"
    done = subprocess.run(
        [
            *HARNESS,
            "inspect",
            "--store",
            str(tmp_path / "captures.db"),
            "--since",
            "10m",
            "--config",
            str(config),
            "--sla",
            str(sla),
            "--report-json",
            str(out),
            "--html",
            str(tmp_path / "inspection.html"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "adt: success rate 75 % < minimum 99 %" in done.stdout
    report = json.loads(out.read_text())
    [adt] = report["channels"]
    assert adt["exchanges"] == 12 and adt["outcomes"] == {"ok": 9, "nak": 3}
    [failure] = adt["failures_top"]
    assert (failure["code"], failure["count"], failure["reason"]) == (
        "AE",
        3,
        "AE answered by harness mock mllp; Application internal error",
    )
    assert adt["upstreams"] == [
        {**adt["upstreams"][0], "address": f"127.0.0.1:{mock.port}", "role": "primary", "exchanges": 12}
    ]
    assert adt["latency_ms"]["count"] == 12 and adt["latency_ms"]["p50"] > 0
    assert {t["message_type"]: t["exchanges"] for t in adt["message_types"]} == {"ADT^A01": 6, "ADT^A02": 6}
    assert adt["sync_delay_s"]["count"] == 12  # MSH-7 was read (the fixture's time is in the past)
