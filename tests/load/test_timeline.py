import random

from harness.load.timeline import Recorder, bucket_interval, histogram_percentile, round_ms


def test_rounding_follows_locust_so_both_tools_agree():
    assert [round_ms(v) for v in (3.4, 99.6, 123, 1234, 12345)] == [3, 100, 120, 1200, 12000]


def test_percentiles_of_a_histogram_are_the_nearest_rank():
    hist = {1: 50, 2: 45, 10: 4, 100: 1}
    assert histogram_percentile(hist, 50) == 1
    assert histogram_percentile(hist, 95) == 2
    assert histogram_percentile(hist, 99) == 10
    assert histogram_percentile(hist, 100) == 100
    assert histogram_percentile({}, 50) is None


def test_recorders_of_several_workers_merge_into_the_same_totals_as_one():
    rng = random.Random(5)
    events = [
        (rng.choice(["ADT^A04", "2207"]), rng.expovariate(0.1), rng.random() < 0.1, 1000 + rng.random() * 20)
        for _ in range(2000)
    ]
    one = Recorder()
    parts = [Recorder(), Recorder()]
    for i, (name, ms, failed, at) in enumerate(events):
        error = "AE: ward closed" if failed else None
        one.add(name, "mllp", ms, 100, error, at)
        parts[i % 2].add(name, "mllp", ms, 100, error, at)
    master = Recorder()
    for part in parts:
        master.merge(part.drain())
        assert not part.buckets  # drained
    assert master.total().summary() == one.total().summary()
    assert master.errors == one.errors
    assert master.total(["2207"]).count == one.total(["2207"]).count
    rows = master.series(1000, 1020)
    assert len(rows) == 20 and sum(r["requests"] for r in rows) == 2000
    assert all(r["p95_ms"] >= r["p50_ms"] for r in rows if r["requests"])


def test_long_runs_get_coarser_buckets():
    assert bucket_interval(600) == 1
    assert bucket_interval(12 * 3600) == 60
    rec = Recorder(60)
    rec.add("x", "mllp", 1, 0, None, 119.0)
    rec.add("x", "mllp", 1, 0, None, 120.0)
    assert sorted(rec.buckets) == [60, 120]
