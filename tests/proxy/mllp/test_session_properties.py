"""Properties of the per-connection core under any chunking, pipelining and upstream behaviour.

Whatever the upstream does (accept, reject, answer with a stray MSA-2, stay silent, drop the
connection) and however the sender's bytes are cut: the sender never gets an accept the upstream did
not send for that very message, every message is captured exactly once, and nothing is left pending.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.hl7v2.ack import build_ack
from harness.hl7v2.meta import extract
from harness.proxy.mllp.session import (
    Capture,
    CloseSender,
    Connect,
    MLLPSession,
    ReplaceUpstream,
    SessionSettings,
    StartTimer,
    ToSender,
    ToUpstream,
    frame,
)
from tests.messages import adt
from tests.proxy.mllp.test_session import Clock

BEHAVIOURS = ("AA", "AE", "stray", "silent", "close")


@settings(max_examples=150, deadline=None)
@given(
    count=st.integers(1, 6),
    cuts=st.lists(st.integers(1, 400), max_size=8),
    behaviours=st.lists(st.sampled_from(BEHAVIOURS), min_size=6, max_size=6),
    in_flight=st.integers(1, 3),
    down=st.sampled_from(["close", "nak"]),
    timeout=st.sampled_from(["close", "nak", "wait"]),
)
@example(  # a close right after a reply, learnt: later messages each ask for a new connection
    count=6, cuts=[], behaviours=["AA", "AA", "AA", "close", "AA", "AA"], in_flight=1, down="nak",
    timeout="close",
)
def test_no_fake_accept_and_every_message_captured_once(count, cuts, behaviours, in_flight, down, timeout):
    clock = Clock()
    session = MLLPSession(
        SessionSettings(
            channel="p",
            ack_timeout_s=5,
            on_upstream_down=down,
            on_ack_timeout=timeout,
            max_in_flight=in_flight,
        ),
        clock=clock,
    )
    messages = {f"P{i}": adt(f"P{i}") for i in range(count)}
    stream = b"".join(frame(m) for m in messages.values())
    upstream_sent: set[bytes] = set()
    to_sender: list[bytes] = []
    captured: list = []
    timers: dict[tuple, float] = {}
    pending: list = []
    forwarded = 0
    sender_closed = False

    def run(actions: list) -> None:
        for action in actions:
            pending.append(action)

    def drain() -> None:
        nonlocal forwarded, sender_closed
        while pending:
            action = pending.pop(0)
            items = [action] if not isinstance(action, Capture) else action.then
            if isinstance(action, Capture):
                captured.append(action.exchange)
            for item in items:
                if isinstance(item, ToSender) and not sender_closed:
                    to_sender.append(item.data)
                elif isinstance(item, CloseSender) and not sender_closed:
                    sender_closed = True
                    run(session.sender_closed())
                elif isinstance(item, StartTimer):
                    timers[item.key] = clock.now + item.seconds
                elif isinstance(item, (Connect, ReplaceUpstream)):  # a new connection, the old one dropped
                    run(session.upstream_connected("127.0.0.1:1"))
                elif isinstance(item, ToUpstream):
                    payload = item.data[1:-2]
                    behaviour = behaviours[forwarded % len(behaviours)]
                    forwarded += 1
                    if behaviour in ("AA", "AE"):
                        reply = build_ack(payload, behaviour)
                        upstream_sent.add(frame(reply))
                        run(session.upstream_data(frame(reply)))
                    elif behaviour == "stray":
                        reply = build_ack(adt("ELSEWHERE"), "AA")
                        upstream_sent.add(frame(reply))
                        run(session.upstream_data(frame(reply)))
                    elif behaviour == "close":
                        run(session.upstream_closed("peer closed"))

    positions = sorted({c for c in cuts if c < len(stream)})
    start = 0
    for end in [*positions, len(stream)]:
        if not sender_closed:
            run(session.sender_data(stream[start:end]))
            drain()
        start = end
    for _ in range(50):  # let every timer run out
        if not timers:
            break
        key = min(timers, key=timers.get)
        clock.now = max(clock.now, timers.pop(key))
        run(session.timer(key))
        drain()

    for data in to_sender:
        meta = extract(data[1:-2])
        if meta.ack_code in ("AA", "CA"):
            assert data in upstream_sent, "an accept the upstream never sent"
            assert meta.ack_control_id in messages
        else:
            assert meta.ack_code in ("AE", "AR", "CR")
    per_message = [ex for ex in captured if ex.outcome != "late_ack" and ex.control_id in messages]
    ids = [ex.control_id for ex in per_message]
    assert len(ids) == len(set(ids)), ids
    if not sender_closed:
        assert set(ids) == set(messages)
    accepted = [extract(d[1:-2]).ack_control_id for d in to_sender if extract(d[1:-2]).ack_code == "AA"]
    assert len(accepted) == len(set(accepted)), "one message accepted twice"
