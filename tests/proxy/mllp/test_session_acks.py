"""Acknowledgement modes through the proxy's core: enhanced mode, no-ACK messages, NAKs without MSA-2,
codes that are not accepts, reused control ids. Sans-IO: events in, actions out."""

from __future__ import annotations

import pytest

from harness.hl7v2.meta import extract
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.mllp.session import CancelTimer, CloseSender, StartTimer, ToUpstream, frame
from tests.messages import ack, adt, without_msa2
from tests.proxy.mllp.test_session import Driver, captures, closes, of, to_sender


def capture_actions(actions: list) -> list:
    from harness.proxy.mllp.session import Capture

    return of(actions, Capture)


def codes(frames: list[bytes]) -> list[tuple[str | None, str | None]]:
    out = []
    for data in frames:
        meta = extract(data[1:-2])
        out.append((meta.ack_code, meta.ack_control_id))
    return out


def test_enhanced_mode_relays_the_commit_and_the_application_ack_on_one_exchange():
    d = Driver(ack_timeout_s=5, app_ack_timeout_s=60)
    d.connect()
    msg = adt("E1", msh15="AL", msh16="AL")
    d.send(msg)
    d.clock.now += 0.002
    ca, ae = ack(msg, "CA"), ack(msg, "AE", text="rejected by the application")
    first = d.reply(ca)
    (pending,) = capture_actions(first)
    assert to_sender(first) == [frame(ca)]
    assert pending.exchange.outcome == "pending" and pending.replaces is None
    assert (pending.exchange.accept_ack_code, pending.exchange.accept_response) == ("CA", ca)
    assert pending.exchange.response is None
    assert StartTimer(("ack", 1), 60) in first  # now the application ACK's own timeout
    d.clock.now += 0.010
    second = d.reply(ae)
    (final,) = capture_actions(second)
    assert to_sender(second) == [frame(ae)]
    assert final.replaces is pending.exchange  # the same exchange, completed in place
    ex = final.exchange
    assert (ex.outcome, ex.accept_ack_code, ex.ack_code) == ("nak", "CA", "AE")
    assert (ex.accept_response, ex.response, ex.request) == (ca, ae, msg)
    assert ex.latency_ms == pytest.approx(12.0, abs=0.01)
    assert ex.meta["accept_latency_ms"] == pytest.approx(2.0, abs=0.01)
    assert CancelTimer(("ack", 1)) in second


def test_after_the_commit_ack_the_next_message_goes_without_waiting_for_the_application_ack():
    d = Driver()
    d.connect()
    one, two = adt("E1", msh15="AL", msh16="AL"), adt("E2", msh15="AL", msh16="AL")
    assert of(d.send(one, two), ToUpstream) == [ToUpstream(frame(one))]
    assert of(d.reply(ack(one, "CA")), ToUpstream) == [ToUpstream(frame(two))]
    out = d.reply(ack(two, "CA"), ack(one, "AA"), ack(two, "AA"))
    assert codes(to_sender(out)) == [("CA", "E2"), ("AA", "E1"), ("AA", "E2")]
    finals = [c.exchange for c in capture_actions(d.log) if c.exchange.outcome != "pending"]
    assert [(ex.control_id, ex.accept_ack_code, ex.ack_code, ex.outcome) for ex in finals] == [
        ("E1", "CA", "AA", "ok"), ("E2", "CA", "AA", "ok"),
    ]


@pytest.mark.parametrize(("policy", "sender_gets"), [("nak", "AR"), ("close", None), ("wait", None)])
def test_a_missing_application_ack_is_a_timeout_with_the_commit_recorded(policy, sender_gets):
    d = Driver(ack_timeout_s=5, app_ack_timeout_s=20, on_ack_timeout=policy)
    d.connect()
    msg = adt("E1", msh15="AL", msh16="AL")
    d.send(msg)
    d.reply(ack(msg, "CA"))
    d.clock.now += 20
    out = d.run("timer", ("ack", 1))
    (cap,) = capture_actions(out)
    ex = cap.exchange
    assert (ex.outcome, ex.accept_ack_code, ex.response) == ("timeout", "CA", None)
    assert "application ACK after the CA within 20 s" in ex.error
    assert cap.replaces is not None
    if sender_gets:
        (nak,) = to_sender(out)
        assert codes([nak]) == [(sender_gets, "E1")] and b"application ACK" in nak
    else:
        assert to_sender(out) == []
    assert (closes(out) == [CloseSender()]) == (policy == "close")


