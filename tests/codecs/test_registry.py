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


def test_path_segments_of_odd_targets():
    assert codecs.path_segments("/fhir/Patient/1?x=1") == ["fhir", "Patient", "1"]
    assert codecs.path_segments("http://h:1/fhir/Patient") == ["fhir", "Patient"]
    assert codecs.path_segments("//[") == ["["]


def test_unreadable_target_still_gives_metadata():
    assert codecs.get("fhir").request_meta("GET", "//[", {}, b"")["interaction"] == "search-system"
    assert codecs.get("cdc").request_meta("GET", "//[", {}, b"")["table"] == "["
