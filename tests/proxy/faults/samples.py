"""Sample messages and a one-rule engine run, shared by the action tests."""

from __future__ import annotations

from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.engine import AppliedFault, FaultEngine
from harness.proxy.faults.plan import Plan
from tests import messages


def adt(
    control_id: str = "MSG00001", code: str = "ADT^A01^ADT_A01", pid3: str = "900001", charset: str = ""
) -> bytes:
    visit = {"patient": "||19800101|M", "visit": "O", "msh15": "AL", "msh16": "NE"}
    return messages.adt(control_id, message_type=code, pid=pid3, charset=charset, **visit)


def ack(control_id: str = "MSG00001", code: str = "AA") -> bytes:
    return messages.ack_for(
        control_id, code, ts="20260101120001", message_type="ACK^A01^ACK", msh10=f"ACK{control_id}"
    )


def meta_of(payload: bytes):
    """The real cheap metadata when harness.hl7v2.meta is present; None lets metadata-free rules run."""
    try:
        from harness.hl7v2.meta import extract
    except ImportError:
        return None
    return extract(payload)


def apply_one(action: dict, direction: str = "request", payload: bytes | None = None, **ctx) -> AppliedFault:
    """Run a single always-firing rule with `action` over one message and return what it did."""
    engine = FaultEngine("test", rules=[{"match": {"direction": direction}, "action": action}])
    request = adt()
    if direction == "request":
        payload = payload if payload is not None else request
    else:
        payload = payload if payload is not None else ack()
        ctx.setdefault("request", request)
    fault = engine.decide(direction, payload, meta_of(payload), FaultContext(channel="test", **ctx))
    assert fault is not None, engine.list()[0].to_json()
    assert isinstance(fault.plan, Plan)
    return fault
