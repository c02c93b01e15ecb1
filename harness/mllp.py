"""MLLP framing, sans-IO: ``0x0B payload 0x1C 0x0D``.

The decoder is fed whatever chunks the network delivers and returns typed events. Peers in the
field get framing wrong (stray CR/LF between frames, a missing start block, an end block without
its CR, a frame cut off by a closed connection), so every irregularity is an event, never an
exception: one bad frame must not take a connection down. Memory stays bounded by ``max_frame``
even while an oversized frame streams past.

A problem event that concerns a frame which is still delivered (``MissingStartBlock``,
``EndBlockWithoutCR``) comes immediately before that ``Frame``.
"""

from __future__ import annotations

from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CR = b"\r"
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
HEAD_SIZE = 256
"""How many leading bytes of skipped data an event keeps, enough to show an MSH and its control id."""

_WHITESPACE = b" \t\r\n"
_CR = 0x0D


def encode(payload: bytes) -> bytes:
    """Frame one message. A payload holding a start or end block cannot be framed unambiguously."""
    if START_BLOCK in payload or END_BLOCK in payload:
        where = min(i for i in (payload.find(START_BLOCK), payload.find(END_BLOCK)) if i >= 0)
        raise ValueError(f"payload holds an MLLP block character (0x0B or 0x1C) at byte {where}")
    return START_BLOCK + payload + END_BLOCK + CR


@dataclass(frozen=True, slots=True)
class Event:
    """Something the decoder found; ``offset`` is the position in the stream since the last close()."""

    offset: int


