"""Drill figures from plain records: outage, recovery, lost, duplicated, reordered, and the verdict."""

from __future__ import annotations

from harness.drill.analysis import (
    Attempt,
    Delivery,
    DrillLimits,
    SentMessage,
    Switch,
    analyse,
    capture_deliveries,
    log_deliveries,
)
from harness.drill.traffic import id_pattern

T0 = 1_770_000_000.0
PRIMARY, BACKUP = "10.0.0.1:2575", "10.0.0.2:2575"


def sent(seq: int, *attempts: tuple[float, float, str], patients: int = 2) -> SentMessage:
    m = SentMessage(seq, f"DRTEST0001{seq:06d}", seq % patients, seq // patients)
    m.attempts = [Attempt(T0 + a, T0 + b, result) for a, b, result in attempts]
    return m


def logged(*seqs: int, source: str = "primary.log") -> list[Delivery]:
    return [
        Delivery(f"DRTEST0001{s:06d}", source, (0 if source == "primary.log" else 1, i))
        for i, s in enumerate(seqs)
    ]


def test_a_seamless_switch_has_no_outage_and_a_recovery_time():
    messages = [sent(0, (0.0, 0.01, "ack")), sent(1, (1.0, 1.01, "ack")), sent(2, (2.0, 2.02, "ack"))]
    result = analyse(
        messages,
        Switch("kill 1", at=T0 + 1.5),
        logged(0, 1) + logged(2, source="backup.log"),
        evidence="logs",
        upstreams=[PRIMARY, BACKUP],
    )
    assert result["verdict"] == "PASS" and result["outage"] is None and result["outages"] == []
    assert result["recovery_s"] == 0.52 and result["lost"] == 0 and result["duplicated"] == 0


def test_the_message_in_flight_when_the_primary_died_is_resent_delivered_twice_and_not_lost():
    messages = [
        sent(0, (0.0, 0.1, "ack")),
        sent(1, (1.0, 1.3, "closed"), (1.8, 1.9, "ack")),  # the primary had it when it died
        sent(2, (2.0, 2.1, "ack")),
    ]
    deliveries = logged(0, 1) + logged(1, 2, source="backup.log")
    result = analyse(
        messages, Switch("kill -9 1", at=T0 + 1.2), deliveries, evidence="logs", upstreams=[PRIMARY, BACKUP]
    )
    assert result["verdict"] == "PASS" and result["lost"] == 0
    assert result["duplicated"] == 1 and result["duplicates"][0]["sources"] == ["primary.log", "backup.log"]
    assert result["outage"]["seconds"] == 0.6 and result["outage"]["results"] == {
        "closed": 1
    }  # seen 1.3 -> 1.9
    assert result["recovery_s"] == 0.7  # the switch at 1.2, the first message sent after it acked at 1.9
    assert result["retried"] == 1 and result["failed_attempt_count"] == 1


def test_nothing_acknowledged_and_nothing_delivered_is_lost():
    messages = [sent(0, (0.0, 0.1, "ack")), sent(1, (1.0, 1.1, "refused"), (1.5, 1.6, "refused"))]
    result = analyse(messages, Switch("kill 1", at=T0 + 0.5), logged(0), evidence="logs")
    assert result["verdict"] == "FAIL" and result["lost"] == 1 and result["lost_ids"] == ["DRTEST0001000001"]
    assert any("lost" in r for r in result["reasons"])
    assert any("did not recover" in r for r in result["reasons"])
    assert result["outage"]["seconds"] is None and any("had not ended" in r for r in result["reasons"])


def test_a_timeout_counts_from_the_sending_of_its_message():
    messages = [sent(0, (0.0, 0.1, "ack")), sent(1, (1.0, 6.0, "timeout"), (6.2, 6.3, "ack"))]
    result = analyse(messages, Switch(), logged(0, 1), evidence="logs")
    assert result["outage"]["seconds"] == 5.3 and result["outage"]["results"] == {"timeout": 1}


def test_messages_never_sent_are_not_counted_as_lost():
    messages = [sent(0, (0.0, 0.1, "refused"), (0.5, 0.6, "refused")), sent(1)]
    result = analyse(messages, Switch(), [], evidence="none")
    assert (result["sent"], result["not_sent"], result["lost"]) == (1, 1, 1)
    assert any("not sent" in n for n in result["notes"])


def test_delivered_but_never_acknowledged_is_not_lost_but_said():
    messages = [sent(0, (0.0, 0.1, "ack")), sent(1, (1.0, 6.0, "timeout")), sent(2, (6.5, 6.6, "ack"))]
    result = analyse(messages, Switch(), logged(0, 1, 2), evidence="logs")
    assert (
        result["lost"] == 0
        and result["unacknowledged"] == 1
        and result["unconfirmed_ids"] == ["DRTEST0001000001"]
    )
    assert any("never acknowledged" in n for n in result["notes"])


def test_a_patients_message_delivered_after_a_later_one_is_reordered():
    messages = [sent(s, (s, s + 0.1, "ack")) for s in range(4)]  # patient 0: seq 0, 2; patient 1: seq 1, 3
    result = analyse(messages, Switch(), logged(0, 1, 3, 2), evidence="logs")
    assert result["reordered"] == 0  # 3 and 2 are different patients
    result = analyse(messages, Switch(), logged(2, 1, 0, 3), evidence="logs")
    assert result["reordered"] == 1 and result["reorders"][0] == {
        "control_id": "DRTEST0001000000",
        "patient": 0,
        "patient_seq": 0,
        "after": "DRTEST0001000002",
    }
    assert result["verdict"] == "FAIL"


def test_limits_on_the_outage_and_on_duplicates():
    messages = [sent(0, (0.0, 0.1, "closed"), (2.0, 2.1, "ack"))]
    limits = DrillLimits(max_outage_s=1.0, max_duplicates=0)
    result = analyse(
        messages, Switch(), logged(0) + logged(0, source="backup.log"), evidence="logs", limits=limits
    )
    assert result["verdict"] == "FAIL"
    assert "outage 2.0 s > maximum 1 s" in result["reasons"]  # the close seen at 0.1, the ACK at 2.1
    assert any("delivered more than once > maximum 0" in r for r in result["reasons"])


def test_the_capture_shows_which_upstream_took_over_and_fails_a_drill_that_never_used_the_backup():
    messages = [sent(0, (0.0, 0.1, "ack")), sent(1, (2.0, 2.1, "ack"))]
    rows = [
        ("DRTEST0001000000", T0, PRIMARY, "ok"),
        ("DRTEST0001000001", T0 + 2.0, BACKUP, "ok"),
        ("DRTEST0001000001", T0 + 1.0, PRIMARY, "upstream_down"),
        ("OTHER", T0, PRIMARY, "ok"),
    ]
    ids = {m.control_id for m in messages}
    captured = capture_deliveries(rows, ids)
    result = analyse(
        messages,
        Switch("x", at=T0 + 1.0),
        captured,
        evidence="capture",
        upstreams=[PRIMARY, BACKUP],
        captured=captured,
    )
    assert result["served_by"] == [
        {"upstream": PRIMARY, "role": "primary", "before_switch": 1, "after_switch": 0},
        {"upstream": BACKUP, "role": "backup", "before_switch": 0, "after_switch": 1},
    ]
    assert result["backup_took_over"] is True and result["verdict"] == "PASS"
    only_primary = capture_deliveries(
        [("DRTEST0001000000", T0, PRIMARY, "ok"), ("DRTEST0001000001", T0 + 2, PRIMARY, "ok")], ids
    )
    result = analyse(
        messages,
        Switch("x", at=T0 + 1.0),
        only_primary,
        evidence="capture",
        upstreams=[PRIMARY, BACKUP],
        captured=only_primary,
    )
    assert result["verdict"] == "FAIL" and any("backup list was not used" in r for r in result["reasons"])


def test_log_lines_are_deliveries_in_file_order():
    ids = {"DRTEST0001000000", "DRTEST0001000001"}
    files = [
        (
            "primary.log",
            ["listening on 127.0.0.1:1", "#1 control_id=DRTEST0001000000 type=ADT^A08 answer=AA"],
        ),
        ("backup.log", ["#1 control_id=DRTEST0001000001 type=ADT^A08", "#2 control_id=DRTEST0001000000"]),
    ]
    found = log_deliveries(files, id_pattern("DRTEST0001"), ids)
    assert [(d.control_id, d.source, d.order) for d in found] == [
        ("DRTEST0001000000", "primary.log", (0, 1)),
        ("DRTEST0001000001", "backup.log", (1, 0)),
        ("DRTEST0001000000", "backup.log", (1, 1)),
    ]


def test_an_answer_from_the_old_primary_while_the_switch_command_ran_is_no_recovery():
    messages = [sent(0, (1.001, 1.002, "ack")), sent(1, (1.2, 1.3, "refused"))]
    result = analyse(messages, Switch("kill -9 1", at=T0 + 1.0, ended=T0 + 1.01), logged(0), evidence="logs")
    assert result["recovery_s"] is None and any("did not recover" in r for r in result["reasons"])
