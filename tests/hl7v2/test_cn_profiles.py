"""The China base profile and the example profiles accept HL7 v2 as Chinese HIS and LIS actually send it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.hl7v2.validation import profile as profiles
from harness.hl7v2.validation.validator import Validator

SPECS = Path(__file__).resolve().parents[2] / "specs" / "hl7v2"
BASE = profiles.load(SPECS / "cn-hospital-base.yaml")
ADT_PROFILE = profiles.load(SPECS / "yunnan-his-adt.yaml")
LIS = profiles.load(SPECS / "lis-oru.yaml")

ADT = (
    "MSH|^~\\&|HIS|H53010001|HC|H53010001|20240301083000||ADT^A01^ADT_A01|MSG0001|P|2.5|||AL|NE||{charset}\r"
    "EVN|A01|20240301083000\r"
    "PID|1||530102198001011234^^^H53010001^{idtype}||张^三||19800101|{sex}||||||||||||||{nation}\r"
    "PV1|1|I|0101^01^01||||D001^李^医生|||0101|||||||||ZY0001|||||||||||||||||||||||||20240301083000\r"
)
# As a 瑞美 LIS sends results: OUL^R24, the barcode in SPM-2, OBX-8 flags M/I/P/Q/E.
OUL = (
    "MSH|^~\\&|RMLIS|H53010001|HIS|H53010001|20240301090000||OUL^R24^OUL_R24|LAB2|P|2.5.1|||AL|AL|CHN|{charset}\r"
    "PID|1||P000123^^^^1||王^五||19700203|2\r"
    "OBR|1|ORD1||GLU^葡萄糖^L|||20240301080000||||||||||||||||||F\r"
    "SPM|1|{barcode}||BLD^全血\r"
    "OBX|1|NM|GLU^葡萄糖^L||5.4|mmol/L|3.9-6.1|{flag}|||F\r"
)


def errors(profile, message: str, charset: str = "gb18030") -> list[tuple[str, str]]:
    result = Validator(profile=profile).validate(message.encode(charset))
    return sorted((f.code, str(f.location)) for f in result.findings if f.severity == "error")


def adt(**values) -> str:
    return ADT.format(**{"charset": "GBK", "idtype": "IdentifyNO", "sex": "1", "nation": "HA^汉族", **values})


@pytest.mark.parametrize(
    "charset", ["UNICODE", "UNICODE UTF-8", "GBK", "GB2312", "GB18030", "GB 18030-2000", ""]
)
def test_base_profile_accepts_the_msh18_values_chinese_senders_use(charset):
    encoding = "utf-8" if charset.startswith("UNICODE") or not charset else "gb18030"
    assert errors(BASE, adt(charset=charset), encoding) == []


def test_base_profile_still_refuses_an_unknown_charset_name():
    latin = (
        adt(charset="8859/1").replace("张^三", "ZHANG^SAN").replace("李^医生", "LI^YI").replace("汉族", "HAN")
    )
    assert ("PROFILE-CHARSET", "1:MSH-18") in errors(BASE, latin, "latin-1")


@pytest.mark.parametrize("sex", ["1", "2", "0", "9", "M", "F", "U"])
def test_adt_accepts_gbt2261_sex_codes_beside_hl7_0001(sex):
    assert errors(ADT_PROFILE, adt(sex=sex)) == []


@pytest.mark.parametrize("nation", ["HA^汉族", "01^汉族", "YI^彝族", "07^彝族", "97^其他"])
def test_adt_accepts_gb3304_letter_and_numeric_nationality(nation):
    assert errors(ADT_PROFILE, adt(nation=nation)) == []


@pytest.mark.parametrize(("field", "value"), [("sex", "X"), ("nation", "ZZ^未知"), ("nation", "57^其他")])
def test_adt_still_refuses_codes_outside_the_sets(field, value):
    path = "3:PID-8" if field == "sex" else "3:PID-22.1"
    assert ("PROFILE-VALUE-SET", path) in errors(ADT_PROFILE, adt(**{field: value}))


@pytest.mark.parametrize("idtype", ["1", "IdentifyNO", "ID", ""])
def test_adt_does_not_constrain_the_vendor_specific_identifier_type(idtype):
    assert errors(ADT_PROFILE, adt(idtype=idtype)) == []


@pytest.mark.parametrize("flag", ["M", "I", "P", "Q", "E", "H", "N"])
def test_lis_accepts_oul_r24_with_the_lis_flags(flag):
    message = OUL.format(charset="UNICODE UTF-8", barcode="2024030100012", flag=flag)
    assert errors(LIS, message, "utf-8") == []


def test_lis_oul_needs_the_barcode_in_spm2_and_refuses_unknown_flags():
    message = OUL.format(charset="UNICODE", barcode="", flag="Z")
    got = errors(LIS, message, "utf-8")
    assert ("PROFILE-FIELD-REQUIRED", "4:SPM-2") in got and ("PROFILE-VALUE-SET", "5:OBX-8") in got


def test_value_set_files_agree():
    def codes(name: str) -> set[str]:
        return set(yaml.safe_load((SPECS / "value-sets" / name).read_text(encoding="utf-8"))["codes"])

    numeric, letters, union = codes("gb3304.yaml"), codes("gb3304-letters.yaml"), codes("gb3304-any.yaml")
    assert len(numeric) == len(letters) == 56
    assert union == numeric | letters | {"97", "98"}
    assert codes("gbt2261-1.yaml") == {"0", "1", "2", "9"}
