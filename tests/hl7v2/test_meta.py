"""Hot-path metadata: the right fields, problems instead of exceptions."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.hl7v2.message import Message
from harness.hl7v2.meta import Meta, extract

ADT = (
    b"MSH|^~\\&|HIS|H5301|HC|HOSP|20260101083000||ADT^A01^ADT_A01|MSG00001|P|2.5.1|||AL|NE||"
    b"UNICODE UTF-8\rEVN|A01|20260101083000\rPID|1||5301^^^H5301^MR||Zhang^San\r"
)
ACK = b"MSH|^~\\&|HC|HOSP|HIS|H5301|20260101083001||ACK^A01^ACK|A1|P|2.5.1\rMSA|AA|MSG00001\r"


def test_adt_fields() -> None:
    m = extract(ADT)
    assert m == Meta(
        message_type="ADT",
        trigger="A01",
        structure="ADT_A01",
        control_id="MSG00001",
        processing_id="P",
        version="2.5.1",
        accept_ack_type="AL",
        app_ack_type="NE",
        charset="utf-8",
        sending_app="HIS",
        sending_facility="H5301",
        receiving_app="HC",
        receiving_facility="HOSP",
    )
    assert m.message_code == "ADT^A01"
    assert m.problems == ()


def test_meta_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        extract(ADT).control_id = "x"  # type: ignore[misc]


def test_ack_fields() -> None:
    m = extract(ACK)
    assert (m.ack_code, m.ack_control_id, m.message_code) == ("AA", "MSG00001", "ACK^A01")


@pytest.mark.parametrize("sep", [b"\n", b"\r\n"])
def test_lf_and_crlf(sep: bytes) -> None:
    m = extract(ACK.replace(b"\r", sep))
    assert (m.ack_code, m.ack_control_id, m.version) == ("AA", "MSG00001", "2.5.1")


def test_other_delimiters_and_escapes() -> None:
    msg = b"MSH#*@!%#APP!F!\\#FAC#R#RF#2026##ORU*R01*ORU_R01#ID1@ID2#T#2.4\rMSA#AE#X1\r"
    m = extract(msg)
    assert (m.message_type, m.trigger, m.structure) == ("ORU", "R01", "ORU_R01")
    assert m.control_id == "ID1"  # '@' is this message's repetition separator: first repetition
    assert m.sending_app == "APP#\\"  # '!' is its escape character; a backslash is plain text
    assert (m.ack_code, m.ack_control_id) == ("AE", "X1")


def test_escaped_value_is_unescaped() -> None:
    msg = b"MSH|^~\\&|A\\T\\B|F|R|RF|2026||ADT^A01|C\\F\\1|P|2.5\r"
    m = extract(msg)
    assert m.sending_app == "A&B"
    assert m.control_id == "C|1"


def test_repetition_takes_first() -> None:
    m = extract(b"MSH|^~\\&|A~B|F|R|RF|2026||ADT^A01|1|P|2.5\r")
    assert m.sending_app == "A"


def test_gbk_message_with_delimiter_trail_bytes() -> None:
    name = "亅乗".encode("gb18030")
    msg = b"MSH|^~\\&|" + name + b"|H53|LIS|LAB|2026||ADT^A04|C1|P|2.4||||||GBK\rPID|1||1||" + name + b"\r"
    m = extract(msg)
    assert m.sending_app == "亅乗"
    assert m.charset == "gb18030"
    assert m.control_id == "C1" and m.problems == ()


def test_explicit_charset_wins() -> None:
    msg = b"MSH|^~\\&|" + "云南".encode("gbk") + b"|F|R|RF|2026||ADT^A01|1|P|2.5\r"
    assert extract(msg, "GBK").sending_app == "云南"
    bad = extract(msg, "utf-8")  # said to be UTF-8, which these bytes are not
    assert bad.charset == "utf-8"
    assert any("offset 9" in p and "cannot be decoded" in p for p in bad.problems)
    assert bad.control_id == "1"  # the rest is still read


def test_auto_reads_gbk_without_msh18_as_gb18030_and_anything_else_as_utf8() -> None:
    gbk = b"MSH|^~\\&|HIS|" + "昆明市第一人民医院".encode("gbk") + b"|R|RF|2026||ADT^A01|1|P|2.5\r"
    meta = extract(gbk)
    assert (meta.charset, meta.sending_facility, meta.problems) == ("gb18030", "昆明市第一人民医院", ())
    assert extract(gbk, fallback="big5").charset == "utf-8"  # not Big5 either: UTF-8, bad bytes noted
    utf8 = b"MSH|^~\\&|HIS|" + "昆明".encode() + b"|R|RF|2026||ADT^A01|1|P|2.5\r"
    assert extract(utf8).charset == "utf-8"
    neither = b"MSH|^~\\&|HIS\xff\xfe|F|R|RF|2026||ADT^A01|1|P|2.5\r"  # \xfe| would swallow a delimiter
    meta = extract(neither)
    assert meta.charset == "utf-8" and meta.control_id == "1" and meta.problems


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"", "empty message"),
        (b"hello world", "no MSH segment"),
        (b"MSH", "MSH-1"),
        (b"MSH|", "MSH-2"),
        (b"MSH||A|B", "MSH-2"),
        (b"MSH|^~|A|B", "short"),
        (b"MSH|&&&&|A|B|C|D|2026||ORU^R01|1|P|2.5\r", "repeat a delimiter"),
        (b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\x00\r", "NUL byte"),
        (b"MSH|^~\\&|A|B|C|D|2026|||1|P|2.5\r", "MSH-9"),
        (b"MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\r", "MSH-10"),
        (b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5||||||KLINGON\r", "KLINGON"),
    ],
)
def test_problems(payload: bytes, needle: str) -> None:
    m = extract(payload)
    assert any(needle in p for p in m.problems), m.problems


def test_msh_not_first() -> None:
    m = extract(b"\rMSH|^~\\&|A|B|C|D|2026||ADT^A01|9|P|2.5\r")
    assert m.control_id == "9"
    assert any("offset 1" in p for p in m.problems)


def test_bom_is_tolerated() -> None:
    m = extract(b"\xef\xbb\xbf" + ADT)
    assert m.control_id == "MSG00001" and m.problems == ()


@given(st.binary(max_size=300))
def test_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    assert isinstance(extract(data), Meta)


@given(st.binary(max_size=200))
def test_never_raises_after_an_msh_prefix(tail: bytes) -> None:
    m = extract(b"MSH|^~\\&|" + tail)
    assert isinstance(m, Meta)


def test_never_raises_on_wrong_type() -> None:
    assert extract(b"MSH|^~\\&|").problems
    assert extract("not bytes").problems  # type: ignore[arg-type]


_VALUE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r\n|^~\\&\ufeff"), max_size=10
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_VALUE, min_size=14, max_size=14),
    st.sampled_from(["utf-8", "gb18030"]),
    st.sampled_from(["\r", "\n", "\r\n"]),
    _VALUE,
    _VALUE,
)
def test_agrees_with_the_message_model(values, codec, term, ack_code, ack_id) -> None:
    (app, fac, rapp, rfac, ts, mtype, trig, struct, ctrl, proc, ver, acc, appack, extra) = values
    msh = f"MSH|^~\\&|{app}|{fac}|{rapp}|{rfac}|{ts}||{mtype}^{trig}^{struct}|{ctrl}|{proc}|{ver}"
    msh += f"|||{acc}|{appack}"
    text = msh + term + f"MSA|{ack_code}|{ack_id}" + term + f"NTE|1||{extra}" + term
    raw = text.encode(codec)
    m = extract(raw, codec)
    msg = Message.parse(raw, codec)

    def want(path: str) -> str | None:
        return msg.get(path) or None

    assert (m.sending_app, m.sending_facility) == (want("MSH-3"), want("MSH-4"))
    assert (m.receiving_app, m.receiving_facility) == (want("MSH-5"), want("MSH-6"))
    assert (m.message_type, m.trigger, m.structure) == (want("MSH-9.1"), want("MSH-9.2"), want("MSH-9.3"))
    assert (m.control_id, m.processing_id, m.version) == (want("MSH-10"), want("MSH-11"), want("MSH-12"))
    assert (m.accept_ack_type, m.app_ack_type) == (want("MSH-15"), want("MSH-16"))
    assert (m.ack_code, m.ack_control_id) == (want("MSA-1"), want("MSA-2"))
    assert m.charset == codec


# -- the fast path for the usual message agrees with the general one -------------------------------

_FIELD = st.text(alphabet="AB1^~&| ", max_size=6).map(lambda s: s.replace("|", ""))


def _agrees(payload: bytes) -> bool:
    """`extract`'s fast path, when it takes a message, gives exactly what the general path gives."""
    from harness.hl7v2.meta import _extract, _extract_usual

    fast = _extract_usual(payload)
    if fast is None:
        return False
    assert fast == _extract(payload, None), payload
    assert dataclasses.asdict(fast) == dataclasses.asdict(_extract(payload, None))
    return True


@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(_FIELD, min_size=0, max_size=18),
    msa=st.one_of(st.none(), st.lists(_FIELD, min_size=0, max_size=3)),
    tail=st.sampled_from(["", "\rEVN|A01", "\rPID|1||x^^^H||Y\r", "\r"]),
)
def test_the_fast_path_agrees_with_the_general_path(fields, msa, tail) -> None:
    text = "MSH|^~\\&|" + "|".join(fields) + tail
    if msa is not None:
        text += "\rMSA|" + "|".join(msa) + "\r"
    _agrees(text.encode("ascii"))


def test_the_fast_path_agrees_on_the_public_corpus(corpus_dir) -> None:
    from harness.hl7v2.files import iter_messages

    found = list(iter_messages([corpus_dir / "hl7v2"], on_error=lambda problem: None))
    taken = sum(_agrees(m.payload) for m in found)
    assert taken > 100  # most public samples are the usual kind; the rest take the general path
