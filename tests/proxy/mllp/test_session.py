"""The proxy's per-connection core, driven without sockets: events in, actions out."""

from __future__ import annotations

import pytest

from harness.hl7v2.meta import extract
from harness.proxy.mllp.session import (
    CancelTimer,
    Capture,
    CloseSender,
    CloseUpstream,
    Connect,
    MLLPSession,
    PauseSender,
    ReplaceUpstream,
    SessionSettings,
    StartTimer,
    ToSender,
    ToUpstream,
    frame,
)
from tests.messages import ack, adt


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Driver:
    """Runs a session and keeps what it asked for, split by kind."""

    def __init__(self, faults=None, **settings) -> None:
        self.clock = Clock()
        self.session = MLLPSession(
            SessionSettings(channel="adt", **settings),
            client_addr="127.0.0.1:40000",
            faults=faults,
            clock=self.clock,
        )
        self.log: list = []

    def run(self, method: str, *args) -> list:
        actions = getattr(self.session, method)(*args)
        self.log.extend(actions)
        return actions

    def send(self, *messages: bytes) -> list:
        return self.run("sender_data", b"".join(frame(m) for m in messages))

    def connect(self) -> list:
        return self.run("upstream_connected", "127.0.0.1:12575")

    def reply(self, *payloads: bytes) -> list:
        return self.run("upstream_data", b"".join(frame(p) for p in payloads))


