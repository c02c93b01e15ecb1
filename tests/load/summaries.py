"""A load run's summary built without locust: a plan, a recorder filled as the users would fill it."""

from __future__ import annotations

import random

from harness.load.profile import load_profile, resolve
from harness.load.results import results
from harness.load.timeline import Recorder

START = 1_796_000_000.0


def synthetic(seconds: int = 30, *, failing: str = "ADT^A08", interrupted: bool = False) -> dict:
    data, source = load_profile("outpatient-peak")
    plan = resolve(data, source, targets={"mllp": "127.0.0.1:2575", "medins": "http://127.0.0.1:18080"},
                   duration=f"{seconds}s", rate=40, run_tag="SYN1")
    rec = Recorder(plan["interval_s"])
    rng = random.Random(7)
    names = [("ADT^A04", "mllp"), ("ADT^A08", "mllp"), ("ORM^O01", "mllp"), ("2207", "medins")]
    for second in range(seconds):
        rate = int(10 + 30 * min(1.0, second / 10))
        bucket = rec.open_bucket(START + second)
        bucket.scheduled += rate
        bucket.started += rate - (3 if 12 <= second < 15 else 0)
        bucket.backlog_max = 3 if 12 <= second < 15 else 0
        for i in range(rate):
            name, kind = names[i % len(names)]
            error = "AE: 病人不存在; Application internal error" if name == failing and i % 8 == 1 else None
            ms = rng.expovariate(1 / 12) + (200 if 12 <= second < 15 else 0)
            rec.add(name, kind, ms, 180, error, START + second + i / rate)
            bucket.wait[1 if ms < 100 else 120] += 1
    rec.late_acks = 2
    for s in range(seconds):
        rec.note_users(START + s, 64)
    return results(plan, rec, START, START + seconds + 1.5, interrupted=interrupted, notes=["synthetic run"])
