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


DEEP = b"[" * 1000 + b"]" * 1000
HUGE_INT = b'{"infno": "2207", "infcode": ' + b"9" * 4301 + b"}"


@pytest.mark.parametrize("kind", codecs.KINDS)
@pytest.mark.parametrize(
    "body",
    [
        DEEP,
        b'{"a": ' + DEEP + b"}",
        HUGE_INT,
        b'{"infno": "2207", "msgid": "\\ud800", "infcode": 0, "resourceType": "\\udfff"}',
        b'{"infno": {"x": ' + b'{"y": ' * 200 + b"1" + b"}" * 200 + b"}}",
        b"<a>" * 300 + b"</a>" * 300,
    ],
    ids=["deep-array", "deep-object", "4301-digit-integer", "lone-surrogates", "deep-value", "deep-xml"],
)
def test_no_body_makes_a_kind_raise_and_what_it_returns_is_storable(kind, body):
    import json

    unit = codecs.get(kind)
    req = unit.request_meta("POST", "/fsi/api/2207", {"Content-Type": "application/json"}, body)
    resp = unit.response_meta(req, 200, {}, body)
    for meta in (req, resp):
        json.dumps(meta, ensure_ascii=False).encode("utf-8")
        for name in ("message_type", "control_id"):
            value = getattr(unit, name)(meta)
            assert value is None or isinstance(value, str)
        unit.ack_code(200, meta)
        unit.accepted(200, meta)
    if kind == "medins" and body is HUGE_INT:
        assert any("not read for metadata" in p for p in req["problems"])
    if kind in ("medins", "fhir", "cdc") and body is DEEP:
        assert any("nested too deeply" in p for p in req["problems"])


def test_a_lone_surrogate_msgid_is_stored_as_a_replacement_character_with_a_note():
    body = b'{"infno": "2207", "msgid": "H53\\ud800"}'
    meta = codecs.get("medins").request_meta("POST", "/", {}, body)
    assert meta["msgid"] == "H53\ufffd" and any("surrogate" in p for p in meta["problems"])


def test_each_kind_is_one_unit_with_its_columns_ignores_and_fault_actions():
    from harness.proxy.faults.actions import known_types

    assert codecs.kinds() == sorted(codecs.KINDS)
    for kind in codecs.KINDS:
        unit = codecs.get(kind)
        assert unit.kind == kind
        assert set(unit.fault_actions) <= set(known_types("http"))
    assert "inf_refmsgid" in codecs.get("medins").compare_ignores
    assert codecs.get("soap").fault_actions == ("soap_fault",)


def test_a_kind_that_raises_inside_gives_a_problem_not_an_exception():
    class Broken(codecs.HttpKind):
        kind = "raw"

        def read_request(self, method, path, headers, body):
            raise RuntimeError("boom")

    meta = Broken().request_meta("GET", "/", {}, b"")
    assert meta == {"problems": ["request metadata not read: RuntimeError: boom"]}
