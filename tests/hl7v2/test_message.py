"""The lossless message model: paths, escaping, set/extend, byte-identical re-encode, clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path as FilePath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.hl7v2.charset import CharsetError
from harness.hl7v2.message import HL7ParseError, Message, Path, parse_path

ROOT = FilePath(__file__).resolve().parents[2]

MSG = (
    b"MSH|^~\\&|HIS|H5301|HC|HOSP|20260101083000||ADT^A01^ADT_A01|MSG00001|P|2.5.1\r"
    b"PID|1||5301^^^H5301^MR~53011^^^YB&1.2&ISO^PI||Zhang^San^^^^^L||19800101|M\r"
    b"OBX|1|ST|A||first\\F\\value\rOBX|2|ST|B||second\r"
)


def test_paths() -> None:
    m = Message.parse(MSG)
    assert m.get("MSH-1") == "|"
    assert m.get("MSH-2") == "^~\\&"
    assert m.get("MSH-3") == "HIS"
    assert m.get("MSH-9") == "ADT^A01^ADT_A01"
    assert m.get("MSH-9.2") == "A01"
    assert m.get("PID-5.1") == "Zhang"
    assert m.get("PID-3") == "5301^^^H5301^MR"
    assert m.get("PID-3[2].1") == "53011"
    assert m.get("PID-3[2].4.2") == "1.2"
    assert m.get("OBX[2]-5") == "second"
    assert m.get("OBX-5") == "first|value"
    assert m.get_raw("OBX-5") == "first\\F\\value"
    assert m.get("OBX[3]-5") is None
    assert m.get("PID-30") is None
    assert m.get("PID-3[3]") is None
    assert m.get("PID-5.9") is None
    assert m.get("ZZZ-1") is None
    assert m.get("PID-4") == ""


def test_parse_path() -> None:
    assert parse_path("OBX[2]-5") == Path("OBX", 2, 5)
    assert parse_path("PID-3[2].1.2") == Path("PID", 1, 3, 2, 1, 2)
    assert parse_path("pid-5-1") == Path("PID", 1, 5, None, 1)
    assert str(parse_path("OBX[2]-5[3].1.2")) == "OBX[2]-5[3].1.2"
    for bad in ("", "PID5", "PID-0", "PI-5", "PID-5..1"):
        with pytest.raises(ValueError, match="bad HL7 path"):
            parse_path(bad)


def test_untouched_is_identical() -> None:
    m = Message.parse(MSG)
    m.get("PID-5.1")
    assert m.encode() is MSG or m.encode() == MSG
    assert not m.touched


def test_set_touches_only_its_segment() -> None:
    m = Message.parse(MSG)
    m.set("PID-5.2", "Si|Li")
    assert m.get("PID-5.2") == "Si|Li"
    assert m.encode() == MSG.replace(b"Zhang^San", b"Zhang^Si\\F\\Li")


def test_errors_say_what_and_where() -> None:
    with pytest.raises(HL7ParseError, match="no MSH segment") as info:
        Message.parse(b"PID|1\r")
    assert info.value.offset == 0
    with pytest.raises(HL7ParseError, match="NUL byte") as info:
        Message.parse(MSG[:20] + b"\x00" + MSG[20:])
    assert info.value.offset == 20


# -- more paths and edits ---------------------------------------------------------------------------------


def test_msh_numbering_and_delimiter_fields_are_read_only() -> None:
    m = Message.parse(MSG)
    assert m.get("MSH-10") == "MSG00001"
    assert m.get("MSH-12") == "2.5.1"
    for path in ("MSH-1", "MSH-2"):
        with pytest.raises(ValueError, match="delimiters"):
            m.set(path, "#")
    m.set("MSH-10", "NEW1")
    assert m.encode().startswith(b"MSH|^~\\&|HIS|H5301|HC|HOSP|20260101083000||ADT^A01^ADT_A01|NEW1|P|")


def test_set_extends_fields_repetitions_components_segments() -> None:
    m = Message.parse(MSG)
    m.set("PID-3[3].4.2", "X")
    assert m.get_raw("PID-3") == "5301^^^H5301^MR"
    assert m.get("PID-3[3].4.2") == "X"
    assert m.get_raw("PID-3[3]") == "^^^&X"
    m.set("PID-40", "far")
    assert m.get("PID-40") == "far"
    assert m.get_raw("PID-39") == ""
    m.set("OBX[4]-5", "fourth")
    assert m.segment_ids == ["MSH", "PID", "OBX", "OBX", "OBX", "OBX"]
    assert m.get("OBX[3]-5") is None  # the filler OBX is bare
    m.set("ZPI-2.1", "z")
    assert m.segment_ids[-1] == "ZPI"
    out = m.encode()
    assert out.endswith(b"\rOBX|||||fourth\rZPI||z\r")
    again = Message.parse(out)
    assert again.get("PID-3[3].4.2") == "X" and again.get("OBX[4]-5") == "fourth"


def test_set_when_message_lacks_final_terminator() -> None:
    raw = MSG.rstrip(b"\r").replace(b"\r", b"\n")
    m = Message.parse(raw)
    m.set("ZZZ-1", "a")
    assert m.encode() == raw + b"\nZZZ|a"


def test_touched_segment_keeps_its_terminator_and_others_their_bytes() -> None:
    raw = MSG.replace(b"\rPID", b"\r\nPID").replace(b"\rOBX|2", b"\nOBX|2")
    m = Message.parse(raw)
    m.set("PID-8", "F")
    assert m.encode() == raw.replace(b"|19800101|M\r", b"|19800101|F\r")


def test_set_raw_keeps_structure_and_rejects_line_breaks() -> None:
    m = Message.parse(MSG)
    m.set_raw("PID-5", "Li^Si")
    assert m.get("PID-5.2") == "Si"
    with pytest.raises(ValueError, match="CR or LF"):
        m.set_raw("PID-5", "a\rb")
    m.set("PID-5", "line1\nline2\r")  # set() escapes line breaks instead
    assert m.get_raw("PID-5") == "line1\\X0A\\line2\\X0D\\"
    assert m.get("PID-5") == "line1\nline2\r"


def test_set_outside_the_charset_is_refused() -> None:
    m = Message.parse(MSG, charset="ASCII")
    with pytest.raises(CharsetError, match="PID-5"):
        m.set("PID-5", "张三")
    assert not m.touched


def test_escape_sequences_on_get() -> None:
    raw = (
        b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\r"
        b"OBX|1|FT|N||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\.br\\g\\X414243\\h\\H\\bold\\N\\\\Zcustom\\|\r"
    )
    m = Message.parse(raw)
    assert m.get("OBX-5") == "a|b^c&d~e\\f\ngABCh\\H\\bold\\N\\\\Zcustom\\"


def test_five_character_msh2_truncation() -> None:
    raw = b"MSH|^~\\&#|A|B|C|D|2026||ORU^R01^ORU_R01|1|P|2.7.1\rOBX|1|ST|C||long\\P\\text\r"
    m = Message.parse(raw)
    assert m.delimiters.truncation == "#"
    assert m.get("MSH-2") == "^~\\&#"
    assert m.get("MSH-3") == "A"
    assert m.get("OBX-5") == "long#text"
    m.set("OBX-5", "a#b")
    assert m.get_raw("OBX-5") == "a\\P\\b"
    assert m.encode().endswith(b"OBX|1|ST|C||a\\P\\b\r")


def test_unusual_delimiters() -> None:
    raw = b"MSH#*@!%#APP#FAC#R#RF#2026##ORU*R01#ID9#P#2.4\rPID#1##A*B@C*D%E\r"
    m = Message.parse(raw)
    assert m.get("MSH-9.2") == "R01"
    assert m.get("PID-3[2].2.2") == "E"
    m.set("PID-3[2].1", "x#y|z")
    assert m.get_raw("PID-3[2].1") == "x!F!y|z"
    assert Message.parse(m.encode()).get("PID-3[2].1") == "x#y|z"


def test_bom_is_kept() -> None:
    raw = b"\xef\xbb\xbf" + MSG
    m = Message.parse(raw)
    assert m.get("MSH-3") == "HIS"
    m.set("PID-8", "F")
    assert m.encode().startswith(b"\xef\xbb\xbfMSH|")


def test_parse_text_and_str() -> None:
    text = MSG.decode()
    m = Message.parse(text)
    assert str(m) == text
    assert m.encode() == MSG
    m2 = Message.parse("MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||GBK\rPID|1||||亅\r")
    assert m2.codec == "gb18030"
    assert m2.encode().endswith(b"|\x81|\r")


def test_tokenize() -> None:
    tree = Message.parse(MSG).tokenize()
    assert len(tree) == 4
    msh, pid = tree[0], tree[1]
    assert msh[1] == [[["^~\\&"]]]
    assert msh[8] == [[["ADT"], ["A01"], ["ADT_A01"]]]
    assert pid[3][1][3] == ["YB", "1.2", "ISO"]


@pytest.mark.parametrize(
    ("payload", "needle", "offset"),
    [
        (b"", "empty message", 0),
        (b"\r\n", "empty message", 0),
        (b"hello", "no MSH segment", 0),
        (b"PID|1\rMSH|^~\\&|", "an MSH appears at offset 6", 0),
        (b"MSH", "MSH-1", 3),
        (b"MSH\rPID|1", "MSH-1", 3),
        (b"MSH|", "MSH-2 (encoding characters) is missing", 4),
        (b"MSH||A|B", "MSH-2 (encoding characters) is missing", 4),
        (b"MSH|^~\\|A", "too short", 4),
        (b"MSH|^~\\&ABC|A", "longer than 5", 4),
        (b"MSH|&&&&|A", "repeat a delimiter", 4),
        (b"MSH|^~|&|A", "too short", 4),
        (b"MSHA^~\\&A", "letters, digits or whitespace", 4),
        (b"MSH|^~\\&|A\x00B", "NUL byte", 10),
        (b"MSH|^~\\&|A|B\xff\r", "cannot be decoded as utf-8", 12),
    ],
)
def test_bad_input(payload: bytes, needle: str, offset: int) -> None:
    with pytest.raises(HL7ParseError) as info:
        Message.parse(payload)
    assert needle in str(info.value)
    assert info.value.offset == offset
    assert f"offset {offset}" in str(info.value)


def test_bad_charset_bytes_in_a_gbk_message() -> None:
    raw = b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||GBK\rPID|1||||\x81\x7f\r"
    with pytest.raises(HL7ParseError, match="gb18030") as info:
        Message.parse(raw)
    assert info.value.offset == raw.index(b"\x81\x7f")


def test_unknown_charset_falls_back_with_warning() -> None:
    m = Message.parse(b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||WHATEVER\r")
    assert m.codec == "utf-8" and "WHATEVER" in m.charset.warning


def test_parse_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        Message.parse(123)  # type: ignore[arg-type]


# -- GBK / GB18030 fixtures ------------------------------------------------------------------------------

FIXTURES = ROOT / "fixtures" / "hl7v2"
_gen_spec = importlib.util.spec_from_file_location("make_gb_fixtures", FIXTURES / "make_gb_fixtures.py")
make_gb_fixtures = importlib.util.module_from_spec(_gen_spec)
_gen_spec.loader.exec_module(make_gb_fixtures)

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def _id_ok(number: str) -> bool:
    total = sum(int(d) * w for d, w in zip(number[:17], _WEIGHTS, strict=True))
    return len(number) == 18 and "10X98765432"[total % 11] == number[17]


@pytest.mark.parametrize("name", sorted(make_gb_fixtures.FIXTURES))
def test_committed_fixture_matches_its_generator(name: str) -> None:
    assert (FIXTURES / name).read_bytes() == make_gb_fixtures.build(name)


@pytest.mark.parametrize(
    ("name", "codec", "declared", "family", "given", "terminator"),
    [
        ("adt_a01_gbk.hl7", "gb18030", "GBK", "段", "亅乗", b"\r"),
        ("adt_a04_gb18030.hl7", "gb18030", "GB 18030-2000", "杨", "𬌗亅", b"\r\n"),
        ("oru_r01_gbk_rare_lf.hl7", "gb18030", "GBK", "李", "乗𬌗", b"\n"),
    ],
)
def test_gb_fixture_fields_and_round_trip(name, codec, declared, family, given, terminator) -> None:
    raw = (FIXTURES / name).read_bytes()
    m = Message.parse(raw)
    assert (m.codec, m.charset.declared, m.get("MSH-18")) == (codec, declared, declared)
    assert m.get("PID-5.1") == family
    assert m.get("PID-5.2") == given
    assert m.get("PID-5.7") == "L"
    id_number = m.get("PID-3[2].1")
    assert id_number.startswith("53") and _id_ok(id_number)
    assert m.get("PID-3[2].5") == "ID"
    assert m.encode() == raw
    assert raw.split(b"PID|", 1)[1].startswith(b"1|")
    # the hazard this guards against: splitting the bytes before decoding breaks the name apart
    pid_bytes = raw.split(terminator)[m.segment_ids.index("PID")]
    if b"\x81|" in pid_bytes:
        assert len(pid_bytes.split(b"|")) != len(m.tokenize()[m.segment_ids.index("PID")])


def test_gbk_declared_fixture_is_plain_gbk() -> None:
    raw = (FIXTURES / "adt_a01_gbk.hl7").read_bytes()
    assert raw.decode("gbk").encode("gbk") == raw
    assert b"\x81\x7c" in raw and b"\x81\x5c" in raw


def test_gb18030_fixture_holds_a_four_byte_character() -> None:
    raw = (FIXTURES / "adt_a04_gb18030.hl7").read_bytes()
    assert b"\x99\x31\xd2\x39" in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("gbk")


@pytest.mark.parametrize("name", sorted(make_gb_fixtures.FIXTURES))
def test_set_on_gb_fixture_reencodes_correctly(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    m = Message.parse(raw)
    m.set("PID-5.2", "乗亅𬌗|新")
    out = m.encode()
    term = make_gb_fixtures.FIXTURES[name][0].encode()
    before, after = raw.split(term), out.split(term)
    pid = m.segment_ids.index("PID")
    assert [b for i, b in enumerate(before) if i != pid] == [a for i, a in enumerate(after) if i != pid]
    assert b"^\x81\x5c\x81\x7c\x99\x31\xd2\x39\\F\\\xd0\xc2^" in after[pid]
    again = Message.parse(out)
    assert again.get("PID-5.2") == "乗亅𬌗|新"
    assert again.get("PID-5.1") == m.get("PID-5.1")
    assert str(again) == str(m)


# -- properties ------------------------------------------------------------------------------------------

_DELIM_POOL = "|^~\\&#!@$%*+/:;=?_`{}<>"
_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n"), max_size=12
)
_CODECS = st.sampled_from(["utf-8", "gb18030"])


@st.composite
def delimiters(draw) -> tuple[str, str]:
    n = draw(st.sampled_from([5, 6]))
    chars = draw(st.permutations(list(_DELIM_POOL)))[:n]
    return chars[0], "".join(chars[1:])


@st.composite
def messages(draw) -> tuple[str, str, str, str]:
    """(text, field separator, encoding characters, codec) for a syntactically plausible message."""
    fsep, enc = draw(delimiters())
    codec = draw(_CODECS)
    seg_id = st.from_regex(r"[A-Z][A-Z0-9]{2}", fullmatch=True)
    msh_rest = draw(st.lists(_TEXT, max_size=14))
    segments = ["MSH" + fsep + enc + "".join(fsep + f for f in msh_rest)]
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()):
            segments.append("")  # a blank line
            continue
        fields = draw(st.lists(_TEXT, max_size=8))
        segments.append(draw(seg_id) + "".join(fsep + f for f in fields))
    terms = [draw(st.sampled_from(["\r", "\n", "\r\n"])) for _ in segments]
    if draw(st.booleans()):
        terms[-1] = ""
    text = "".join(s + t for s, t in zip(segments, terms, strict=True))
    return text, fsep, enc, codec


@settings(max_examples=300, deadline=None)
@given(messages())
def test_untouched_round_trip_is_byte_identical(sample) -> None:
    text, fsep, enc, codec = sample
    raw = text.encode(codec)
    m = Message.parse(raw, charset=codec)
    assert (m.delimiters.field, m.delimiters.encoding_characters) == (fsep, enc)
    m.tokenize()
    m.get("MSH-9.2")
    assert m.encode() == raw
    assert str(m) == text


_PATHS = st.builds(
    lambda seg, segi, field, rep, comp, sub: (
        f"{seg}[{segi}]-{field}" + (f"[{rep}]" if rep else "") + (f".{comp}" if comp else "")
        + (f".{sub}" if comp and sub else "")
    ),
    st.sampled_from(["PID", "OBX", "ZZ1", "MSH"]),
    st.integers(1, 3),
    st.integers(1, 12),
    st.one_of(st.none(), st.integers(1, 3)),
    st.one_of(st.none(), st.integers(1, 4)),
    st.one_of(st.none(), st.integers(1, 3)),
)
_VALUES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(messages(), _PATHS, _VALUES)
def test_get_after_set_returns_the_value(sample, path, value) -> None:
    text, _, _, codec = sample
    m = Message.parse(text.encode(codec), charset=codec)
    p = parse_path(path)
    if p.segment == "MSH" and p.field in (1, 2):
        with pytest.raises(ValueError):
            m.set(path, value)
        return
    m.set(path, value)
    assert m.get(path) == value
    again = Message.parse(m.encode(), charset=codec)
    assert again.get(path) == value
    assert str(again) == str(m)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_raises_only_parse_errors_on_arbitrary_bytes(data: bytes) -> None:
    try:
        m = Message.parse(data)
    except HL7ParseError:
        return
    assert m.encode() == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([None, "GBK", "UTF-8", "8859/1"]))
def test_parse_after_an_msh_prefix_raises_only_parse_errors(tail: bytes, charset) -> None:
    data = b"MSH|^~\\&|" + tail
    try:
        m = Message.parse(data, charset=charset)
    except HL7ParseError as exc:
        assert exc.offset is None or 0 <= exc.offset <= len(data)
        return
    assert m.encode() == data
    m.tokenize()
    for path in ("MSH-9.2", "PID-5.1", "OBX[2]-5", "PID-3[2].1.2"):
        m.get(path)


def test_offsets_count_bytes_after_a_byte_order_mark() -> None:
    with pytest.raises(HL7ParseError) as info:
        Message.parse(b"\xef\xbb\xbfMSH|^~|A")
    assert info.value.offset == 7
    with pytest.raises(HL7ParseError, match="an MSH appears at offset 7"):
        Message.parse("张三\rMSH|^~\\&|".encode())


def test_utf16_with_an_explicit_charset() -> None:
    text = "MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||UNICODE UTF-16\rPID|1||||张三\r"
    raw = text.encode("utf-16")
    m = Message.parse(raw, charset="UNICODE UTF-16")
    assert m.get("PID-5") == "张三"
    assert m.encode() == raw
    m.set("PID-5", "李四")
    assert Message.parse(m.encode(), charset="UNICODE UTF-16").get("PID-5") == "李四"
