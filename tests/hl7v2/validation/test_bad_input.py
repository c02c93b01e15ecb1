"""Any bytes in: findings out, never an exception (and never the internal-failure finding)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.hl7v2.validation import profile as profiles
from harness.hl7v2.validation.validator import Validator

VALID = (
    b"MSH|^~\\&|HIS|H53|HC|H53|20240301083000||ADT^A01^ADT_A01|M1|P|2.5|||AL|NE||GBK\r"
    b"EVN|A01|20240301083000\rPID|1||P1^^^H53^MR||ZHANG^SAN||19800101|M\rPV1|1|I|0101^01\r"
    b"OBX|1|NM|GLU||5.4|mmol/L|||||F\rMSA|AA|M1\r"
)
PLAIN = Validator()
STRICT = Validator(
    profile=profiles.load(
        __import__("pathlib").Path(__file__).resolve().parents[3] / "specs" / "hl7v2" / "yunnan-his-adt.yaml"
    )
)


def _ok(data: bytes) -> None:
    for v in (PLAIN, STRICT):
        r = v.validate(data)
        assert all(f.code != "HL7-INTERNAL" for f in r.findings), [str(f) for f in r.findings]
        for f in r.findings:
            assert f.severity in ("error", "warning", "info") and f.code and f.message
            str(f.location)
        r.as_dict()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data):
    _ok(data)
    _ok(b"MSH" + data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.binary(min_size=0, max_size=3)), max_size=6))
def test_mutated_valid_message(edits):
    data = bytearray(VALID)
    for pos, chunk in edits:
        data[pos : pos + 1] = chunk
    _ok(bytes(data))


DELIMS = st.sampled_from(list("|^~\\&#\r\n") + ["MSH", "PID", "OBX", "ZZ1", "\\X0D\\", "\\", '""'])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(DELIMS, st.text(max_size=5)), max_size=60))
def test_delimiter_soup(parts):
    text = "MSH|^~\\&|" + "".join(parts)
    _ok(text.encode("utf-8", errors="surrogatepass"))
    _ok(text)
