"""The README's runnable examples run as written: every shell block marked `<!-- runnable -->` is run, in
order, as one bash script in an empty directory with harness on the PATH, within a bounded time; the
script's process group (its background proxy and mock) is killed afterwards, whatever happened."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

README = ROOT / "README.md"
MARK = "<!-- runnable -->"
PORTS = (2575, 2576, 8700)  # the set-up path's channel, mock and admin API
_BLOCK = re.compile(r"^" + re.escape(MARK) + r"\n```(?:sh|bash)\n(.*?)^```", re.M | re.S)


def runnable_blocks(text: str) -> list[str]:
    """The shell blocks right after a runnable marker; a marker not followed by one is an error."""
    blocks = _BLOCK.findall(text)
    assert len(blocks) == text.count(MARK), "a runnable marker must stand right before a ```sh block"
    return blocks


def test_the_blocks_are_found_only_after_the_marker() -> None:
    text = f"```sh\nnot me\n```\n{MARK}\n```sh\necho one\n```\ntext\n{MARK}\n```bash\necho two\n```\n"
    assert runnable_blocks(text) == ["echo one\n", "echo two\n"]
    with pytest.raises(AssertionError, match="right before"):
        runnable_blocks(f"{MARK}\n\n```sh\necho x\n```\n")


def _in_use(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_readme_has_contents_set_up_path_and_code_map() -> None:
    text = README.read_text(encoding="utf-8")
    for heading in ("## Contents", "## Your own set-up in 5 minutes", "## Where the code is", "## Reference"):
        assert heading in text
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), f"README links {link}, which does not exist"
    assert len(runnable_blocks(text)) >= 5


def test_runnable_examples_run_as_written(tmp_path: Path) -> None:
    busy = [p for p in PORTS if _in_use(p)]
    if busy:
        pytest.fail(f"ports {busy} on 127.0.0.1 are in use, and the README's set-up path needs them")
    script = "set -euo pipefail\n" + "\n".join(runnable_blocks(README.read_text(encoding="utf-8")))
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_ADMIN_TOKEN", "HARNESS_STORE")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=150)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the background proxy and mock, if a block failed
        except ProcessLookupError:
            pass
        proc.wait()
    logs = "".join(f"\n--- {p.name}\n{p.read_text()}" for p in sorted(tmp_path.glob("*.log")))
    assert proc.returncode == 0, out + logs
    assert "1 message(s) sent to 127.0.0.1:2575: 1 accepted" in out, out
    assert "ward closed" in out and "a08.hl7 was NAKed" in out, out
    assert re.search(r"MSG0002 +ADT\^A08", out), out  # capture list shows the NAKed exchange
    assert "selected=2 sent=2" in out and "recovered=1" in out, out  # the replay, compared with the capture
    assert not [p for p in PORTS if _in_use(p)], "the README's processes are still listening"
