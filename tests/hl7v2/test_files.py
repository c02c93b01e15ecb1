from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.hl7v2.files import HL7FileError, iter_files, iter_messages, read_messages, split_messages
from harness.mllp import encode

MSH1 = b"MSH|^~\\&|HIS|H1|HC|H1|20240101120000||ADT^A01|M1|P|2.5"
MSH2 = b"MSH|^~\\&|LIS|H1|HC|H1|20240101120100||ORU^R01|M2|P|2.5"
PID = b"PID|1||123^^^H1^MR||LI^SI "  # the trailing space is part of the field and must survive
OBX = b"OBX|1|NM|GLU||5.6|mmol/L"


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n"])
def test_segment_ends_become_cr(sep):
    data = sep.join([MSH1, PID, MSH2, OBX]) + sep
    msgs = split_messages(data, "f.hl7")
    assert [m.payload for m in msgs] == [MSH1 + b"\r" + PID + b"\r", MSH2 + b"\r" + OBX + b"\r"]
    assert [m.index for m in msgs] == [0, 1]
    assert [m.line for m in msgs] == [1, 3]
    assert all(m.source == "f.hl7" and m.batch is None for m in msgs)


def test_no_trailing_separator_and_blank_lines():
    data = b"\n\n" + MSH1 + b"\n" + PID + b"\n\n   \n" + MSH2 + b"\n" + OBX
    msgs = split_messages(data)
    assert [m.payload for m in msgs] == [MSH1 + b"\r" + PID + b"\r", MSH2 + b"\r" + OBX + b"\r"]
    assert msgs[1].line == 7


def test_every_other_byte_is_kept_including_gbk():
    # 亅 in GBK is 0x81 0x7C: its trail byte is '|'; 乗 is 0x81 0x5C: its trail byte is '\'
    name = "张亅乗".encode("gbk")
    pid = b"PID|1||9^^^H1^MR||" + name + b"^\t \x00x"
    msgs = split_messages(MSH1 + b"\r\n" + pid + b"\r\n")
    assert msgs[0].payload == MSH1 + b"\r" + pid + b"\r"


def test_mixed_separators_in_one_file():
    msgs = split_messages(MSH1 + b"\r" + PID + b"\n" + OBX + b"\r\n")
    assert msgs[0].payload == b"\r".join([MSH1, PID, OBX]) + b"\r"


def test_utf8_bom_is_dropped():
    msgs = split_messages(b"\xef\xbb\xbf" + MSH1 + b"\n" + PID)
    assert msgs[0].payload.startswith(b"MSH|")


def test_batch_envelopes():
    fhs = b"FHS|^~\\&|HIS|H1|HC|H1|20240101||F001"
    bhs = b"BHS|^~\\&|HIS|H1|HC|H1|20240101||B001"
    data = b"\r".join(
        [fhs, bhs, MSH1, PID, MSH2, OBX, b"BTS|2", b"FTS|1", MSH1 + b"X", PID]
    ) + b"\r"
    msgs = split_messages(data, "batch.hl7")
    assert len(msgs) == 3
    assert msgs[0].payload == MSH1 + b"\r" + PID + b"\r"
    assert msgs[1].payload == MSH2 + b"\r" + OBX + b"\r"  # BTS is not part of the message
    assert msgs[0].batch.file_header == fhs and msgs[0].batch.batch_header == bhs
    assert msgs[1].batch == msgs[0].batch
    assert msgs[2].batch is None


def test_two_batches_in_one_file():
    data = b"\n".join(
        [b"FHS|^~\\&|F", b"BHS|^~\\&|B1", MSH1, b"BTS|1", b"BHS|^~\\&|B2", MSH2, b"BTS|1", b"FTS|2"]
    )
    msgs = split_messages(data)
    assert [m.batch.batch_header for m in msgs] == [b"BHS|^~\\&|B1", b"BHS|^~\\&|B2"]


def test_mllp_framed_capture_file():
    data = encode(MSH1 + b"\r" + PID + b"\r") + encode(MSH2 + b"\r" + OBX + b"\r")
    msgs = split_messages(data)
    assert [m.payload for m in msgs] == [MSH1 + b"\r" + PID + b"\r", MSH2 + b"\r" + OBX + b"\r"]


def test_no_msh_is_a_clear_error_naming_the_file():
    with pytest.raises(HL7FileError, match=r"notes\.txt: no HL7 v2 message found"):
        split_messages(b"\n\n  \n", "notes.txt")


