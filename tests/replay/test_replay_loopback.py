"""Replay end to end on loopback: stores made by a real `harness proxy` in front of `harness mock mllp`,
re-sent by `harness replay` (a child process) to real peers, every exchange classified, reports written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from harness.store import ExchangeFilter, Store
from tests.conftest import ROOT, free_port
from tests.replay.conftest import adt, capture_through_proxy, received_ids, start_mock

PATIENTS = ["P1", "P2", "P3", "P4"]


def harness(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def messages(n: int = 12) -> list[bytes]:
    return [adt(i, PATIENTS[i % len(PATIENTS)]) for i in range(n)]


def test_replay_to_mock_answering_some_ae(processes, tmp_path):
    store = tmp_path / "cap.db"
    up = start_mock(processes, tmp_path / "up.log")
    capture_through_proxy(processes, tmp_path, up, messages(), store)
    target = start_mock(processes, tmp_path / "target.log", "--answer-rule", "PID-3.1=P3:AE")
    report = tmp_path / "r.json"
    junit = tmp_path / "r.xml"
    html = tmp_path / "r.html"
    proc = harness(
        "replay", "--store", str(store), "--to", f"127.0.0.1:{target}", "--concurrency", "3",
        "--report-json", str(report), "--report-junit", str(junit), "--report-html", str(html), "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["selected"] == 12 and summary["sent"] == 12
    assert summary["new_error"] == 3
    assert summary["exact"] + summary["equivalent"] == 9
    assert summary["different"] == summary["missing"] == 0
    results = json.loads(report.read_text())["results"]
    for r in results:
        patient = "P3" if b"|P3^" in Store(store).get(r["original_id"]).request else "other"
        if patient == "P3":
            assert (r["classification"], r["replay_code"]) == ("new_error", "AE")
        else:
            assert r["classification"] in ("exact", "equivalent"), r
            assert all(d["ignored"] for d in r["differences"])
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "12" and suite.get("failures") == "3"
    page = html.read_text()
    assert "<svg" in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "AE answered by harness mock mllp" in page  # the difference with both values
    # the originals are untouched, the replays are linked to them
    with Store(store) as s:
        run_id = summary["run_id"]
        replays = list(s.query(ExchangeFilter(run_id=run_id)))
        assert len(replays) == 12 and all(r.original_id for r in replays)
        assert s.get(replays[0].original_id).run_id is None
        assert s.get_run(run_id).kind == "replay"
    # harness compare gives the same verdict on the stored run
    proc = harness("compare", "capture", str(run_id), "--store", str(store), "--json")
    assert proc.returncode == 1
    again = json.loads(proc.stdout)
    assert (again["new_error"], again["exact"] + again["equivalent"]) == (3, 9)
    # a second run against the same target, compared with the first: the same answers, run to run
    proc = harness("replay", "--store", str(store), "--to", f"127.0.0.1:{target}", "--json")
    second = json.loads(proc.stdout)["run_id"]
    proc = harness("compare", str(run_id), str(second), "--store", str(store), "--json")
    assert proc.returncode == 0, proc.stdout
    between = json.loads(proc.stdout)
    assert between["exact"] + between["equivalent"] == 12 and between["new_error"] == 0


def test_select_naks_for_one_channel_and_replay_with_rewrites(processes, tmp_path):
    store = tmp_path / "cap.db"
    nak_up = start_mock(processes, tmp_path / "up1.log", "--answer-rule", "PID-3.1=P2:AE")
    capture_through_proxy(processes, tmp_path, nak_up, messages(8), store, channel="adt")
    other = start_mock(processes, tmp_path / "up2.log", "--answer", "AE")
    capture_through_proxy(
        processes, tmp_path, other, [adt(100 + i, "P9") for i in range(3)], store, channel="lab"
    )
    target_log = tmp_path / "target.log"
    target = start_mock(processes, target_log)
    dry = harness(
        "replay", "--store", str(store), "--channel", "adt", "--outcome", "nak", "--new-control-ids",
        "--retarget-app", "HC_TEST", "--time", "now", "--dry-run", "--json",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [line["control_id"] for line in lines] == ["MSG00001", "MSG00005"]
    assert all("|HC_TEST|" in line["payload"] for line in lines)
    assert received_ids(target_log) == []  # nothing sent by a dry run
    proc = harness(
        "replay", "--store", str(store), "--channel", "adt", "--outcome", "nak,timeout", "--new-control-ids",
        "--to", f"127.0.0.1:{target}", "--json",
    )  # fmt: skip
    summary = json.loads(proc.stdout)
    assert summary["selected"] == 2 and summary["recovered"] == 2
    assert summary["different"] == 2 and proc.returncode == 1
    run_id = summary["run_id"]
    got = received_ids(target_log)
    assert got == [f"R{run_id}-2", f"R{run_id}-6"]


def test_replay_files_and_unreachable_target(processes, tmp_path):
    folder = tmp_path / "msgs"
    folder.mkdir()
    (folder / "a.hl7").write_bytes(b"\n".join(m.replace(b"\r", b"\n") for m in messages(3)))
    store = tmp_path / "cap.db"
    target = start_mock(processes, tmp_path / "t.log")
    proc = harness(
        "replay", "--store", str(store), "--files", str(folder), "--to", f"127.0.0.1:{target}", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["equivalent"] == 3 and summary["sent"] == 3
    dead = free_port()
    proc = harness("replay", "--store", str(store), "--files", str(folder), "--to", f"127.0.0.1:{dead}")
    assert proc.returncode == 2
    assert "cannot connect" in proc.stderr and "--resume" in proc.stderr


def test_usage_errors(tmp_path):
    store = tmp_path / "none.db"
    proc = harness("replay", "--store", str(store), "--to", "127.0.0.1:1")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    Store(store).close()
    proc = harness("replay", "--store", str(store))
    assert proc.returncode == 2 and "--to" in proc.stderr
    proc = harness("replay", "--store", str(store), "--to", "nohost", "--pace", "x0")
    assert proc.returncode == 2
    proc = harness("replay", "--store", str(store), "--to", "127.0.0.1:1", "--pace", "fast")
    assert proc.returncode == 2 and "--pace" in proc.stderr
    proc = harness("compare", "capture", "7", "--store", str(store))
    assert proc.returncode == 2 and "run 7 does not exist" in proc.stderr
    proc = harness("replay", "--store", str(store), "--resume", "3")
    assert proc.returncode == 2 and "run 3 does not exist" in proc.stderr


def test_replay_to_hl7apy_mllp_server(processes, tmp_path):
    """hl7apy's MLLPServer (one message per connection, then it closes) as the target."""
    from hl7apy.core import Message
    from hl7apy.mllp import AbstractHandler, MLLPServer
    from hl7apy.parser import parse_message

    class Ack(AbstractHandler):
        def reply(self):
            incoming = parse_message(self.incoming_message, find_groups=False)
            ack = Message("ACK", version="2.5")
            ack.msh.msh_3 = incoming.msh.msh_5.value
            ack.msh.msh_4 = incoming.msh.msh_6.value
            ack.msh.msh_5 = incoming.msh.msh_3.value
            ack.msh.msh_6 = incoming.msh.msh_4.value
            ack.msh.msh_9 = "ACK^A08^ACK"
            ack.msh.msh_10 = "H" + incoming.msh.msh_10.value
            ack.msh.msh_11 = "P"
            patient = incoming.pid.pid_3.value.split("^")[0]
            ack.msa.msa_1 = "AR" if patient == "P4" else "AA"
            ack.msa.msa_2 = incoming.msh.msh_10.value
            return "\x0b" + ack.to_er7() + "\x1c\x0d"

    store = tmp_path / "cap.db"
    up = start_mock(processes, tmp_path / "up.log")
    capture_through_proxy(processes, tmp_path, up, messages(8), store)
    server = MLLPServer("127.0.0.1", 0, {"ADT^A08^ADT_A01": (Ack,), "ADT^A08": (Ack,)})
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        report = tmp_path / "r.json"
        proc = harness(
            "replay", "--store", str(store), "--to", f"127.0.0.1:{port}", "--concurrency", "2",
            "--report-json", str(report), "--json",
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    summary = json.loads(proc.stdout)
    assert summary["sent"] == 8, proc.stderr
    results = json.loads(report.read_text())["results"]
    for r in results:
        if r["replay_response"] and "MSA|AR" in r["replay_response"]:
            assert r["classification"] == "new_error"
        else:
            # hl7apy writes its own MSH-7 and MSH-10 (ignored) and MSH-7 without a zone
            assert r["classification"] == "equivalent", r
    assert summary["new_error"] == 2 and summary["equivalent"] == 6


@pytest.mark.timeout(120)
def test_killed_and_resumed_run_sends_each_message_once(processes, tmp_path):
    store = tmp_path / "cap.db"
    up = start_mock(processes, tmp_path / "up.log")
    n = 40
    capture_through_proxy(processes, tmp_path, up, messages(n), store)
    target_log = tmp_path / "target.log"
    target = start_mock(processes, target_log)
    args = ["replay", "--store", str(store), "--to", f"127.0.0.1:{target}", "--rate", "10", "--json"]
    child = processes.harness(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    with Store(store) as s:
        while True:
            runs = s.runs("replay")
            done = s.count(ExchangeFilter(run_id=runs[0].id)) if runs else 0
            if done >= 10:
                break
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "replay made no progress"
            time.sleep(0.005)
        run_id = runs[0].id
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    with Store(store) as s:
        assert s.get_run(run_id).status == "running"  # killed: never finished
        before = s.count(ExchangeFilter(run_id=run_id))
    assert 10 <= before < n
    proc = harness("replay", "--store", str(store), "--resume", str(run_id), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["run_id"] == run_id and summary["selected"] == n
    assert summary["exact"] + summary["equivalent"] == n
    ids = received_ids(target_log)
    assert sorted(ids) == sorted(f"MSG{i:05d}" for i in range(n)), "each message exactly once"


def test_store_made_by_the_proxy_replayed_to_mock_answering_some_ae(processes, tmp_path):
    """The proxy captures real traffic (the upstream NAKs P2, times out on nothing), then replay."""
    store = tmp_path / "proxy.db"
    up = start_mock(processes, tmp_path / "up.log", "--answer-rule", "PID-3.1=P2:AE")
    capture_through_proxy(processes, tmp_path, up, messages(8), store)
    with Store(store) as s:
        captured = list(s.query(ExchangeFilter()))
    assert len(captured) == 8 and {c.outcome for c in captured} == {"ok", "nak"}
    target_log = tmp_path / "target.log"
    target = start_mock(processes, target_log, "--answer-rule", "PID-3.1=P4:AR")
    report = tmp_path / "r.json"
    proc = harness(
        "replay", "--store", str(store), "--to", f"127.0.0.1:{target}", "--concurrency", "4",
        "--report-json", str(report), "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    for r in json.loads(report.read_text())["results"]:
        patient = r["replay_response"] and Store(store).get(r["original_id"]).request.split(b"PID|1||")[1][:2]
        expected = {b"P2": "different", b"P4": "new_error"}.get(patient, "equivalent")
        assert r["classification"] == expected, r
        if patient == b"P2":
            assert r["recovered"] and (r["original_code"], r["replay_code"]) == ("AE", "AA")
    assert sorted(received_ids(target_log)) == sorted(c.control_id for c in captured)


def test_no_reply_is_missing(processes, tmp_path):
    (tmp_path / "m.hl7").write_bytes(b"".join(messages(2)))
    silent = start_mock(processes, tmp_path / "silent.log", "--no-answer")
    proc = harness(
        "replay", "--store", str(tmp_path / "s.db"), "--files", str(tmp_path / "m.hl7"),
        "--to", f"127.0.0.1:{silent}", "--timeout", "0.3", "--concurrency", "2", "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["sent"], summary["missing"]) == (2, 2)


def test_bad_selection_creates_no_run(tmp_path):
    store = tmp_path / "s.db"
    Store(store).close()
    for args in (["--where", "PID-3=re:("], ["--files", str(tmp_path / "nowhere")], ["--channel", "adt"]):
        proc = harness("replay", "--store", str(store), "--to", "127.0.0.1:1", *args)
        assert proc.returncode == 2, (args, proc.stderr)
    assert "nothing selected" in proc.stderr
    with Store(store) as s:
        assert s.runs() == []


def test_ctrl_c_finishes_in_flight_and_the_run_resumes(processes, tmp_path):
    store = tmp_path / "cap.db"
    up = start_mock(processes, tmp_path / "up.log")
    capture_through_proxy(processes, tmp_path, up, messages(30), store)
    target_log = tmp_path / "target.log"
    target = start_mock(processes, target_log)
    args = ["replay", "--store", str(store), "--to", f"127.0.0.1:{target}", "--rate", "20"]
    args += ["--concurrency", "2"]
    child = processes.harness(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    with Store(store) as s:
        while not (s.runs("replay") and s.count(ExchangeFilter(run_id=s.runs("replay")[0].id)) >= 5):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        run_id = s.runs("replay")[0].id
    os.kill(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 1, err
    assert f"--resume {run_id}" in err
    with Store(store) as s:
        assert s.get_run(run_id).status == "interrupted"
    proc = harness("replay", "--store", str(store), "--resume", str(run_id), "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(received_ids(target_log)) == sorted(f"MSG{i:05d}" for i in range(30))
