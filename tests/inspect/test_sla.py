"""SLA files: thresholds per channel and type, and mistakes named by their key path."""

from __future__ import annotations

import pytest

from harness.inspect.sla import SlaError, check, load_sla, parse_sla


def test_channel_values_override_the_defaults():
    sla = parse_sla(
        {
            "success_rate_min": 99,
            "business_days": "mon-fri",
            "channels": {
                "adt": {"success_rate_min": 99.9, "message_types": {"ADT^A01": {"p95_ms_max": 500}}}
            },
        }
    )
    levels = sla.levels("adt")
    assert levels.thresholds == {"success_rate_min": 99.9} and levels.types == {
        "ADT^A01": {"p95_ms_max": 500.0}
    }
    assert sla.levels("other").thresholds == {"success_rate_min": 99.0}
    assert sla.levels("adt").hours.days == frozenset(range(5))


@pytest.mark.parametrize(("data", "where"), [
    ({"success_rate": 99}, "success_rate: unknown key; known keys here: success_rate_min"),
    ({"channels": {"adt": {"p95_max": 3}}}, "channels.adt.p95_max: unknown key"),
    ({"channels": {"adt": {"p95_ms_max": "fast"}}}, "channels.adt.p95_ms_max: expected a number"),
    ({"success_rate_min": 101}, "success_rate_min: a percentage is at most 100"),
    ({"channels": {"adt": {"message_types": {"ADT^A01": {"failovers_max": 0}}}}},
     "channels.adt.message_types.ADT^A01.failovers_max: unknown key"),
    ({"channels": {"adt": {"business_hours": "8-18"}}}, "channels.adt: business hours '8-18'"),
    ({"silence_minutes": 0}, "silence_minutes: expected minutes above 0"),
    ({"channels": ["adt"]}, "channels: expected a mapping"),
])  # fmt: skip
def test_mistakes_name_their_key_path(data, where):
    with pytest.raises(SlaError) as err:
        parse_sla(data)
    assert str(err.value).startswith(where), str(err.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(SlaError, match="cannot read"):
        load_sla(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [\n", encoding="utf-8")
    with pytest.raises(SlaError, match="not valid YAML at line"):
        load_sla(bad)


def test_a_type_without_traffic_is_not_a_breach_but_volume_min_is(tmp_path):
    path = tmp_path / "sla.yaml"
    path.write_text("channels:\n  adt:\n    volume_min: 10\n    message_types: {ADT^A01: {p95_ms_max: 5}}\n")
    report = {
        "channels": [
            {
                "channel": "adt",
                "exchanges": 3,
                "success_rate": 100.0,
                "latency_ms": {"p95": 1.0},
                "sync_delay_s": {},
                "failover_count": 0,
                "silences": [],
                "message_types": [],
            }
        ]
    }
    [breach] = check(report, load_sla(path))
    assert breach["text"] == "adt: exchanges 3 < minimum 10"


def test_the_shipped_example_sla_loads():
    from tests.processes import ROOT

    sla = load_sla(ROOT / "ops" / "sla.yaml")
    assert set(sla.named_channels) == {"his-adt", "lis-oru", "medins"}
    assert sla.levels("his-adt").types == {"ADT^A01": {"p95_ms_max": 1000.0}}
    assert sla.levels("his-adt").silence_breaches
