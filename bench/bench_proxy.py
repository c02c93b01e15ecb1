"""MLLP proxy throughput and latency against a direct baseline measured in the same run.

Sender, proxy and ACK upstream run as separate processes on loopback: `harness mock mllp` answers AA;
each of N sender processes keeps one connection and sends 1 KB ADT^A01 messages stop-and-wait (the way
HIS senders do), timing every round trip. One run measures, interleaved, with 4 and with 16 senders:
direct to the upstream; Twisted's plain byte relay (`twist portforward`) and socat (when installed),
which neither frame, parse nor capture anything; `harness proxy` with capture off, fast and durable.
It prints msg/s, p50/p99 latency, the ratios against direct and CPU per message: user + system of the
relay or proxy process and of its capture-writer child ("writer"), from /proc, with the kernel's
part of it ("system"), also as a ratio of portforward's (steadier than throughput on a shared machine).

    .venv/bin/python bench/bench_proxy.py [--messages 3000] [--connections 4,16] [--size 1024]
        [--captures off,fast,durable] [--rounds 3] [--no-relay] [--compare OTHER_TREE] [--profile DIR]

`--captures fast,durable,fast+aes,durable+aes,durable+sm4` adds runs with the store encrypted at
rest (AES-256-GCM, SM4-GCM): the cost of encryption, measured in the same interleaved rounds.

`--compare` also runs the proxy from another source tree (e.g. `git archive OLD proxies harness | tar -x
-C /tmp/old`) in the same interleaved rounds, for A/B figures of a change. `--profile DIR` samples each
proxy (and its writer child) with py-spy during the first round, GIL-holding stacks in py-spy's raw
format (one `frame;frame;... count` line per stack).

Goals: fast >= 1.0 x portforward and >= 0.6 x direct throughput with <= 0.3 ms added p50; durable >=
0.3 x direct; proxy CPU per message with capture fast <= 1.5 x portforward's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import processes
from processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness"]
CAPTURES = ("fast", "durable")


def adt(control_id: str, size: int) -> bytes:
    msg = (
        f"MSH|^~\\&|HIS|HOSP|HC|HOSP|20260101120000||ADT^A01^ADT_A01|{control_id}|P|2.5\r"
        "EVN|A01|20260101120000\r"
        "PID|1||900001^^^HOSP^MR||ZHANG^SAN^^^^^L||19800101|M|||KUNMING RD 1^^KUNMING^YN^650000\r"
        "PV1|1|I|W1^101^1||||D001^LI^SI\r"
    )
    if size > len(msg) + 9:
        msg += "NTE|1||" + "x" * (size - len(msg) - 9) + "\r"
    return msg.encode("ascii")


def start(args: list[str], port: int, cwd: Path = ROOT) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*HARNESS, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, proc)
    except BaseException:
        processes.stop(proc, timeout=5)
        raise
    return proc


def stop(proc: subprocess.Popen) -> None:
    """A proxy flushing a durable store on SIGTERM may take a while: allow it 30 s."""
    processes.stop(proc, timeout=30)


def sender(port: int, worker: int, count: int, warmup: int, size: int, barrier, results) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frames = [b"\x0b" + adt(f"W{worker}-{i:07d}", size) + b"\x1c\r" for i in range(warmup + count)]
    latencies = []
    buf = b""
    perf = time.perf_counter

    def round_trip(frame: bytes) -> None:
        nonlocal buf
        sock.sendall(frame)
        while b"\x1c\r" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by peer")
            buf += chunk
        end = buf.index(b"\x1c\r") + 2
        reply, buf = buf[:end], buf[end:]
        if b"MSA|AA|" not in reply:
            raise RuntimeError(f"not accepted: {reply[:120]!r}")

    for frame in frames[:warmup]:
        round_trip(frame)
    barrier.wait()
    started = perf()
    for frame in frames[warmup:]:
        t0 = perf()
        round_trip(frame)
        latencies.append(perf() - t0)
    results.put((worker, started, perf(), latencies))
    sock.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its live children (the proxy's capture writers)."""
    own, children, _ = cpu_split(pid)
    return own + children


def cpu_split(pid: int) -> tuple[float, float, float]:
    """User + system CPU seconds so far of the process itself and of its live children, apart, and the
    system (kernel) part of both together."""
    own = children = system = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid):
            own += int(fields[11]) + int(fields[12])
        elif fields[1] == str(pid):
            children += int(fields[11]) + int(fields[12])
        else:
            continue
        system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return own / tick, children / tick, system / tick


def py_spy() -> str | None:
    found = shutil.which("py-spy") or Path(sys.executable).with_name("py-spy")
    return str(found) if Path(found).exists() else None