def test_no_ack_messages_are_forwarded_and_complete_at_once_without_holding_the_next():
    d = Driver()
    d.connect()
    quiet = [adt(f"N{i}", msh15="NE", msh16="NE") for i in range(3)]
    loud = adt("L1")
    out = d.send(*quiet, loud)
    assert of(out, ToUpstream) == [ToUpstream(frame(m)) for m in [*quiet, loud]]
    assert [ex.outcome for ex in captures(out)] == ["no_ack_expected"] * 3
    assert not [a for a in out if isinstance(a, StartTimer) and a.key != ("ack", 4)]
    out = d.reply(ack(loud))
    assert [(ex.control_id, ex.outcome) for ex in captures(out)] == [("L1", "ok")]
    assert to_sender(out) == [frame(ack(loud))]


def test_a_reply_to_a_no_ack_message_is_captured_late_and_not_relayed():
    d = Driver()
    d.connect()
    quiet = adt("N1", msh15="NE", msh16="NE")
    d.send(quiet)
    out = d.reply(ack(quiet))
    (ex,) = captures(out)
    assert ex.outcome == "late_ack" and ex.request == quiet and to_sender(out) == []
    assert "asked for no ACK" in ex.notes[-1]


def test_no_ack_and_acknowledged_messages_interleaved_count_right():
    d = Driver(max_in_flight=1)
    d.connect()
    msgs = []
    for i in range(6):
        msgs.append(adt(f"M{i}", msh15="NE", msh16="NE") if i % 2 else adt(f"M{i}", msh15="AL", msh16="AL"))
    d.send(*msgs)
    for m in msgs[::2]:
        d.reply(ack(m, "CA"), ack(m, "AA"))
    finals = [c.exchange for c in capture_actions(d.log) if c.exchange.outcome != "pending"]
    by_outcome = sorted((ex.control_id, ex.outcome) for ex in finals)
    assert by_outcome == [
        ("M0", "ok"), ("M1", "no_ack_expected"), ("M2", "ok"),
        ("M3", "no_ack_expected"), ("M4", "ok"), ("M5", "no_ack_expected"),
    ]
    assert len(to_sender(d.log)) == 6  # CA and AA for each acknowledged message


def test_an_ar_without_msa2_is_the_reply_of_the_only_outstanding_request():
    d = Driver()
    d.connect()
    msg = adt("X1")
    d.send(msg)
    nak = without_msa2(ack(msg, "AR", text="cannot parse"))
    out = d.reply(nak)
    (ex,) = captures(out)
    assert (ex.outcome, ex.ack_code, ex.control_id, ex.response) == ("nak", "AR", "X1", nak)
    assert to_sender(out) == [frame(nak)]
    assert "no MSA-2" in ex.notes[-1]


@pytest.mark.parametrize("policy", ["close", "nak", "wait"])
def test_a_reply_without_msa2_with_several_outstanding_is_never_relayed(policy):
    d = Driver(max_in_flight=2, on_ack_timeout=policy)
    d.connect()
    one, two = adt("X1"), adt("X2")
    d.send(one, two)
    out = d.reply(without_msa2(ack(one, "AR")))
    stray, *owners = captures(out)
    assert stray.outcome == "ambiguous_ack" and stray.request == b""
    assert "could own it ('X1', 'X2')" in stray.notes[-1]
    relayed = to_sender(out)
    if policy == "wait":
        assert owners == [] and relayed == []
        assert codes(to_sender(d.reply(ack(two)))) == [("AA", "X2")]
    else:
        assert [(ex.control_id, ex.outcome) for ex in owners] == [
            ("X1", "ambiguous_ack"), ("X2", "ambiguous_ack"),
        ]
        if policy == "nak":
            assert codes(relayed) == [("AR", "X1"), ("AR", "X2")]
        else:
            assert relayed == [] and closes(out) == [CloseSender()]


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (b"MSH|^~\\&|HC||||20260101||ACK|R1|P|2.5\rMSA|XX|B1\r", "XX"),
        (b"MSH|^~\\&|HC||||20260101||ACK|R1|P|2.5\rMSA||B1\r", None),
        (b"MSH|^~\\&|HC||||20260101||ACK|R1|P|2.5\r", None),
        (b"not even HL7", None),
    ],
)
def test_replies_whose_msa1_is_not_a_known_code_are_relayed_and_never_ok(reply, code):
    d = Driver()
    d.connect()
    d.send(adt("B1"))
    out = d.reply(reply)
    (ex,) = captures(out)
    assert (ex.outcome, ex.ack_code) == ("bad_ack", code)
    assert to_sender(out) == [frame(reply)]


