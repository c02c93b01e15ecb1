"""Passive certification over captures the proxy made: both directions judged, coverage of what was seen.

A certification sent through the proxy (`--through`) is itself a capture: its valid cases pass passive
judgement; its invalid cases are non-conformant requests (the sender's fault, `request` fails) that the
target refused (`rejected` passes).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.certify.runs import certify, report
from tests.mask.support import leaks
from tests.ports import free_port
from tests.proxy.http_setup import run_proxy, write_http_config
from tests.proxy.proxy_process import start_proxy


def _cells(summary: dict) -> dict:
    return {(c["operation"], c["check"]): c for c in report(summary)["cells"]}


def test_medins_traffic_through_the_proxy_is_judged_both_ways_with_coverage(
    servers, processes, tmp_path, monkeypatch
):
    upstream = servers.mock("medins")
    config, ports = write_http_config(
        tmp_path,
        {"medins": {"kind": "medins", "upstream": f"http://127.0.0.1:{upstream}", "capture": "durable"}},
    )
    run_proxy(processes, config, ports)
    target = f"http://127.0.0.1:{upstream}"
    code, active, err = certify("--spec", "specs/medins", "--target", target, "--through", str(config),
                                "--operation", "2207,outpatient", "--check", "example,flow",
                                "--out", str(tmp_path / "active"))  # fmt: skip
    assert code == 0 and active["through"].startswith("proxy channel medins"), (active, err)
    store = tmp_path / "captures.db"
    code, summary, err = certify(
        "--spec", "specs/medins", "--store", str(store), "--out", str(tmp_path / "p1"), "--unmasked"
    )
    assert code == 0 and summary["verdict"] == "PASS" and summary["mode"] == "passive", (summary, err)
    cells = _cells(summary)
    assert cells[("2207", "request")]["status"] == "passed" and cells[("2207", "response")]["cases"] >= 1
    assert ("2207", "rejected") not in cells  # nothing invalid was captured
    assert 6 <= summary["operations_covered"] < summary["operations"]  # the flow's and 2207's worlds
    assert any("not seen: 0000" in n for n in report(summary)["notes"])

    # now invalid requests too: the sender is at fault, the centre refused them as the spec says
    code, _, err = certify("--spec", "specs/medins", "--target", target, "--through", str(config),
                           "--operation", "2201", "--check", "required", "--no-reports")  # fmt: skip
    assert code == 0, err
    code, summary, err = certify("--spec", "specs/medins", "--store", str(store), "--operation", "2201",
                                 "--out", str(tmp_path / "p2"), "--unmasked")  # fmt: skip
    assert code == 1 and summary["verdict"] == "FAIL", (summary, err)
    cells = _cells(summary)
    assert cells[("2201", "request")]["status"] == "failed"
    assert cells[("2201", "rejected")]["status"] == "passed" and cells[("2201", "rejected")]["cases"] >= 10
    evidence = cells[("2201", "request")]["evidence"][0]
    assert evidence["reproduce"].startswith("harness capture show ") and "missing" in evidence["finding"]

    # masked by default: the same verdicts, and none of the captured 身份证 in the report
    monkeypatch.setenv("HARNESS_MASK_KEY", "passive-certify-masking-key-0123")
    code, masked, err = certify("--spec", "specs/medins", "--store", str(store), "--operation", "2201",
                                "--out", str(tmp_path / "p3"))  # fmt: skip
    assert code == 1, err
    assert {k: c["status"] for k, c in _cells(masked).items()} == {k: c["status"] for k, c in cells.items()}
    requests = [e["request"] for c in report(summary)["cells"] for e in c.get("evidence") or []]
    field = r'"(?:psn_no|mdtrt_cert_no|certno|psn_name)"\s*:\s*"([^"]{2,})"'
    ids = {value for text in requests for value in re.findall(field, text)}
    assert ids  # the unmasked report quotes the people the certification sent
    written = b"".join(Path(masked["reports"][name]).read_bytes() for name in ("json", "html"))
    assert not leaks(written, sorted(ids))


def test_hl7v2_traffic_through_an_mllp_channel_is_judged_against_the_profile(servers, processes, tmp_path):
    upstream = servers.mock("mllp", "--profile", "specs/hl7v2/yunnan-his-adt.yaml")
    port = free_port()
    config = tmp_path / "proxy.yaml"
    channel = {"protocol": "mllp", "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{upstream}"}
    config.write_text(
        yaml.safe_dump({"store": str(tmp_path / "captures.db"), "admin": False, "channels": {"adt": channel}})
    )
    start_proxy(processes, config, port)
    spec = "specs/hl7v2/yunnan-his-adt.yaml"
    code, _, err = certify("--spec", spec, "--target", f"127.0.0.1:{upstream}", "--through", str(config),
                           "--operation", "ADT^A01,stay", "--no-reports")  # fmt: skip
    assert code == 0, err
    code, summary, err = certify(
        "--spec", spec, "--store", str(tmp_path / "captures.db"), "--out", str(tmp_path), "--unmasked"
    )
    cells = _cells(summary)
    assert (
        cells[("ADT^A01", "rejected")]["status"] == "passed" and cells[("ADT^A01", "rejected")]["cases"] > 10
    )
    assert cells[("ADT^A01", "response")]["status"] == "passed"
    assert cells[("ADT^A01", "request")]["status"] == "failed"  # the invalid cases the certification sent
    assert cells[("ADT^A03", "request")]["status"] == "passed"  # the flow's discharge, valid
    assert code == 1 and summary["operations_covered"] == 3
