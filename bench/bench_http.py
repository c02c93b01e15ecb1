"""HTTP proxy throughput and latency against the simulator directly and mitmdump, in one run.

Two requests: FHIR `GET /fhir/Patient/{id}` (harness mock fhir) and a medical-insurance 2207
settlement `POST /fsi/api/rsfComIfsService/callService` (harness mock medins; after the first
settlement the centre refuses the same visit with infcode -1, a full envelope all the same).
Each goes direct to the simulator, through `harness proxy` (capture fast, durable, and off: the
data path alone) and through `mitmdump --mode reverse:...`. Clients are separate processes, each
with keep-alive http.client connections on threads; every request is timed.

    .venv/bin/python bench/bench_http.py [--seconds 4] [--processes 2] [--threads 4]

Goals: proxied (fast) >= 0.5 x direct and >= 5 x mitmdump req/s; <= 2 ms added p50 (measured with one
sequential connection, so queueing under load does not count as added latency).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from processes import free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
HARNESS = [sys.executable, "-m", "harness"]
MITMDUMP = str(Path(sys.executable).with_name("mitmdump"))
MEDINS_PATH = "/fsi/api/rsfComIfsService/callService"


def start(args: list[str], port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        args,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,  # noqa: SIM115
        start_new_session=True,
    )
    wait_for_port(port, proc)
    return proc


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


# -- the load ----------------------------------------------------------------------------------------


def _thread_loop(port: int, req: dict, until: float, out: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = req["body"].encode() if req["body"] else None
    headers = req["headers"]
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        try:
            conn.request(req["method"], req["path"], body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
        except Exception as exc:  # noqa: BLE001 - count and reconnect
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        out.append((time.perf_counter() - t0) * 1000.0)
        if resp.status >= 500:
            errors.append(f"status {resp.status}")
    conn.close()


def _worker(port: int, req: dict, seconds: float, threads: int, queue) -> None:
    until = time.perf_counter() + seconds
    results: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    pool = [
        threading.Thread(target=_thread_loop, args=(port, req, until, results[i], errors))
        for i in range(threads)
    ]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    queue.put(([x for r in results for x in r], errors[:5], len(errors)))


def load(port: int, req: dict, seconds: float, processes: int, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(port, req, seconds, threads, queue)) for _ in range(processes)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    latencies: list[float] = []
    errors: list[str] = []
    error_count = 0
    for _ in procs:
        lats, errs, n = queue.get(timeout=seconds + 120)
        latencies += lats
        errors += errs
        error_count += n
    for p in procs:
        p.join()
    elapsed = max(seconds, time.perf_counter() - started - 0.5)
    return {
        "rps": len(latencies) / seconds,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "n": len(latencies),
        "errors": error_count,
        "error_sample": errors[:3],
        "elapsed": elapsed,
    }


def sequential(port: int, req: dict, count: int) -> dict:
    lats: list[float] = []
    errors: list[str] = []
    _thread_loop_count(port, req, count, lats, errors)
    return {"p50": percentile(lats, 50), "p99": percentile(lats, 99), "errors": len(errors)}


def _thread_loop_count(port: int, req: dict, count: int, out: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = req["body"].encode() if req["body"] else None
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            conn.request(req["method"], req["path"], body=body, headers=req["headers"])
            conn.getresponse().read()
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        out.append((time.perf_counter() - t0) * 1000.0)
    conn.close()


# -- setup -------------------------------------------------------------------------------------------


def simulator(kind: str, folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = start([*HARNESS, "mock", kind, "--listen", f"127.0.0.1:{port}"], port, folder / f"{kind}.log")
    return proc, port


def prepare(fhir: int, medins: int) -> tuple[dict, dict]:
    """A FHIR patient to read, and a medins visit up to 2206 whose 2207 is the benchmark's request."""
    conn = http.client.HTTPConnection("127.0.0.1", fhir, timeout=30)
    body = json.dumps(
        {"resourceType": "Patient", "gender": "female", "name": [{"family": "Zhou", "given": ["Lan"]}]}
    )
    conn.request("POST", "/fhir/Patient", body, {"Content-Type": "application/fhir+json"})
    resp = conn.getresponse()
    resp.read()
    pid = resp.getheader("Location").split("/Patient/")[1].split("/")[0]
    fhir_req = {"method": "GET", "path": f"/fhir/Patient/{pid}", "body": None, "headers": {}}
    values: dict[str, str] = {}
    medins_req = None
    conn = http.client.HTTPConnection("127.0.0.1", medins, timeout=30)
    for path in sorted((ROOT / "fixtures" / "medins").glob("visit-*.json")):
        text = re.sub(
            r"\{\{(\w+)\}\}", lambda m: values.get(m.group(1), m.group(0)), path.read_text(encoding="utf-8")
        )
        if path.name.endswith("2207.json"):
            medins_req = {
                "method": "POST",
                "path": MEDINS_PATH,
                "body": text,
                "headers": {"Content-Type": "application/json"},
            }
            break
        conn.request("POST", MEDINS_PATH, text.encode(), {"Content-Type": "application/json"})
        doc = json.loads(conn.getresponse().read())
        out = doc.get("output") or {}
        if "signinoutb" in out:
            values["sign_no"] = out["signinoutb"]["sign_no"]
        if isinstance(out.get("data"), dict) and "mdtrt_id" in out["data"]:
            values["mdtrt_id"] = out["data"]["mdtrt_id"]
    assert medins_req is not None
    return fhir_req, medins_req


