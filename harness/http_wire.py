"""HTTP/1.1 message framing, sans-IO: where a request or response starts and ends, byte for byte.

The proxy forwards what it received, so the reader never re-encodes: each `Body` event carries the wire
bytes (`raw`, chunk framing included) to pass on, and the decoded payload (`data`) for capture, codecs
and fault rules. Heads keep their header names' case and order; only hop-by-hop headers (RFC 9110
section 7.6.1) are dropped when a head is rebuilt for the next hop. Used by the proxy, by capture
export/import and by the HTTP replay sender, so every tool reads a stored exchange the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_HEAD_BYTES = 64 * 1024
HOP_BY_HOP = frozenset(
    ("connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "proxy-authenticate")
)
"""Dropped when forwarding (plus whatever `Connection` names). Transfer-Encoding is kept: the body's
chunk framing is forwarded as received, so its header must travel with it."""


class HttpError(ValueError):
    """A message that is not valid HTTP/1.1; the text says what and where (`status` for the reply)."""

    def __init__(self, problem: str, status: int = 400) -> None:
        super().__init__(problem)
        self.status = status


class HeaderMap(dict):
    """Lower-case header names; `get` and `[]` take any case."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return dict.get(self, name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return dict.__getitem__(self, name.lower())

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)


# -- the grammar (RFC 9110 section 5, RFC 9112 sections 2-7), strictly --------------------------------

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = rb"[" + _TCHAR + rb"]+"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_FIELD_LINE = re.compile(rb"(" + _TOKEN + rb"):([\t\x20-\x7e\x80-\xff]*)")
"""`name: value`: a token, a colon, a value of visible characters, spaces and tabs (obs-text allowed);
no control character (NUL, bare CR or LF, ...) anywhere."""
_FIELD_BLOCK = re.compile(
    rb"(?:" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*(?:\r\n(?=[" + _TCHAR + rb"])|\Z))*"
)
"""Header lines joined by CRLF, each a field line (what `_FIELD_LINE` says, for all lines at once)."""
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_STATUS_LINE = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
_LENGTH = re.compile(rb"[0-9]{1,18}")
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:;" + _TOKEN + rb"(?:=(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*)"
)
"""`1*HEXDIG *( ";" name [ "=" value ] )`: no sign, prefix, underscore or whitespace in the size."""
_TOKEN_ONLY = re.compile(_TOKEN)
_REQUEST_LINE_START = re.compile(
    rb"(?:["
    + _TCHAR
    + rb"]+(?: (?:[\x21-\x7e]+(?: (?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.[0-9]?)?)?)?)?)?)?)?)?)?)?)?"
)
"""What a request line can start with (for refusing a head before it is complete)."""
_FIELD_LINE_START = re.compile(rb"(?:[" + _TCHAR + rb"]+(?::[\t\x20-\x7e\x80-\xff]*)?)?")
_TARGET = re.compile(rb"/[\x21-\x7e]*|\*|[A-Za-z]+://[\x21-\x7e]+")
"""Request targets forwarded (RFC 9112 section 3.2): origin-form, absolute-form, asterisk-form."""
_CONTENT_LENGTH_START = re.compile(rb"(?i:content-length):[ \t]*(?:[0-9]+[ \t]*)?")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
"""Request methods the proxy forwards (case-sensitive, RFC 9110 section 9); CONNECT and extension
methods are answered 501: a reverse proxy in front of FHIR, SOAP and JSON services has no use for
them, and independent parsers disagree on the rest."""
_METHOD_BYTES = tuple(m.encode() for m in METHODS)
MAX_FIELDS = 256
"""Header lines per head (and trailer lines per body) beyond which a message is refused (431)."""
FRAMING = frozenset(("content-length", "transfer-encoding", "host"))
"""Headers a `Connection` token must never name: dropping them would change how the next hop frames
the message or which site it is for (request smuggling)."""
_REASON_BY_STATUS = {400: "Bad Request", 431: "Request Header Fields Too Large", 501: "Not Implemented",
                     505: "HTTP Version Not Supported"}  # fmt: skip


