"""`harness demo`: finishes by itself, judges the run, and leaves no child behind."""

from __future__ import annotations

import re
import socket

from harness import demo


def closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def test_demo_command_succeeds_and_cleans_up(processes, tmp_path):
    proc = processes.harness("demo", cwd=tmp_path)  # writes under the working directory, nowhere else
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert out.splitlines()[0] == "the demo writes its files to harness-demo/"
    assert out.rstrip().endswith("demo OK: its files are in harness-demo/")
    port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", out).group(1))
    assert re.search(r"HIS20240315083012001 +ADT\^A01 +CA ", out)
    assert " hl7v2/adt_batch.hl7#1" in out
    assert "mock mllp: exit 0" in out
    assert "2207: HTTP 200 infcode 0" in out and "GET /fhir/Patient/" in out  # the HTTP steps
    assert re.search(r"PASS: \d+ of \d+ checks passed on 8 transactions and 1 flow", out)  # harness certify
    report = re.search(r"certification report: (harness-demo/certify-medins-[\d-]+\.html)", out).group(1)
    assert (tmp_path / report).is_file()
    assert {"demo-captures.db", "demo-proxy.yaml", "demo-http-captures.db"} <= {
        p.name for p in (tmp_path / "harness-demo").iterdir()
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["harness-demo"]
    assert closed(port)


def test_demo_fails_on_a_bad_fixture_and_still_stops_the_mock(tmp_path):
    (tmp_path / "bad.hl7").write_text("not a message\n")
    lines: list[str] = []
    assert demo.run(tmp_path, out=tmp_path / "out", echo=lines.append) == 1
    assert any("demo FAILED" in line and "bad.hl7" in line for line in lines)
    port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", "\n".join(lines)).group(1))
    assert closed(port)


class Interrupt:
    name = "simulated Ctrl-C"

    def run(self, ctx: demo.DemoContext) -> None:
        self.ctx = ctx
        raise KeyboardInterrupt


def test_ctrl_c_stops_children():
    interrupt = Interrupt()
    lines: list[str] = []
    assert demo.run(echo=lines.append, steps=[demo.StartMockMLLP(), interrupt]) == 130
    (child,) = interrupt.ctx.children.values()
    assert child.proc.poll() is not None
    assert closed(interrupt.ctx.target[1])


def test_not_accepted_is_a_failure():
    class StartNakMock:
        name = "start a mock that answers AE"

        def run(self, ctx):
            args = ["mock", "mllp", "--listen", "127.0.0.1:0", "--answer", "AE"]
            ctx.target = ctx.start_child("mock", args)

    lines: list[str] = []
    steps = [StartNakMock(), demo.SendFixtures(), demo.StopChildren(), demo.Judge()]
    assert demo.run(echo=lines.append, steps=steps) == 1
    assert any(re.search(r"demo FAILED: \d+ of \d+ message\(s\) not accepted", line) for line in lines)


def test_send_without_listener_fails_clearly():
    lines: list[str] = []
    assert demo.run(echo=lines.append, steps=[demo.SendFixtures()]) == 1
    assert lines[-1] == "demo FAILED: nothing to send to: no listener was started"
