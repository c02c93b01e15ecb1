"""Short, bounded `harness load` runs against the simulators, through the proxy and around it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter

import pytest

from harness.exchange import Exchange
from harness.store import ExchangeFilter, Store
from tests.load.runs import load, start_mock, summary, write_profile
from tests.processes import HARNESS, ROOT

SMOKE = "interfaces-smoke"


def ctrl_c(proc: subprocess.Popen, ready, settle: float = 0.0, within: float = 90) -> tuple[str, str]:
    """Once ready() holds (and `settle` seconds more), Ctrl-C to `harness load`; its output. It is killed
    whatever happens."""
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not ready():
            time.sleep(0.2)
        time.sleep(settle)
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def captured(store, since: float, channel=None) -> Counter:
    with Store(store, create=False) as s:
        rows = list(s.query(ExchangeFilter(channel=channel, since=since - 1, replays=False), bodies=False))
    return Counter(ex.message_type for ex in rows)


def test_every_user_type_through_the_proxy_matches_the_capture_request_for_request(chain, tmp_path):
    out = tmp_path / "smoke"
    started = time.time()
    run = load(
        SMOKE,
        "--through",
        str(chain.config),
        "--target",
        f"mllp={chain.address('adt')}",
        "--duration",
        "4s",
        "--rate",
        "25",
        "--out",
        str(out),
        "--json",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    doc = json.loads(run.stdout)
    for key in (
        "profile",
        "target",
        "duration_s",
        "requests",
        "failures",
        "rate",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "thresholds",
    ):
        assert key in doc
    assert doc["profile"] == SMOKE and doc["failures"] == 0 and doc["passed"] and doc["exit_code"] == 0
    assert all(t["passed"] for t in doc["thresholds"]), doc["thresholds"]
    kinds = {r["kind"] for r in doc["by_name"].values()}
    assert kinds == {"mllp", "medins", "fhir", "soap"}
    assert doc["proxy"]["counts_match"], doc["proxy"]
    s = summary(out)
    in_store = captured(chain.store, started, ["adt", "medins", "fhir", "soap"])
    for name, row in s["by_name"].items():
        assert in_store[name] == row["requests"], (name, in_store[name], row)
        assert s["proxy"]["by_name"][name]["captured"] == row["requests"]
        assert s["proxy"]["by_name"][name]["outcomes"] == {"ok": row["requests"]}
        assert s["proxy"]["by_name"][name]["upstream_p50_ms"] is not None
    assert {"9001", "1101", "2201", "2204", "2206", "2207", "create Patient", "PatientInfoRegister"} <= set(
        s["by_name"]
    )
    for name in ("report.html", "timeline.csv", "requests.csv", "failures.csv", "summary.json"):
        assert (out / name).is_file()
    header = (out / "requests.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.endswith("captured,upstream_p50_ms,upstream_p95_ms,upstream_p99_ms,naks,timeouts")


def test_an_upstream_answering_ae_for_one_type_fails_exactly_that_type(chain, tmp_path):
    profile = write_profile(
        tmp_path,
        "mix",
        {
            "ADT^A04": "adt_a04_gb18030.hl7",
            "ADT^A08": "adt_a08_update_lf.hl7",
            "ORU^R01": "oru_r01_glucose.hl7",
        },
        thresholds={"error_rate": "1%"},
    )
    out = tmp_path / "ae"
    run = load(
        str(profile), "--through", str(chain.config), "--target", chain.address("adt-ae"), "--out", str(out)
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "MISSED error rate <= 1%" in run.stdout
    s = summary(out)
    failing = {name for name, row in s["by_name"].items() if row["failures"]}
    assert failing == {"ADT^A08"}
    assert s["by_name"]["ADT^A08"]["failures"] == s["by_name"]["ADT^A08"]["requests"] > 0
    assert {e["name"] for e in s["errors"]} == {"ADT^A08"}
    assert all(e["reason"].startswith("AE") for e in s["errors"])
    proxy = s["proxy"]
    assert proxy["channels"] == ["adt-ae"] and proxy["counts_match"]
    assert proxy["by_name"]["ADT^A08"]["naks"] == s["by_name"]["ADT^A08"]["requests"]
    assert proxy["by_name"]["ADT^A04"]["naks"] == 0


@pytest.fixture(scope="module")
def mllp_port():
    from tests.processes import Processes

    procs = Processes()
    try:
        yield start_mock(procs, "mllp")
    finally:
        procs.stop_all()


@pytest.mark.parametrize("limit, code", [("5", 0), ("1000", 1)])
def test_thresholds_decide_the_exit_code_both_ways(mllp_port, tmp_path, limit, code):
    profile = write_profile(
        tmp_path, "rate", {"ADT^A04": "adt_a04_gb18030.hl7"}, duration="2s", thresholds={"p99_ms": 60000}
    )
    run = load(
        str(profile),
        "--target",
        f"127.0.0.1:{mllp_port}",
        "--threshold",
        f"min_rate={limit}",
        "--out",
        str(tmp_path / "out"),
    )
    assert run.returncode == code, run.stdout + run.stderr
    s = summary(tmp_path / "out")
    assert s["exit_code"] == code and s["failures"] == 0
    if code:
        assert "MISSED rate >= 1000/s" in run.stdout
        assert s["breached"] == ["rate >= 1000/s"]
    else:
        assert s["breached"] == [] and [t["passed"] for t in s["thresholds"]] == [True, True]


@pytest.fixture(scope="module")
def slow_port():
    from tests.processes import Processes

    procs = Processes()
    try:
        yield start_mock(procs, "mllp", "--delay-ms", "100")
    finally:
        procs.stop_all()


def test_the_open_model_keeps_its_rate_against_a_slow_target_and_reports_the_backlog(slow_port, tmp_path):
    profile = write_profile(
        tmp_path,
        "open",
        {"ORU^R01": "oru_r01_glucose.hl7"},
        duration="4s",
        rate=30,
        thresholds={"min_rate": "95%"},
    )
    enough = load(
        str(profile),
        "--target",
        f"127.0.0.1:{slow_port}",
        "--concurrency",
        "8",
        "--out",
        str(tmp_path / "enough"),
    )
    assert enough.returncode == 0, enough.stdout + enough.stderr
    ok = summary(tmp_path / "enough")
    # each reply takes 100 ms: a closed-model user could send 10/s; eight users keep 30/s arriving on time
    assert ok["open"]["started"] >= 0.95 * ok["open"]["scheduled"] >= 0.95 * 110
    assert ok["open"]["backlog_max"] <= 3 and ok["p50_ms"] >= 100
    short = load(
        str(profile),
        "--target",
        f"127.0.0.1:{slow_port}",
        "--concurrency",
        "1",
        "--out",
        str(tmp_path / "short"),
    )
    assert short.returncode == 1, short.stdout + short.stderr
    assert "MISSED rate >= 95% of the target" in short.stdout
    late = summary(tmp_path / "short")
    assert (
        late["open"]["scheduled"] == ok["open"]["scheduled"]
    )  # the target did not bend to the target's pace
    assert late["open"]["started"] < 0.6 * late["open"]["scheduled"]
    assert late["open"]["backlog_max"] >= 30
    assert max(row.get("backlog", 0) for row in late["timeline"]) == late["open"]["backlog_max"]
    assert late["open"]["wait_p95_ms"] >= 1000


def test_a_master_with_two_local_workers_shares_the_load_between_them(chain, tmp_path):
    profile = write_profile(tmp_path, "two", {"ADT^A04": "adt_a04_gb18030.hl7"}, duration="4s", rate=40)
    started = time.time()
    out = tmp_path / "workers"
    run = load(
        str(profile),
        "--through",
        str(chain.config),
        "--target",
        chain.address("adt"),
        "--workers",
        "2",
        "--out",
        str(out),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    s = summary(out)
    assert s["workers"] == 2 and s["proxy"]["counts_match"]
    assert (out / "locust-worker-1.log").is_file() and (out / "locust-worker-2.log").is_file()
    with Store(chain.store, create=False) as store:
        rows = list(store.query(ExchangeFilter(channel="adt", since=started - 1), bodies=False))
    ours = [ex.control_id for ex in rows if ex.control_id.startswith(f"L{s['run_tag']}")]
    assert len(ours) == s["requests"] >= 150
    by_worker = Counter(cid[5:7] for cid in ours)  # L + run tag + worker index
    assert len(by_worker) == 2 and min(by_worker.values()) >= 0.3 * len(ours)
    assert len(set(ours)) == len(ours)


@pytest.mark.slow  # the derivation itself is tested without processes in test_capture_shape.py
def test_a_captured_day_shapes_the_run_and_sets_its_mix(mllp_port, tmp_path):
    store = tmp_path / "day.db"
    day = "2026-11-25"
    base = time.mktime(time.strptime(f"{day} 08:00:00", "%Y-%m-%d %H:%M:%S"))
    rows = [
        Exchange(
            channel="adt",
            started_at=base + i * 0.5,
            message_type="ADT^A04",
            request=(ROOT / "fixtures/hl7v2/adt_a04_gb18030.hl7").read_bytes(),
        )
        for i in range(120)
    ]
    rows += [
        Exchange(
            channel="adt",
            started_at=base + 60 + i,
            message_type="ADT^A01",
            request=(ROOT / "fixtures/hl7v2/adt_a01_gbk.hl7").read_bytes(),
        )
        for i in range(30)
    ]
    with Store(store) as s:
        s.add_many(rows)
    out = tmp_path / "captured"
    run = load(
        "outpatient-peak",
        "--target",
        f"127.0.0.1:{mllp_port}",
        "--from-store",
        str(store),
        "--day",
        day,
        "--scale",
        "2",
        "--duration",
        "4s",
        "--out",
        str(out),
    )
    assert run.returncode in (0, 1), run.stdout + run.stderr
    s = summary(out)
    assert s["shape"]["name"] == "capture" and s["capture"]["exchanges"] == 150
    assert set(s["by_name"]) == {"ADT^A04", "ADT^A01"}  # the captured types, A01 made from a captured sample
    assert s["failures"] == 0
    # 120/min then 30/min, doubled (4/s, then 1/s), each captured minute played for 2 s: 8 + 2 requests
    assert 8 <= s["requests"] <= 11
    assert s["by_name"]["ADT^A04"]["requests"] >= 6


def test_ctrl_c_stops_the_run_cleanly_and_still_reports(mllp_port, tmp_path):
    profile = write_profile(tmp_path, "long", {"ADT^A04": "adt_a04_gb18030.hl7"}, duration="60s")
    out = tmp_path / "stopped"
    proc = subprocess.Popen(
        [*HARNESS, "load", str(profile), "--target", f"127.0.0.1:{mllp_port}", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    stdout, stderr = ctrl_c(proc, (out / "progress.jsonl").is_file, settle=2.0)
    assert proc.returncode == 2, stdout + stderr
    assert "interrupted after" in stdout
    s = summary(out)
    assert s["interrupted"] and not s["passed"] and s["requests"] > 0
    assert (out / "report.html").is_file()


@pytest.mark.slow
def test_web_mode_serves_locusts_ui_and_reports_after_ctrl_c(mllp_port, tmp_path):
    import urllib.request

    from tests.ports import free_port

    profile = write_profile(tmp_path, "web", {"ADT^A04": "adt_a04_gb18030.hl7"}, duration="3s")
    out, port = tmp_path / "web", free_port()
    proc = subprocess.Popen([*HARNESS, "load", str(profile), "--target", f"127.0.0.1:{mllp_port}", "--web",
                             "--web-port", str(port), "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    pages = []

    def finished() -> bool:
        if not pages:
            try:
                pages.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read())
            except OSError:
                return False
        return (out / "results.json").is_file()

    stdout, stderr = ctrl_c(proc, finished)
    assert pages and b"ocust" in pages[0]
    assert proc.returncode == 0, stdout + stderr  # the run had ended: Ctrl-C only closed the UI
    assert summary(out)["requests"] > 0 and not summary(out)["interrupted"]
