import pytest

from harness.replay.comparators import comparator_for
from harness.replay.compare import (
    Difference,
    HL7v2Comparator,
    IgnoreRule,
    Observed,
    classify,
    diff_fields,
    hl7v2_fields,
    parse_ignore,
)
from tests.messages import ack_for


def ack(code="AA", ctl="MSG1", ts="20261125010203", text="", err=None, msh10="ACK1"):
    return ack_for(ctl, code, text=text, ts=ts, msh10=msh10, message_type="ACK^A01^ACK", err=err)


def obs(response, sent="MSG1", original="MSG1", **kw):
    return Observed(response, control_id=sent, original_control_id=original, **kw)


cmp = HL7v2Comparator()


def test_identical_is_exact():
    r = cmp.compare(obs(ack()), obs(ack()))
    assert r.classification == "exact"
    assert r.differences == []
    assert (r.original_code, r.replay_code) == ("AA", "AA")


def test_only_timestamp_and_ack_id_differ_is_equivalent():
    r = cmp.compare(obs(ack()), obs(ack(ts="20261126080000", msh10="ACK99")))
    assert r.classification == "equivalent"
    assert {d.path for d in r.differences} == {"MSH-7", "MSH-10"}
    assert all(d.ignored for d in r.differences)


def test_msa2_through_the_id_map():
    original = obs(ack(ctl="MSG1"))
    replay = obs(ack(ctl="R5-1"), sent="R5-1", original="MSG1")
    r = cmp.compare(original, replay)
    assert r.classification == "equivalent"
    (d,) = r.differences
    assert (d.path, d.original, d.replay, d.rule) == ("MSA-2", "MSG1", "R5-1", "id map")


def test_msa2_naming_another_message_is_different():
    r = cmp.compare(obs(ack(ctl="MSG1")), obs(ack(ctl="OTHER"), sent="R5-1", original="MSG1"))
    assert r.classification == "different"
    assert [(d.path, d.ignored) for d in r.differences] == [("MSA-2", False)]


def test_accepted_then_error_is_new_error():
    for code in ("AE", "AR", "CE", "CR"):
        r = cmp.compare(obs(ack("AA")), obs(ack(code)))
        assert r.classification == "new_error", code
        assert r.replay_code == code


def test_error_then_other_error_is_different_and_then_accept_is_recovered():
    assert cmp.compare(obs(ack("AE")), obs(ack("AR"))).classification == "different"
    r = cmp.compare(obs(ack("AE", text="bad PID")), obs(ack("AA")))
    assert r.classification == "different"
    assert r.recovered


def test_same_nak_with_other_words_is_different_with_both_values():
    r = cmp.compare(obs(ack("AE", text="PID-3 missing")), obs(ack("AE", text="PID-5 missing")))
    assert r.classification == "different"
    (d,) = r.differences
    assert (d.path, d.original, d.replay, d.ignored) == ("MSA-3", "PID-3 missing", "PID-5 missing", False)


def test_err_timestamps_ignored_but_err_text_not():
    e1 = "ERR||PID^1^3|101^Required field missing^HL70357|E||||at 20261125010203"
    e2 = "ERR||PID^1^3|101^Required field missing^HL70357|E||||at 20261126093000"
    e3 = "ERR||PID^1^5|101^Required field missing^HL70357|E||||at 20261126093000"
    assert cmp.compare(obs(ack("AE", err=e1)), obs(ack("AE", err=e2))).classification == "equivalent"
    r = cmp.compare(obs(ack("AE", err=e1)), obs(ack("AE", err=e3)))
    assert r.classification == "different"
    assert [d.path for d in r.differences if not d.ignored] == ["ERR-2"]


def test_missing_reply_and_local_error():
    r = cmp.compare(obs(ack()), Observed(None, outcome="timeout", error="no ACK within 5 s"))
    assert r.classification == "missing"
    assert "no ACK within 5 s" in r.note
    r = cmp.compare(obs(ack()), Observed(None, outcome="error", error="MSH-7: cannot shift 'abc'"))
    assert r.classification == "new_error"


