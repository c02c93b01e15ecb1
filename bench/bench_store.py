"""Capture store throughput: CaptureWriter durable and fast against a naive commit-per-row baseline.

Every figure comes from this run on this machine, so the ratios compare like with like:

- baseline: `Store.add` in a loop, one fsynced transaction per exchange (a proxy writing inline);
- durable, one sender: submit, wait for the callback, submit the next (a single connection in durable mode);
- durable, 8 waiting senders: eight such connections at once: exchanges queued together share a commit;
- durable, burst: everything submitted at once (the upper bound of that sharing);
- fast, burst: group commit every 100 ms.

Messages are 1 KB ADT^A01 requests with a short ACK. Run: `.venv/bin/python bench/bench_store.py [--count N]
[--process]` (`--process`: the writers run SQLite in a child process, as the proxy's do).
`--encrypt aes-256-gcm,sm4-gcm` instead runs the bursts with and without a store key, interleaved, and
the cost of sealing and opening one exchange.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from harness.exchange import Exchange
from harness.store import CaptureWriter, Store
from harness.store.crypto import KeySource


def message(i: int) -> bytes:
    head = f"MSH|^~\\&|HIS|H1|HC|H2|20261125120000||ADT^A01^ADT_A01|{i}|P|2.5\rEVN|A01|20261125120000\r"
    pid = f"PID|1||{100000 + i}^^^H1^MR||DOE^JOHN||19800101|M|||1 MAIN ST^^CITY\r"
    pv1 = "PV1|1|I|WARD^101^1|||||||MED\r"
    body = (head + pid + pv1).encode()
    return body + b"NTE|1||" + b"x" * (1024 - len(body) - 8) + b"\r"


def exchange(i: int) -> Exchange:
    ex = Exchange(
        channel="adt",
        request=message(i),
        response=f"MSH|^~\\&|HC|H2|HIS|H1|||ACK|A{i}|P|2.5\rMSA|AA|{i}\r".encode(),
        ack_code="AA",
        message_type="ADT^A01",
        control_id=str(i),
        charset="utf-8",
        client_addr="127.0.0.1:50000",
        upstream_addr="127.0.0.1:12575",
    )
    ex.finish(ex.started_at + 0.001)
    return ex


def baseline(path: Path, count: int) -> float:
    exchanges = [exchange(i) for i in range(count)]
    with Store(path) as store:
        start = time.perf_counter()
        for ex in exchanges:
            store.add(ex)
        return count / (time.perf_counter() - start)


def one_sender(path: Path, count: int, process: bool = False) -> float:
    exchanges = [exchange(i) for i in range(count)]
    done = threading.Event()
    with CaptureWriter(path, "durable", process=process) as writer:
        start = time.perf_counter()
        for ex in exchanges:
            done.clear()
            writer.submit(ex, lambda _result: done.set())
            done.wait()
        return count / (time.perf_counter() - start)


def senders(path: Path, mode: str, count: int, n: int, process: bool = False) -> float:
    """n threads, each submitting its next exchange only after the previous one's callback (a connection
    whose sender waits for its ACK, which in durable mode waits for the commit)."""
    exchanges = [exchange(i) for i in range(count)]
    per = count // n

    def sender(part: list[Exchange], writer: CaptureWriter) -> None:
        done = threading.Event()
        for ex in part:
            done.clear()
            writer.submit(ex, lambda _result: done.set())
            done.wait()

    with CaptureWriter(path, mode, process=process) as writer:
        parts = [exchanges[k * per : (k + 1) * per] for k in range(n)]
        threads = [threading.Thread(target=sender, args=(part, writer)) for part in parts]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return per * n / (time.perf_counter() - start)


def burst(
    path: Path, mode: str, count: int, process: bool = False, encryption: KeySource | None = None
) -> tuple[float, float, int]:
    """exchanges/s until all are committed, microseconds per submit() on the caller, commits used."""
    exchanges = [exchange(i) for i in range(count)]
    with CaptureWriter(path, mode, process=process, encryption=encryption) as writer:
        start = time.perf_counter()
        for ex in exchanges:
            writer.submit(ex)
        submitted = time.perf_counter()
        assert writer.flush(600), "writer did not finish"
        end = time.perf_counter()
        assert writer.written == count and writer.errors == 0
        return count / (end - start), (submitted - start) / count * 1e6, writer.commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000, help="exchanges per burst run (default 20000)")
    parser.add_argument("--sequential", type=int, default=1000, help="exchanges for the one-at-a-time runs")
    parser.add_argument(
        "--process", action="store_true", help="writers run SQLite in a child process (as the proxy's do)"
    )
    parser.add_argument(
        "--encrypt",
        default="",
        metavar="ALGS",
        help="also run the bursts with the store encrypted: aes-256-gcm, sm4-gcm or both (comma-separated)",
    )
    args = parser.parse_args()
    process = args.process
    algorithms = [a.strip() for a in args.encrypt.split(",") if a.strip()]
    if algorithms:
        encrypted(args.count, process, algorithms)
        return
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        base = baseline(Path(tmp, "baseline.db"), args.sequential)
        single = one_sender(Path(tmp, "single.db"), args.sequential, process)
        durable8 = senders(Path(tmp, "durable8.db"), "durable", args.sequential * 4, 8, process)
        durable, durable_us, durable_commits = burst(Path(tmp, "durable.db"), "durable", args.count, process)
        fast, fast_us, fast_commits = burst(Path(tmp, "fast.db"), "fast", args.count, process)
    where = "a child process" if process else "a thread"
    print(f"1 KB exchanges; baseline: Store.add, one fsynced commit each ({args.sequential} exchanges)")
    print(f"writers: SQLite in {where}")
    print(f"{'run':<28}{'exchanges/s':>12}{'x baseline':>12}{'submit us':>11}{'commits':>9}")
    print(f"{'baseline (inline, FULL)':<28}{base:>12.0f}{1.0:>12.2f}{'-':>11}{args.sequential:>9}")
    print(f"{'durable, one sender':<28}{single:>12.0f}{single / base:>12.2f}{'-':>11}{'-':>9}")
    print(f"{'durable, 8 waiting senders':<28}{durable8:>12.0f}{durable8 / base:>12.2f}{'-':>11}{'-':>9}")
    ratio = durable / base
    print(f"{'durable, burst':<28}{durable:>12.0f}{ratio:>12.2f}{durable_us:>11.1f}{durable_commits:>9}")
    print(f"{'fast, burst':<28}{fast:>12.0f}{fast / base:>12.2f}{fast_us:>11.1f}{fast_commits:>9}")
    print(f"fast / durable (burst): {fast / durable:.2f}")


def encrypted(count: int, process: bool, algorithms: list[str]) -> None:
    """The bursts with and without a store key, interleaved in one run; then the cost per exchange of
    sealing and opening (1 KB request, short ACK), measured alone."""
    from harness.store import crypto
    from harness.store.codec import _COLUMNS, RowOpener, _to_row, seal_rows

    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        keys = Path(tmp, "keys")
        keys.mkdir()
        sources = {"clear": None}
        for alg in algorithms:
            crypto.new_key_file(keys / alg, alg)
            sources[alg] = KeySource(keys / alg, None, alg)
        for round_ in range(3):
            for name, source in sources.items():
                for mode in ("durable", "fast"):
                    path = Path(tmp, f"{name}-{mode}-{round_}.db")
                    rate, _, _ = burst(path, mode, count, process, source)
                    results.setdefault((name, mode), []).append(rate)
    print(f"{count} exchanges per burst, writers in {'a child process' if process else 'a thread'}, "
          "3 interleaved rounds (medians)")  # fmt: skip
    print(f"{'store':<14}{'durable/s':>11}{'x clear':>9}{'fast/s':>10}{'x clear':>9}")
    med = {k: sorted(v)[1] for k, v in results.items()}
    for name in sources:
        d, f = med[(name, "durable")], med[(name, "fast")]
        d0, f0 = med[("clear", "durable")], med[("clear", "fast")]
        print(f"{name:<14}{d:>11.0f}{d / d0:>9.2f}{f:>10.0f}{f / f0:>9.2f}")
    rows = [_to_row(exchange(i)) for i in range(2000)]
    for alg in algorithms:
        key = crypto.StoreKey(os.urandom(crypto.ALGORITHMS[alg][1]))
        opener = RowOpener(("id", *_COLUMNS), crypto.Keyring([key]), "bench")
        seal_s = open_s = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            sealed = seal_rows(rows, key)
            t1 = time.perf_counter()
            for i, row in enumerate(sealed):
                opener((i, *row))
            t2 = time.perf_counter()
            seal_s, open_s = min(seal_s, t1 - t0), min(open_s, t2 - t1)
        per = 1e6 / len(rows)
        print(f"{alg}: seal {seal_s * per:.1f} us, open {open_s * per:.1f} us per exchange")


if __name__ == "__main__":
    main()
