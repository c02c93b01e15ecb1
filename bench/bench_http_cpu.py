"""CPU time the HTTP proxy process spends per request (user + system from /proc), capture fast and off.

Throughput on a shared two-core machine moves with whatever else runs; the proxy's own CPU seconds per
request move much less, so this is the figure to compare two versions of the proxy by (run both in
the same minute). One keep-alive connection, requests one after the other, FHIR GET and medins 2207 as
in bench_http.py; the capture writer's own process is not counted.

    .venv/bin/python bench/bench_http_cpu.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import bench_http as b
from processes import stop


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-http-cpu-"))
    procs = []
    try:
        fhir_proc, fhir = b.simulator("fhir", folder)
        medins_proc, medins = b.simulator("medins", folder)
        procs += [fhir_proc, medins_proc]
        fhir_req, medins_req = b.prepare(fhir, medins)
        for capture in ("fast", "off"):
            proc, ports = b.proxy(folder, fhir, medins, capture)
            procs.append(proc)
            for name, req, kind in (("fhir GET", fhir_req, "fhir"), ("medins 2207", medins_req, "medins")):
                b.sequential(ports[kind], req, 200)  # warm up
                before = cpu_seconds(proc.pid)
                run = b.sequential(ports[kind], req, args.requests)
                used = cpu_seconds(proc.pid) - before
                print(
                    f"capture {capture:<4} {name:<12} {1e6 * used / args.requests:7.1f} µs CPU per request "
                    f"in the proxy; one-connection p50 {run['p50']:.2f} ms"
                )
    finally:
        for proc in procs:
            stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
