"""The /metrics families dashboards and alert rules use beyond the channel totals: per message type, in
flight, queued, upstream connections by role."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from harness.proxy.admin import AdminAPI, AdminChannel
from harness.proxy.stats import ChannelStats, LiveState

TOKEN = "t0ken"


def samples(api: AdminAPI) -> dict:
    body = api.handle("GET", "/metrics", f"Bearer {TOKEN}").body.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_per_message_type_outcomes_and_latency():
    stats = ChannelStats()
    stats.finished("ok", "ADT^A01", 0.003)
    stats.finished("nak", "ADT^A01", 0.003)
    stats.finished("ok", "ADT^A08", 0.5)
    api = AdminAPI({"adt": AdminChannel("adt", "mllp", "127.0.0.1:1", ["127.0.0.1:2"], stats)}, TOKEN)
    got = samples(api)
    key = (
        "harness_message_exchanges_total",
        (("channel", "adt"), ("message_type", "ADT^A01"), ("outcome", "nak")),
    )
    assert got[key] == 1
    assert got[("harness_message_latency_seconds_bucket",
                (("channel", "adt"), ("le", "0.005"), ("message_type", "ADT^A01")))] == 2  # fmt: skip
    assert (
        got[("harness_message_latency_seconds_count", (("channel", "adt"), ("message_type", "ADT^A08")))] == 1
    )
    assert (
        got[("harness_exchanges_total", (("channel", "adt"), ("outcome", "ok")))] == 2
    )  # the totals still add up


def test_in_flight_queued_and_upstreams_by_role_are_read_at_scrape_time():
    stats = ChannelStats()
    state = {"now": LiveState(3, 1, {"10.0.0.1:2575": 2})}
    stats.live = lambda: state["now"]
    stats.upstream_connected("10.0.0.1:2575")
    stats.upstream_connected("10.0.0.2:2575")
    channel = AdminChannel("adt", "mllp", "127.0.0.1:1", ["10.0.0.1:2575", "10.0.0.2:2575"], stats)
    api = AdminAPI({"adt": channel}, TOKEN)
    got = samples(api)
    assert got[("harness_in_flight", (("channel", "adt"),))] == 3
    assert got[("harness_queued_requests", (("channel", "adt"),))] == 1
    primary = (("channel", "adt"), ("role", "primary"), ("upstream", "10.0.0.1:2575"))
    backup = (("channel", "adt"), ("role", "backup"), ("upstream", "10.0.0.2:2575"))
    assert got[("harness_upstream_connections", primary)] == 2
    assert got[("harness_upstream_connections", backup)] == 0  # every configured upstream has a series
    assert got[("harness_upstream_connects_total", backup)] == 1
    state["now"] = LiveState(0, 0, {"10.0.0.2:2575": 1})
    got = samples(api)
    assert (
        got[("harness_upstream_connections", backup)] == 1
        and got[("harness_upstream_connections", primary)] == 0
    )