@dataclass(frozen=True, slots=True)
class Frame(Event):
    """A complete message payload (without the block characters)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Problem(Event):
    """A framing irregularity."""

    def describe(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Junk(Problem):
    """Bytes outside any frame that did not form one (``head`` keeps the first bytes)."""

    size: int
    head: bytes

    @property
    def whitespace(self) -> bool:
        return self.size == len(self.head) and not self.head.strip(_WHITESPACE)

    def describe(self) -> str:
        return f"{self.size} byte(s) outside any frame at offset {self.offset}: {self.head[:32]!r}"


@dataclass(frozen=True, slots=True)
class MissingStartBlock(Problem):
    """A frame ended by an end block but never opened by 0x0B; its payload follows as a Frame."""

    def describe(self) -> str:
        return f"frame at offset {self.offset} has no start block (0x0B)"


@dataclass(frozen=True, slots=True)
class EndBlockWithoutCR(Problem):
    """The end block at ``offset`` was followed by ``got`` (None: the stream closed) instead of CR."""

    got: int | None

    def describe(self) -> str:
        after = "the end of the stream" if self.got is None else f"byte 0x{self.got:02X}"
        return f"end block (0x1C) at offset {self.offset} is followed by {after}, not CR (0x0D)"


@dataclass(frozen=True, slots=True)
class FrameTooLarge(Problem):
    """A frame over the limit, skipped; ``complete`` is False when it never ended (cut off)."""

    size: int
    limit: int
    head: bytes
    complete: bool

    def describe(self) -> str:
        state = "skipped" if self.complete else "cut off and skipped"
        return (
            f"frame at offset {self.offset} is larger than the {self.limit}-byte limit "
            f"({self.size} bytes seen), {state}"
        )


@dataclass(frozen=True, slots=True)
class Truncated(Problem):
    """A frame that never got its end block: the stream closed, or a new start block came first."""

    payload: bytes
    reason: str  # "closed" or "new start block"

    def describe(self) -> str:
        what = "the stream closed" if self.reason == "closed" else "a new start block (0x0B) arrived"
        return f"frame at offset {self.offset} is truncated after {len(self.payload)} byte(s): {what}"


_IDLE, _FRAME, _AFTER_END = 0, 1, 2


class MLLPDecoder:
    """Incremental MLLP decoder: ``feed(chunk)`` and ``close()`` return lists of events; never raise."""

    __slots__ = (
        "max_frame",
        "_state",
        "_buf",
        "_size",
        "_head",
        "_skipping",
        "_headless",
        "_frame_offset",
        "_end_offset",
        "_stream_pos",
        "_junk_offset",
        "_junk_size",
        "_junk_head",
    )

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError(f"max_frame must be at least 1, got {max_frame}")
        self.max_frame = max_frame
        self._stream_pos = 0
        self._reset()

    def _reset(self) -> None:
        self._state = _IDLE
        self._buf = bytearray()
        self._size = 0
        self._head = b""
        self._skipping = False
        self._headless = False
        self._frame_offset = 0
        self._end_offset = 0
        self._junk_offset = 0
        self._junk_size = 0
        self._junk_head = b""

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has been seen and its end has not."""
        return self._state != _IDLE

    def feed(self, data: bytes) -> list[Event]:
        if not isinstance(data, bytes):
            data = bytes(data)
        n = len(data)
        if (
            self._state == _IDLE
            and n > 2
            and data[0] == 0x0B
            and data[-1] == _CR
            and not self._junk_size
            and data.find(END_BLOCK, 1) == n - 2
            and data.find(START_BLOCK, 1) < 0
            and n - 3 <= self.max_frame
        ):
            # the usual chunk of a stop-and-wait peer: exactly one clean frame, nothing pending
            base = self._stream_pos
            self._stream_pos = base + n
            return [Frame(base, data[1:-2])]
        return self._scan(data)

    def _scan(self, data: bytes) -> list[Event]:
        """Any chunk: the state machine (feed's general case)."""
        events: list[Event] = []
        n = len(data)
        base = self._stream_pos
        self._stream_pos += n
        pos = 0
        while pos < n:
            state = self._state
            if state == _FRAME:
                end = data.find(END_BLOCK, pos)
                start = data.find(START_BLOCK, pos, n if end < 0 else end)
                if (
                    start < 0
                    and 0 <= end < n - 1
                    and data[end + 1] == _CR
                    and not self._headless
                    and not self._skipping
                    and self._size + end - pos <= self.max_frame
                ):
                    # fast path, the usual case: the frame ends cleanly within this chunk
                    if self._buf:
                        self._buf += memoryview(data)[pos:end]
                        payload = bytes(self._buf)
                        self._buf = bytearray()
                    else:
                        payload = data[pos:end]
                    events.append(Frame(self._frame_offset, payload))
                    self._state = _IDLE
                    pos = end + 2
                    if pos < n and data[pos] == 0x0B and not self._junk_size:
                        self._state = _FRAME
                        self._frame_offset = base + pos
                        self._size = 0
                        pos += 1
                    continue
                if start >= 0:
                    self._append(data, pos, start)
                    self._abandon(events, "new start block")
                    pos = start
                elif end < 0:
                    self._append(data, pos, n)
                    pos = n
                else:
                    self._append(data, pos, end)
                    self._end_offset = base + end
                    self._state = _AFTER_END
                    pos = end + 1
            elif state == _AFTER_END:
                if data[pos] == _CR:
                    self._finish(events, None, True)
                    pos += 1
                else:
                    self._finish(events, data[pos], False)
            else:
                if data[pos] == 0x0B:
                    self._flush_junk(events)
                    self._begin(base + pos, headless=False)
                    pos += 1
                    continue
                nxt = data.find(START_BLOCK, pos)
                stop = n if nxt < 0 else nxt
                region = data[pos:stop]
                rest = region.lstrip(_WHITESPACE)
                ws = len(region) - len(rest)
                if ws:
                    self._add_junk(base + pos, region[:ws])
                    pos += ws
                if rest:
                    # pending whitespace stays pending: it merges with this run if the run is junk too
                    self._begin(base + pos, headless=True)
        return events

    def close(self) -> list[Event]:
        """End of stream: report whatever was pending, then start afresh (offsets restart at 0)."""
        events: list[Event] = []
        if self._state == _AFTER_END:
            self._finish(events, None, False, closed=True)
        elif self._state == _FRAME:
            self._abandon(events, "closed")
        self._flush_junk(events)
        self._stream_pos = 0
        self._reset()
        return events

    # -- internals -------------------------------------------------------------------------

    def _begin(self, offset: int, *, headless: bool) -> None:
        self._state = _FRAME
        self._headless = headless
        self._frame_offset = offset
        self._size = 0
        self._skipping = False
        self._head = b""

    def _append(self, data: bytes, start: int, stop: int) -> None:
        count = stop - start
        if not count:
            return
        self._size += count
        if self._skipping:
            if len(self._head) < HEAD_SIZE:
                self._head += data[start : min(stop, start + HEAD_SIZE - len(self._head))]
            return
        if self._size > self.max_frame:
            have = len(self._buf)
            need = max(0, HEAD_SIZE - have)
            self._head = bytes(self._buf[:HEAD_SIZE]) + data[start : start + need]
            self._buf = bytearray()
            self._skipping = True
            return
        self._buf += memoryview(data)[start:stop]

    def _take_payload(self) -> bytes:
        payload = bytes(self._buf)
        self._buf = bytearray()
        return payload

    def _finish(self, events: list[Event], got: int | None, cr: bool, *, closed: bool = False) -> None:
        """The end block was seen; emit the frame (or its problem) and go idle."""
        self._state = _IDLE
        if self._headless:
            self._flush_junk(events)
        if self._skipping:
            events.append(
                FrameTooLarge(self._frame_offset, self._size, self.max_frame, self._head, True)
            )
            self._skipping = False
            return
        payload = self._take_payload()
        if self._headless and not payload:
            # a stray end block (e.g. a doubled 0x1C 0x0D) is not a frame
            events.append(Junk(self._end_offset, 2 if cr else 1, END_BLOCK + (CR if cr else b"")))
            return
        if self._headless:
            events.append(MissingStartBlock(self._frame_offset))
        if not cr:
            events.append(EndBlockWithoutCR(self._end_offset, got))
        events.append(Frame(self._frame_offset, payload))

    def _abandon(self, events: list[Event], reason: str) -> None:
        """The frame will never end: report what was seen of it and go idle."""
        self._state = _IDLE
        if self._headless:
            head = self._head if self._skipping else bytes(self._buf[:HEAD_SIZE])
            if self._junk_size and self._junk_offset + self._junk_size == self._frame_offset:
                head = (self._junk_head + head)[:HEAD_SIZE]
                events.append(Junk(self._junk_offset, self._junk_size + self._size, head))
                self._junk_size = 0
                self._junk_head = b""
            else:
                self._flush_junk(events)
                events.append(Junk(self._frame_offset, self._size, head))
        elif self._skipping:
            events.append(
                FrameTooLarge(self._frame_offset, self._size, self.max_frame, self._head, False)
            )
        else:
            events.append(Truncated(self._frame_offset, bytes(self._buf), reason))
        self._buf = bytearray()
        self._skipping = False

    def _add_junk(self, offset: int, chunk: bytes) -> None:
        if not self._junk_size:
            self._junk_offset = offset
        if len(self._junk_head) < HEAD_SIZE:
            self._junk_head += chunk[: HEAD_SIZE - len(self._junk_head)]
        self._junk_size += len(chunk)

    def _flush_junk(self, events: list[Event]) -> None:
        if self._junk_size:
            events.append(Junk(self._junk_offset, self._junk_size, self._junk_head))
            self._junk_size = 0
            self._junk_head = b""
