"""The `raw` kind: HTTP traffic with no interface-specific metadata (the HTTP status is the answer)."""

from __future__ import annotations

from harness.codecs import HttpKind, register


class RawCodec(HttpKind):
    kind = "raw"


register(RawCodec())