def proxy(folder: Path, fhir: int, medins: int, capture: str) -> tuple[subprocess.Popen, dict[str, int]]:
    ports = {"fhir": free_port(), "medins": free_port()}
    config = {
        "store": str(folder / f"bench-{capture}.db"),
        "admin": False,
        "channels": {
            name: {
                "protocol": "http",
                "kind": name,
                "listen": f"127.0.0.1:{ports[name]}",
                "upstream": f"http://127.0.0.1:{up}",
                "capture": capture,
            }
            for name, up in (("fhir", fhir), ("medins", medins))
        },
    }
    path = folder / f"proxy-{capture}.yaml"
    path.write_text(json.dumps(config))
    proc = start([*HARNESS, "proxy", "--config", str(path)], ports["fhir"], folder / f"proxy-{capture}.log")
    wait_for_port(ports["medins"], proc)
    return proc, ports


def mitm(folder: Path, upstream: int, name: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = start(
        [
            MITMDUMP,
            "--mode",
            f"reverse:http://127.0.0.1:{upstream}",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(port),
            "-q",
            "--set",
            "flow_detail=0",
        ],
        port,
        folder / f"mitm-{name}.log",
    )
    return proc, port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument(
        "--sequential", type=int, default=1000, help="requests for the one-connection latency run"
    )
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-http-"))
    procs: list[subprocess.Popen] = []
    try:
        fhir_proc, fhir = simulator("fhir", folder)
        medins_proc, medins = simulator("medins", folder)
        procs += [fhir_proc, medins_proc]
        fhir_req, medins_req = prepare(fhir, medins)
        targets: dict[str, dict[str, int]] = {"direct": {"fhir": fhir, "medins": medins}}
        for capture in ("fast", "durable", "off"):
            p, ports = proxy(folder, fhir, medins, capture)
            procs.append(p)
            targets[f"proxy ({capture})"] = ports
        m1, mf = mitm(folder, fhir, "fhir")
        m2, mm = mitm(folder, medins, "medins")
        procs += [m1, m2]
        targets["mitmdump"] = {"fhir": mf, "medins": mm}
        conc = args.processes * args.threads
        print(
            f"# {args.seconds:g} s per target, {args.processes} client processes x {args.threads} keep-alive "
            f"connections ({conc}); latency run: {args.sequential} sequential requests on one connection"
        )
        for name, req in (("fhir GET Patient", fhir_req), ("medins 2207 POST", medins_req)):
            kind = "fhir" if name.startswith("fhir") else "medins"
            rows = {}
            for target, ports in targets.items():
                seq_count = args.sequential if target != "mitmdump" else max(100, args.sequential // 5)
                sequential(ports[kind], req, 50)  # warm up
                seq = sequential(ports[kind], req, seq_count)
                rows[target] = {
                    **load(ports[kind], req, args.seconds, args.processes, args.threads),
                    "seq": seq,
                }
            base = rows["direct"]
            print(f"\n## {name}")
            print(
                f"{'target':<16} {'req/s':>8} {'x direct':>9} {'p50 ms':>8} {'p99 ms':>8}   "
                f"{'1-conn p50':>10} {'p99':>7} {'added p50':>9}  errors"
            )
            for target, r in rows.items():
                added = r["seq"]["p50"] - base["seq"]["p50"]
                print(
                    f"{target:<16} {r['rps']:8.0f} {r['rps'] / base['rps']:9.2f} "
                    f"{r['p50']:8.2f} {r['p99']:8.2f}   "
                    f"{r['seq']['p50']:10.2f} {r['seq']['p99']:7.2f} {added:9.2f}  {r['errors']}"
                    + (f" {r['error_sample']}" if r["errors"] else "")
                )
            fast = rows["proxy (fast)"]
            print(
                f"proxy (fast) vs direct: {fast['rps'] / base['rps']:.2f} x (goal >= 0.5); "
                f"vs mitmdump: {fast['rps'] / rows['mitmdump']['rps']:.1f} x (goal >= 5); "
                f"added p50 {fast['seq']['p50'] - base['seq']['p50']:.2f} ms (goal <= 2)"
            )
    finally:
        for p in procs:
            stop(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
