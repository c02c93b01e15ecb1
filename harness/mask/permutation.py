"""Keyed permutations of small integer domains: the injective core of format-preserving pseudonyms.

A pseudonym that two different originals could share would hide a difference (replay comparison would
call two different patients the same), so every identifier is mapped through a permutation of its own
domain (all 10-digit numbers, the 500 sequence numbers of one sex in a 身份证, the list of mobile
prefixes), never through a plain hash. The permutation is a Feistel network over Z_a × Z_b with
HMAC-SHA256 as its round function (a bijection for any round function), walked in cycles until the
result falls back inside a domain that is not exactly a × b. The `tweak` separates domains: the same
number masked as a phone tail and as a record number gives unrelated results.
"""

from __future__ import annotations

import hmac
from math import isqrt

ROUNDS = 8
_CHUNK_DIGITS = 36
"""Digit strings longer than this are permuted in chunks (each chunk its own domain)."""


class Permutation:
    """Keyed permutations of ``range(n)`` for any n, all derived from one secret key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("a permutation needs a non-empty key")
        self._key = key

    def _round(self, tweak: bytes, index: int, value: int, modulus: int) -> int:
        digest = hmac.digest(self._key, b"%s|%d|%d" % (tweak, index, value), "sha256")
        return int.from_bytes(digest, "big") % modulus

    def _feistel(self, x: int, a: int, b: int, tweak: bytes, inverse: bool) -> int:
        left, right = divmod(x, b)
        rounds = reversed(range(ROUNDS)) if inverse else range(ROUNDS)
        sign = -1 if inverse else 1
        for i in rounds:
            if i % 2 == 0:
                left = (left + sign * self._round(tweak, i, right, a)) % a
            else:
                right = (right + sign * self._round(tweak, i, left, b)) % b
        return left * b + right

    def _walk(self, n: int, x: int, tweak: bytes, inverse: bool) -> int:
        a = max(1, isqrt(n))
        b = -(-n // a)  # a * b >= n, and a * b - n < a
        y = x
        while True:  # cycle walking: the permutation of range(a*b) restricted to range(n)
            y = self._feistel(y, a, b, tweak, inverse)
            if y < n:
                return y

    def permute(self, n: int, x: int, tweak: bytes) -> int:
        """The image of x under this key's permutation of range(n) named by tweak; never x itself.

        The permutation is σ∘(+1)∘σ⁻¹ for the Feistel permutation σ: a single cycle through the whole
        domain, so no value is its own pseudonym (a value left as it was would be an original left in
        the output) while distinct values still get distinct pseudonyms.
        """
        if not 0 <= x < n:
            raise ValueError(f"{x} is outside range({n})")
        if n <= 1:
            return x
        return self._walk(n, (self._walk(n, x, tweak, True) + 1) % n, tweak, False)

    def digits(self, text: str, tweak: bytes) -> str:
        """A different digit string of the same length whose first digit is 0 exactly when the
        original's is (numbers stay numbers, zero-padded record numbers stay padded)."""
        if not text:
            return text
        if not text.isascii() or not text.isdigit():
            raise ValueError(f"expected ASCII digits, got {text!r}")
        if len(text) > _CHUNK_DIGITS:
            head, rest = text[:_CHUNK_DIGITS], text[_CHUNK_DIGITS:]
            out = [self.digits(head, tweak)]
            for i in range(0, len(rest), _CHUNK_DIGITS):
                chunk = rest[i : i + _CHUNK_DIGITS]
                n = 10 ** len(chunk)
                out.append(str(self.permute(n, int(chunk), tweak + b"|chunk%d" % i)).zfill(len(chunk)))
            return "".join(out)
        width = len(text)
        label = tweak + b"|%d" % width
        if width == 1:
            return str(self.permute(10, int(text), label))
        if text[0] == "0":
            return "0" + str(self.permute(10 ** (width - 1), int(text[1:]), label + b"|0")).zfill(width - 1)
        low = 10 ** (width - 1)
        return str(low + self.permute(9 * low, int(text) - low, label))

    def letters(self, text: str, tweak: bytes) -> str:
        """Different ASCII letters of the same length, each position keeping its case."""
        if not text:
            return text
        value = 0
        for ch in text.upper():
            value = value * 26 + (ord(ch) - 65)
        out = self.permute(26 ** len(text), value, tweak + b"|%d" % len(text))
        chars = []
        for _ in text:
            out, r = divmod(out, 26)
            chars.append(chr(65 + r))
        chars.reverse()
        return "".join(c if o.isupper() else c.lower() for c, o in zip(chars, text, strict=True))

    def choose(self, options: int, tweak: bytes, value: bytes) -> int:
        """A keyed choice among `options` for `value` (not injective: for picking name characters)."""
        digest = hmac.digest(self._key, tweak + b"|" + value, "sha256")
        return int.from_bytes(digest, "big") % options

    def stream(self, tweak: bytes, value: bytes, count: int) -> list[int]:
        """`count` keyed 32-bit numbers for `value`, to pick characters of a name or an address."""
        out: list[int] = []
        block = 0
        while len(out) < count:
            digest = hmac.digest(self._key, b"%s|%d|%s" % (tweak, block, value), "sha256")
            out.extend(int.from_bytes(digest[i : i + 4], "big") for i in range(0, 32, 4))
            block += 1
        return out[:count]
