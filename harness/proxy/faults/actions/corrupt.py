"""`corrupt`: damage the request on its way up or the reply on its way back, reproducibly.

Modes: `flip_byte` (one bit of one byte, never turning it into a framing byte), `truncate` (keep the
first bytes only), `wrong_charset` (re-encode the text in another charset than the one declared, e.g.
UTF-8 bytes to a GB18030 receiver), `break_framing` (`framing`: `no_start` drops the 0x0B start block,
`no_end` never ends the frame, `no_cr` leaves out the CR after 0x1C). With `seed` the choices (which
byte, which bit, how much) repeat on every run; without it they follow the rule's RNG.
"""

from __future__ import annotations

import codecs
import random
from typing import Any

from harness.proxy.faults.actions import Action, register
from harness.proxy.faults.context import ActionContext
from harness.proxy.faults.params import Params, RuleError
from harness.proxy.faults.plan import Plan

MODES = ("flip_byte", "break_framing", "wrong_charset", "truncate")
FRAMINGS = ("no_start", "no_end", "no_cr")
VT, FS, CR = b"\x0b", b"\x1c", b"\r"
_FRAMING_BYTES = frozenset((0x0B, 0x1C, 0x0D))

_MODE_KEYS = {
    "offset": "flip_byte",
    "keep_bytes": "truncate",
    "framing": "break_framing",
    "charset": "wrong_charset",
}


def flip_byte(data: bytes, rng: random.Random, offset: int | None = None) -> tuple[bytes, str]:
    if not data:
        return data, "nothing to flip in an empty message"
    pos = rng.randrange(len(data)) if offset is None else min(offset, len(data) - 1)
    old = data[pos]
    bits = list(range(8))
    rng.shuffle(bits)
    for bit in bits:
        new = old ^ (1 << bit)
        if new not in _FRAMING_BYTES:
            break
    out = bytearray(data)
    out[pos] = new
    return bytes(out), f"flipped byte {pos}: 0x{old:02x} -> 0x{new:02x}"


def truncate(data: bytes, rng: random.Random, keep: int | None = None) -> tuple[bytes, str]:
    if keep is None:
        keep = rng.randrange(1, len(data)) if len(data) > 1 else 0
    keep = min(keep, len(data))
    return data[:keep], f"truncated to {keep} of {len(data)} bytes"


def wrong_charset(data: bytes, source: str | None, target: str | None) -> tuple[bytes, str]:
    source = source or "utf-8"
    if target is None:
        target = "gb18030" if codecs.lookup(source).name == "utf-8" else "utf-8"
    text = data.decode(source, errors="surrogateescape")
    out = text.encode(target, errors="replace")
    if out == data:
        return data, f"re-encoding {source} as {target} changed nothing (no non-ASCII text)"
    return out, f"re-encoded from {source} to {target} without changing the declared charset"


def break_framing(payload_or_frame: bytes, framing: str) -> tuple[bytes, str]:
    """The raw bytes of a broken MLLP frame around the payload (an already framed input is unwrapped)."""
    payload = payload_or_frame
    if payload.startswith(VT):
        payload = payload[1:]
    if payload.endswith(FS + CR):
        payload = payload[:-2]
    if framing == "no_start":
        return payload + FS + CR, "frame sent without its 0x0B start block"
    if framing == "no_end":
        return VT + payload, "frame sent without its 0x1C 0x0D end block"
    return VT + payload + FS, "frame sent without the CR after 0x1C"


@register
class Corrupt(Action):
    type = "corrupt"

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        seed = params.get("seed")
        self._rng = random.Random(seed) if seed is not None else None

    @classmethod
    def parse(cls, p: Params) -> dict[str, Any]:
        p.required("mode", f"one of {', '.join(MODES)}")
        mode = p.choice("mode", MODES)
        for key, owner in _MODE_KEYS.items():
            if p.has(key) and owner != mode:
                raise RuleError(f"{p.where}.{key}", f"only used with mode {owner}, not {mode}")
        params: dict[str, Any] = {
            "mode": mode,
            "target": p.choice("target", ("request", "response"), None),
            "seed": p.integer("seed", None),
        }
        if mode == "flip_byte":
            params["offset"] = p.integer("offset", None, minimum=0)
        elif mode == "truncate":
            params["keep_bytes"] = p.integer("keep_bytes", None, minimum=0)
        elif mode == "break_framing":
            params["framing"] = p.choice("framing", FRAMINGS, "no_start")
        else:
            charset = p.string("charset", None)
            if charset is not None:
                try:
                    codecs.lookup(charset)
                except LookupError:
                    raise RuleError(f"{p.where}.charset", f"unknown charset {charset!r}") from None
            params["charset"] = charset
        return params

    def check_direction(self, direction: str, where: str = "match.direction") -> None:
        if direction == "response" and self.params["target"] == "request":
            raise RuleError(
                "action.target", "a rule matching responses cannot corrupt the request (already forwarded)"
            )

    def corrupt(self, data: bytes, rng: random.Random, charset: str | None) -> tuple[bytes, str]:
        mode = self.params["mode"]
        if mode == "flip_byte":
            return flip_byte(data, rng, self.params["offset"])
        if mode == "truncate":
            return truncate(data, rng, self.params["keep_bytes"])
        if mode == "wrong_charset":
            return wrong_charset(data, charset, self.params["charset"])
        return break_framing(data, self.params["framing"])

    def apply(self, plan: Plan, ctx: ActionContext) -> None:
        rng = self._rng or ctx.rng
        target = self.params["target"] or ctx.direction
        mode = self.params["mode"]
        if target == "request":
            data, done = self.corrupt(ctx.payload, rng, ctx.charset)
            if mode == "break_framing":
                plan.forward_raw = data
            else:
                plan.forward_payload = data
            plan.notes.append(f"request corrupted: {done}")
            return
        # The reply does not exist yet: fix the choices now (reproducible), act when it arrives.
        reply_rng = random.Random(rng.getrandbits(64))
        charset = ctx.charset
        notes = plan.notes

        def transform(reply: bytes) -> bytes:
            data, done = self.corrupt(reply, reply_rng, charset)
            notes.append(f"reply corrupted: {done}")
            return data

        if mode == "break_framing":
            plan.reply_raw_transform = transform
        else:
            plan.reply_transform = transform
        plan.notes.append(f"reply will be corrupted ({mode})")