def test_a_reused_control_id_never_gets_the_late_accept_of_the_request_that_timed_out():
    d = Driver(ack_timeout_s=5, on_ack_timeout="nak")
    d.connect()
    first, second = adt("1", pid="A"), adt("1", pid="B")  # the same MSH-10, two messages
    d.send(first)
    d.clock.now += 5
    out = d.run("timer", ("ack", 1))
    assert codes(to_sender(out)) == [("AR", "1")]
    assert of(d.send(second), ToUpstream) == [ToUpstream(frame(second))]
    late = d.reply(ack(first))  # the first message's accept, arriving while the second waits
    (ex,) = captures(late)
    assert ex.outcome == "ambiguous_ack" and to_sender(late) == []
    assert "could answer message #1, which ended unanswered, or message #2" in ex.notes[-1]
    # Either reply could be either message's: neither is relayed, and the second times out in its turn.
    own = d.reply(ack(second, "AE"))
    assert [e.outcome for e in captures(own)] == ["ambiguous_ack"] and to_sender(own) == []
    d.clock.now += 5
    out = d.run("timer", ("ack", 2))
    assert codes(to_sender(out)) == [("AR", "1")] and captures(out)[0].outcome == "timeout"


def test_a_late_reply_before_the_next_message_frees_a_reused_control_id():
    d = Driver(ack_timeout_s=5, on_ack_timeout="nak")
    d.connect()
    first, second = adt("1", pid="A"), adt("1", pid="B")
    d.send(first)
    d.run("timer", ("ack", 1))
    assert [ex.outcome for ex in captures(d.reply(ack(first)))] == ["late_ack"]  # its one reply came
    d.send(second)
    out = d.reply(ack(second))
    assert [(ex.outcome, ex.request) for ex in captures(out)] == [("ok", second)]
    assert to_sender(out) == [frame(ack(second))]


def test_several_waiting_requests_with_one_control_id_make_their_replies_ambiguous():
    d = Driver(max_in_flight=2)
    d.connect()
    one, two = adt("7", pid="A"), adt("7", pid="B")
    d.send(one, two)
    out = d.reply(ack(two))
    (ex,) = captures(out)
    assert ex.outcome == "ambiguous_ack" and to_sender(out) == []
    assert "any of messages #1, #2" in ex.notes[-1]


def test_a_reused_id_is_attributed_again_once_the_late_window_passed():
    d = Driver(ack_timeout_s=5, on_ack_timeout="wait")
    d.connect()
    first, second = adt("1", pid="A"), adt("1", pid="B")
    d.send(first)
    d.clock.now += 5
    d.run("timer", ("ack", 1))
    d.clock.now += 30  # well past the window in which the first could still be answered
    d.send(second)
    out = d.reply(ack(second))
    assert [ex.outcome for ex in captures(out)] == ["ok"] and to_sender(out) == [frame(ack(second))]


def test_error_only_acks_do_not_hold_the_next_message_and_silence_means_accepted():
    d = Driver(conditional_ack_wait_s=3)
    d.connect()
    one, two = adt("C1", msh15="ER", msh16="ER"), adt("C2", msh15="ER", msh16="ER")
    out = d.send(one, two)
    assert of(out, ToUpstream) == [ToUpstream(frame(one)), ToUpstream(frame(two))]
    assert StartTimer(("ack", 1), 3) in out
    err = ack(two, "AE")
    out = d.reply(err)
    assert to_sender(out) == [frame(err)] and captures(out)[0].outcome == "nak"
    d.clock.now += 3
    out = d.run("timer", ("ack", 1))
    (ex,) = captures(out)
    assert ex.outcome == "ok" and to_sender(out) == [] and "no error ACK came" in ex.notes[-1]


