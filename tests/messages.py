"""HL7 v2 messages the tests send and answer: one set of builders for every test module."""

from __future__ import annotations

from harness.hl7v2.ack import build_ack


def adt(
    control_id: str,
    *,
    trigger: str = "A01",
    pid: str = "900001",
    name: str = "ZHANG^SAN",
    msh15: str = "",
    msh16: str = "",
    size: int = 0,
) -> bytes:
    """An ADT message with MSH-10 = control_id; msh15/msh16 set the acknowledgement mode; size pads NTEs."""
    tail = f"|||{msh15}|{msh16}" if (msh15 or msh16) else ""
    text = (
        f"MSH|^~\\&|HIS|HOSP|HC|HOSP|20260101120000||ADT^{trigger}^ADT_{trigger}|{control_id}|P|2.5{tail}\r"
        f"EVN|{trigger}|20260101120000\r"
        f"PID|1||{pid}^^^HOSP^MR||{name}\r"
    )
    if size > len(text):
        text += "NTE|1||" + "x" * (size - len(text) - 8) + "\r"
    return text.encode()


_ACKS: dict[tuple[bytes, str, str | None], bytes] = {}


def ack(message: bytes, code: str = "AA", text: str | None = None) -> bytes:
    """The ACK an upstream sends for message (the same bytes each time, like a recorded reply)."""
    key = (message, code, text)
    if key not in _ACKS:
        _ACKS[key] = build_ack(message, code, text=text)
    return _ACKS[key]


def without_msa2(reply: bytes) -> bytes:
    """The same reply with MSA-2 emptied (what hl7apy's server and many engines send for junk)."""
    head, _, rest = reply.partition(b"\rMSA|")
    code, _, after = rest.partition(b"|")
    _, _, tail = after.partition(b"\r")
    return head + b"\rMSA|" + code + b"|\r" + tail