def bare_line_break(data: bytes | bytearray) -> int:
    """The offset of the first CR not followed by LF or LF not preceded by CR, else -1 (a CR at the
    very end may still be followed by its LF)."""
    if data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n"):
        return -1
    i = 0
    n = len(data)
    while i < n:
        cr = data.find(b"\r", i)
        lf = data.find(b"\n", i)
        if lf >= 0 and (cr < 0 or lf < cr):
            return lf
        if cr < 0:
            return -1
        if cr + 1 >= n:
            return -1
        if data[cr + 1] != 0x0A:
            return cr
        i = cr + 2
    return -1


@dataclass(slots=True)
class Head:
    """A request or response head. `raw` is the head exactly as received (up to the blank line)."""

    start: str
    headers: list[tuple[str, str]]
    raw: bytes = b""
    method: str = ""
    target: str = ""
    version: str = "HTTP/1.1"
    status: int = 0
    reason: str = ""
    _length: int | None = None
    _chunked: bool = False
    _index: dict[str, str] | None = None
    """Lower-case name -> value (repeats joined with ', '), built once on first lookup."""

    def index(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for key, value in self.headers:
                lowered = key.lower()
                index[lowered] = f"{index[lowered]}, {value}" if lowered in index else value
            self._index = index
        return index

    def get(self, name: str, default: str | None = None) -> str | None:
        """A header's value (repeated headers joined with ', '), names case-insensitive."""
        return self.index().get(name.lower(), default)

    def values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]

    def tokens(self, name: str) -> set[str]:
        """Comma-separated tokens of a header, lower-cased (`Connection: keep-alive, Upgrade`)."""
        value = self.get(name)
        if not value:
            return set()
        return {t.strip().lower() for t in value.split(",") if t.strip()}

    def mapping(self) -> HeaderMap:
        """Headers as a dict with lower-case names and case-insensitive lookups (repeated names joined
        with ', '), for the kind codecs."""
        return HeaderMap(self.index())

    @property
    def chunked(self) -> bool:
        """Transfer-Encoding ends in chunked (read once, when the head was parsed)."""
        return self._chunked

    @property
    def content_length(self) -> int | None:
        """The Content-Length value, None when absent (read once, when the head was parsed)."""
        return self._length

    def _framing(self, request: bool) -> None:
        """How the body is delimited (RFC 9112 section 6), refusing every ambiguity: two lengths, a
        length and a transfer coding, a length that is not plain ASCII digits, a coding other than
        chunked last, a `Connection` header naming a framing header or Host."""
        lengths: list[str] = []
        codings: list[str] = []
        hosts = 0
        index: dict[str, str] = {}
        for key, value in self.headers:
            lowered = key.lower()
            index[lowered] = f"{index[lowered]}, {value}" if lowered in index else value
            if lowered == "content-length":
                lengths.append(value)
            elif lowered == "transfer-encoding":
                codings.append(value)
            elif lowered == "host":
                hosts += 1
        self._index = index
        if len(lengths) > 1:
            raise HttpError(f"more than one Content-Length header ({', '.join(repr(v) for v in lengths)})")
        if lengths:
            if not _LENGTH.fullmatch(lengths[0].encode("latin-1")):
                raise HttpError(f"bad Content-Length {lengths[0]!r} (expected ASCII digits only)")
            self._length = int(lengths[0])
        if codings:
            if lengths:
                raise HttpError("both Content-Length and Transfer-Encoding (ambiguous framing)")
            if len(codings) > 1:
                raise HttpError(f"more than one Transfer-Encoding header ({', '.join(map(repr, codings))})")
            items = [t.strip() for t in codings[0].split(",")]
            if not all(_TOKEN_ONLY.fullmatch(t.encode("latin-1")) for t in items):
                raise HttpError(f"bad Transfer-Encoding {codings[0]!r}")
            lowered_items = [t.lower() for t in items]
            if lowered_items[-1] != "chunked" or lowered_items.count("chunked") > 1:
                raise HttpError(
                    f"unsupported Transfer-Encoding {codings[0]!r} (chunked must come last, once)", 501
                )
            if request and len(items) > 1:
                raise HttpError(f"unsupported Transfer-Encoding {codings[0]!r} (only chunked)", 501)
            if self.version == "HTTP/1.0":
                raise HttpError("Transfer-Encoding in an HTTP/1.0 message")
            self._chunked = True
        connection = index.get("connection")
        if connection is not None:
            names = [t.strip() for t in connection.split(",")]
            for name in names:
                if name and not _TOKEN_ONLY.fullmatch(name.encode("latin-1")):
                    raise HttpError(f"bad Connection token {name!r}")
                if name.lower() in FRAMING:
                    raise HttpError(
                        f"Connection header names {name!r} (a framing header must not be dropped)"
                    )
        if request:
            if hosts > 1:
                raise HttpError("more than one Host header")
            if not hosts and self.version == "HTTP/1.1":
                raise HttpError("HTTP/1.1 request without a Host header")

    def keep_alive(self) -> bool:
        """Whether the sender of this head expects the connection to stay open after the message."""
        tokens = self.tokens("Connection")
        if "close" in tokens:
            return False
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return True