def test_success_only_silence_is_a_timeout_and_the_sender_gets_nothing():
    d = Driver(conditional_ack_wait_s=3)
    d.connect()
    d.send(adt("S1", msh15="SU", msh16="NE"))
    d.clock.now += 3
    out = d.run("timer", ("ack", 1))
    (ex,) = captures(out)
    assert ex.outcome == "timeout" and to_sender(out) == [] and closes(out) == []


def test_upstream_gone_between_commit_and_application_ack_is_upstream_down():
    d = Driver(on_upstream_down="nak")
    d.connect()
    msg = adt("E1", msh15="AL", msh16="AL")
    d.send(msg)
    d.reply(ack(msg, "CA"))
    out = d.run("upstream_closed", "peer reset")
    (cap,) = capture_actions(out)
    assert (cap.exchange.outcome, cap.exchange.accept_ack_code) == ("upstream_down", "CA")
    assert cap.replaces is not None
    assert codes(to_sender(out)) == [("AR", "E1")]  # the accept was given: what fails is the application


def test_a_response_rule_can_target_the_accept_ack_alone():
    engine = FaultEngine("adt")
    engine.add({"match": {"direction": "response", "reply": "accept"}, "action": {"type": "drop"}})
    d = Driver(faults=engine)
    d.connect()
    msg = adt("E1", msh15="AL", msh16="AL")
    d.send(msg)
    assert to_sender(d.reply(ack(msg, "CA"))) == []
    out = d.reply(ack(msg, "AA"))
    assert to_sender(out) == [frame(ack(msg, "AA"))]
    (ex,) = captures(out)
    assert ex.outcome == "fault" and ex.fault["reply"] == "accept" and ex.fault["action"] == "drop"


def test_stopping_the_proxy_captures_what_is_still_owed_a_reply():
    d = Driver()
    d.connect()
    one, two = adt("E1", msh15="AL", msh16="AL"), adt("E2")
    d.send(one, two)
    d.reply(ack(one, "CA"))  # E2 goes now; E1 waits for its application ACK
    out = d.run("shutdown")
    done = [(c.exchange.control_id, c.exchange.outcome, c.replaces is not None) for c in capture_actions(out)]
    assert done == [("E1", "error", True), ("E2", "error", False)]
    assert "before the application ACK came" in captures(out)[0].error


@pytest.mark.parametrize("policy", ["close", "nak"])
def test_a_durable_channel_whose_store_cannot_record_forwards_nothing(policy):
    healthy = [False]
    d = Driver(on_store_error=policy)
    d.session.store_ok = lambda: healthy[0]
    d.connect()
    out = d.send(adt("S1"))
    assert of(out, ToUpstream) == []
    (cap,) = capture_actions(out)
    assert cap.optional and cap.then == [] and cap.exchange.outcome == "error"
    assert "capture store cannot record" in cap.exchange.error
    if policy == "nak":
        assert codes([a.data for a in out if type(a).__name__ == "ToSender"]) == [("AR", "S1")]
        healthy[0] = True
        assert of(d.send(adt("S2")), ToUpstream) == [ToUpstream(frame(adt("S2")))]  # back to normal
    else:
        assert CloseSender() in out and not d.session.sender_open


def test_no_timeout_is_blamed_on_the_upstream_while_its_replies_are_held_for_a_sender_not_reading():
    d = Driver(ack_timeout_s=5)
    d.connect()
    d.send(adt("H1"))
    d.session.replies_held = True  # the shell stopped reading the upstream: the sender is not reading
    d.clock.now += 5
    out = d.run("timer", ("ack", 1))
    assert captures(out) == [] and StartTimer(("ack", 1), 5) in out
    d.session.replies_held = False
    d.clock.now += 5
    assert [ex.outcome for ex in captures(d.run("timer", ("ack", 1)))] == ["timeout"]
