"""Sending HL7 v2 files over MLLP and judging what came back, message by message (`harness send`).

Each message waits for what its MSH-15/16 ask (`harness.mllp_client`); its line names the message,
both replies' codes, the round trip and, for a NAK, what the reply says. The run passes when every
message was accepted as asked or asked for nothing; an AE/AR/CE/CR, a reply that is not an ACK, a
missing reply, or a connection lost on the way fails it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.mllp_client import MLLPClient, SendResult

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_NAMES = {
    "ok": "accepted",
    "nak": "rejected (AE/AR/CE/CR)",
    "no_ack_expected": "no ACK expected",
    "timeout": "no reply in time",
    "bad_ack": "reply not an ACK",
    "upstream_down": "connection lost",
}


@dataclass(slots=True)
class Sent:
    """One message sent: where it came from and what came back."""

    source: str
    index: int
    message_type: str | None
    result: SendResult

    def as_dict(self) -> dict[str, Any]:
        return {"type": "message", "source": self.source, "index": self.index, **self.result.as_dict(),
                "message_type": self.message_type}

    def codes(self) -> str:
        r = self.result
        if r.outcome == "no_ack_expected":
            return "NE"
        shown = [code or "?" for code in (r.accept_ack_code, r.ack_code) if code is not None]
        if r.accept_ack_code is not None and r.ack_code is None:
            shown.append("…")  # the application ACK never came
        return "+".join(shown) or "-"

    def line(self) -> str:
        r = self.result
        rtt = f"{r.rtt_ms:8.1f} ms" if r.rtt_ms is not None else "       - ms"
        text = (f"{r.control_id or '-':<20} {self.message_type or '-':<9} {self.codes():<7} {rtt}  "
                f"{self.source}#{self.index}")
        if r.outcome == "no_ack_expected":
            text += "  no ACK expected (MSH-15/16 NE/NE)"
        elif not r.accepted:
            text += f"  {r.outcome}"
            if r.ack_text:
                text += f": {r.ack_text}"
        if r.error:
            text += f"  error: {r.error}"
        for late in r.late_acks:
            if late.application:
                kind = "application ACK for"
            else:
                kind = "late ACK for earlier message" if late.earlier else "unexpected ACK for"
            text += f"  ({kind} {late.control_id or '-'}: {late.ack_code or '-'})"
        return text


@dataclass(slots=True)
class SendSummary:
    target: str
    sent: int = 0
    outcomes: Counter = field(default_factory=Counter)
    connect_failed: bool = False
    skipped: int = 0
    """Unreadable files or messages left out (send --skip-unreadable); any makes the run a failure."""

    @property
    def exit_code(self) -> int:
        if self.connect_failed or not self.sent:
            return EXIT_USAGE
        failed = sum(n for outcome, n in self.outcomes.items() if outcome not in ("ok", "no_ack_expected"))
        return EXIT_FAILED if failed or self.skipped else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {"type": "summary", "target": self.target, "messages": self.sent,
                "outcomes": dict(self.outcomes.most_common()), "skipped_unreadable": self.skipped,
                "exit_code": self.exit_code}

    def line(self) -> str:
        parts = [f"{n} {_NAMES.get(outcome, outcome)}" for outcome, n in self.outcomes.most_common()]
        head = f"{self.sent} message(s) sent to {self.target}"
        tail = f"; {self.skipped} unreadable skipped" if self.skipped else ""
        return head + (": " + ", ".join(parts) if parts else "") + tail


def send_messages(client: MLLPClient, messages: Iterable, emit: Callable[[Sent], None]) -> SendSummary:
    """Send each FileMessage in order, emitting one `Sent` each. Stops at the first connection failure
    (nothing after it could be delivered either)."""
    summary = SendSummary(client.address)
    for message in messages:
        result = client.send(message.payload)
        if result.error_kind == "connect":
            summary.connect_failed = True
            emit(Sent(message.source, message.index, result.message_type, result))
            return summary
        summary.sent += 1
        summary.outcomes[result.outcome] += 1
        emit(Sent(message.source, message.index, result.message_type, result))
    return summary
