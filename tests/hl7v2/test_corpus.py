"""The public corpus (data nobody here wrote): every message round-trips and yields metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.hl7v2.ack import build_ack
from harness.hl7v2.files import iter_messages
from harness.hl7v2.message import HL7ParseError, Message
from harness.hl7v2.meta import extract

#: Files the corpus marks as deliberately broken at the delimiter level, with the error we expect.
BROKEN = {"Lyme_WithBadDelimiters.txt": "repeat a delimiter"}


@pytest.fixture(scope="module")
def corpus_messages(corpus_dir: Path):
    skipped: list[str] = []
    found = list(iter_messages([corpus_dir / "hl7v2"], on_error=lambda exc: skipped.append(str(exc))))
    # only the JSON wrappers in the CDC folder hold no HL7 v2 message of their own
    assert all(".txt" in s and '{' in s for s in skipped), skipped
    assert len(found) > 250
    return found


def test_every_message_round_trips(corpus_messages) -> None:
    parsed = 0
    for fm in corpus_messages:
        name = Path(fm.source).name
        if name in BROKEN:
            with pytest.raises(HL7ParseError, match=BROKEN[name]):
                Message.parse(fm.payload)
            continue
        m = Message.parse(fm.payload)
        assert m.encode() == fm.payload, fm.source
        tree = m.tokenize()
        assert len(tree) == len(m.segment_ids)
        assert str(m).encode(m.codec) == fm.payload
        parsed += 1
    assert parsed == len(corpus_messages) - len(BROKEN)


def test_every_message_yields_metadata(corpus_messages) -> None:
    for fm in corpus_messages:
        meta = extract(fm.payload)
        m_type, control = meta.message_type, meta.control_id
        assert m_type and control and meta.version, (fm.source, meta)
        if Path(fm.source).name in BROKEN:
            assert meta.problems
            continue
        assert meta.problems == (), (fm.source, meta.problems)
        m = Message.parse(fm.payload)
        assert (m_type, control) == (m.get("MSH-9.1"), m.get("MSH-10"))
        assert meta.trigger == (m.get("MSH-9.2") or None)
        assert meta.charset == m.codec


def test_raw_files_round_trip_with_their_own_line_ends(corpus_dir: Path) -> None:
    """Single-message files as stored (LF, CRLF, byte-order marks), not normalised to CR."""
    checked = 0
    for path in sorted((corpus_dir / "hl7v2").rglob("*")):
        if not path.is_file() or path.name in BROKEN:
            continue
        raw = path.read_bytes()
        if raw.count(b"MSH|") != 1 or not raw.lstrip(b"\xef\xbb\xbf").startswith(b"MSH|"):
            continue
        assert Message.parse(raw).encode() == raw, path
        checked += 1
    assert checked > 200


def test_an_ack_for_every_message(corpus_messages) -> None:
    for fm in corpus_messages:
        if Path(fm.source).name in BROKEN:
            continue
        ack = Message.parse(build_ack(fm.payload, "AE", text="checked"))
        assert ack.get("MSA-2") == Message.parse(fm.payload).get_raw("MSH-10")
