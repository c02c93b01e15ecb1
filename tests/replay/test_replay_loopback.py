"""Replay end to end on loopback: stores made by a real `harness proxy` in front of `harness mock mllp`,
re-sent by `harness replay` (a child process) to real peers, every exchange classified, reports written."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from harness.mllp import Frame, MLLPDecoder, encode
from harness.store import ExchangeFilter, Store
from tests.ports import free_port
from tests.processes import ROOT
from tests.replay.traffic import adt, capture_through_proxy, received_ids, start_mock

PATIENTS = ["P1", "P2", "P3", "P4"]


def harness(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def messages(n: int = 12) -> list[bytes]:
    return [adt(i, PATIENTS[i % len(PATIENTS)]) for i in range(n)]


class Gate:
    """A loopback relay in front of a replay target: the first `free` messages go through, the rest are
    held, undelivered, until `release()`. A run can then be stopped while it is mid-stream with messages
    in flight, however fast or slow the machine is (a paced run that fell behind catches up in a burst
    and could finish before a signal sent "in the middle" arrives). Messages held on a connection that
    closes are dropped: the target never sees them."""

    def __init__(self, target: int, free: int) -> None:
        self.target = target
        self.free = free
        self.passed = 0
        self.held = 0
        self.open_connections = 0
        self.released = False
        self.cond = threading.Condition()
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def wait(self, predicate, what: str, timeout: float = 60) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), what

    def release(self) -> None:
        with self.cond:
            self.released = True
            self.cond.notify_all()

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, upstream]
            with self.cond:
                self.open_connections += 1
            threading.Thread(target=self._back, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._forward, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _back(upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass

    def _forward(self, client: socket.socket, upstream: socket.socket) -> None:
        decoder = MLLPDecoder()
        held: list[bytes] = []
        client.settimeout(0.05)
        try:
            while True:
                try:
                    data = client.recv(65536)
                except TimeoutError:
                    data = None
                if data == b"":
                    break  # the client is gone: what it had in flight here is dropped
                frames = [e.payload for e in decoder.feed(data) if isinstance(e, Frame)] if data else []
                out: list[bytes] = []
                with self.cond:
                    if self.released:
                        out, held = held, []
                    for payload in frames:
                        if not held and (self.released or self.passed < self.free):
                            self.passed += 1
                            out.append(payload)
                        else:
                            self.held += 1
                            held.append(payload)
                    self.cond.notify_all()
                for payload in out:
                    upstream.sendall(encode(payload))
        except OSError:
            pass
        finally:
            upstream.close()
            with self.cond:
                self.open_connections -= 1
                self.cond.notify_all()


def test_replay_to_mock_answering_some_ae(processes, tmp_path):
    store = tmp_path / "cap.db"
    up = start_mock(processes, tmp_path / "up.log")
    capture_through_proxy(processes, tmp_path, up, messages(), store)
    target = start_mock(processes, tmp_path / "target.log", "--answer-rule", "PID-3.1=P3:AE")
    report = tmp_path / "r.json"
    junit = tmp_path / "r.xml"
    html = tmp_path / "r.html"
    proc = harness(
        "replay", "--unmasked", "--store", str(store), "--to", f"127.0.0.1:{target}", "--concurrency", "3",
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
    proc = harness("compare", "--unmasked", "capture", str(run_id), "--store", str(store), "--json")
    assert proc.returncode == 1
    again = json.loads(proc.stdout)
    assert (again["new_error"], again["exact"] + again["equivalent"]) == (3, 9)
    # a second run against the same target, compared with the first: the same answers, run to run
    proc = harness("replay", "--unmasked", "--store", str(store), "--to", f"127.0.0.1:{target}", "--json")
    second = json.loads(proc.stdout)["run_id"]
    proc = harness("compare", "--unmasked", str(run_id), str(second), "--store", str(store), "--json")
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
        "replay", "--unmasked", "--store", str(store), "--channel", "adt", "--outcome", "nak",
        "--new-control-ids", "--retarget-app", "HC_TEST", "--time", "now", "--dry-run", "--json",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    lines = [json.loads(line) for line in dry.stdout.splitlines()]
    assert [line["control_id"] for line in lines] == ["MSG00001", "MSG00005"]
    assert all("|HC_TEST|" in line["payload"] for line in lines)
    assert received_ids(target_log) == []  # nothing sent by a dry run
    proc = harness(
        "replay", "--unmasked", "--store", str(store), "--channel", "adt", "--outcome", "nak,timeout",
        "--new-control-ids", "--to", f"127.0.0.1:{target}", "--json",
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
        "replay",
        "--unmasked",
        "--store",
        str(store),
        "--files",
        str(folder),
        "--to",
        f"127.0.0.1:{target}",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["equivalent"] == 3 and summary["sent"] == 3
    dead = free_port()
    proc = harness(
        "replay", "--unmasked", "--store", str(store), "--files", str(folder), "--to", f"127.0.0.1:{dead}"
    )
    assert proc.returncode == 2
    assert "cannot connect" in proc.stderr and "--resume" in proc.stderr


def test_usage_errors(tmp_path):
    store = tmp_path / "none.db"
    proc = harness("replay", "--unmasked", "--store", str(store), "--to", "127.0.0.1:1")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    Store(store).close()
    proc = harness("replay", "--unmasked", "--store", str(store))
    assert proc.returncode == 2 and "--to" in proc.stderr
    proc = harness("replay", "--unmasked", "--store", str(store), "--to", "nohost", "--pace", "x0")
    assert proc.returncode == 2
    proc = harness("replay", "--unmasked", "--store", str(store), "--to", "127.0.0.1:1", "--pace", "fast")
    assert proc.returncode == 2 and "--pace" in proc.stderr
    proc = harness("compare", "--unmasked", "capture", "7", "--store", str(store))
    assert proc.returncode == 2 and "run 7 does not exist" in proc.stderr
    proc = harness("replay", "--unmasked", "--store", str(store), "--resume", "3")
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
            "replay", "--unmasked", "--store", str(store), "--to", f"127.0.0.1:{port}", "--concurrency", "2",
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
    gate = Gate(start_mock(processes, target_log), free=10)
    try:
        args = [
            "replay",
            "--unmasked",
            "--store",
            str(store),
            "--to",
            f"127.0.0.1:{gate.port}",
            "--rate",
            "50",
            "--json",
        ]
        child = processes.harness(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        gate.wait(lambda: gate.held or child.poll() is not None, "replay never reached message 11")
        assert child.poll() is None, child.communicate()
        deadline = time.monotonic() + 60
        with Store(store) as s:  # the ten answered ones are on record before the kill
            while not (s.runs("replay") and s.count(ExchangeFilter(run_id=s.runs("replay")[0].id)) >= 10):
                assert child.poll() is None, child.communicate()
                assert time.monotonic() < deadline, "replay made no progress"
                time.sleep(0.005)
            run_id = s.runs("replay")[0].id
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        gate.wait(lambda: gate.open_connections == 0, "the killed run's connections stayed open")
        gate.release()
        with Store(store) as s:
            assert s.get_run(run_id).status == "running"  # killed: never finished
            before = s.count(ExchangeFilter(run_id=run_id))
        assert 10 <= before < n
        proc = harness("replay", "--unmasked", "--store", str(store), "--resume", str(run_id), "--json")
    finally:
        gate.close()
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
        "replay", "--unmasked", "--store", str(store), "--to", f"127.0.0.1:{target}", "--concurrency", "4",
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
        "replay", "--unmasked", "--store", str(tmp_path / "s.db"), "--files", str(tmp_path / "m.hl7"),
        "--to", f"127.0.0.1:{silent}", "--timeout", "0.3", "--concurrency", "2", "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["sent"], summary["missing"]) == (2, 2)


def test_bad_selection_creates_no_run(tmp_path):
    store = tmp_path / "s.db"
    Store(store).close()
    for args in (["--where", "PID-3=re:("], ["--files", str(tmp_path / "nowhere")], ["--channel", "adt"]):
        proc = harness("replay", "--unmasked", "--store", str(store), "--to", "127.0.0.1:1", *args)
        assert proc.returncode == 2, (args, proc.stderr)
    assert "nothing selected" in proc.stderr
    with Store(store) as s:
        assert s.runs() == []


def test_a_target_of_the_other_protocol_is_named_as_the_reason_nothing_was_selected(tmp_path):
    from harness.exchange import Exchange

    mllp, http = tmp_path / "mllp.db", tmp_path / "http.db"
    with Store(mllp) as s:
        s.add(Exchange(channel="adt", request=adt(1, "P1"), message_type="ADT^A08", control_id="MSG00001"))
    body = b'POST /fsi/api/rsfComIfsService/callService HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}'
    with Store(http) as s:
        s.add(Exchange(channel="medins", protocol="http", kind="medins", request=body, message_type="2207"))
    proc = harness("replay", "--unmasked", "--store", str(http), "--to", "127.0.0.1:1")
    assert proc.returncode == 2
    assert "the selection holds 1 HTTP exchange(s) and no HL7 v2 one" in proc.stderr, proc.stderr
    assert "--to http://HOST:PORT" in proc.stderr
    proc = harness("replay", "--unmasked", "--store", str(mllp), "--to", "http://127.0.0.1:1")
    assert proc.returncode == 2
    assert "holds 1 HL7 v2 (MLLP) exchange(s) and no HTTP one" in proc.stderr, proc.stderr
    proc = harness(
        "replay", "--unmasked", "--store", str(mllp), "--to", "127.0.0.1:1", "--channel", "nothing"
    )
    assert proc.returncode == 2 and "nothing selected" in proc.stderr
    for store in (mllp, http):
        with Store(store) as s:
            assert s.runs() == []


def test_ctrl_c_finishes_in_flight_and_the_run_resumes(processes, tmp_path):
    store = tmp_path / "cap.db"
    up = start_mock(processes, tmp_path / "up.log")
    capture_through_proxy(processes, tmp_path, up, messages(30), store)
    target_log = tmp_path / "target.log"
    gate = Gate(start_mock(processes, target_log), free=5)
    try:
        args = [
            "replay",
            "--unmasked",
            "--store",
            str(store),
            "--to",
            f"127.0.0.1:{gate.port}",
            "--rate",
            "20",
        ]
        args += ["--concurrency", "2", "--timeout", "60"]  # the held ones wait for their answer
        child = processes.harness(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        gate.wait(lambda: gate.held or child.poll() is not None, "replay never reached message 6")
        assert child.poll() is None, child.communicate()
        os.kill(child.pid, signal.SIGINT)
        for line in child.stderr:  # the interrupt is seen; now let what is in flight through
            if line.startswith("interrupted:"):
                break
        gate.release()
        _, err = child.communicate(timeout=60)
        assert child.returncode == 1, err
        with Store(store) as s:
            run_id = s.runs("replay")[0].id
            assert s.get_run(run_id).status == "interrupted"
            answered = sorted(ex.control_id for ex in s.query(ExchangeFilter(run_id=run_id)) if ex.ack_code)
        assert f"--resume {run_id}" in err
        # what went out before the Ctrl-C was finished and recorded, and the run stopped there
        assert answered == sorted(received_ids(target_log)) and 5 < len(answered) < 30
        proc = harness("replay", "--unmasked", "--store", str(store), "--resume", str(run_id), "--json")
    finally:
        gate.close()
    assert proc.returncode == 0, proc.stderr
    assert sorted(received_ids(target_log)) == sorted(f"MSG{i:05d}" for i in range(30))
