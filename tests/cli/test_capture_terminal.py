"""`harness capture list` on a real terminal (a pty) of 80 columns: every column stays, long cells are cut
and the listing says so; on a wide terminal nothing is cut."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import time

from harness.exchange import Exchange
from harness.store import Store
from tests.messages import ack_for, adt
from tests.processes import HARNESS

HEADERS = ("id", "time", "chan", "type", "ctl id", "ack", "outcome", "ms", "fault")  # 80 columns: short names


def on_terminal(columns: int, *args: str) -> str:
    """The command's output on a pty `columns` wide (rich reads COLUMNS on a terminal)."""
    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS=str(columns), LINES="50", TERM="xterm", NO_COLOR="1")
    proc = subprocess.Popen([*HARNESS, *args], stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=30) == 0, b"".join(chunks).decode(errors="replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode()).replace("\r\n", "\n")


def test_an_80_column_terminal_keeps_every_column_and_says_what_it_cut(tmp_path) -> None:
    store = tmp_path / "c.db"
    ctl = "HIS20240315083012001"
    with Store(store) as s:
        s.add(
            Exchange(
                channel="adt-inbound-ward", request=adt(ctl), response=ack_for(ctl, "AE"), outcome="fault",
                ack_code="AE", message_type="ADT^A01^ADT_A01", control_id=ctl, latency_ms=12.5,
                fault={"id": "r1", "action": {"type": "nak"}, "rule": "nak code=AE"},
            )
        )  # fmt: skip
        s.add(Exchange(channel="lab", request=adt("S1"), outcome="ok", ack_code="AA", control_id="S1",
                       message_type="ORU^R01", latency_ms=3.0))  # fmt: skip
    narrow = on_terminal(80, "capture", "list", "--store", str(store))
    lines = narrow.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("id"))
    assert [h for h in HEADERS if h not in header] == [], header
    assert all(len(line) <= 80 for line in lines), narrow
    assert "HIS2024…" in narrow or "HIS20240…" in narrow or re.search(r"HIS\d+…", narrow), narrow
    assert re.search(r"\d+ cell\(s\) cut \(…\) to fit 80 columns", narrow), narrow
    assert "lab" in narrow and "S1" in narrow and "AA" in narrow

    wide = on_terminal(160, "capture", "list", "--store", str(store))
    assert "HIS20240315083012001" in wide and "adt-inbound…" in wide  # 12 cells for a channel name
    assert "2 cell(s) longer than their column cut (…); --json shows them whole" in wide  # channel, type
    piped = subprocess.run([*HARNESS, "capture", "list", "--store", str(store)], capture_output=True,
                           text=True)  # fmt: skip
    assert piped.returncode == 0 and "HIS20240315083012001" in piped.stdout and "cut (…)" in piped.stdout
