"""The proxy's core never hands a sender an accept the upstream did not give to that very message.

Hypothesis drives one session with messages in every acknowledgement mode, control ids reused on
purpose, replies in and out of order, late, without MSA-2 or with codes that are not codes, and timers
firing in between. The test knows which message each upstream reply answered (the ground truth); the
sender only sees MSA-2, so every reply it receives must be the upstream's reply to the message the
proxy recorded it against, and no accept may reach it for a message it was already told had failed.

The upstream here is as disorderly as engines get but sends no more replies per message than the
message's mode allows (one; two in enhanced mode, the second after a CA) and none later than the
proxy's late window after the proxy gave up on the message: beyond those, no proxy can know.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.hl7v2.meta import extract
from harness.proxy.mllp.session import (
    CancelTimer,
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
from tests.messages import ack, adt, without_msa2
from tests.proxy.mllp.test_session import Clock

MODES = [("", ""), ("AL", "AL"), ("NE", "NE"), ("ER", "ER"), ("NE", "AL"), ("AL", "NE"), ("SU", "SU")]
CODES = ["AA", "AE", "CA", "CE", "CR", "AR", "XX"]

send = st.tuples(st.just("send"), st.integers(0, len(MODES) - 1), st.integers(0, 2))
answer = st.tuples(
    st.just("answer"), st.integers(0, 50), st.sampled_from(CODES), st.booleans(), st.integers(0, 3)
)
tick = st.tuples(st.just("tick"), st.sampled_from([0.5, 2.0, 6.0, 40.0]))
events = st.lists(st.one_of(send, answer, tick), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    script=events,
    in_flight=st.integers(1, 3),
    policy=st.sampled_from(["close", "nak", "wait"]),
)
def test_every_accept_the_sender_gets_is_the_upstreams_reply_to_that_message(script, in_flight, policy):
    clock = Clock()
    session = MLLPSession(
        SessionSettings(channel="p", ack_timeout_s=5, app_ack_timeout_s=10, conditional_ack_wait_s=3,
                        on_ack_timeout=policy, max_in_flight=in_flight),
        clock=clock,
    )
    truth: dict[bytes, bytes] = {}  # upstream reply bytes -> the message it answers
    forwarded: list[bytes] = []
    timers: dict[tuple, float] = {}
    relayed: list[bytes] = []  # in order, as the sender receives them
    failed_before: dict[bytes, int] = {}  # message -> how many frames the sender had when told it failed
    captured: list = []
    state = {"closed": False, "up": False, "n": 0}
    sent: dict[bytes, list[str]] = {}  # message -> codes the upstream sent for it
    window = session.settings.late_window

    def next_code(message: bytes, code: str) -> str | None:
        """The code the upstream may send next for message (None: it has said all it will)."""
        ended = [ex.ended_at for ex in captured  # the proxy's exchange ended before the last reply
                 if ex.request == message and ex.outcome != "pending"
                 and (ex.response is None or ex.ack_code == "CA")]
        if ended and clock.now - ended[-1] > window:
            return None
        before = sent.get(message, [])
        meta = extract(message)
        enhanced = meta.accept_ack_type is not None or meta.app_ack_type is not None
        if not before:
            return code
        if enhanced and before == ["CA"]:
            return code if code in ("AA", "AE", "AR", "XX") else "AA"
        return None

    def run(actions: list) -> None:
        queue = list(actions)
        while queue:
            action = queue.pop(0)
            items = action.then if isinstance(action, Capture) else [action]
            if isinstance(action, Capture):
                ex = action.exchange
                captured.append(ex)
                if ex.outcome in ("timeout", "upstream_down", "ambiguous_ack") and ex.request:
                    failed_before.setdefault(ex.request, len(relayed))
            for item in items:
                if isinstance(item, ToSender) and not state["closed"]:
                    relayed.append(item.data)
                elif isinstance(item, CloseSender) and not state["closed"]:
                    state["closed"] = True
                    queue.extend(session.sender_closed())
                elif isinstance(item, StartTimer):
                    timers[item.key] = clock.now + item.seconds
                elif isinstance(item, CancelTimer):
                    timers.pop(item.key, None)
                elif isinstance(item, (Connect, ReplaceUpstream)):  # a new connection, the old one dropped
                    state["up"] = True
                    queue.extend(session.upstream_connected("127.0.0.1:1"))
                elif isinstance(item, ToUpstream):
                    forwarded.append(item.data[1:-2])

    for event in script:
        if event[0] == "send" and not state["closed"]:
            msh15, msh16 = MODES[event[1]]
            state["n"] += 1
            message = adt(str(event[2]), pid=f"P{state['n']}", msh15=msh15, msh16=msh16)
            run(session.sender_data(frame(message)))
        elif event[0] == "answer" and forwarded:
            _, pick, code, strip, back = event
            index = max(0, len(forwarded) - 1 - back) if pick % 2 else pick % len(forwarded)
            message = forwarded[index]
            code = next_code(message, code)
            if code is None:
                continue
            if code == "XX":
                reply = ack(message, "AA").replace(b"MSA|AA|", b"MSA|XX|")
            else:
                reply = ack(message, code)
            if strip:
                reply = without_msa2(reply)
            truth[reply] = message
            sent.setdefault(message, []).append(code)
            run(session.upstream_data(frame(reply)))
        elif event[0] == "tick":
            clock.now += event[1]
            for key, at in sorted(timers.items(), key=lambda kv: kv[1]):
                if at <= clock.now and timers.get(key) == at:
                    del timers[key]
                    run(session.timer(key))

    requests_of = {}
    for ex in captured:
        for reply in (ex.response, ex.accept_response):
            if reply is not None and ex.outcome not in ("late_ack", "ambiguous_ack"):
                requests_of.setdefault(reply, ex.request)
    for position, data in enumerate(relayed):
        payload = data[1:-2]
        code = extract(payload).ack_code
        if payload in truth:
            message = truth[payload]
            assert requests_of.get(payload) == message, "a reply relayed for a message it does not answer"
            if code in ("AA", "CA"):
                assert failed_before.get(message, len(relayed)) > position, (
                    "an accept relayed after the sender was told the message failed"
                )
        else:
            assert code in ("AR", "CR"), "the proxy made up a reply that is not a reject"
