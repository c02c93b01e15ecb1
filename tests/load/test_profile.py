import json
from pathlib import Path

import pytest

from harness.load.profile import ProfileError, load_profile, parse_duration, parse_targets, resolve

ROOT = Path(__file__).resolve().parents[2]


def plan_of(name="outpatient-peak", **kw):
    data, source = load_profile(name)
    kw.setdefault("targets", {"mllp": "127.0.0.1:2575"})
    return resolve(data, source, **kw)


def test_every_shipped_profile_resolves_into_a_self_contained_plan():
    names = sorted(p.stem for p in (ROOT / "loadtests" / "profiles").glob("*.yaml"))
    assert {"outpatient-peak", "month-end-settlement", "step", "spike", "soak", "interfaces-smoke"} <= set(
        names
    )
    for name in names:
        data, source = load_profile(name)
        kinds = list(data["traffic"])
        targets = {k: ("127.0.0.1:2575" if k == "mllp" else "http://127.0.0.1:18080") for k in kinds}
        plan = resolve(data, source, targets=targets)
        again = json.loads(json.dumps(plan))  # plain JSON: what locust workers receive
        assert again == plan and plan["traffic"] and plan["duration_s"] > 0


def test_kinds_without_a_target_are_left_out_and_said_so():
    plan = plan_of(rate=10, duration="30s")
    assert list(plan["traffic"]) == ["mllp"]
    assert plan["left_out"] == {"medins": "no target (--target medins=...)"}
    assert "medins traffic left out" in plan["notes"][0]
    assert plan["traffic"]["mllp"]["share"] == 1.0


def test_open_model_users_cover_every_worker_and_split_by_weight():
    plan = plan_of(
        targets={"mllp": "127.0.0.1:2575", "medins": "http://127.0.0.1:18080"}, workers=4, concurrency=20
    )
    assert plan["traffic"]["mllp"]["users"] == 17 and plan["traffic"]["medins"]["users"] == 4
    assert plan["traffic"]["medins"]["requests_per_arrival"] == 5
    assert plan["expected_requests"] > 0 and plan["stop_timeout_s"] >= 150


def test_the_closed_model_takes_users():
    plan = plan_of(users=30, duration="2m")
    assert plan["model"] == "closed" and plan["peak"] == 30 and plan["duration_s"] == 120
    assert "min_rate" not in {t["key"] for t in plan["thresholds"]}
    assert any("applies to the open model" in n for n in plan["notes"])


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"rate": 5, "users": 5}, ["give one"]),
        ({"model": "closed", "rate": 5}, ["--rate sets the open model"]),
        ({"duration": "ten minutes"}, ["--duration", "90s"]),
        ({"targets": {"mllp": "127.0.0.1:2575", "fhir": "http://x:1"}}, ["no fhir traffic"]),
        ({"targets": {}}, ["nothing to send", "mllp (no target"]),
        ({"flag_thresholds": ["p95=1"]}, ["unknown threshold 'p95'"]),
        ({"users": 5, "flag_thresholds": ["max_backlog=3"]}, ["--threshold", "need the open model"]),
    ],
)
def test_bad_options_are_refused_with_the_reason(kw, words):
    with pytest.raises(ProfileError) as err:
        plan_of(**kw)
    for word in words:
        assert word in str(err.value)


def test_bad_profiles_name_the_file_and_key(tmp_path):
    def bad(text):
        path = tmp_path / "p.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ProfileError) as err:
            resolve(*load_profile(path), targets={"mllp": "127.0.0.1:1"})
        return str(err.value)

    template = ROOT / "fixtures" / "hl7v2" / "adt_a04_gb18030.hl7"
    assert "p.yaml: shap: unknown key" in bad("shap: step\ntraffic: {mllp: {}}\n")
    assert "traffic.mllp.messages" in bad("rate: 1\ntraffic: {mllp: {}}\n")
    assert "is a ADT^A04, not a ADT^A01" in bad(
        f"rate: 1\ntraffic: {{mllp: {{messages: {{ADT^A01: {template}}}}}}}\n"
    )
    assert "traffic.mllp.messages.ADT^A04.template" in bad(
        "rate: 1\ntraffic: {mllp: {messages: {ADT^A04: nope.hl7}}}\n"
    )
    assert "traffic.hl7: unknown kind" in bad("rate: 1\ntraffic: {hl7: {}}\n")
    assert "traffic.fhir.interactions.delete Patient: unknown" in bad(
        "rate: 1\ntraffic: {fhir: {interactions: {delete Patient: 1}}}\n"
    )
    with pytest.raises(ProfileError, match="known profiles: .*outpatient-peak"):
        load_profile("outpatient-peek")


def test_targets_read_kind_address_pairs_and_bare_addresses():
    assert parse_targets(["127.0.0.1:2575", "medins=http://h:18080/"], ["mllp", "medins"]) == {
        "mllp": "127.0.0.1:2575",
        "medins": "http://h:18080",
    }
    assert parse_targets(["http://h:1"], ["mllp", "fhir"]) == {"fhir": "http://h:1"}
    with pytest.raises(ProfileError, match="say which"):
        parse_targets(["http://h:1"], ["medins", "fhir"])
    with pytest.raises(ProfileError, match="expected HOST:PORT"):
        parse_targets(["2575"], ["mllp"])
    with pytest.raises(ProfileError, match="unknown kind 'hl7'"):
        parse_targets(["hl7=h:1"], ["mllp"])
    assert parse_duration("1h30m") == 5400 and parse_duration("90s") == 90 and parse_duration(12) == 12
