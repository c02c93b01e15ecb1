"""Drill messages: unique, traceable, in order per patient, and found again in any log."""

from __future__ import annotations

import pytest

from harness.drill.traffic import Traffic, control_id, id_pattern, new_run_id
from harness.hl7v2.message import Message
from harness.hl7v2.meta import extract


def test_run_ids_are_unique_and_short_enough_for_msh10():
    assert new_run_id(1_770_000_000)[:8] != new_run_id(1_770_000_001)[:8]  # the second is in the id
    same_second = {new_run_id(1_770_000_000) for _ in range(30)}  # and 36² random endings besides
    assert len(same_second) > 20 and all(len(i) == 10 and i.startswith("DR") for i in same_second)
    assert len(control_id(new_run_id(), 999_999)) == 16 <= 20  # MSH-10 is ST, 20 characters


def test_every_message_says_what_it_is():
    traffic = Traffic("DRTEST0001", patients=3, message_type="ADT^A08")
    m = traffic.message(7, now=0)
    meta = extract(m.payload)
    assert (meta.message_code, meta.control_id, meta.processing_id) == ("ADT^A08", "DRTEST0001000007", "T")
    assert (meta.sending_app, meta.sending_facility) == ("HARNESS", "DRILL")
    msg = Message.parse(m.payload)
    assert msg.get("PID-3.1") == "DRTEST0001P001" and (m.patient, m.patient_seq) == (1, 2)
    assert "message 7, patient 001 number 2" in msg.get("NTE-3")


def test_patients_take_turns_and_each_keeps_its_own_order():
    traffic = Traffic("DRTEST0001", patients=4)
    msgs = [traffic.message(s, now=0) for s in range(12)]
    assert [m.patient for m in msgs[:5]] == [0, 1, 2, 3, 0]
    assert [m.patient_seq for m in msgs if m.patient == 2] == [0, 1, 2]
    assert len({m.control_id for m in msgs}) == 12


def test_the_pattern_finds_this_runs_ids_only():
    pattern = id_pattern("DRTEST0001")
    line = "#12 control_id=DRTEST0001000011 type=ADT^A08 answer=AA; DRTEST0002000001 DRTEST00010000123"
    assert [m.group(0) for m in pattern.finditer(line)] == ["DRTEST0001000011"]


@pytest.mark.parametrize("bad", ["ADT", "ADT^", "A D T^A08", "^A08"])
def test_a_bad_message_type_is_refused(bad):
    with pytest.raises(ValueError, match="TYPE\\^TRIGGER"):
        Traffic("DRX", message_type=bad)


def test_the_drill_config_for_the_simulators_is_valid():
    from harness.proxy.config import load_config
    from tests.processes import ROOT

    config = load_config(ROOT / "proxies" / "drill.yaml")
    [(name, channel)] = config.channels.items()
    assert name == "adt" and [str(a) for a in channel.upstreams] == ["127.0.0.1:12590", "127.0.0.1:12591"]
