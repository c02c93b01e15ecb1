"""The `raw` kind: HTTP traffic with no interface-specific metadata."""

from __future__ import annotations

from collections.abc import Mapping

from harness.codecs import Meta, register


class RawCodec:
    kind = "raw"

    def request_meta(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Meta:
        return {}

    def response_meta(self, request: Meta, status: int, headers: Mapping[str, str], body: bytes) -> Meta:
        return {}


register(RawCodec())
