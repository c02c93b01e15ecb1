import json

from harness.exchange import Exchange
from harness.load.merge import merge
from harness.store import Store
from tests.load.summaries import START, synthetic
from tests.messages import adt


def test_the_summary_holds_totals_types_failures_timeline_and_the_judged_thresholds():
    s = synthetic()
    assert s["requests"] == sum(r["requests"] for r in s["by_name"].values()) == s["totals"]["requests"]
    assert s["failures"] == s["by_name"]["ADT^A08"]["failures"] > 0
    assert [e["name"] for e in s["errors"]] == ["ADT^A08"]
    assert len(s["timeline"]) == 32 and s["timeline"][0]["label"] == "07:05"  # the middle of the first second
    assert s["timeline"][13]["backlog"] == 3 and s["open"]["backlog_max"] == 3
    assert s["open"]["started"] < s["open"]["scheduled"]
    judged = {(t["scope"], t["key"]): t for t in s["thresholds"]}
    assert judged[(None, "error_rate")]["passed"] is False  # 1 in 32 requests fail: over 0.5%
    assert judged[("2207", "p95_ms")]["passed"] is True
    assert s["breached"] and not s["passed"]
    json.dumps(s)  # what summary.json holds


def test_an_interrupted_run_never_passes_and_its_rate_uses_the_time_it_ran():
    s = synthetic(interrupted=True)
    assert s["interrupted"] and not s["passed"]


def test_the_proxys_capture_of_the_window_is_merged_type_by_type(tmp_path):
    s = synthetic(10)
    store = tmp_path / "captures.db"
    rows = []
    for name, row in s["by_name"].items():
        for i in range(row["requests"]):
            if name == "2207":
                rows.append(Exchange(channel="medins", protocol="http", kind="medins", started_at=START + 1,
                                     latency_ms=8.0, message_type="2207", upstream_addr="127.0.0.1:18080"))
                continue
            outcome = "nak" if name == "ADT^A08" and i < row["failures"] else "ok"
            upstream = "10.0.0.1:12575" if i % 3 else "10.0.0.2:12575"
            rows.append(Exchange(channel="adt", started_at=START + 1 + i / 100, latency_ms=3.0 + i % 5,
                                 message_type=name, control_id=f"LSYN100{i:09d}", outcome=outcome,
                                 upstream_addr=upstream, request=adt(f"LSYN100{i:09d}")))
    rows += [Exchange(channel="adt", started_at=START + 2, message_type="ADT^A04", control_id="OTHER1",
                      request=adt("OTHER1")) for _ in range(4)]  # another sender on the channel
    with Store(store) as st:
        st.add_many(rows)
    proxy = merge(s, store, ["adt", "medins"], settle_s=0)
    assert proxy["counts_match"] and proxy["captured"] == s["requests"]
    assert proxy["other_senders"] == {"adt": 4}
    a08 = proxy["by_name"]["ADT^A08"]
    assert a08["naks"] == s["by_name"]["ADT^A08"]["failures"] and a08["timeouts"] == 0
    assert a08["upstream_p50_ms"] is not None and a08["e2e_p95_ms"] == s["by_name"]["ADT^A08"]["p95_ms"]
    assert set(proxy["by_name"]["ADT^A04"]["upstreams"]) == {"10.0.0.1:12575", "10.0.0.2:12575"}
    missing = merge({**s, "requests": s["requests"] + 1}, store, ["adt", "medins"], settle_s=0)
    assert not missing["counts_match"]
