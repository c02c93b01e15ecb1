"""Cost of the fault engine on the proxy's per-message path, against `meta.extract` in the same run.

    .venv/bin/python bench/bench_faults.py [--seconds 0.5] [--rounds 3]

The proxy already pays for `meta.extract` on every message; the engine's decision should be small
beside it. Prints µs per message (one core, best of `rounds`) and the ratio to `extract` for: no rules,
1 and 10 rules that miss on message type, 10 rules that miss on a terse path (the message is parsed
once), and 1 rule that fires every message (a delay). Goals: no rules <= 0.05 x extract; 10 metadata
rules <= 1 x extract. Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.hl7v2.meta import extract  # noqa: E402
from harness.proxy.faults.context import FaultContext  # noqa: E402
from harness.proxy.faults.engine import FaultEngine  # noqa: E402

PAYLOAD = (
    b"MSH|^~\\&|HIS|HOSP|HC|HOSP|20260101120000||ADT^A01^ADT_A01|MSG00001|P|2.5|||||CHN|UNICODE UTF-8\r"
    b"EVN|A01|20260101120000\r"
    b"PID|1||100001^^^HOSP^MR~110101198001010011^^^CHN^NNCHN||ZHANG^SAN||19800101|M|||"
    b"1 MAIN ST^^KUNMING^YN^650000^CHN||0871-1234567\r"
    b"PV1|1|O|OUT^^^HOSP||||1234^LI^SI|||||||||||V0001|||||||||||||||||||||||||20260101120000\r"
    b"AL1|1|DA|PENICILLIN||RASH\r"
)


def per_call_us(fn: Callable[[], object], seconds: float, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        done = 0
        start = time.perf_counter()
        while True:
            for _ in range(1000):
                fn()
            done += 1000
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = min(best, elapsed / done * 1e6)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    meta = extract(PAYLOAD)
    ctx = FaultContext(channel="bench")
    drop = {"type": "drop"}
    engines = {
        "no rules": FaultEngine("bench"),
        "1 rule, type miss": FaultEngine(
            "bench", rules=[{"match": {"message_type": "ORU^R01"}, "action": drop}]
        ),
        "10 rules, type miss": FaultEngine(
            "bench", rules=[{"match": {"message_type": f"ORM^O0{i}"}, "action": drop} for i in range(10)]
        ),
        "10 rules, path miss": FaultEngine(
            "bench", rules=[{"match": {"paths": {"PID-3.1": f"re:^{i}9"}}, "action": drop} for i in range(10)]
        ),
        "1 rule fires (delay)": FaultEngine("bench", rules=[{"action": {"type": "delay", "ms": 1}}]),
    }
    base = per_call_us(lambda: extract(PAYLOAD), args.seconds, args.rounds)
    print(f"{'meta.extract (baseline)':<26} {base:8.2f} us/msg   1.00 x")
    ratios = {}
    for name, engine in engines.items():
        us = per_call_us(lambda e=engine: e.decide("request", PAYLOAD, meta, ctx), args.seconds, args.rounds)
        ratios[name] = us / base
        print(f"{name:<26} {us:8.2f} us/msg {ratios[name]:6.2f} x")
    failed = []
    if ratios["no rules"] > 0.05:
        failed.append(f"no rules: {ratios['no rules']:.3f} x extract (goal <= 0.05)")
    if ratios["10 rules, type miss"] > 1.0:
        failed.append(f"10 metadata rules: {ratios['10 rules, type miss']:.2f} x extract (goal <= 1)")
    for line in failed:
        print(f"GOAL MISSED: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