def _fields(lines: list[bytes], first: int) -> list[tuple[str, str]]:
    """Header (or trailer) lines as (name, value); refuses obs-fold and anything not a field line."""
    if len(lines) > MAX_FIELDS:
        raise HttpError(f"more than {MAX_FIELDS} header lines", 431)
    if _FIELD_BLOCK.fullmatch(b"\r\n".join(lines)) is not None:  # the usual case: one regex for all
        return [
            (name.decode("ascii"), value.strip(b" \t").decode("latin-1"))
            for name, _, value in (line.partition(b":") for line in lines)
        ]
    headers: list[tuple[str, str]] = []
    match = _FIELD_LINE.fullmatch
    for number, line in enumerate(lines, start=first):
        m = match(line)
        if m is None:
            if line[:1] in (b" ", b"\t"):
                raise HttpError(f"header line {number} is an obsolete folded continuation: {line[:40]!r}")
            raise HttpError(f"header line {number} is not 'Name: value': {_show(line)}")
        headers.append((m.group(1).decode("ascii"), m.group(2).strip(b" \t").decode("latin-1")))
    return headers


def _show(line: bytes) -> str:
    """A bad line for an error message: its start, control characters visible."""
    text = repr(line[:60])
    bad = next((c for c in line if c < 0x20 and c != 0x09 or c == 0x7F), None)
    return text if bad is None else f"{text} (control character 0x{bad:02x})"


def parse_head(raw: bytes, *, request: bool) -> Head:
    """Parse a head (start line + header lines, without the final blank line)."""
    status = 400 if request else 502
    try:
        return _parse_head(raw, request)
    except HttpError as exc:
        raise HttpError(str(exc), exc.status if request else status) from None


