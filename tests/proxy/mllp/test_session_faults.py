"""Fault plans carried out by the per-connection core (real rules, real engine, no sockets)."""

from __future__ import annotations

from harness.hl7v2.meta import extract
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.mllp.session import Capture, CloseSender, StartTimer, ToSender, ToUpstream, frame
from tests.messages import ack, adt
from tests.proxy.mllp.test_session import Driver, captures, closes, of, to_sender


def driver(*rules: dict, **settings) -> Driver:
    engine = FaultEngine("adt", "mllp", rules)
    d = Driver(faults=engine, **settings)
    d.connect()
    return d


def test_nak_answers_without_forwarding_and_records_the_rule():
    d = driver({"match": {"message_type": "ADT^A01"}, "action": {"type": "nak", "code": "AE", "text": "no"}})
    out = d.send(adt("N1"))
    assert of(out, ToUpstream) == []
    (ex,) = captures(out)
    (nak,) = to_sender(out)
    assert (ex.outcome, ex.ack_code) == ("fault", "AE") and ex.response == nak[1:-2]
    assert extract(nak[1:-2]).ack_control_id == "N1"
    assert ex.fault["action"] == "nak" and ex.fault["rule_id"] == "r1"
    # the next message (no longer matching) goes through normally
    msg = adt("N2", trigger="A08")
    assert of(d.send(msg), ToUpstream) == [ToUpstream(frame(msg))]


def test_drop_forwards_nothing_and_answers_nothing():
    d = driver({"match": {"first_n": 1}, "action": {"type": "drop"}})
    out = d.send(adt("D1"))
    (ex,) = captures(out)
    assert ex.outcome == "fault" and of(out, ToUpstream) == [] and to_sender(out) == []


def test_delay_holds_the_request_back_until_its_timer():
    d = driver({"action": {"type": "delay", "ms": 250}})
    msg = adt("W1")
    out = d.send(msg)
    assert of(out, ToUpstream) == [] and StartTimer(("delay", 1), 0.25) in out
    out = d.run("timer", ("delay", 1))
    assert of(out, ToUpstream) == [ToUpstream(frame(msg))]
    (ex,) = captures(d.reply(ack(msg)))
    assert ex.outcome == "ok" and ex.fault["action"] == "delay"


def test_duplicate_forwards_twice_and_the_second_reply_is_captured_not_relayed():
    d = driver({"action": {"type": "duplicate"}})
    msg = adt("DUP1")
    assert of(d.send(msg), ToUpstream) == [ToUpstream(frame(msg))] * 2
    first = d.reply(ack(msg))
    assert to_sender(first) == [frame(ack(msg))]
    second = d.reply(ack(msg))
    (copy,) = captures(second)
    assert copy.outcome == "fault" and "extra copy" in copy.notes[-1] and to_sender(second) == []


def test_close_before_forward_closes_and_forwards_nothing():
    d = driver({"action": {"type": "close"}})
    out = d.send(adt("C1"))
    assert of(out, ToUpstream) == [] and closes(out) == [CloseSender()]
    assert captures(out)[0].outcome == "fault"


def test_close_after_forward_closes_at_once_and_captures_the_reply_later():
    d = driver({"action": {"type": "close", "when": "after_forward"}})
    msg = adt("C2")
    out = d.send(msg)
    assert of(out, ToUpstream) == [ToUpstream(frame(msg))] and closes(out) == [CloseSender()]
    out = d.reply(ack(msg))
    (ex,) = captures(out)
    assert ex.response == ack(msg) and to_sender(out) == [] and ex.outcome == "fault"


def test_close_mid_frame_sends_part_of_the_reply_then_closes():
    d = driver({"action": {"type": "close", "when": "mid_frame"}})
    msg = adt("C3")
    d.send(msg)
    out = d.reply(ack(msg))
    (part,) = to_sender(out)
    assert frame(ack(msg)).startswith(part) and len(part) < len(frame(ack(msg)))
    assert closes(out) == [CloseSender()]


def test_reset_aborts_the_sender_connection():
    d = driver({"action": {"type": "reset"}})
    out = d.send(adt("R1"))
    assert closes(out) == [CloseSender(abort=True)] and of(out, ToUpstream) == []


def test_hold_reply_relays_the_real_reply_after_its_timer():
    d = driver({"action": {"type": "hold_reply", "ms": 500}})
    msg = adt("H1")
    d.send(msg)
    out = d.reply(ack(msg))
    (cap,) = of(out, Capture)
    assert cap.then == [StartTimer(("hold", 1), 0.5)] and cap.exchange.outcome == "ok"
    assert to_sender(d.run("timer", ("hold", 1))) == [frame(ack(msg))]


def test_late_ack_holds_the_reply_past_the_ack_timeout():
    d = driver({"action": {"type": "late_ack"}}, ack_timeout_s=2)
    msg = adt("LA1")
    d.send(msg)
    (cap,) = of(d.reply(ack(msg)), Capture)
    (timer,) = cap.then
    assert timer.key == ("hold", 1) and timer.seconds > 2
    assert cap.exchange.fault["action"] == "late_ack"


def test_corrupt_request_forwards_the_changed_bytes_and_response_corruption_changes_the_relay():
    d = driver({"action": {"type": "corrupt", "mode": "flip_byte", "offset": 20, "seed": 1}})
    msg = adt("X1")
    (up,) = of(d.send(msg), ToUpstream)
    assert up.data != frame(msg) and len(up.data) == len(frame(msg))
    d2 = driver({"match": {"direction": "response"}, "action": {"type": "corrupt", "mode": "truncate",
                                                               "keep_bytes": 10}})
    d2.send(msg)
    out = d2.reply(ack(msg))
    (ex,) = captures(out)
    assert to_sender(out) == [frame(ack(msg)[:10])]
    assert ex.response == ack(msg) and ex.outcome == "fault"  # the capture keeps what the upstream said


def test_response_nak_replaces_the_upstream_accept():
    d = driver({"match": {"direction": "response"}, "action": {"type": "nak", "code": "AR"}})
    msg = adt("RN1")
    d.send(msg)
    out = d.reply(ack(msg))
    (sent,) = to_sender(out)
    assert extract(sent[1:-2]).ack_code == "AR"
    (ex,) = captures(out)
    assert ex.response == ack(msg) and ex.outcome == "fault" and ex.fault["direction"] == "response"


def test_throttle_marks_the_writes_with_a_rate():
    d = driver({"action": {"type": "throttle", "bytes_per_s": 2000, "target": "both"}})
    msg = adt("T1")
    (up,) = of(d.send(msg), ToUpstream)
    assert up.bps == 2000
    out = d.reply(ack(msg))
    sends = [a for c in of(out, Capture) for a in c.then if isinstance(a, ToSender)]
    assert [s.bps for s in sends] == [2000]
