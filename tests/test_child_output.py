"""ChildOutput over real child processes: waiting for a line keeps the pipe drained."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.child_output import LISTENING, ChildExited, ChildOutput, OutputTimeout


def child(processes, code: str) -> subprocess.Popen:
    return processes.start([sys.executable, "-c", code])


def test_the_listening_line_then_far_more_than_a_pipe_holds(processes):
    code = (
        "print('listening on [::1]:4321', flush=True)\n"
        "for i in range(20000): print('x' * 40 + str(i))\n"
        "print('done', flush=True)\n"
    )
    proc = child(processes, code)
    out = ChildOutput(proc)
    m = out.wait_for(LISTENING, timeout=20)
    assert (m.group("v6"), m.group("port")) == ("::1", "4321")
    out.wait_for("^done$", timeout=20)  # 800 KB later: the child was never blocked on a full pipe
    assert proc.wait(timeout=60) == 0
    out.join(timeout=5)
    assert len(out.lines) == 20002 and out.lines[-2] == "x" * 40 + "19999"


def test_the_count_th_match(processes):
    out = ChildOutput(child(processes, "for i in range(3): print(f'tick {i}')"))
    assert out.wait_for(r"tick (\d)", timeout=20, count=3).group(1) == "2"


def test_an_exit_before_the_line_says_so_with_the_output(processes):
    out = ChildOutput(child(processes, "print('cannot listen'); raise SystemExit(2)"))
    with pytest.raises(ChildExited) as caught:
        out.wait_for(LISTENING, timeout=20)
    assert caught.value.returncode == 2 and caught.value.lines == ["cannot listen"]


def test_no_line_in_time_while_the_child_runs(processes):
    out = ChildOutput(child(processes, "import time; print('starting', flush=True); time.sleep(30)"))
    out.wait_for("starting", timeout=20)
    with pytest.raises(OutputTimeout):
        out.wait_for(LISTENING, timeout=0.3)