def test_unreadable_reply_is_new_error():
    r = cmp.compare(obs(ack()), obs(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    assert r.classification == "new_error"
    assert "not HL7 v2" in r.note


def test_original_without_reply_then_accept_is_recovered_difference():
    r = cmp.compare(Observed(None, outcome="timeout"), obs(ack()))
    assert r.classification == "different"
    assert r.recovered
    assert "timeout" in r.note


def test_no_baseline_expects_an_accept():
    assert cmp.compare(None, obs(ack())).classification == "equivalent"
    assert cmp.compare(None, obs(ack("AE"))).classification == "new_error"


def test_extra_segment_is_a_difference():
    r = cmp.compare(obs(ack()), obs(ack(err="ERR||PID^1^3")))
    assert r.classification == "different"
    assert ("ERR-2", None, "PID^1^3") in [(d.path, d.original, d.replay) for d in r.differences]


def test_gbk_reply_decoded_before_split():
    text = "MSH|^~\\&|HC|医院|HIS||20261125||ACK|1|P|2.5|||||CHN|GBK\rMSA|AE|MSG1|患者姓名错误\r"
    a = text.encode("gbk")
    b = text.replace("错误", "缺失").encode("gbk")
    r = cmp.compare(obs(a), obs(b))
    assert r.classification == "different"
    (d,) = r.differences
    assert (d.path, d.original, d.replay) == ("MSA-3", "患者姓名错误", "患者姓名缺失")


def test_fields_numbering_and_repeats():
    f = hl7v2_fields(b"MSH|^~\\&|A||||||ACK|9|P|2.5\rERR|x\rERR|y\r")
    assert f["MSH-1"] == "|" and f["MSH-2"] == "^~\\&" and f["MSH-9"] == "ACK" and f["MSH-10"] == "9"
    assert f["ERR-1"] == "x" and f["ERR[2]-1"] == "y"
    with pytest.raises(ValueError, match="no MSH"):
        hl7v2_fields(b"PID|1\r")


def test_generic_core_over_flat_maps():
    diffs = diff_fields(
        {"a": "1", "b": "2", "ts": "x"},
        {"a": "1", "b": "3", "c": "4", "ts": "y"},
        [IgnoreRule("ts")],
    )
    assert [(d.path, d.ignored) for d in diffs] == [("b", False), ("ts", True), ("c", False)]
    assert classify("AA", "AA", [Difference("ts", "x", "y", ignored=True)]) == "equivalent"
    assert classify("AA", "AA", []) == "exact"
    assert classify("AA", "AE", []) == "new_error"


def test_parse_ignore_and_extra_rules():
    assert parse_ignore("ERR*:timestamps") == IgnoreRule("ERR*", True)
    with pytest.raises(ValueError, match="unknown flag"):
        parse_ignore("MSA-3:loose")
    c = comparator_for("hl7v2", [parse_ignore("MSA-3")])
    r = c.compare(obs(ack("AE", text="x")), obs(ack("AE", text="y")))
    assert r.classification == "equivalent"
    with pytest.raises(ValueError, match="no comparator"):
        comparator_for("x-unknown")


# -- acknowledgement modes ------------------------------------------------------------------------


def test_enhanced_mode_compares_both_replies():
    original = obs(ack("AA", msh10="A1"), accept_response=ack("CA", msh10="C1"))
    same = obs(ack("AA", msh10="A2", ts="20261126080000"), accept_response=ack("CA", msh10="C2"))
    r = cmp.compare(original, same)
    assert r.classification == "equivalent"
    assert {d.path for d in r.differences} == {"MSH-7", "MSH-10", "accept/MSH-10"}


def test_a_commit_refused_on_replay_is_a_new_error_even_if_the_application_ack_agrees():
    original = obs(ack("AA"), accept_response=ack("CA"))
    replay = obs(ack("AA"), accept_response=ack("CR"))
    r = cmp.compare(original, replay)
    assert r.classification == "new_error"
    assert [(d.path, d.original, d.replay) for d in r.differences] == [("accept/MSA-1", "CA", "CR")]


def test_only_the_accept_ack_on_replay_is_missing():
    r = cmp.compare(obs(ack("AA"), accept_response=ack("CA")),
                    obs(None, outcome="timeout", accept_response=ack("CA"), error="no application ACK"))
    assert r.classification == "missing" and "the accept ACK came, the application ACK did not" in r.note


def test_a_reply_that_is_not_an_acknowledgement_is_a_new_error():
    r = cmp.compare(obs(ack("AA")), obs(ack("XX"), outcome="bad_ack"))
    assert r.classification == "new_error" and "not an acknowledgement" in r.note


def test_no_ack_messages_compare_exact_when_neither_side_got_one():
    r = cmp.compare(obs(None, outcome="no_ack_expected"), obs(None, outcome="no_ack_expected"))
    assert r.classification == "exact" and not r.failed