def profiler(pid: int, output: Path) -> subprocess.Popen:
    """py-spy sampling the proxy and its writer child (stacks holding the GIL: CPU spent in Python and
    in what it calls without releasing the GIL) until SIGINT."""
    proc = subprocess.Popen(
        [py_spy() or "py-spy", "record", "--pid", str(pid), "--subprocesses", "--gil", "--nonblocking",
         "--rate", "500", "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # attached before the senders start
    return proc


def machine_busy() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def measure(
    port: int,
    connections: int,
    messages: int,
    size: int,
    watch: int | None = None,
    upstream: int | None = None,
    profile: Path | None = None,
) -> dict:
    per = messages // connections
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(connections)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=sender, args=(port, w, per, min(200, per), size, barrier, results))
        for w in range(connections)
    ]
    spy = profiler(watch, profile) if profile is not None and watch else None
    for p in procs:
        p.start()
    cpu_before = cpu_split(watch) if watch else (0.0, 0.0, 0.0)
    up_before = cpu_seconds(upstream) if upstream else 0.0
    busy_before, all_before = machine_busy()
    got = [results.get(timeout=600) for _ in procs]
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    busy_after, all_after = machine_busy()
    cpu_after = cpu_split(watch) if watch else (0.0, 0.0, 0.0)
    up_after = cpu_seconds(upstream) if upstream else 0.0
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a sender failed (exit {p.exitcode})")
    start_t = min(g[1] for g in got)
    end_t = max(g[2] for g in got)
    lat = sorted(x for g in got for x in g[3])
    total = len(lat) + connections * min(200, per)
    return {
        "msg_s": len(lat) / (end_t - start_t),
        "up_cpu_us": (up_after - up_before) / total * 1e6,
        "busy": (busy_after - busy_before) / max(1e-9, all_after - all_before),
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "n": len(lat),
        "cpu_us": (sum(cpu_after[:2]) - sum(cpu_before[:2])) / total * 1e6 if watch else None,
        "child_cpu_us": (cpu_after[1] - cpu_before[1]) / total * 1e6 if watch else None,
        "sys_cpu_us": (cpu_after[2] - cpu_before[2]) / total * 1e6 if watch else None,
    }


ENCRYPTION = {"aes": "aes-256-gcm", "sm4": "sm4-gcm"}
"""`--captures` may name a mode with a store key: `durable+aes`, `fast+sm4` (encryption at rest)."""


