"""Charset resolution (table 0211, field aliases, explicit wins) and strict decoding with offsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.hl7v2.charset import (
    TABLE_0211,
    CharsetError,
    declared_in,
    decode,
    encode,
    lookup,
    resolve,
)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("ASCII", "ascii"),
        ("8859/1", "iso8859-1"),
        ("8859/5", "iso8859-5"),
        ("8859/9", "iso8859-9"),
        ("8859/15", "iso8859-15"),
        ("ISO IR14", "shift_jis"),
        ("ISO IR87", "iso2022_jp"),
        ("ISO IR159", "iso2022_jp_2"),
        ("UNICODE", "utf-8"),
        ("UNICODE UTF-8", "utf-8"),
        ("UNICODE UTF-16", "utf-16"),
        ("UNICODE UTF-32", "utf-32"),
        ("GB 18030-2000", "gb18030"),
        ("KS X 1001", "euc_kr"),
        ("BIG-5", "big5"),
        # aliases seen in the field
        ("GBK", "gb18030"),
        ("gbk", "gb18030"),
        ("GB2312", "gb18030"),
        ("GB18030", "gb18030"),
        ("UTF-8", "utf-8"),
        ("utf-8", "utf-8"),
        ("UTF8", "utf-8"),
        (" unicode  utf-8 ", "utf-8"),
        ("cp1252", "cp1252"),
    ],
)
def test_names_map_to_codecs(name: str, codec: str) -> None:
    cs = resolve(name)
    assert cs.codec == codec
    assert cs.declared == name
    assert cs.warning is None


def test_every_table_0211_codec_exists() -> None:
    import codecs

    for name, codec in TABLE_0211.items():
        if codec is not None:
            codecs.lookup(codec)  # raises if the table names a codec Python lacks
        assert lookup(name) == codec


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_empty_msh18_means_utf8_without_warning(empty: str | None) -> None:
    assert resolve(empty) == resolve(None)
    assert resolve(empty).codec == "utf-8"
    assert resolve(empty).warning is None


def test_unknown_name_gives_utf8_and_a_warning() -> None:
    cs = resolve("KLINGON-8")
    assert cs.codec == "utf-8"
    assert cs.declared == "KLINGON-8"
    assert "KLINGON-8" in cs.warning and "MSH-18" in cs.warning


def test_recognised_name_without_codec_warns() -> None:
    cs = resolve("CNS 11643-1992")
    assert cs.codec == "utf-8"
    assert "no Python codec" in cs.warning


def test_explicit_setting_wins() -> None:
    assert resolve("UNICODE UTF-8", "GBK").codec == "gb18030"
    assert resolve("GBK", "8859/1").codec == "iso8859-1"
    assert resolve("GBK", "").codec == "gb18030"  # an empty explicit setting is no setting
    cs = resolve("GBK", "nonsense")
    assert cs.codec == "utf-8" and "explicit charset" in cs.warning


def test_gbk_two_byte_range_decodes_and_reencodes_identically_with_gb18030() -> None:
    """The reason GBK/GB2312 declarations use gb18030: same characters, same bytes, for all of GBK."""
    checked = 0
    for lead in range(0x81, 0xFF):
        for trail in range(0x40, 0xFF):
            raw = bytes([lead, trail])
            try:
                ch = raw.decode("gbk")
            except UnicodeDecodeError:
                continue
            assert raw.decode("gb18030") == ch
            assert ch.encode("gb18030") == raw
            checked += 1
    assert checked > 21000


def test_delimiter_trail_bytes_decode() -> None:
    assert decode(b"\x81\x7c", "gb18030") == "亅"
    assert decode(b"\x81\x5c", "gb18030") == "乗"
    assert decode(b"\x99\x31\xd2\x39", "gb18030") == "𬌗"


def test_decode_reports_offset_and_bytes() -> None:
    with pytest.raises(CharsetError) as info:
        decode(b"MSH|abc\xff\xfedef", "utf-8")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.offset == 7
    assert err.bad == b"\xff"
    assert "offset 7" in str(err) and "ff" in str(err)


def test_decode_truncated_gb18030_at_end() -> None:
    with pytest.raises(CharsetError) as info:
        decode("张三".encode("gb18030") + b"\x81", "gb18030")
    assert info.value.offset == 4


def test_encode_reports_character() -> None:
    with pytest.raises(CharsetError) as info:
        encode("abc张", "ascii")
    assert info.value.offset == 3 and info.value.bad == "张"


@given(st.binary(max_size=64), st.sampled_from(["utf-8", "gb18030", "ascii", "big5", "iso8859-1"]))
def test_decode_is_strict_never_replaces(data: bytes, codec: str) -> None:
    try:
        text = decode(data, codec)
    except CharsetError as exc:
        assert 0 <= exc.offset < len(data)
        assert data[exc.offset : exc.offset + len(exc.bad)] == exc.bad
    else:
        assert "\ufffd" not in text or "\ufffd".encode(codec, "ignore") in data


def test_declared_in_reads_msh18_from_bytes() -> None:
    msg = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||CHN|GBK~UNICODE UTF-8\rPID|1\r"
    assert declared_in(msg) == "GBK"
    assert declared_in(b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r") is None
    assert declared_in(b"garbage") is None
    assert declared_in(b"MSH") is None


def test_declared_in_ignores_gbk_trail_bytes_equal_to_the_separator() -> None:
    # MSH-4 holds 亅 (0x81 0x7C): a byte-wise split would shift every later field by one.
    facility = "亅医院".encode("gb18030")
    msg = b"MSH|^~\\&|HIS|" + facility + b"|LIS|LAB|20260101||ADT^A01|1|P|2.5|||||CHN|GB 18030-2000\r"
    assert declared_in(msg) == "GB 18030-2000"


def test_nul_in_declared_name_is_an_unknown_charset_not_a_crash():
    from harness.hl7v2.charset import lookup, resolve

    assert lookup("\x00BK") is None
    resolved = resolve("\x00BK")
    assert resolved.codec == "utf-8" and resolved.warning