def _parse_head(raw: bytes, request: bool) -> Head:
    where = bare_line_break(raw)
    if where >= 0:
        what = "CR without LF" if raw[where] == 0x0D else "LF without CR"
        raise HttpError(f"bare line break in the head: {what} at byte {where}")
    lines = raw.split(b"\r\n")
    start_line = lines[0]
    headers = _fields(lines[1:], 2)
    start = start_line.decode("latin-1")
    head = Head(start=start, headers=headers, raw=raw)
    if request:
        m = _REQUEST_LINE.fullmatch(start_line)
        if m is None:
            raise HttpError(f"request line is not 'METHOD TARGET HTTP/1.x': {_show(start_line)}")
        if m.group(3) != b"1" or m.group(4) not in (b"0", b"1"):
            raise HttpError(f"HTTP version {start.rpartition(' ')[2]!r} not supported (HTTP/1.0 or 1.1)", 505)
        head.method = m.group(1).decode("ascii")
        if head.method not in METHODS:
            raise HttpError(f"method {head.method!r} not supported (one of {', '.join(METHODS)})", 501)
        if _TARGET.fullmatch(m.group(2)) is None or (m.group(2) == b"*" and head.method != "OPTIONS"):
            raise HttpError(
                "request target is not a path ('/...'), an absolute URL or '*' for OPTIONS: "
                + _show(m.group(2))
            )
        head.target = m.group(2).decode("ascii")
        head.version = "HTTP/1." + chr(m.group(4)[0])
    else:
        m = _STATUS_LINE.fullmatch(start_line)
        if m is None or m.group(1) != b"1":
            raise HttpError(f"status line is not 'HTTP/1.x CODE REASON': {_show(start_line)}", 502)
        head.version = f"HTTP/1.{chr(m.group(2)[0])}"
        head.status = int(m.group(3))
        head.reason = (m.group(4) or b"").decode("latin-1")
    head._framing(request)
    return head


def reason_for(status: int) -> str:
    return _REASON_BY_STATUS.get(status, "Bad Request")


