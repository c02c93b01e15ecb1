"""Sample messages and a one-rule engine run, shared by the action tests."""

from __future__ import annotations

from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.engine import AppliedFault, FaultEngine
from harness.proxy.faults.plan import Plan


def adt(
    control_id: str = "MSG00001", code: str = "ADT^A01^ADT_A01", pid3: str = "900001", charset: str = ""
) -> bytes:
    return (
        f"MSH|^~\\&|HIS|HOSP|HC|HOSP|20260101120000||{code}|{control_id}|P|2.5|||AL|NE||{charset}\r"
        f"EVN|A01|20260101120000\r"
        f"PID|1||{pid3}^^^HOSP^MR||ZHANG^SAN||19800101|M\r"
        f"PV1|1|O\r"
    ).encode()


def ack(control_id: str = "MSG00001", code: str = "AA") -> bytes:
    return (
        f"MSH|^~\\&|HC|HOSP|HIS|HOSP|20260101120001||ACK^A01^ACK|ACK{control_id}|P|2.5\r"
        f"MSA|{code}|{control_id}\r"
    ).encode()


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
