"""One load message's acknowledgements, read through the shared ACK model (sans-IO).

The MLLP load user keeps a connection per user and sends one message at a time; `AckWait` takes the
frames that come back and says when the message has what it asked for (MSH-15/16, through
`harness.hl7v2.ackmode.AckState`: the commit ACK and then the application ACK in enhanced mode, one ACK
in original mode, nothing for NE/NE, a short wait for ER/SU), what the verdict is and, for a failure,
a reason short and stable enough to group failures by (locust lists each distinct reason once).

A reply counts only when its MSA-2 is the message's MSH-10 (or it has none, as some engines send for
input they cannot read): an ACK for an earlier message that timed out is counted as late and never
taken for the current one's, the mistake peers.md records for Mirth.
"""

from __future__ import annotations

from harness.hl7v2.ack import ack_text
from harness.hl7v2.ackmode import AckMode, AckState
from harness.hl7v2.meta import extract

__all__ = ["AckWait"]

REASON_MAX = 120


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


def msa(payload: bytes) -> tuple[str | None, str | None]:
    """MSA-1 and MSA-2 of a reply. An ACK in plain ASCII with CR segment ends and no escape in its MSA is
    sliced directly (the usual case, a few microseconds: the generator's budget is per message);
    anything else goes through `harness.hl7v2.meta.extract`, which decodes by MSH-18 first, as every
    other tool does. Both give the same answer (tests/load/test_mllp_ack.py)."""
    if payload.isascii() and payload.startswith(b"MSH") and len(payload) > 8:
        text = payload.decode("ascii")
        if "MSA" not in text:
            return None, None
        sep, comp = text[3], text[4]
        start = text.find(f"\rMSA{sep}")
        if start >= 0 and "\n" not in text:
            end = text.find("\r", start + 1)
            line = text[start + 1 : end if end >= 0 else len(text)]
            if "\\" not in line:
                fields = line.split(sep)
                code = fields[1].split(comp, 1)[0] if len(fields) > 1 else ""
                control = fields[2].split(comp, 1)[0] if len(fields) > 2 else ""
                return code or None, control or None
    meta = extract(payload)
    return meta.ack_code, meta.ack_control_id


class AckWait:
    """The replies one message is waiting for (the caller keeps the clock and the socket)."""

    __slots__ = ("control_id", "state", "late", "reply", "accepted_at", "reason", "_committed")

    def __init__(self, control_id: str, mode: AckMode) -> None:
        self.control_id = control_id
        self.state: AckState = mode.start()
        self.late = 0
        """Replies that belonged to another (earlier) message."""
        self.reply: bytes | None = None
        """The reply that decided the outcome (the NAK for a failure)."""
        self.accepted_at: float | None = None
        """When the commit ACK (CA) came, in the caller's clock; the application ACK's wait starts then."""
        self.reason: str | None = None

    @property
    def done(self) -> bool:
        return self.state.done

    def waiting(self) -> str:
        """``required``, ``conditional`` or ``none`` (see AckState.waiting)."""
        return self.state.waiting()

    @property
    def after_commit(self) -> bool:
        return self.state.accept_code is not None

    def frame(self, payload: bytes, now: float) -> bool:
        """Take one reply frame; True once the message has every reply it asked for."""
        code, msa2 = msa(payload)
        if msa2 and msa2 != self.control_id:
            self.late += 1
            return False
        if not self.state.accepts(code):
            self.late += 1
            return False
        had_commit = self.after_commit
        done = self.state.take(code)
        if not had_commit and self.after_commit:
            self.accepted_at = now
        if done or self.state.verdict() in ("nak", "bad_ack"):
            self.reply = payload
        return done

    def expire(self, timeout_s: float) -> None:
        """The wait for the next reply ran out: silence is an answer for ER/SU, a timeout otherwise."""
        if self.state.waiting() == "conditional":
            if self.state.silence() == "timeout":
                self.reason = "timeout: no ACK although MSH-15/16 SU asks for one on success"
            return
        what = "application ACK after the CA" if self.after_commit else "ACK"
        self.reason = f"timeout: no {what} within {timeout_s:g} s"
        self.state.done = True

    def verdict(self) -> str:
        """ok, nak, bad_ack, timeout, no_ack_expected (or pending while replies are still awaited)."""
        if self.reason is not None and self.reason.startswith("timeout"):
            return "timeout"
        return self.state.verdict()

    def failure(self) -> str | None:
        """None when accepted as asked; otherwise why, e.g. ``AE: 病人不存在`` or ``timeout: no ACK ...``."""
        verdict = self.verdict()
        if verdict in ("ok", "no_ack_expected"):
            return None
        if verdict == "timeout":
            return self.reason
        state = self.state
        if verdict == "bad_ack":
            code = state.bad_code
            return "bad ACK: no MSA-1 code" if not code else _short(f"bad ACK: MSA-1 {code!r}")
        codes = [c for c in (state.accept_code, state.application_code) if c and c not in ("AA", "CA")]
        code = codes[0] if codes else "NAK"
        text = ack_text(self.reply) if self.reply else None
        return _short(f"{code}: {text}") if text else code