def build_head(start: str, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [start, *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def forward_headers(head: Head, *, drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The end-to-end headers of `head` in order: hop-by-hop ones, those `Connection` names, and `drop`
    (lower-case names) removed."""
    index = head.index()
    gone = HOP_BY_HOP | head.tokens("Connection") | set(drop)
    if not any(name in index for name in gone):
        return list(head.headers)  # the common case: nothing to drop
    return [(k, v) for k, v in head.headers if k.lower() not in gone]


@dataclass(slots=True)
class Body:
    raw: bytes
    """Wire bytes to forward (chunk framing included)."""
    data: bytes
    """Decoded payload bytes in this piece."""


@dataclass(slots=True)
class End:
    raw: bytes = b""
    """Trailing wire bytes (the last chunk and trailers) not yet given in a Body."""


@dataclass(slots=True)
class Interim:
    """A 1xx response before the final one (e.g. 100 Continue); `raw` is its whole head."""

    head: Head


@dataclass(slots=True)
class Broken:
    problem: str
    status: int = 400


Event = Head | Body | End | Interim | Broken


@dataclass(slots=True)
class MessageReader:
    """Splits a byte stream into HTTP messages. `request=False` reads responses; set `request_method`
    before each response so a reply to HEAD is known to have no body.

    After `Broken` the reader stops: the connection cannot be trusted to find the next message.
    """

    request: bool = True
    max_head: int = MAX_HEAD_BYTES
    request_method: str = "GET"
    _buf: bytearray = field(default_factory=bytearray)
    _state: str = "head"
    _remaining: int = 0
    _broken: bool = False
    _trailers: int = 0
    _checked: int = 0
    _last: bool = False
    """The request read last closes the connection: nothing may follow it."""
    """How far an unfinished request head has been found well-formed (whole lines)."""

    @property
    def idle(self) -> bool:
        """Between messages with nothing buffered."""
        return self._state == "head" and not self._buf

    @property
    def in_body_until_close(self) -> bool:
        return self._state == "eof"

    def feed(self, data: bytes) -> list[Event]:
        if self._broken:
            return []
        if data:
            self._buf += data
        events: list[Event] = []
        while not self._broken:
            state = self._state
            if state == "head":
                if self._last and self._buf:
                    self._fail(events, "data after a request that closes the connection")
                    break
                if not self._head(events):
                    break
            elif state == "length":
                if not self._buf:
                    break
                n = min(self._remaining, len(self._buf))
                piece = bytes(self._buf[:n])
                del self._buf[:n]
                self._remaining -= n
                events.append(Body(piece, piece))
                if not self._remaining:
                    self._state = "head"
                    events.append(End())
            elif state == "eof":
                if self._buf:
                    piece = bytes(self._buf)
                    self._buf.clear()
                    events.append(Body(piece, piece))
                break
            elif not self._chunk(events):
                break
        return events

    def close(self) -> list[Event]:
        """The peer closed: ends a close-delimited body, or reports what was cut short."""
        if self._broken:
            return []
        if self._state == "eof":
            self._state = "head"
            return [End()]
        if self._state == "head" and not self._buf:
            return []
        self._broken = True
        where = "head" if self._state == "head" else "body"
        return [Broken(f"connection closed in the middle of the message {where}", 502)]

    def _fail(self, events: list[Event], problem: str, status: int = 400) -> bool:
        self._broken = True
        events.append(Broken(problem, status if self.request else 502))
        return False

    def _head(self, events: list[Event]) -> bool:
        buf = self._buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.max_head:
                return self._fail(events, f"head longer than {self.max_head} bytes", 431)
            if self.request:  # refused at once, not after max_head bytes or a timeout
                problem = self._unfinished_head_problem()
                if problem is not None:
                    return self._fail(events, problem)
            return False
        if end > self.max_head:
            return self._fail(events, f"head longer than {self.max_head} bytes", 431)
        raw = bytes(buf[:end])
        del buf[: end + 4]
        self._checked = 0
        try:
            head = parse_head(raw, request=self.request)
        except HttpError as exc:
            return self._fail(events, str(exc), exc.status)
        if not self.request and 100 <= head.status < 200 and head.status != 101:
            events.append(Interim(head))
            return True
        events.append(head)
        if self.request:
            self._last = not head.keep_alive()
            if head.chunked:
                self._state = "chunk-size"
            else:
                self._remaining = head.content_length or 0
                self._state = "length" if self._remaining else "head"
        else:
            no_body = self.request_method == "HEAD" or head.status in (204, 304) or head.status < 200
            if no_body:
                self._state = "head"
            elif head.chunked:
                self._state = "chunk-size"
            elif head.content_length is not None:
                self._remaining = head.content_length
                self._state = "length" if self._remaining else "head"
            else:
                self._state = "eof"
        if self._state == "head":
            events.append(End())
        return True

    def _unfinished_head_problem(self) -> str | None:
        """What is already wrong with the lines of a request head still arriving, or None."""
        buf = self._buf
        while True:
            start = self._checked
            eol = buf.find(b"\r\n", start)
            line = bytes(buf[start:] if eol < 0 else buf[start:eol])
            where = bare_line_break(line)
            if where >= 0 and not (eol < 0 and where == len(line) - 1 and line[-1] == 0x0D):
                what = "CR without LF" if line[where] == 0x0D else "LF without CR"
                return f"bare line break in the head: {what} at byte {start + where}"
            first = start == 0
            if eol < 0 and line[-1:] == b"\r":
                line = line[:-1]  # the line's end has come (its LF has not): it must be whole already
                eol = len(buf)
            if eol < 0:
                prefix = (_REQUEST_LINE_START if first else _FIELD_LINE_START).match(line)
                if prefix is None or prefix.end() != len(line):
                    what = "request line" if first else "header line"
                    return f"{what} is not well-formed: {_show(line)}"
                if first:
                    method, space, _ = line.partition(b" ")
                    if not any(m == method or (not space and m.startswith(method)) for m in _METHOD_BYTES):
                        return f"request line does not start with a supported method: {_show(line)}"
                elif line[:15].lower() == b"content-length:" and not _CONTENT_LENGTH_START.fullmatch(line):
                    return f"Content-Length is not a number: {_show(line)}"
                return None
            try:
                if first:
                    _parse_head(line + b"\r\nHost: -", True)
                else:
                    _fields([line], 2)
            except HttpError as exc:
                return str(exc)
            if eol >= len(buf):
                return None  # checked whole; the next call starts at this line again
            self._checked = eol + 2

    def _chunk(self, events: list[Event]) -> bool:
        buf = self._buf
        state = self._state
        if state == "chunk-size":
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > 4096:
                    return self._fail(events, "chunk size line longer than 4096 bytes")
                if bare_line_break(buf) >= 0:
                    return self._fail(events, f"bad chunk size line {_show(bytes(buf[:40]))}")
                return False
            line = bytes(buf[:eol])
            m = _CHUNK_LINE.fullmatch(line)
            if m is None:
                return self._fail(events, f"bad chunk size line {_show(line)}")
            size = int(m.group(1), 16)
            if size == 0:
                self._state = "trailer"
                self._trailers = 0
                raw = bytes(buf[: eol + 2])
                del buf[: eol + 2]
                events.append(Body(raw, b""))
                return True
            # a whole chunk at once when it is here (the common case), else piece by piece
            if len(buf) >= eol + 2 + size + 2:
                total = eol + 2 + size + 2
                if buf[total - 2 : total] != b"\r\n":
                    return self._fail(events, "chunk data not followed by CRLF")
                raw = bytes(buf[:total])
                data = raw[eol + 2 : eol + 2 + size]
                del buf[:total]
                events.append(Body(raw, data))
                return True
            raw = bytes(buf[: eol + 2])
            del buf[: eol + 2]
            self._remaining = size
            self._state = "chunk-data"
            events.append(Body(raw, b""))
            return True
        if state == "chunk-data":
            if not buf:
                return False
            n = min(self._remaining, len(buf))
            piece = bytes(buf[:n])
            del buf[:n]
            self._remaining -= n
            events.append(Body(piece, piece))
            if not self._remaining:
                self._state = "chunk-crlf"
            return True
        if state == "chunk-crlf":
            if len(buf) < 2:
                return False
            if buf[:2] != b"\r\n":
                return self._fail(events, "chunk data not followed by CRLF")
            del buf[:2]
            events.append(Body(b"\r\n", b""))
            self._state = "chunk-size"
            return True
        # trailer section: lines until an empty one, each a field line
        eol = buf.find(b"\r\n")
        if eol < 0:
            if len(buf) > self.max_head:
                return self._fail(events, "trailer section too long")
            if bare_line_break(buf) >= 0:
                return self._fail(events, "bare line break in the trailer section")
            return False
        raw = bytes(buf[: eol + 2])
        del buf[: eol + 2]
        if eol == 0:
            self._state = "head"
            events.append(End(raw))
            return True
        self._trailers += 1
        try:
            _fields([raw[:-2]], self._trailers)
        except HttpError as exc:
            return self._fail(events, f"trailer: {exc}")
        if self._trailers > MAX_FIELDS:
            return self._fail(events, f"more than {MAX_FIELDS} trailer lines", 431)
        events.append(Body(raw, b""))
        return True


@dataclass(slots=True)
class Message:
    """A whole stored message (head + decoded body), as read back from a capture."""

    head: Head
    body: bytes
    complete: bool
    """False when the stored bytes stop before the message's end (capture truncated)."""


def read_message(data: bytes, *, request: bool, request_method: str = "GET") -> Message:
    """Read one stored message (`head CRLF CRLF body`); raises HttpError when the head is unreadable."""
    reader = MessageReader(request=request, request_method=request_method)
    head: Head | None = None
    body = bytearray()
    complete = False
    for event in reader.feed(data) + reader.close():
        if isinstance(event, Head):
            if head is not None:
                break
            head = event
        elif isinstance(event, Body):
            body += event.data
        elif isinstance(event, End):
            complete = True
            break
        elif isinstance(event, Broken):
            if head is None:
                raise HttpError(event.problem, event.status)
            break
    if head is None:
        raise HttpError("no complete HTTP head in the stored bytes")
    return Message(head, bytes(body), complete)
