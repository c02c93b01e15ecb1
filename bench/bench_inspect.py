"""`harness inspect` on a large capture store: time and memory, against `capture summary` in the same run.

A store of N exchanges (default 1,000,000) over the last 7 days is generated with `harness.store` (four
channels: adt and lab HL7 v2 over MLLP, medins and fhir over HTTP; a daily rhythm with a night-time lull; ≈2 %
failures with their NAKs; one silence; one failover to a backup upstream; requests of ≈0.6–1 KB as captured).
Then, each in a child process of its own (wall time, and peak memory from the kernel's accounting of that
child), end to end as a user runs them:

- baseline: `harness capture summary --json` over the whole store (counts and latency percentiles only);
- `harness inspect --since 7d` over the whole store (every figure of the inspection, JSON and HTML written);
- the urgent-fault look: `harness inspect --since 30m --channel adt`, and `--since 30m` on every channel;
- `harness inspect --since 1d --channel adt --compare-previous`.

Each command's own Python start-up (≈1 s here) is part of its wall time; the inspection's reading and
computing time is printed beside it (`run.elapsed_s` of the report).

    .venv/bin/python bench/bench_inspect.py [--exchanges N] [--store PATH (kept, reused when it exists)]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.exchange import Exchange  # noqa: E402
from harness.store import Store  # noqa: E402

DAY = 86400
CHANNELS = (("adt", "hl7v2", 0.4), ("lab", "hl7v2", 0.3), ("medins", "medins", 0.2), ("fhir", "fhir", 0.1))
PRIMARY, BACKUP = "10.10.1.21:12575", "10.10.1.22:12575"
NTE = "x" * 400


def hl7(rng: random.Random, channel: str, i: int, made: float) -> tuple[bytes, str]:
    stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(made))
    if channel == "adt":
        mtype = rng.choice(("ADT^A01", "ADT^A08", "ADT^A08", "ADT^A03", "ADT^A04"))
        body = (
            f"MSH|^~\\&|HIS|H53010001|HC|H53010001|{stamp}||{mtype}|M{i}|P|2.5|||AL|NE||UNICODE UTF-8\r"
            f"EVN|{mtype[-3:]}|{stamp}\rPID|1||{100000 + i % 50000}^^^H53010001^MR||张^伟||19800101|M|||"
            f"昆明市五华区^^KUNMING^YN^650000\rPV1|1|I|0101^101^1||||D{i % 300:04d}^李^四\r"
            f"NTE|1||{NTE[: 100 + i % 300]}\r"
        )
    else:
        mtype = "ORU^R01"
        body = (
            f"MSH|^~\\&|LIS|H53010001|HC|H53010001|{stamp}||ORU^R01|L{i}|P|2.5\r"
            f"PID|1||{100000 + i % 50000}^^^H53010001^MR||王^芳\rOBR|1||{i}|GLU^葡萄糖\r"
            f"OBX|1|NM|GLU^葡萄糖||{4 + i % 30 / 10}|mmol/L|3.9-6.1|N|||F\rNTE|1||{NTE[: 200 + i % 200]}\r"
        )
    return body.encode(), mtype


def ack(code: str, cid: str) -> bytes:
    text = "患者不存在" if code == "AE" else ""
    return f"MSH|^~\\&|HC|H53010001|HIS|H53010001|||ACK|A{cid}|P|2.5\rMSA|{code}|{cid}|{text}\r".encode()


def generate(path: Path, n: int, now: float) -> None:
    rng = random.Random(17)
    start = now - 7 * DAY
    two_days_ago = time.localtime(now - 2 * DAY)
    nine = time.mktime((*two_days_ago[:3], 9, 0, 0, 0, 0, -1))
    silence = (nine, nine + 3600)  # lab stops from 09:00 to 10:00 two days ago
    failover = now - 1 * DAY  # adt goes to its backup a day ago
    times: list[float] = []
    while len(times) < n:  # captured in time order, as a proxy writes them; fewer at night
        t = start + rng.random() * 7 * DAY
        if time.localtime(t).tm_hour >= 7 or rng.random() < 0.3:
            times.append(t)
    times.sort()
    batch: list[Exchange] = []
    weights = [c[2] for c in CHANNELS]
    made = 0
    with Store(path, synchronous="OFF") as store:
        for t in times:
            channel, kind, _ = rng.choices(CHANNELS, weights)[0]
            if channel == "lab" and silence[0] <= t < silence[1]:
                channel, kind = "adt", "hl7v2"
            failed = rng.random() < 0.02
            latency = rng.lognormvariate(math.log(40), 0.8)
            upstream = BACKUP if channel == "adt" and t >= failover else PRIMARY
            if kind == "hl7v2":
                request, mtype = hl7(rng, channel, made, t - rng.random() * 3)
                cid = f"{channel[0].upper()}{made}"
                ex = Exchange(
                    channel=channel,
                    protocol="mllp",
                    kind=kind,
                    started_at=t,
                    request=request,
                    response=ack("AE" if failed else "AA", cid),
                    outcome="nak" if failed else "ok",
                    ack_code="AE" if failed else "AA",
                    message_type=mtype,
                    control_id=cid,
                    charset="utf-8",
                    upstream_addr=upstream,
                    client_addr="10.10.3.7:40112",
                )
            else:
                infno = rng.choice(("2201", "2204", "2206", "2207", "1101"))
                stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t - rng.random() * 3))
                body = json.dumps(
                    {
                        "infno": infno,
                        "msgid": f"H530100{made:014d}",
                        "inf_time": stamp,
                        "input": {"data": {"psn_no": f"5301{made:012d}", "note": NTE[:300]}},
                    }
                )
                request = (
                    f"POST /fsi/api/rsfComIfsService/callService HTTP/1.1\r\nHost: hc\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
                ).encode()
                answer = (
                    {"infcode": -1, "err_msg": "参保人信息不存在"} if failed else {"infcode": 0, "output": {}}
                )
                ex = Exchange(
                    channel=channel,
                    protocol="http",
                    kind=kind,
                    started_at=t,
                    request=request,
                    response=json.dumps(answer, ensure_ascii=False).encode(),
                    outcome="nak" if failed else "ok",
                    ack_code=str(answer["infcode"]),
                    message_type=infno if kind == "medins" else "create Patient",
                    status=200,
                    method="POST",
                    path="/fsi/api/rsfComIfsService/callService",
                    meta=answer,
                    upstream_addr="10.10.2.5:8080",
                )
            ex.finish(t + latency / 1000.0)
            batch.append(ex)
            made += 1
            if len(batch) >= 20_000:
                store.add_many(batch)
                batch = []
                print(f"  {made:,} exchanges written", end="\r", flush=True)
        if batch:
            store.add_many(batch)
    print()


def measure(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak resident MB and stdout of one child `harness` command."""
    with tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *args],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=ROOT,
        )
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # the child's own rusage: its peak memory
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
        if proc.returncode not in (0, 1):
            errors.seek(0)
            raise SystemExit(f"harness {' '.join(args)} failed ({proc.returncode}): {errors.read()[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exchanges", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, help="Keep the generated store here (reused when it exists).")
    opts = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-inspect-"))
    store = opts.store or folder / "captures.db"
    now = time.time()
    if store.exists():
        with Store(store, create=False) as db:
            have = db.count()
        print(f"reusing {store} ({have:,} exchanges; times relative to its newest)")
        with Store(store, create=False) as db:
            newest = next(db.query(_newest(), bodies=False)).started_at
        now = newest + 1
    else:
        print(f"generating {opts.exchanges:,} exchanges over 7 days in {store} ...")
        t0 = time.perf_counter()
        generate(store, opts.exchanges, now)
        print(f"  generated in {time.perf_counter() - t0:.0f} s, {store.stat().st_size / 1e9:.2f} GB")
    until = _iso(now)

    def inspect(since: float, report: str, *extra: str) -> list[str]:
        window = ["--since", _iso(since), "--until", until]
        return ["inspect", "--store", str(store), *window, "--report-json", str(folder / report), *extra]

    runs = [
        ("baseline: capture summary --json (whole store)",
         ["capture", "summary", "--store", str(store), "--json"]),
        ("inspect --since 7d (whole store, HTML + JSON)",
         inspect(now - 7 * DAY - 60, "week.json", "--html", str(folder / "week.html"))),
        ("inspect --since 30m --channel adt", inspect(now - 1800, "urgent.json", "--channel", "adt")),
        ("inspect --since 30m (every channel)", inspect(now - 1800, "urgent-all.json")),
        ("inspect --since 1d --channel adt --compare-previous",
         inspect(now - DAY, "day.json", "--channel", "adt", "--compare-previous")),
    ]  # fmt: skip
    baseline = None
    print(f"{'run':<52} {'exchanges':>10} {'wall s':>8} {'inspect s':>10} {'peak MB':>8} {'x baseline':>10}")
    for name, args in runs:
        wall, peak, out = measure(args)
        if baseline is None:
            baseline = wall
            count = json.loads(out)["exchanges"]
            inner = "-"
        else:
            report = json.loads(Path(args[args.index("--report-json") + 1]).read_text())
            count = report["totals"]["exchanges"]
            inner = f"{report['run']['elapsed_s']:.2f}"
        print(f"{name:<52} {count:>10,} {wall:>8.2f} {inner:>10} {peak:>8.0f} {wall / baseline:>10.2f}")
    week = json.loads((folder / "week.json").read_text())
    adt = next(c for c in week["channels"] if c["channel"] == "adt")
    lab = next(c for c in week["channels"] if c["channel"] == "lab")
    print(
        f"check: adt failovers {adt['failover_count']}, lab silences {len(lab['silences'])}, "
        f"HTML {(folder / 'week.html').stat().st_size / 1e6:.1f} MB"
    )
    if opts.store is None:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def _newest():
    from harness.store import ExchangeFilter

    return ExchangeFilter(order="-started_at", limit=1)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


if __name__ == "__main__":
    main()
