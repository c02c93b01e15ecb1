"""HL7 v2 messages the tests send and answer: one set of builders for every test module.

`adt` writes an ADT message and `ack_for` an ACK as text, each shape a keyword away (hosts, time,
patient, visit, acknowledgement mode, padding), so a test module says what it needs instead of keeping
its own copy; `ack` answers a given message through harness's own ACK builder.
"""

from __future__ import annotations

from harness.hl7v2.ack import build_ack


def adt(
    control_id: str = "MSG00001",
    *,
    trigger: str = "A01",
    message_type: str | None = None,
    pid: str = "900001",
    pid3: str | None = None,
    name: str = "ZHANG^SAN",
    patient: str = "",
    visit: str | None = None,
    ts: str = "20260101120000",
    sender: tuple[str, str] = ("HIS", "HOSP"),
    receiver: tuple[str, str] = ("HC", "HOSP"),
    evn: bool = True,
    msh15: str = "",
    msh16: str = "",
    charset: str = "",
    size: int = 0,
) -> bytes:
    """An ADT message with MSH-10 = control_id.

    message_type replaces `ADT^{trigger}^ADT_{trigger}` in MSH-9; `patient` is what follows the name in
    PID (`||19800101|M`); `visit` the PV1 fields after `PV1|1|`; msh15/msh16 set the acknowledgement
    mode and charset MSH-18; `size` pads an NTE so the message is about that many bytes. PID-3 is
    `pid` assigned by the sending facility, or `pid3` as it is.
    """
    msh9 = message_type or f"ADT^{trigger}^ADT_{trigger}"
    tail = f"|||{msh15}|{msh16}" if (msh15 or msh16 or charset) else ""
    tail += f"||{charset}" if charset else ""
    hosts = f"{sender[0]}|{sender[1]}|{receiver[0]}|{receiver[1]}"
    text = f"MSH|^~\\&|{hosts}|{ts}||{msh9}|{control_id}|P|2.5{tail}\r"
    if evn:
        text += f"EVN|{trigger}|{ts}\r"
    text += f"PID|1||{pid3 if pid3 is not None else f'{pid}^^^{sender[1]}^MR'}||{name}{patient}\r"
    if visit is not None:
        text += f"PV1|1|{visit}\r"
    if size > len(text):
        text += "NTE|1||" + "x" * (size - len(text) - 8) + "\r"
    return text.encode()


def ack_for(
    control_id: str,
    code: str = "AA",
    *,
    text: str = "",
    ts: str = "",
    msh10: str | None = None,
    message_type: str = "ACK",
    sender: tuple[str, str] = ("HC", "HOSP"),
    receiver: tuple[str, str] = ("HIS", "HOSP"),
    err: str | None = None,
) -> bytes:
    """An ACK written out: MSA-1 `code`, MSA-2 `control_id`, MSA-3 `text` (when given), an ERR segment
    `err` (the whole segment) after it; MSH-10 `msh10`, by default `A` + control_id."""
    msh = (
        f"MSH|^~\\&|{sender[0]}|{sender[1]}|{receiver[0]}|{receiver[1]}|{ts}||{message_type}|"
        f"{msh10 if msh10 is not None else 'A' + control_id}|P|2.5"
    )
    segments = [msh, f"MSA|{code}|{control_id}" + (f"|{text}" if text else "")]
    if err:
        segments.append(err)
    return ("\r".join(segments) + "\r").encode()


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