def test_segment_before_msh_names_file_and_line():
    with pytest.raises(HL7FileError, match=r"x\.hl7:2: segment b'PID' before any MSH") as info:
        split_messages(b"\n" + PID + b"\n" + MSH1, "x.hl7")
    assert info.value.line == 2 and info.value.source == "x.hl7"


def test_folders_are_walked_in_sorted_order(tmp_path: Path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.hl7").write_bytes(MSH2 + b"\n")
    (tmp_path / "a.hl7").write_bytes(MSH1 + b"\n" + MSH1 + b"\n")
    (tmp_path / "c.txt").write_bytes(MSH2 + b"\r")
    (tmp_path / "README.md").write_text("# not a message")
    (tmp_path / ".hidden.hl7").write_text("junk")
    (tmp_path / "make.py").write_text("print()")
    (tmp_path / "__pycache__").mkdir()  # what an installed package's fixtures folder holds
    (tmp_path / "__pycache__" / "make.cpython-311.pyc").write_bytes(b"\xa7\r\r\n")
    got = [(Path(m.source).relative_to(tmp_path).as_posix(), m.index) for m in iter_messages([tmp_path])]
    assert got == [("a.hl7", 0), ("a.hl7", 1), ("b/2.hl7", 0), ("c.txt", 0)]


def test_explicit_files_and_errors(tmp_path: Path):
    good = tmp_path / "good.hl7"
    good.write_bytes(MSH1 + b"\n")
    bad = tmp_path / "bad.hl7"
    bad.write_bytes(b"hello\n")
    assert [m.payload for m in read_messages(good)] == [MSH1 + b"\r"]
    with pytest.raises(HL7FileError, match="bad.hl7"):
        list(iter_messages([good, bad]))
    with pytest.raises(HL7FileError, match="no such file or folder"):
        list(iter_files([tmp_path / "missing"]))
    seen: list[HL7FileError] = []
    msgs = list(iter_messages([bad, tmp_path / "missing", good], on_error=seen.append))
    assert [m.source for m in msgs] == [str(good)]
    assert len(seen) == 2 and "bad.hl7" in str(seen[0]) and "missing" in str(seen[1])


def _looks_like_hl7(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf").startswith(b"MSH")


def test_public_corpus_every_file_splits(corpus_dir: Path):
    root = corpus_dir / "hl7v2"
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) > 200
    hl7_files = 0
    for path in files:
        data = path.read_bytes()
        if not _looks_like_hl7(data):
            # licences and JSON envelopes kept beside the messages: a clear error, not a crash
            with pytest.raises(HL7FileError, match=str(path.name)):
                read_messages(path)
            continue
        hl7_files += 1
        msgs = read_messages(path)
        assert msgs, path
        for m in msgs:
            assert m.payload.startswith(b"MSH") and m.payload.endswith(b"\r"), path
            assert b"\n" not in m.payload, path
            # every byte but the segment separators is as in the file
            body = m.payload.rstrip(b"\r").split(b"\r")
            for segment in body:
                assert segment in data, (path, segment[:40])
        # nothing but separators, blank lines and the BOM is lost
        kept = sum(len(m.payload.replace(b"\r", b"")) for m in msgs)
        raw = data.removeprefix(b"\xef\xbb\xbf")
        assert kept == len(raw.replace(b"\r", b"").replace(b"\n", b"")) - _blank_bytes(raw), path
    assert hl7_files > 250
    assert sum(len(read_messages(p)) for p in root.rglob("*.hl7")) >= 140


def _blank_bytes(raw: bytes) -> int:
    import re

    return sum(len(line) for line in re.split(rb"\r\n|\r|\n", raw) if not line.strip())


# -- property: segments survive any mix of separators byte for byte ------------------------

_segment_body = st.binary(max_size=40).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x0b", b"").replace(b"\x1c", b"")
)
_segment = st.tuples(st.sampled_from([b"PID", b"PV1", b"OBX", b"ZXY", b"NTE"]), _segment_body).map(
    lambda t: t[0] + b"|" + t[1]
)
_message = st.tuples(_segment_body, st.lists(_segment, max_size=5)).map(
    lambda t: [b"MSH|^~\\&|" + t[0], *t[1]]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_message, min_size=1, max_size=4), st.data())
def test_any_separators_give_cr_joined_segments(messages, data):
    out = b""
    for segments in messages:
        for segment in segments:
            out += segment + data.draw(st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n"]))
    got = split_messages(out)
    expected = [b"\r".join(segments) + b"\r" for segments in messages]
    # a segment whose bytes are all blank is dropped as a blank line; none is generated here
    assert [m.payload for m in got] == expected
