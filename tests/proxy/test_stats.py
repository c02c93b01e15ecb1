from harness.proxy.stats import LATENCY_BUCKETS_S, ChannelStats


def test_outcomes_bump_their_counters():
    stats = ChannelStats()
    for outcome in ["ok", "ok", "nak", "timeout", "fault", "malformed", "upstream_down", "late_ack", "weird"]:
        stats.outcome(outcome)
    snap = stats.snapshot()
    assert snap["messages"] == 9
    assert (snap["ok"], snap["nak"], snap["timeouts"], snap["faults"], snap["malformed"]) == (2, 1, 1, 1, 1)
    assert (snap["upstream_down"], snap["late_acks"], snap["errors"]) == (1, 1, 1)


def test_connections_and_bytes():
    stats = ChannelStats()
    stats.connection_opened()
    stats.connection_opened()
    stats.connection_closed()
    stats.bytes_in += 100
    stats.bytes_out += 20
    snap = stats.snapshot()
    assert snap["connections"] == 2 and snap["open_connections"] == 1
    assert snap["bytes"] == 120


def test_histogram_is_cumulative_and_ends_with_inf():
    stats = ChannelStats()
    for seconds in (0.0001, 0.001, 0.003, 0.2, 100.0):
        stats.observe_latency(seconds)
    buckets, total = stats.histogram()
    assert len(buckets) == len(LATENCY_BUCKETS_S) + 1
    assert buckets[-1] == ("+Inf", 5)
    counts = dict(buckets)
    assert counts["0.0005"] == 1 and counts["0.001"] == 2 and counts["0.005"] == 3 and counts["60.0"] == 4
    assert [c for _, c in buckets] == sorted(c for _, c in buckets)
    assert abs(total - 100.2041) < 1e-9
    assert stats.snapshot()["latency_mean_ms"] == round(100.2041 * 1000 / 5, 3)


def test_finished_counts_the_channel_and_the_message_type_with_one_histogram_each():
    from harness.proxy.stats import TYPE_OUTCOMES

    stats = ChannelStats()
    stats.finished("ok", "ADT^A01", 0.002)
    stats.finished("nak", "ADT^A01", 0.2)
    stats.finished("timeout", "ORU^R01", None)
    stats.finished("malformed", None, None)
    snap = stats.snapshot()
    assert (snap["messages"], snap["ok"], snap["nak"], snap["timeouts"], snap["malformed"]) == (4, 1, 1, 1, 1)
    assert stats.latency_count == 2
    adt = stats.by_type["ADT^A01"]
    assert dict(zip(TYPE_OUTCOMES, adt.outcomes, strict=True))["nak"] == 1 and adt.latency_count == 2
    assert dict(adt.histogram()[0])["0.0025"] == 1 and dict(adt.histogram()[0])["+Inf"] == 2
    assert sum(stats.by_type["ORU^R01"].outcomes) == 1 and stats.by_type["ORU^R01"].latency_count == 0
    assert sum(stats.by_type["none"].outcomes) == 1


def test_message_types_are_bounded_then_counted_as_other():
    from harness.proxy.stats import MAX_MESSAGE_TYPES

    stats = ChannelStats()
    for i in range(MAX_MESSAGE_TYPES + 25):
        stats.finished("ok", f"Z{i:02d}^A01", 0.001)
    assert len(stats.by_type) == MAX_MESSAGE_TYPES + 1
    assert sum(stats.by_type["other"].outcomes) == 25
    stats.finished("ok", "Z00^A01", 0.001)  # a type counted apart stays apart
    assert sum(stats.by_type["Z00^A01"].outcomes) == 2


def test_a_type_label_is_cut_to_64_characters():
    stats = ChannelStats()
    stats.finished("ok", "A" * 10_000, None)
    stats.finished("ok", "A" * 9_000, None)
    assert list(stats.by_type) == ["A" * 64] and sum(stats.by_type["A" * 64].outcomes) == 2
