"""HTTP/1.1 message framing, sans-IO: where a request or response starts and ends, byte for byte.

The proxy forwards what it received, so the reader never re-encodes: each `Body` event carries the wire
bytes (`raw`, chunk framing included) to pass on, and the decoded payload (`data`) for capture, codecs
and fault rules. Heads keep their header names' case and order; only hop-by-hop headers (RFC 9110
section 7.6.1) are dropped when a head is rebuilt for the next hop. Used by the proxy, by capture
export/import and by the HTTP replay sender, so every tool reads a stored exchange the same way.
"""

from __future__ import annotations

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

    def _framing(self) -> None:
        length = te = None
        index: dict[str, str] = {}
        for key, value in self.headers:
            lowered = key.lower()
            index[lowered] = f"{index[lowered]}, {value}" if lowered in index else value
            if lowered == "content-length":
                if length is not None and length != value.strip():
                    raise HttpError(f"bad Content-Length {length!r}, {value.strip()!r}")
                length = value.strip()
            elif lowered == "transfer-encoding":
                te = value
        self._index = index
        if length is not None:
            if not length.isdigit():
                raise HttpError(f"bad Content-Length {length!r}")
            self._length = int(length)
        if te is not None:
            self._chunked = te.lower().rsplit(",", 1)[-1].strip() == "chunked"
            if not self._chunked:
                raise HttpError(f"unsupported Transfer-Encoding {te!r} (only chunked)", 501)

    def keep_alive(self) -> bool:
        """Whether the sender of this head expects the connection to stay open after the message."""
        tokens = self.tokens("Connection")
        if "close" in tokens:
            return False
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return True


def parse_head(raw: bytes, *, request: bool) -> Head:
    """Parse a head (start line + header lines, without the final blank line)."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise HttpError(str(exc)) from None
    lines = text.split("\r\n")
    start = lines[0]
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        if line[0] in " \t":
            raise HttpError(f"header line {number} is an obsolete folded continuation: {line[:40]!r}")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            raise HttpError(f"header line {number} is not 'Name: value': {line[:60]!r}")
        headers.append((name, value.strip()))
    head = Head(start=start, headers=headers, raw=raw)
    parts = start.split(" ", 2)
    if request:
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(f"request line is not 'METHOD TARGET HTTP/1.x': {start[:80]!r}")
        head.method, head.target, head.version = parts
        if not head.method.isalpha() or not head.target:
            raise HttpError(f"request line is not 'METHOD TARGET HTTP/1.x': {start[:80]!r}")
    else:
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"status line is not 'HTTP/1.x CODE REASON': {start[:80]!r}", 502)
        head.version, head.status = parts[0], int(parts[1])
        head.reason = parts[2] if len(parts) > 2 else ""
    try:
        head._framing()
    except HttpError as exc:
        raise HttpError(str(exc), exc.status if request else 502) from None
    return head


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
        while buf[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request line
            del buf[:2]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > self.max_head:
                return self._fail(events, f"head longer than {self.max_head} bytes", 431)
            return False
        if end > self.max_head:
            return self._fail(events, f"head longer than {self.max_head} bytes", 431)
        raw = bytes(buf[:end])
        del buf[: end + 4]
        try:
            head = parse_head(raw, request=self.request)
        except HttpError as exc:
            return self._fail(events, str(exc), exc.status)
        if not self.request and 100 <= head.status < 200 and head.status != 101:
            events.append(Interim(head))
            return True
        events.append(head)
        if self.request:
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

    def _chunk(self, events: list[Event]) -> bool:
        buf = self._buf
        state = self._state
        if state == "chunk-size":
            eol = buf.find(b"\r\n")
            if eol < 0:
                if len(buf) > 4096:
                    return self._fail(events, "chunk size line longer than 4096 bytes")
                return False
            line = bytes(buf[:eol])
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                return self._fail(events, f"bad chunk size {line[:20]!r}")
            if size < 0:
                return self._fail(events, f"bad chunk size {line[:20]!r}")
            if size == 0:
                self._state = "trailer"
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
        # trailer section: lines until an empty one
        eol = buf.find(b"\r\n")
        if eol < 0:
            if len(buf) > self.max_head:
                return self._fail(events, "trailer section too long")
            return False
        raw = bytes(buf[: eol + 2])
        del buf[: eol + 2]
        if eol == 0:
            self._state = "head"
            events.append(End(raw))
        else:
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