def of(actions: list, kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def captures(actions: list) -> list:
    return [a.exchange for a in of(actions, Capture)]


def to_sender(actions: list) -> list[bytes]:
    """What the sender would get, in order, once each capture allowed it."""
    out: list[bytes] = []
    for a in actions:
        for b in a.then if isinstance(a, Capture) else [a]:
            if isinstance(b, ToSender):
                out.append(b.data)
    return out


def closes(actions: list) -> list:
    found = []
    for a in actions:
        found += [b for b in (a.then if isinstance(a, Capture) else [a]) if isinstance(b, CloseSender)]
    return found


def test_one_message_is_forwarded_byte_for_byte_and_its_ack_relayed():
    d = Driver()
    msg = adt("MSG1")
    assert of(d.send(msg), Connect) == [Connect()]
    forwarded = d.connect()
    assert of(forwarded, ToUpstream) == [ToUpstream(b"\x0b" + msg + b"\x1c\r")]
    assert StartTimer(("ack", 1), 30.0) in forwarded
    d.clock.now += 0.004
    reply = ack(msg)
    out = d.reply(reply)
    assert CancelTimer(("ack", 1)) in out
    (ex,) = captures(out)
    assert to_sender(out) == [frame(reply)]
    assert (ex.outcome, ex.ack_code, ex.control_id, ex.message_type) == ("ok", "AA", "MSG1", "ADT^A01")
    assert ex.request == msg and ex.response == reply
    assert ex.client_addr == "127.0.0.1:40000" and ex.upstream_addr == "127.0.0.1:12575"
    assert ex.latency_ms == pytest.approx(4.0, abs=0.01)
    assert ex.charset == "utf-8" and ex.meta["version"] == "2.5"


def test_input_in_one_byte_chunks_still_forms_the_message():
    d = Driver()
    d.connect()
    data = frame(adt("MSG1"))
    for i in range(len(data)):
        d.run("sender_data", data[i : i + 1])
    assert of(d.log, ToUpstream) == [ToUpstream(data)]


def test_pipelined_messages_wait_their_turn_and_replies_keep_order():
    d = Driver()
    d.connect()
    msgs = [adt(f"M{i}") for i in range(3)]
    out = d.send(*msgs)
    assert of(out, ToUpstream) == [ToUpstream(frame(msgs[0]))]
    out = d.reply(ack(msgs[0]))
    assert of(out, ToUpstream) == [ToUpstream(frame(msgs[1]))]
    d.reply(ack(msgs[1]))
    d.reply(ack(msgs[2]))
    assert [ex.control_id for ex in captures(d.log)] == ["M0", "M1", "M2"]
    assert to_sender(d.log) == [frame(ack(m)) for m in msgs]


def test_with_room_in_flight_replies_are_matched_by_msa2_not_by_order():
    d = Driver(max_in_flight=3)
    d.connect()
    msgs = [adt(f"M{i}") for i in range(3)]
    assert len(of(d.send(*msgs), ToUpstream)) == 3
    out = d.reply(ack(msgs[2]), ack(msgs[0], "AE"), ack(msgs[1]))
    got = [(ex.control_id, ex.ack_code, ex.outcome) for ex in captures(out)]
    assert got == [("M2", "AA", "ok"), ("M0", "AE", "nak"), ("M1", "AA", "ok")]
    assert [extract(f[1:-2]).ack_control_id for f in to_sender(out)] == ["M2", "M0", "M1"]


def test_a_stray_reply_is_captured_as_late_and_never_relayed_as_the_current_ack():
    d = Driver()
    d.connect()
    msg = adt("CUR1")
    d.send(msg)
    stray = ack(adt("OLD9"))
    out = d.reply(stray)
    (ex,) = captures(out)
    assert ex.outcome == "late_ack" and ex.control_id == "OLD9" and to_sender(out) == []
    assert "matches no outstanding request" in ex.notes[-1]
    out = d.reply(ack(msg))
    assert to_sender(out) == [frame(ack(msg))]


def test_timeout_closes_by_default_and_the_late_reply_is_captured_not_relayed():
    d = Driver(ack_timeout_s=5)
    d.connect()
    msg = adt("SLOW1")
    d.send(msg)
    d.clock.now += 5
    out = d.run("timer", ("ack", 1))
    (ex,) = captures(out)
    assert ex.outcome == "timeout" and ex.response is None and "within 5 s" in ex.error
    assert closes(out) == [CloseSender()] and to_sender(out) == []
    d.clock.now += 2
    out = d.reply(ack(msg))
    (late,) = captures(out)
    assert late.outcome == "late_ack" and late.request == msg and late.control_id == "SLOW1"
    assert "2000 ms after the 5 s ACK timeout" in late.notes[-1]
    assert to_sender(out) == []


def test_timeout_with_nak_answers_ar_and_the_connection_goes_on():
    d = Driver(ack_timeout_s=5, on_ack_timeout="nak")
    d.connect()
    first, second = adt("T1"), adt("T2")
    d.send(first, second)
    out = d.run("timer", ("ack", 1))
    (nak,) = to_sender(out)
    meta = extract(nak[1:-2])
    assert (meta.ack_code, meta.ack_control_id) == ("AR", "T1")
    assert b"upstream did not answer within 5 s" in nak
    assert of(out, ToUpstream) == [ToUpstream(frame(second))]  # the slot is free again
    out = d.reply(ack(first), ack(second))
    assert [ex.outcome for ex in captures(out)] == ["late_ack", "ok"]
    assert to_sender(out) == [frame(ack(second))]


def test_wait_policy_sends_nothing_on_timeout():
    d = Driver(ack_timeout_s=1, on_ack_timeout="wait")
    d.connect()
    d.send(adt("W1"))
    out = d.run("timer", ("ack", 1))
    assert to_sender(out) == [] and closes(out) == []
    assert captures(out)[0].outcome == "timeout"


def test_upstream_that_closes_after_each_reply_gets_a_new_connection_per_message():
    d = Driver()
    d.connect()
    one, two = adt("A1"), adt("A2")
    d.send(one)
    d.reply(ack(one))
    assert of(d.run("upstream_closed", "peer closed"), Connect) == []
    assert of(d.send(two), Connect) == [Connect()]
    assert of(d.connect(), ToUpstream) == [ToUpstream(frame(two))]


def test_with_resend_on_a_message_lost_on_a_stale_reused_connection_is_resent_once():
    d = Driver(resend_on_stale_connection=True)
    d.connect()
    one, two = adt("A1"), adt("A2")
    d.send(one)
    d.reply(ack(one))
    d.send(two)  # written on the reused connection, which the peer is closing
    out = d.run("upstream_closed", "peer closed")
    assert captures(out) == [] and of(out, Connect) == [Connect()]
    assert of(d.connect(), ToUpstream) == [ToUpstream(frame(two))]
    out = d.reply(ack(two))
    (ex,) = captures(out)
    assert ex.outcome == "ok" and "resent on a new one" in ex.notes[0] and "twice" in ex.notes[0]
    # a fresh connection that closes without answering is not retried: that is the upstream failing
    three = adt("A3")
    d.run("upstream_closed", "peer closed")
    d.send(three)
    d.connect()
    out = d.run("upstream_closed", "reset by peer")
    (ex,) = captures(out)
    assert ex.outcome == "upstream_down" and "before answering" in ex.error


def test_by_default_a_message_lost_on_a_stale_connection_is_never_sent_twice():
    d = Driver()
    d.connect()
    one, two = adt("A1"), adt("A2")
    d.send(one)
    d.reply(ack(one))
    d.send(two)
    out = d.run("upstream_closed", "peer closed")
    (ex,) = captures(out)
    assert ex.outcome == "upstream_down" and closes(out) == [CloseSender()]  # the sender resends, if it will
    assert of(out, Connect) == []


def test_an_engine_closing_idle_connections_later_is_not_taken_for_one_closing_after_each_reply():
    d = Driver()
    d.connect()
    d.send(adt("A1"))
    d.reply(ack(adt("A1")))
    d.clock.now += 60  # the engine's idle timeout, not a close after the reply
    d.run("upstream_closed", "peer closed")
    assert not d.session.fresh_per_message


def test_an_upstream_that_closes_after_each_reply_gets_a_new_connection_for_every_message():
    d = Driver()
    d.connect()
    one, two, three = adt("A1"), adt("A2"), adt("A3")
    d.send(one)
    d.reply(ack(one))
    d.run("upstream_closed", "peer closed")  # answered, then closed at once: learnt
    assert d.session.fresh_per_message
    assert of(d.send(two), Connect) == [Connect()]
    d.connect()
    d.reply(ack(two))
    out = d.send(three)  # the old connection is not reused, even before the peer's close arrives
    assert of(out, ReplaceUpstream) == [ReplaceUpstream()] and of(out, ToUpstream) == []
    assert of(d.connect(), ToUpstream) == [ToUpstream(frame(three))]


@pytest.mark.parametrize("enhanced", [False, True])
def test_upstream_down_with_nak_answers_a_reject_never_an_accept(enhanced):
    d = Driver(on_upstream_down="nak")
    msg = adt("D1", msh15="AL" if enhanced else "")
    d.send(msg)
    out = d.run("upstream_connect_failed", "127.0.0.1:12575: connection refused")
    (ex,) = captures(out)
    assert ex.outcome == "upstream_down" and "connection refused" in ex.error
    (nak,) = to_sender(out)
    meta = extract(nak[1:-2])
    assert meta.ack_code == ("CR" if enhanced else "AR") and meta.ack_control_id == "D1"
    assert b"upstream unavailable" in nak
    assert closes(out) == []
    # the next message tries the upstream again by itself
    assert of(d.send(adt("D2")), Connect) == [Connect()]


def test_upstream_down_with_close_closes_the_sender_after_capturing():
    d = Driver()
    d.send(adt("D1"), adt("D2"))
    out = d.run("upstream_connect_failed", "refused")
    assert [ex.control_id for ex in captures(out)] == ["D1", "D2"]
    assert all(ex.outcome == "upstream_down" for ex in captures(out))
    assert closes(out) == [CloseSender()] and to_sender(out) == []


def test_malformed_frame_is_forwarded_and_captured_as_malformed():
    d = Driver()
    d.connect()
    junk = b"this is not HL7"
    out = d.send(junk)
    assert of(out, ToUpstream) == [ToUpstream(frame(junk))]
    out = d.reply(b"MSH|^~\\&|HC||||20260101||ACK|X1|P|2.5\rMSA|AR|\r")
    (ex,) = captures(out)
    assert ex.outcome == "malformed" and ex.request == junk and ex.ack_code == "AR"
    assert "no MSH segment" in ex.notes[0]
    assert len(to_sender(out)) == 1


def test_malformed_frame_refused_gets_an_ar_and_the_connection_keeps_working():
    d = Driver(on_malformed="refuse")
    d.connect()
    out = d.send(b"garbage\rmore")
    (ex,) = captures(out)
    assert ex.outcome == "malformed" and of(out, ToUpstream) == []
    (nak,) = to_sender(out)
    assert extract(nak[1:-2]).ack_code == "AR"
    msg = adt("OK1")
    assert of(d.send(msg), ToUpstream) == [ToUpstream(frame(msg))]


def test_bytes_outside_frames_are_captured_not_forwarded_and_stray_newlines_ignored():
    d = Driver()
    d.connect()
    msg = adt("G1")
    out = d.run("sender_data", b"\r\n" + b"#garbage#" + frame(msg) + b"\n")
    (ex,) = captures(out)
    assert ex.outcome == "malformed" and ex.request.strip() == b"#garbage#"
    assert "outside any frame" in ex.error
    assert of(out, ToUpstream) == [ToUpstream(frame(msg))]


def test_a_frame_over_the_limit_gets_an_ar_and_is_not_forwarded():
    d = Driver(max_frame_bytes=256)
    d.connect()
    big = adt("BIG") + b"NTE|" + b"x" * 1000 + b"\r"
    out = d.send(big)
    (ex,) = captures(out)
    assert ex.outcome == "malformed" and of(out, ToUpstream) == [] and ex.request == big[:256]
    assert extract(to_sender(out)[0][1:-2]).ack_code == "AR"


def test_framing_slips_are_noted_and_the_message_forwarded_as_a_proper_frame():
    d = Driver()
    d.connect()
    msg = adt("F1")
    out = d.run("sender_data", msg + b"\x1c\r")  # no start block
    assert of(out, ToUpstream) == [ToUpstream(frame(msg))]
    (ex,) = captures(d.reply(ack(msg)))
    assert "no start block" in ex.notes[0]


def test_when_the_sender_leaves_its_queued_messages_still_go_and_replies_are_captured():
    d = Driver()
    d.connect()
    one, two = adt("L1"), adt("L2")
    d.send(one, two)
    d.run("sender_closed")
    out = d.reply(ack(one))
    assert of(out, ToUpstream) == [ToUpstream(frame(two))]
    assert to_sender(out) == []
    assert "not relayed" in captures(out)[0].notes[-1]
    out = d.reply(ack(two))
    assert of(out, CloseUpstream) == [CloseUpstream()]
    assert d.session.finished or d.run("upstream_closed") is not None


def test_after_the_proxy_closed_the_sender_queued_messages_are_not_forwarded():
    d = Driver(ack_timeout_s=1)
    d.connect()
    d.send(adt("C1"), adt("C2"))
    out = d.run("timer", ("ack", 1))
    assert of(out, ToUpstream) == []
    out = d.run("sender_closed")
    (ex,) = captures(out)
    assert ex.control_id == "C2" and ex.outcome == "error" and "not forwarded" in ex.error


def test_reading_pauses_when_too_many_requests_queue_up():
    d = Driver()
    out = d.send(*[adt(f"Q{i}") for i in range(1000)])
    assert of(out, PauseSender) == [PauseSender()]


@pytest.mark.parametrize(
    "reply",
    [
        b"MSH|^~\\&|HC||HIS||20260101||ACK^A01^ACK|X1|P|2.5\rMSA|AA|C1\r",
        b"MSH|^~\\&|HC||HIS||20260101||ACK|X1|P|2.5\rMSA|AE|C1^X|text\rERR|||207\r",
        b"MSH|^~\\&|HC||HIS||20260101||ACK|X1|P|2.5\rMSA|AA|C\\T\\1\r",
        b"MSH|^~\\&|HC||HIS||20260101||ACK|X1|P|2.5\rMSA|AA|C1~C2\r",
        b"MSH#^~\\&#HC##HIS##20260101##ACK#X1#P#2.5\rMSA#CA#C7\r",
        b"MSH|^~\\&|HC||HIS||20260101||ACK|X1|P|2.5|||||CHN|GBK\rMSA|AA|\xd5\xc5\r",
        b"MSH|^~\\&|HC||HIS||20260101||ACK|X1|P|2.5\rMSA|AR|\r",
        b"MSH|^~\\&|HC||HIS||20260101||ACK|X1|P|2.5\r",
        b"not an ack",
    ],
)
def test_the_lean_reply_reader_agrees_with_extract(reply):
    from harness.proxy.mllp.session import reply_meta

    lean, full = reply_meta(reply), extract(reply)
    assert (lean.ack_code, lean.ack_control_id) == (full.ack_code, full.ack_control_id)


def test_after_a_timeout_close_the_upstream_lingers_for_late_acks_then_closes():
    d = Driver(ack_timeout_s=2)
    d.connect()
    one = adt("LG1")
    d.send(one)
    d.run("timer", ("ack", 1))
    d.run("sender_closed")
    assert StartTimer(("linger",), 2) in d.log and of(d.log, CloseUpstream) == []
    d.clock.now += 1
    (late,) = captures(d.reply(ack(one)))
    assert late.outcome == "late_ack"
    out = d.run("timer", ("linger",))
    assert of(out, CloseUpstream) == [CloseUpstream()]
    assert d.run("upstream_closed") == [] and d.session.finished


def test_a_stale_connection_is_not_retried_once_the_proxy_has_closed_the_sender():
    d = Driver(ack_timeout_s=2, max_in_flight=2)
    d.connect()
    one, two, three = adt("S1"), adt("S2"), adt("S3")
    d.send(one)
    d.reply(ack(one))
    d.send(two, three)  # both on the reused connection
    d.run("timer", ("ack", 2))  # S2 times out: the proxy closes the sender
    d.run("sender_closed")
    out = d.run("upstream_closed", "peer closed")
    (ex,) = captures(out)
    assert ex.control_id == "S3" and ex.outcome == "upstream_down"
    assert of(out, Connect) == [] and d.session.finished


def test_a_last_frame_ended_by_0x1c_alone_before_a_close_is_still_a_message_and_a_reply():
    d = Driver()
    d.connect()
    msg = adt("E1")
    out = d.run("sender_data", b"\x0b" + msg + b"\x1c")  # no CR yet: the frame may still end properly
    assert of(out, ToUpstream) == []
    out = d.run("sender_closed")  # the sender left: the frame was complete all the same
    assert of(out, ToUpstream) == [ToUpstream(frame(msg))]
    out = d.run("upstream_data", b"\x0b" + ack(msg) + b"\x1c")
    assert captures(out) == []
    out = d.run("upstream_closed", "peer closed")
    (ex,) = captures(out)
    assert (ex.control_id, ex.outcome, ex.response) == ("E1", "ok", ack(msg))


def test_an_unfinished_frame_times_out_unless_the_proxy_itself_stopped_reading_the_sender():
    d = Driver(frame_timeout_s=30)
    d.connect()
    started = d.run("sender_data", frame(adt("F1"))[:100])  # a frame begins and its end has not come
    assert StartTimer(("frame",), 30) in started
    d.session.sender_reads_paused = True  # back-pressure: the proxy is not reading the sender
    again = d.run("timer", ("frame",))
    assert StartTimer(("frame",), 30) in again and closes(again) == []
    d.session.sender_reads_paused = False  # reading again, and still no end block: the sender's doing
    given_up = d.run("timer", ("frame",))
    assert closes(given_up) and "frame_timeout_s" in " ".join(captures(given_up)[0].notes)


def test_a_close_right_after_a_reply_is_learnt_even_with_the_next_message_already_written_on_it():
    d = Driver()
    d.connect()
    one, two = adt("L1"), adt("L2")
    d.send(one)
    d.reply(ack(one))
    assert of(d.send(two), ToUpstream) == [ToUpstream(frame(two))]  # written before the close was seen
    out = d.run("upstream_closed", "peer closed")
    assert [ex.outcome for ex in captures(out)] == ["upstream_down"]  # at most once: not sent again
    assert d.session.fresh_per_message  # but the next messages each get a new connection
