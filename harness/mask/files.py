"""Files and folders masked into another folder: HL7 v2 files (one message or many, batches, MLLP
frames), JSON (FHIR, medical insurance, CDC) and XML (SOAP, HL7 v3, CDA).

An HL7 v2 file keeps its layout: FHS/BHS/BTS/FTS lines, blank lines, segment terminators and the
byte-order mark stay as they were, each message is masked in its own charset, and an MLLP capture stays
a stream of MLLP frames. Each message is its own masking unit; a JSON or XML file is one unit. A file
whose content cannot be masked is not written at all (never copied unmasked): the result says why.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.mask.content import detect
from harness.mask.masker import Masker, MaskError

_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")
_BATCH = (b"FHS", b"BHS", b"BTS", b"FTS")
_BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class FileResult:
    source: str
    target: str | None
    kind: str | None = None
    messages: int = 0
    error: str | None = None
    """Why the file was not written (it could not be masked)."""

    def to_json(self) -> dict:
        return {
            "source": self.source,
            "target": self.target,
            "kind": self.kind,
            "messages": self.messages,
            "error": self.error,
        }


def plan(inputs: Iterable[str | Path], out: Path) -> list[tuple[Path, Path]]:
    """(source, target) for every file under the inputs; folders keep their layout under `out`. Hidden
    files and folders are skipped. Raises MaskError for a missing input, a target that exists or two
    sources with one target, before anything is written."""
    pairs: list[tuple[Path, Path]] = []
    inputs = [Path(p) for p in inputs]
    several = len(inputs) > 1
    for source in inputs:
        if source.is_dir():
            base = out / source.resolve().name if several else out
            for root, dirs, files in os.walk(source):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        path = Path(root) / name
                        pairs.append((path, base / path.relative_to(source)))
        elif source.is_file():
            pairs.append((source, out / source.name))
        else:
            raise MaskError(f"{source}: no such file or folder")
    seen: dict[Path, Path] = {}
    resolved_out = out.resolve()
    for source, target in pairs:
        if target.exists():
            raise MaskError(f"{target} exists: masked files are never written over existing ones")
        if target.resolve() in seen:
            raise MaskError(f"{source} and {seen[target.resolve()]} would both be written to {target}")
        if source.resolve().is_relative_to(resolved_out):
            raise MaskError(f"{source} is inside the output folder {out}")
        seen[target.resolve()] = source
    return pairs


def mask_files(
    masker: Masker, pairs: list[tuple[Path, Path]], *, kind: str | None = None, charset: str | None = None
) -> Iterator[FileResult]:
    for source, target in pairs:
        result = FileResult(str(source), str(target))
        try:
            data = source.read_bytes()
            result.kind = kind or detect(data)
            masked, result.messages = mask_bytes(masker, data, result.kind, charset=charset)
        except MaskError as exc:
            result.error, result.target = str(exc), None
        except OSError as exc:
            result.error, result.target = f"cannot read: {exc.strerror or exc}", None
        else:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "xb") as handle:
                    handle.write(masked)
            except OSError as exc:
                result.error, result.target = f"cannot write {target}: {exc.strerror or exc}", None
        yield result


def mask_bytes(masker: Masker, data: bytes, kind: str, *, charset: str | None = None) -> tuple[bytes, int]:
    """The masked content of one file and how many messages (documents) it held."""
    if kind == "hl7v2":
        if b"\x0b" in data:
            return _mllp(masker, data, charset)
        return _hl7_file(masker, data, charset)
    masked = masker.content(data, kind, charset=charset)
    return (masked if isinstance(masked, bytes) else masked.encode("utf-8")), 1


def _mask_message(masker: Masker, payload: bytes, charset: str | None) -> bytes:
    masked = masker.content(payload, "hl7v2", charset=charset)
    return masked if isinstance(masked, bytes) else masked.encode("utf-8")


def _hl7_file(masker: Masker, data: bytes, charset: str | None) -> tuple[bytes, int]:
    bom = _BOM if data.startswith(_BOM) else b""
    out = [bom]
    message: list[bytes] = []
    start_line = 0
    count = 0

    def flush() -> None:
        nonlocal count
        if message:
            try:
                out.append(_mask_message(masker, b"".join(message), charset))
            except MaskError as exc:
                raise MaskError(f"line {start_line}: {exc}") from None
            count += 1
            message.clear()

    for number, m in enumerate(_LINE.finditer(data[len(bom) :]), start=1):
        line = m.group(0)
        tag = line[:3]
        if tag == b"MSH":
            flush()
            start_line = number
            message.append(line)
        elif tag in _BATCH:
            flush()
            out.append(line)
        elif message:
            message.append(line)
        elif line.strip(b" \t\r\n\x1a"):
            raise MaskError(f"line {number}: segment {line[:3]!r} before any MSH segment")
        else:
            out.append(line)
    flush()
    if not count:
        raise MaskError("no HL7 v2 message found (no line starts with MSH)")
    return b"".join(out), count


def _mllp(masker: Masker, data: bytes, charset: str | None) -> tuple[bytes, int]:
    from harness.mllp import Frame, Junk, MLLPDecoder, Problem, encode

    decoder = MLLPDecoder()
    out: list[bytes] = []
    count = 0
    for event in decoder.feed(data) + decoder.close():
        if isinstance(event, Frame):
            try:
                out.append(encode(_mask_message(masker, event.payload, charset)))
            except MaskError as exc:
                raise MaskError(f"frame at byte {event.offset}: {exc}") from None
            count += 1
        elif isinstance(event, Junk) and event.whitespace:
            continue
        elif isinstance(event, Problem):
            raise MaskError(f"MLLP framing: {event.describe()}")
    if not count:
        raise MaskError("no MLLP frame found")
    return b"".join(out), count
