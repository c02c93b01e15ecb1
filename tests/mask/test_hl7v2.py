"""HL7 v2 masking: delimiters, escapes and the charset survive; no identifier does; findings stay the same."""

from __future__ import annotations

from collections import Counter
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import idcard
from harness.hl7v2.message import Message
from harness.hl7v2.validation.validator import validate
from harness.mask.pseudonym import MOBILE_PREFIXES

from .support import ROOT, leaks, masker

M = masker()
HAN = "张王李赵周段杨乗亅𬌗兰秀英伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华玉萍红建文"
# 亅 is 81 7C and 乗 81 5C in GBK: trail bytes equal to '|' and '\'


@st.composite
def patients(draw) -> dict:
    han = st.text(st.sampled_from(HAN), min_size=1, max_size=2)
    born = draw(st.dates(min_value=date(1930, 1, 1), max_value=date(2024, 12, 31)))
    return {
        "family": draw(st.sampled_from("张王李赵周段杨")),
        "given": draw(han) + draw(st.sampled_from("伟芳亅乗")),
        "kin": draw(st.sampled_from("张王李")) + draw(han) + "乗",
        "mr": "ZY" + str(draw(st.integers(10000, 99999999))),
        "id": idcard.make(draw(st.sampled_from(["530102", "532901"])), born, draw(st.integers(0, 999))),
        "born": born,
        "phone": draw(st.sampled_from(MOBILE_PREFIXES)) + f"{draw(st.integers(0, 10**8 - 1)):08d}",
        "street": draw(st.sampled_from(["翠湖南路", "青年路", "北京路"])) + f"{draw(st.integers(1, 999))}号",
    }


def adt(p: dict, charset: str, control: str = "MSG0001") -> bytes:
    msh18 = {"UTF-8": "UNICODE UTF-8", "GBK": "GBK", "GB18030": "GB 18030-2000"}[charset]
    text = (
        f"MSH|^~\\&|HIS|H5301^滇池医院|HC|H5301|20260315083000||ADT^A01^ADT_A01|{control}|P|2.5||||||{msh18}\r"
        "EVN|A01|20260315083000\r"
        f"PID|1||{p['mr']}^^^H5301^MR~{p['id']}^^^CHN^ID||{p['family']}^{p['given']}^^^^^L||{p['born']:%Y%m%d}|M|||"
        f"五华区{p['street']}^^昆明市^云南省^650031^CHN^H||^PRN^PH^^^^{p['phone']}\r"
        f"NK1|1|{p['kin']}^^^^^^L|FTH^父亲^HL70063|盘龙区{p['street']}^^昆明市|^PRN^PH^^^^{p['phone']}\r"
        "PV1|1|I|0301^0301^01^H5301||||D001^王^医生|||CAR||||||||I0001\r"
        f"IN1|1|310^职工基本医疗保险|530100^昆明市医疗保障局|||||||||||||{p['family']}^{p['given']}\r"
        f"GT1|1||{p['family']}^{p['given']}\r"
        f"NTE|1||联系人{p['family']}{p['given']}，电话{p['phone']}，备注A\\T\\B\r"
    )
    return text.encode("utf-8" if charset == "UTF-8" else "gb18030")


def originals(p: dict) -> list[str]:
    return [p["family"] + p["given"], p["kin"], p["mr"], p["id"], p["phone"], p["street"]]


def shape(msg: Message) -> list:
    """Segments, fields, repetitions, components and subcomponents, without their values."""
    return [[[[len(c) for c in r] for r in f] for f in seg] for seg in msg.tokenize()]


def findings(payload: bytes) -> Counter:
    return Counter((f.severity, f.code, str(f.location)) for f in validate(payload).findings)


@given(patients(), st.sampled_from(["UTF-8", "GBK", "GB18030"]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_masked_messages_keep_delimiters_charset_and_findings_and_lose_every_identifier(p, charset):
    original = adt(p, charset)
    out = M.content(original, "hl7v2")
    assert isinstance(out, bytes)
    before, after = Message.parse(original), Message.parse(out)
    assert after.charset.codec == before.charset.codec
    assert after.get("MSH-18") == before.get("MSH-18")
    assert shape(after) == shape(before)
    for unchanged in ("MSH-4", "MSH-10", "PV1-3", "PV1-7", "IN1-3", "NK1-3", "PID-3[1].4", "PID-11.3"):
        assert after.get(unchanged) == before.get(unchanged)
    assert after.get("NTE-3").endswith("，备注A&B") and "\\T\\" in str(after).split("\r")[-2]
    assert not leaks(out, originals(p))
    masked_id = after.get("PID-3[2].1")
    assert idcard.is_valid(masked_id, today=date(9999, 1, 1)) and masked_id[:6] == p["id"][:6]
    assert after.get("PID-7") == masked_id[6:14]  # the birth date moved with the one in the 身份证
    assert len(after.get("PID-5.2")) == len(p["given"])
    assert after.get("IN1-16") == after.get("PID-5.1") + "^" + after.get("PID-5.2")  # one person, one name
    assert after.get("PID-13.7") == after.get("NK1-5.7") and len(after.get("PID-13.7")) == 11
    assert findings(out) == findings(original)


def test_the_same_patient_masks_alike_in_other_messages_charsets_and_runs():
    p = {"family": "段", "given": "亅乗", "kin": "段乗乗", "mr": "ZY0001", "id": "530102198503152312",
         "born": date(1985, 3, 15), "phone": "13800000001", "street": "翠湖南路1号"}  # fmt: skip
    a = Message.parse(M.content(adt(p, "GBK", "A1"), "hl7v2"))
    b = Message.parse(masker().content(adt(p, "UTF-8", "B2"), "hl7v2"))
    for path in ("PID-3[1].1", "PID-3[2].1", "PID-5", "PID-7", "PID-11.1", "PID-13.7", "NK1-2"):
        assert a.get(path) == b.get(path)
    other = masker(b"some-other-masking-key-0123456789")
    assert Message.parse(other.content(adt(p, "GBK"), "hl7v2")).get("PID-3[2].1") != a.get("PID-3[2].1")


def test_gbk_fixtures_stay_gbk_with_untouched_segments_byte_for_byte():
    path = ROOT / "fixtures" / "hl7v2" / "adt_a01_gbk.hl7"
    original = path.read_bytes()
    out = M.content(original, "hl7v2")
    out.decode("gb18030")
    with_utf8 = original.decode("gb18030").encode("utf-8")
    assert out != original and not leaks(out, ["段亅乗", "530102198503152312", "13800000001", "ZY0001"])
    keep = [s for s in original.split(b"\r") if s[:3] in (b"MSH", b"EVN", b"PV1")]
    assert all(segment in out for segment in keep)
    assert with_utf8 != original  # the fixture really is GBK


def test_text_in_gives_text_out_and_unparseable_input_is_refused():
    import pytest

    from harness.mask import MaskError

    text = "MSH|^~\\&|A|B|C|D|20260101||ADT^A08|X1|P|2.5\rPID|1||P0001234^^^H^MR||SMITH^JOHN\r"
    out = M.content(text, "hl7v2")
    assert isinstance(out, str) and "P0001234" not in out and "SMITH" not in out and "JOHN" not in out
    with pytest.raises(MaskError, match="not a readable HL7 v2 message"):
        M.content(b"PID|1||123\r", "hl7v2")
