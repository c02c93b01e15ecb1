import pytest

from harness.hl7v2.ack import build_ack
from harness.hl7v2.ackmode import AckMode
from harness.hl7v2.meta import extract
from harness.load.mllp_ack import AckWait, msa
from tests.messages import adt, without_msa2

ORIGINAL = AckMode.of(None, None)
ENHANCED = AckMode.of("AL", "AL")


def test_original_mode_one_aa_is_accepted():
    wait = AckWait("C1", ORIGINAL)
    assert wait.frame(build_ack(adt("C1"), "AA"), 0.1)
    assert wait.verdict() == "ok" and wait.failure() is None


def test_a_nak_fails_with_its_code_and_text():
    wait = AckWait("C1", ORIGINAL)
    assert wait.frame(build_ack(adt("C1"), "AE", text="病人不存在"), 0.1)
    assert wait.verdict() == "nak"
    assert wait.failure().startswith("AE: 病人不存在")  # MSA-3, then what ERR says


def test_enhanced_mode_waits_for_the_application_ack_after_the_commit():
    wait = AckWait("C2", ENHANCED)
    assert not wait.frame(build_ack(adt("C2", msh15="AL", msh16="AL"), "CA"), 0.2)
    assert wait.after_commit and wait.accepted_at == 0.2 and wait.waiting() == "required"
    assert wait.frame(build_ack(adt("C2", msh15="AL", msh16="AL"), "AE", text="ward closed"), 0.5)
    assert wait.failure().startswith("AE: ward closed")
    commit_refused = AckWait("C3", ENHANCED)
    assert commit_refused.frame(build_ack(adt("C3", msh15="AL", msh16="AL"), "CR"), 0.1)
    assert commit_refused.failure().startswith("CR")


def test_an_ack_for_another_message_is_late_and_never_taken():
    wait = AckWait("C5", ORIGINAL)
    assert not wait.frame(build_ack(adt("C4"), "AE"), 0.1)
    assert wait.late == 1 and not wait.done
    assert wait.frame(build_ack(adt("C5"), "AA"), 0.2)
    assert wait.verdict() == "ok"


def test_a_reply_without_msa2_is_taken_and_a_reply_without_a_code_is_a_bad_ack():
    wait = AckWait("C6", ORIGINAL)
    assert wait.frame(without_msa2(build_ack(adt("C6"), "AR")), 0.1)
    assert wait.failure().startswith("AR")
    bad = AckWait("C7", ORIGINAL)
    assert bad.frame(b"MSH|^~\\&|HC|H|HIS|H|20260101||ACK|X1|P|2.5\rMSA|ZZ|C7\r", 0.1)
    assert bad.verdict() == "bad_ack" and bad.failure() == "bad ACK: MSA-1 'ZZ'"
    none = AckWait("C8", ORIGINAL)
    assert none.frame(b"MSH|^~\\&|HC|H|HIS|H|20260101||ACK|X1|P|2.5\r", 0.1)
    assert none.failure() == "bad ACK: no MSA-1 code"


@pytest.mark.parametrize(
    "mode, verdict, failure",
    [
        (ORIGINAL, "timeout", "timeout: no ACK within 5 s"),
        (AckMode.of("ER", "ER"), "ok", None),
        (AckMode.of("NE", "SU"), "timeout", "timeout: no ACK although MSH-15/16 SU asks for one on success"),
    ],
)
def test_silence_is_a_timeout_or_for_er_an_acceptance(mode, verdict, failure):
    wait = AckWait("C9", mode)
    wait.expire(5)
    assert wait.done and wait.verdict() == verdict and wait.failure() == failure


def test_ne_ne_expects_nothing():
    wait = AckWait("C10", AckMode.of("NE", "NE"))
    assert wait.done and wait.waiting() == "none" and wait.verdict() == "no_ack_expected"
    assert wait.failure() is None


@pytest.mark.parametrize(
    "reply",
    [
        build_ack(adt("C1"), "AA"),
        build_ack(adt("C1"), "AE", text="x|y"),
        without_msa2(build_ack(adt("C2"), "AR")),
        b"MSH|^~\\&|HC|H|HIS|H|20260101||ACK|X1|P|2.5\rMSA|ZZ|C7\r",
        b"MSH|^~\\&|HC|H|HIS|H|20260101||ACK|X1|P|2.5\r",
        b"MSH|^~\\&|HC|H|HIS|H|20260101||ACK|X1|P|2.5\rMSA|AA|C\\F\\1\r",
        b"MSH#^~\\&#HC#H#HIS#H#20260101##ACK#X1#P#2.5\rMSA#CA#Q1^x\r",
        b"MSH|^~\\&|HC|H|HIS|H|20260101||ACK|X1|P|2.5\nMSA|AA|C3\n",
        b"MSH|^~\\&|HC|H|HIS|H|20260101||ACK|X1|P|2.5\rMSA|AA\r",
        b"MSH|^~\\&|HC|H|HIS|H|20260101||ACK|X1|P|2.5\rMSA\r",
        "MSH|^~\\&|HC|医院|HIS|H|20260101||ACK|X1|P|2.5|||||CHN|UNICODE UTF-8\rMSA|AA|C9\r".encode(),
        "MSH|^~\\&|HC|医院|HIS|H|20260101||ACK|X1|P|2.4||||||GBK\rMSA|AE|C9|拒绝\r".encode("gbk"),
    ],
)
def test_the_quick_msa_read_agrees_with_the_shared_metadata_reader(reply):
    meta = extract(reply)
    assert msa(reply) == (meta.ack_code, meta.ack_control_id)
