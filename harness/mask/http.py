"""A stored HTTP request or response masked: its body by kind, its head by the sweep.

The body is read with `harness.http_wire` (chunks joined, gzip or deflate undone), masked as the kind
it carries and written back the way it came: compressed again, as one chunk when it was chunked, with
`Content-Length` corrected when it had one (a masked name may take other bytes than the original in
UTF-8). The head keeps every line as it was except: the request target (FHIR search parameters that
identify a person are masked, then the sweep), header values holding a masked original (swept, also in
percent-encoded form), and the headers the policy redacts (credentials). A body that is cut short in the
capture, or compressed in a way that cannot be undone here, cannot be masked: MaskError.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from harness.http_wire import HttpError, read_message
from harness.mask.error import MaskError
from harness.mask.sweep import Replacements

if TYPE_CHECKING:  # annotations only: importing the masker at run time would be a cycle
    from harness.mask.masker import Masked, Masker, Pass

REDACTED = "[redacted]"


class MaskedHttp:
    def __init__(
        self,
        prefix: bytes,
        lines: list[str],
        body: Masked | None,
        raw_body: bytes,
        encoding: str | None,
        framing: str,
        redact: frozenset[str],
    ) -> None:
        self.prefix = prefix
        self.lines = lines
        self.body = body
        self.raw_body = raw_body
        self.encoding = encoding
        self.framing = framing
        self.redact = redact

    def render(self, replacements: Replacements) -> bytes:
        body = self.raw_body
        if self.body is not None:
            rendered = self.body.render(replacements)
            body = rendered if isinstance(rendered, bytes) else rendered.encode("utf-8")
            body = _compress(body, self.encoding)
        lines = [replacements.sweep(self.lines[0], "head")]
        for line in self.lines[1:]:
            name, colon, value = line.partition(":")
            lowered = name.lower()
            if not colon:
                lines.append(line)
            elif lowered in self.redact:
                lines.append(f"{name}: {REDACTED}")
            elif lowered == "content-length" and self.framing == "length":
                lines.append(f"{name}:{_spacing(value)}{len(body)}")
            else:
                lines.append(replacements.sweep(line, "head"))
        head = "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
        if self.framing == "chunked":
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        return self.prefix + head + body


def _spacing(value: str) -> str:
    return value[: len(value) - len(value.lstrip())]


def _decompress(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity":
        return body
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise MaskError(f"body says Content-Encoding {encoding} but does not decompress: {exc}") from None
    raise MaskError(
        f"body has Content-Encoding {encoding!r}, which cannot be undone here (gzip and deflate can)"
    )


def _compress(body: bytes, encoding: str | None) -> bytes:
    if encoding in ("gzip", "x-gzip"):
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        return compressor.compress(body) + compressor.flush()
    if encoding == "deflate":
        return zlib.compress(body)
    return body


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


def mask(
    masker: Masker, data: bytes, kind: str, pass_: Pass, *, request: bool, request_method: str = "GET"
) -> MaskedHttp:
    """Mask the body of one stored HTTP message of the given kind (first step; `render` finishes)."""
    try:
        message = read_message(data, request=request, request_method=request_method)
    except HttpError as exc:
        raise MaskError(f"not a readable HTTP {'request' if request else 'response'}: {exc}") from None
    head = message.head
    start = data.find(head.raw)
    prefix = data[:start] if start > 0 else b""  # interim 1xx responses before the final one
    lines = head.raw.decode("latin-1").split("\r\n")
    encoding = (head.get("Content-Encoding") or "").strip().lower() or None
    framing = "chunked" if head.chunked else "length" if head.content_length is not None else "close"
    body: Masked | None = None
    if message.body:
        if not message.complete:
            raise MaskError(
                f"the {'request' if request else 'response'} body is cut short in the capture "
                f"({len(message.body)} bytes kept), so it cannot be parsed and masked"
            )
        plain = _decompress(message.body, encoding)
        body = masker.structure(plain, kind, pass_, charset=_charset(head.get("Content-Type")))
    elif not message.complete:
        raise MaskError(f"the {'request' if request else 'response'} is cut short in the capture")
    if request and kind == "fhir" and "?" in head.target:
        from harness.mask.fhir import mask_query

        target = mask_query(head.target, pass_)
        lines[0] = f"{head.method} {target} {head.version}"
    return MaskedHttp(prefix, lines, body, message.body, encoding, framing, masker.policy.redact_headers)
