"""HL7 v2 escape sequences, for the message's own delimiters.

Unescape resolves the delimiter escapes (F S T R E, and P for the truncation character), hex data
(Xhh.., bytes in the message's charset) and the line break (.br, to a newline). Other sequences
(highlighting H N, formatting .sp .in ..., charset switches C.. M.., locally defined Z..) carry meaning
the text alone cannot hold, so they are kept verbatim, escape characters included.

Escape is the inverse for any text: delimiters, the escape character, CR and LF become sequences, so that
unescape(escape(x)) == x.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Delimiters", "escape", "unescape", "DEFAULT"]


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The five (or six) delimiters of one message, from MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @classmethod
    def from_msh(cls, field: str, encoding: str) -> Delimiters:
        chars = list(encoding) + [""] * (5 - len(encoding))
        return cls(field, chars[0], chars[1], chars[2], chars[3], chars[4])

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation


DEFAULT = Delimiters()


def escape(text: str, delims: Delimiters = DEFAULT) -> str:
    """Make text safe as one leaf value: every delimiter, the escape character, CR and LF escaped."""
    e = delims.escape
    if not e:
        specials = {delims.field, delims.component, delims.repetition, delims.subcomponent, "\r", "\n"}
        bad = [c for c in text if c in specials]
        if bad:
            raise ValueError(f"cannot store {bad[0]!r}: this message has no escape character (MSH-2)")
        return text
    table = {
        e: f"{e}E{e}",
        delims.field: f"{e}F{e}",
        delims.component: f"{e}S{e}",
        delims.repetition: f"{e}R{e}",
        "\r": f"{e}X0D{e}",
        "\n": f"{e}X0A{e}",
    }
    if delims.subcomponent:
        table[delims.subcomponent] = f"{e}T{e}"
    if delims.truncation:
        table[delims.truncation] = f"{e}P{e}"
    if not any(c in text for c in table):
        return text
    return "".join(table.get(c, c) for c in text)


def unescape(text: str, delims: Delimiters = DEFAULT, codec: str = "utf-8") -> str:
    """Resolve escape sequences; unknown or malformed ones are kept verbatim."""
    e = delims.escape
    if not e or e not in text:
        return text
    simple = {
        "F": delims.field,
        "S": delims.component,
        "T": delims.subcomponent,
        "R": delims.repetition,
        "E": e,
        "P": delims.truncation,
        ".br": "\n",
    }
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find(e, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(e, j + 1)
        if k < 0:  # an escape character with no closing one: literal
            out.append(text[j:])
            break
        body = text[j + 1 : k]
        repl = simple.get(body)
        if repl:
            out.append(repl)
        elif body[:1] == "X" and len(body) > 1 and len(body) % 2 == 1:
            try:
                raw = bytes.fromhex(body[1:])
                out.append(raw.decode("ascii") if raw.isascii() else raw.decode(codec))
            except (ValueError, LookupError):
                out.append(text[j : k + 1])
        else:
            out.append(text[j : k + 1])
        i = k + 1
    return "".join(out)
