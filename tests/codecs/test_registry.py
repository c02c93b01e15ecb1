import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import codecs


def test_kinds():
    assert codecs.kinds() == ["cdc", "fhir", "medins", "raw", "soap"]


def test_unknown_kind_names_known_ones():
    with pytest.raises(KeyError, match="known kinds: cdc, fhir"):
        codecs.get("dicom")


def test_header_lookup_is_case_insensitive():
    assert codecs.header({"content-type": "a"}, "Content-Type") == "a"
    assert codecs.header({}, "X") is None


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["cdc", "fhir", "medins", "raw", "soap"]),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.text(max_size=40),
    body=st.binary(max_size=300),
    status=st.integers(100, 599),
)
def test_codecs_never_raise(kind, method, path, body, status):
    codec = codecs.get(kind)
    req = codec.request_meta(method, "/" + path, {"Content-Type": "application/json"}, body)
    resp = codec.response_meta(req, status, {}, body)
    assert isinstance(req, dict) and isinstance(resp, dict)