def proxy_config(folder: Path, port: int, upstream: int, capture: str, tag: str = "") -> Path:
    mode, _, sealed = capture.partition("+")
    name = f"bench-{tag}{mode}{'-' + sealed if sealed else ''}"
    store = f"store: {folder / (name + '.db')}\n"
    if sealed:
        from harness.store import crypto

        (folder / "keys").mkdir(exist_ok=True)
        key = folder / "keys" / f"{name}.key"
        crypto.new_key_file(key, ENCRYPTION[sealed])
        store = (
            f"store:\n  path: {folder / (name + '.db')}\n"
            f"  encryption: {{key_file: {key}, algorithm: {ENCRYPTION[sealed]}}}\n"
        )
    path = folder / f"{name}.yaml"
    path.write_text(
        store + "admin: off\n"
        "channels:\n"
        "  adt:\n"
        f"    listen: 127.0.0.1:{port}\n"
        f"    upstream: 127.0.0.1:{upstream}\n"
        f"    capture: {mode}\n"
    )
    return path


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000, help="measured messages per run (all senders)")
    parser.add_argument(
        "--connections", default="4,16", help="sender processes (one connection each), a comma list"
    )
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes")
    parser.add_argument("--rounds", type=int, default=3, help="each target measured this often, interleaved")
    parser.add_argument(
        "--captures",
        default="off,fast,durable",
        help="proxy capture modes (off, fast, durable; durable+aes or fast+sm4 with the store encrypted)",
    )
    parser.add_argument("--no-relay", action="store_true", help="skip the byte relays (portforward, socat)")
    parser.add_argument(
        "--compare", type=Path, help="also run the proxy from this tree (a checkout or git archive)"
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR",
        help="py-spy (GIL-holding samples) of each proxy in the first round, raw stacks into DIR",
    )  # fmt: skip
    args = parser.parse_args()
    captures = [c.strip() for c in args.captures.split(",") if c.strip()]
    counts = [int(c) for c in args.connections.split(",") if c.strip()]
    trees = {"proxy": ROOT}
    if args.compare is not None:
        trees["other"] = args.compare.resolve()
    if args.profile is not None:
        if py_spy() is None:
            parser.error("--profile needs py-spy: .venv/bin/pip install py-spy")
        args.profile.mkdir(parents=True, exist_ok=True)

    up_port = free_port()
    upstream = subprocess.Popen(
        [*HARNESS, "mock", "mllp", "--listen", f"127.0.0.1:{up_port}"], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    targets: dict[str, tuple[subprocess.Popen | None, int]] = {"direct": (None, up_port)}
    relays: list[subprocess.Popen] = []
    proxies: list[subprocess.Popen] = []
    runs: dict[tuple[int, str], list[dict]] = {}
    try:
        wait_for_port(up_port, upstream)
        with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
            try:  # every child started so far is stopped, even when a later one fails to start
                if not args.no_relay:
                    for name, command in relay_commands(up_port).items():
                        port = free_port()
                        relay = subprocess.Popen(
                            command(port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True,
                        )  # fmt: skip
                        relays.append(relay)
                        wait_for_port(port, relay)
                        targets[name] = (relay, port)
                for tree, cwd in trees.items():
                    for capture in captures:
                        port = free_port()
                        config = proxy_config(Path(tmp), port, up_port, capture, tag=tree)
                        proc = start(["proxy", "--config", str(config)], port, cwd)
                        proxies.append(proc)
                        targets[f"{tree} {capture}"] = (proc, port)
                for round_no in range(args.rounds):
                    for n in counts:
                        for name, (proc, port) in targets.items():
                            # socat forks a child per connection that is gone before it can be read
                            watch = proc.pid if proc is not None and name != "socat" else None
                            profile = None
                            if args.profile is not None and round_no == 0 and name.startswith(tuple(trees)):
                                profile = args.profile / f"{name.replace(' ', '-')}-{n}.txt"
                            runs.setdefault((n, name), []).append(
                                measure(
                                    port, n, args.messages, args.size, watch=watch, upstream=upstream.pid,
                                    profile=profile,
                                )
                            )
            finally:
                for proc in proxies:
                    stop(proc)
                for relay in relays:
                    stop(relay)
    finally:
        stop(upstream)

    print(
        f"{args.size}-byte ADT^A01, {args.messages} messages per run, {args.rounds} interleaved rounds "
        f"(medians), {os.cpu_count()} CPUs"
    )
    for n in counts:
        report(n, {name: results for (count, name), results in runs.items() if count == n})


def relay_commands(up_port: int) -> dict[str, Callable[[int], list[str]]]:
    """Plain byte relays for scale: Twisted's portforward, and socat when it is installed."""
    twist = str(Path(sys.executable).with_name("twist"))
    commands: dict[str, Callable[[int], list[str]]] = {
        "portforward": lambda port: [
            twist, "portforward", "--port", f"tcp:{port}", "--host", "127.0.0.1", "--dest_port", str(up_port),
        ],
    }  # fmt: skip
    socat = shutil.which("socat")
    if socat is not None:
        commands["socat"] = lambda port: [
            socat, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay",
            f"TCP:127.0.0.1:{up_port},nodelay",
        ]  # fmt: skip
    else:
        print("socat not installed: no socat row", file=sys.stderr)
    return commands


def report(connections: int, runs: dict[str, list[dict]]) -> dict[str, dict]:
    keys = ("msg_s", "p50_ms", "p99_ms", "cpu_us", "child_cpu_us", "sys_cpu_us", "up_cpu_us", "busy")
    rows = {
        name: {k: median([r[k] for r in results]) if results[0][k] is not None else None for k in keys}
        for name, results in runs.items()
    }
    direct = rows["direct"]
    print(f"\n{connections} connections")
    header = f"{'run':<15} {'msg/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x direct':>9} {'+p50 ms':>8}"
    cpu_header = f"{'CPU us/msg':>11} {'(writer)':>9} {'(system)':>9} {'x pfwd CPU':>10}"
    print(f"{header} {cpu_header} {'upstream':>9} {'busy':>5}")
    relay = rows.get("portforward")
    for name, r in rows.items():
        ratio = r["msg_s"] / direct["msg_s"]
        added = r["p50_ms"] - direct["p50_ms"]
        cpu = f"{r['cpu_us']:.0f}" if r["cpu_us"] is not None else "-"
        child = f"{r['child_cpu_us']:.0f}" if r["child_cpu_us"] else "-"
        system = f"{r['sys_cpu_us']:.0f}" if r["sys_cpu_us"] is not None else "-"
        vs = (
            f"{r['cpu_us'] / relay['cpu_us']:.2f}"
            if r["cpu_us"] is not None and relay is not None and relay["cpu_us"]
            else "-"
        )
        line = f"{name:<15} {r['msg_s']:>9.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {ratio:>9.2f}"
        line += f" {added:>8.3f} {cpu:>11} {child:>9} {system:>9} {vs:>10}"
        print(f"{line} {r['up_cpu_us']:>9.0f} {r['busy']:>5.0%}")
    fast, durable = rows.get("proxy fast"), rows.get("proxy durable")
    if fast is not None:
        goals = [
            ("fast >= 0.6x direct", fast["msg_s"] >= 0.6 * direct["msg_s"]),
            ("fast <= +0.3 ms p50", fast["p50_ms"] - direct["p50_ms"] <= 0.3),
        ]
        if relay is not None:
            goals.append(("fast >= 1.0x portforward", fast["msg_s"] >= relay["msg_s"]))
            if relay["cpu_us"]:
                goals.append(("fast CPU <= 1.5x portforward's", fast["cpu_us"] <= 1.5 * relay["cpu_us"]))
        for text, ok in goals:
            print(f"goal {text}: {'met' if ok else 'NOT met'}")
    if durable is not None:
        ok = durable["msg_s"] >= 0.3 * direct["msg_s"]
        print(f"goal durable >= 0.3x direct: {'met' if ok else 'NOT met'}")
    return rows


if __name__ == "__main__":
    main()
