"""HL7 v2 messages from files and folders.

Files from the field hold one message or many, end segments with CR, LF or CRLF, wrap messages in
FHS/BHS ... BTS/FTS batch envelopes, carry blank lines, a UTF-8 byte-order mark, or MLLP block
characters from a capture. Every message comes out with CR as its segment separator and every other
byte exactly as in the file (splitting on CR/LF bytes is safe in GBK and GB18030, whose trail bytes
never take those values). Batch header segments are kept beside the messages they enclose.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
_MLLP_BYTES = re.compile(rb"[\x0b\x1c]")
_BLANK = b" \t\x1a"  # 0x1A: the DOS end-of-file mark some exporters append


class HL7FileError(ValueError):
    """A file that does not hold HL7 v2 messages as expected; says which file and where."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Batch:
    """The FHS and BHS header segments enclosing a message (None where the file had none)."""

    file_header: bytes | None
    batch_header: bytes | None


@dataclass(frozen=True, slots=True)
class FileMessage:
    source: str
    index: int  # 0-based position within its source file
    payload: bytes  # segments joined by CR, with a trailing CR
    line: int = 1  # 1-based line of its MSH in the file
    batch: Batch | None = None


def split_messages(data: bytes, source: str = "<bytes>") -> list[FileMessage]:
    """Split the content of one file into messages; raises HL7FileError when there is no MSH."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if _MLLP_BYTES.search(data):
        # an MLLP capture: the block characters only delimit, so they act as line breaks
        data = data.replace(b"\x0b", b"\r").replace(b"\x1c", b"\r")
    messages: list[FileMessage] = []
    current: list[bytes] = []
    start_line = 0
    file_header: bytes | None = None
    batch_header: bytes | None = None
    in_batch = False

    def flush() -> None:
        if current:
            batch = Batch(file_header, batch_header) if in_batch else None
            payload = b"\r".join(current) + b"\r"
            messages.append(FileMessage(source, len(messages), payload, start_line, batch))
            current.clear()

    for number, segment in enumerate(_LINE_BREAK.split(data), start=1):
        if not segment.strip(_BLANK + b"\r\n"):
            continue
        tag = segment[:3]
        if tag == b"MSH" and len(segment) > 3:
            flush()
            current.append(segment)
            start_line = number
        elif tag in (b"FHS", b"BHS"):
            flush()
            in_batch = True
            if tag == b"FHS":
                file_header, batch_header = segment, None
            else:
                batch_header = segment
        elif tag in (b"BTS", b"FTS"):
            flush()
            batch_header = None
            if tag == b"FTS":
                in_batch = False
                file_header = None
        elif current:
            current.append(segment)
        else:
            raise HL7FileError(
                source,
                f"segment {segment[:3]!r} before any MSH segment (a message must start with MSH)",
                number,
            )
    flush()
    if not messages:
        raise HL7FileError(source, "no HL7 v2 message found (no line starts with MSH)")
    return messages


def read_messages(path: str | Path) -> list[FileMessage]:
    """All messages in one file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HL7FileError(str(path), f"cannot read: {exc.strerror or exc}") from None
    return split_messages(data, str(path))


_NOT_MESSAGES = re.compile(
    r"^(readme|license|licence|notice|copying)(\..*)?$|\.(md|rst|json|xml|ya?ml|py[co]?|csv|html?)$", re.I
)


def _message_file(name: str) -> bool:
    """Inside a folder, skip hidden files and documentation kept beside the messages."""
    return not name.startswith(".") and not _NOT_MESSAGES.search(name)


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The files named, and the message files under the folders named, walked in sorted order.

    A file named explicitly is always read; inside folders, hidden files and documentation
    (README, LICENSE, *.md, *.json, *.xml, ...) and Python's __pycache__ are skipped.
    """
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            found: list[Path] = []
            for root, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
                found.extend(Path(root) / name for name in files if _message_file(name))
            yield from sorted(found, key=lambda p: p.relative_to(path).parts)
        elif path.exists():
            yield path
        else:
            raise HL7FileError(str(path), "no such file or folder")


def iter_messages(
    paths: Iterable[str | Path], on_error: Callable[[HL7FileError], None] | None = None
) -> Iterator[FileMessage]:
    """Every message in the files and folders given, in order.

    A bad file raises HL7FileError, or, with ``on_error``, is reported to it and skipped.
    """
    for entry in paths:
        try:
            files = list(iter_files([entry]))
        except HL7FileError as exc:  # the path does not exist
            if on_error is None:
                raise
            on_error(exc)
            continue
        for path in files:
            try:
                messages = read_messages(path)
            except HL7FileError as exc:
                if on_error is None:
                    raise
                on_error(exc)
                continue
            yield from messages
