"""Replay throughput: max-pace replay of captured messages to a local ACK server, comparison on.

Baseline in the same run: `harness send` of the same messages (one connection, one at a time) to the
same server. Prints msg/s for each and the ratios. The ACK server is `harness mock mllp` in a child
process; the capture store is filled with real exchanges of that server first.

    .venv/bin/python bench/bench_replay.py [--messages 20000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processes import free_port  # noqa: E402

from harness.exchange import Exchange  # noqa: E402
from harness.hl7v2.meta import extract  # noqa: E402
from harness.mllp_client import MLLPClient  # noqa: E402
from harness.store import Store  # noqa: E402

HARNESS = [sys.executable, "-m", "harness"]


def message(i: int, patients: int) -> bytes:
    pid = f"P{i % patients:05d}"
    return (
        f"MSH|^~\\&|HIS|HOSP|HC|HOSP|20261124{(i // 60) % 24:02d}{i % 60:02d}00||ADT^A08^ADT_A01|"
        f"MSG{i:06d}|P|2.5\r"
        f"EVN|A08|20261124233000\r"
        f"PID|1||{pid}^^^HOSP^MR||Patient^{pid}||19800101|M|||1 Main St^^Kunming^YN^650000\r"
        f"PV1|1|O|CLINIC^01^01||||1234^Doctor^Li\r"
    ).encode()


def start_mock(log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    handle = open(log, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [*HARNESS, "mock", "mllp", "--listen", f"127.0.0.1:{port}"],
        stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while "listening on" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"mock did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc, port


def capture(store_path: Path, port: int, payloads: list[bytes]) -> None:
    start = time.time() - 3600
    batch = []
    with Store(store_path, synchronous="NORMAL") as store, MLLPClient("127.0.0.1", port) as client:
        for i, payload in enumerate(payloads):
            meta = extract(payload)
            r = client.send(payload, meta.control_id)
            batch.append(
                Exchange(channel="adt", started_at=start + i * 0.1, latency_ms=r.rtt_ms, request=payload,
                         response=r.ack, outcome="ok" if r.ack_code == "AA" else "nak", ack_code=r.ack_code,
                         message_type=meta.message_code, control_id=meta.control_id, charset=meta.charset)
            )  # fmt: skip
            if len(batch) >= 2000:
                store.add_many(batch)
                batch = []
        if batch:
            store.add_many(batch)


def timed(args: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(args[2:4])} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--patients", type=int, default=2_000)
    args = ap.parse_args()
    n = args.messages
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        mock, port = start_mock(tmpdir / "mock.log")
        try:
            payloads = [message(i, args.patients) for i in range(n)]
            capture(tmpdir / "cap.db", port, payloads)
            (tmpdir / "all.hl7").write_bytes(b"\n".join(p.replace(b"\r", b"\n") for p in payloads))

            send_s, _ = timed([*HARNESS, "send", f"127.0.0.1:{port}", str(tmpdir / "all.hl7"), "--json"])
            runs = {}
            for conc in sorted({1, args.concurrency}):
                elapsed, out = timed([
                    *HARNESS, "replay", "--store", str(tmpdir / "cap.db"), "--to", f"127.0.0.1:{port}",
                    "--pace", "max", "--concurrency", str(conc), "--json",
                ])  # fmt: skip
                summary = json.loads(out.strip().splitlines()[-1])
                ok = summary["exact"] + summary["equivalent"]
                if summary["sent"] != n or ok != n:
                    raise RuntimeError(f"replay at concurrency {conc} did not classify all {n}: {summary}")
                runs[conc] = elapsed
        finally:
            os.killpg(mock.pid, signal.SIGTERM)
            mock.wait(10)
    base = n / send_s
    print(f"messages: {n}, patients: {args.patients}, ACK server: harness mock mllp (child process)")
    print(f"baseline  harness send (1 connection, sequential)      {base:8.0f} msg/s  1.00x")
    for conc, elapsed in runs.items():
        rate = n / elapsed
        print(
            f"replay    --pace max --concurrency {conc:<3} (compare on)  "
            f"{rate:8.0f} msg/s  {rate / base:.2f}x"
        )
    goal = n / runs[args.concurrency]
    print(f"goal >= 2000 msg/s at concurrency {args.concurrency}: {'met' if goal >= 2000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
