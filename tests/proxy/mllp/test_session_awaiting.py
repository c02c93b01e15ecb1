"""The durable writer's hint: how many forwarded requests may still be answered within its short wait."""

from __future__ import annotations

from harness.hl7v2.ack import build_ack
from harness.proxy.mllp.session import MLLPSession, SessionSettings
from tests import messages


def adt(control_id: str) -> bytes:
    hosts = {"sender": ("HIS", "H"), "receiver": ("HC", "H"), "ts": "20260101"}
    return messages.adt(control_id, pid3="9", name="", evn=False, message_type="ADT^A01", **hosts)


def framed(payload: bytes) -> bytes:
    return b"\x0b" + payload + b"\x1c\r"


def test_awaiting_counts_only_recent_unanswered_requests():
    now = [1000.0]
    session = MLLPSession(
        SessionSettings(channel="adt", max_in_flight=4), client_addr="127.0.0.1:1", clock=lambda: now[0]
    )
    session.sender_data(framed(adt("old")))
    session.upstream_connected("127.0.0.1:2")
    assert session.awaiting_replies() == 1
    now[0] += 5.0  # "old" is slow in coming
    session.sender_data(framed(adt("new1")) + framed(adt("new2")))
    assert session.awaiting_replies() == 3
    assert session.awaiting_replies(now[0] - 0.001) == 2  # only the ones forwarded just now
    session.upstream_data(framed(build_ack(adt("new1"), "AA")))
    assert session.awaiting_replies(now[0] - 0.001) == 1
    assert session.awaiting_replies() == 2
