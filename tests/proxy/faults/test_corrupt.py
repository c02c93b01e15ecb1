import random

import pytest

from harness.proxy.faults.actions.corrupt import break_framing, flip_byte
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.faults.params import RuleError
from harness.proxy.faults.rules import parse_rule

from .samples import ack, adt, apply_one


def _diff(a: bytes, b: bytes) -> list[int]:
    return [i for i in range(min(len(a), len(b))) if a[i] != b[i]]


def test_flip_byte_changes_one_bit_of_one_byte():
    original = adt()
    fault = apply_one({"type": "corrupt", "mode": "flip_byte", "seed": 3}, payload=original)
    changed = fault.plan.forward_payload
    assert changed is not None and len(changed) == len(original)
    (pos,) = _diff(original, changed)
    assert bin(original[pos] ^ changed[pos]).count("1") == 1
    assert fault.plan.forward_raw is None
    assert f"byte {pos}" in fault.record()["done"][0]


def test_flip_byte_is_reproducible_with_a_seed():
    def run(seed):
        engine = FaultEngine(rules=[{"action": {"type": "corrupt", "mode": "flip_byte", "seed": seed}}])
        return [engine.decide("request", adt(), None).plan.forward_payload for _ in range(20)]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_flip_never_creates_framing_bytes():
    rng = random.Random(0)
    for value in range(256):
        out, _ = flip_byte(bytes([value]), rng)
        assert out[0] != value
        assert out[0] not in (0x0B, 0x1C, 0x0D)


def test_flip_at_offset():
    fault = apply_one({"type": "corrupt", "mode": "flip_byte", "offset": 0})
    assert _diff(adt(), fault.plan.forward_payload) == [0]


def test_truncate_keeps_a_prefix():
    original = adt()
    plan = apply_one({"type": "corrupt", "mode": "truncate", "keep_bytes": 20}).plan
    assert plan.forward_payload == original[:20]
    plan = apply_one({"type": "corrupt", "mode": "truncate", "seed": 1}).plan
    assert 0 < len(plan.forward_payload) < len(original)
    assert original.startswith(plan.forward_payload)


def test_wrong_charset_reencodes_without_changing_msh18():
    original = adt(pid3="9001").replace(b"ZHANG^SAN", "张^三".encode())
    plan = apply_one({"type": "corrupt", "mode": "wrong_charset"}, payload=original).plan
    assert plan.forward_payload == original.decode("utf-8").encode("gb18030")
    assert plan.forward_payload != original
    plan = apply_one(
        {"type": "corrupt", "mode": "wrong_charset", "charset": "utf-16-le"}, payload=original
    ).plan
    assert plan.forward_payload == original.decode("utf-8").encode("utf-16-le")


def test_wrong_charset_on_ascii_says_nothing_changed():
    fault = apply_one({"type": "corrupt", "mode": "wrong_charset"})
    assert fault.plan.forward_payload == adt()
    assert "changed nothing" in fault.record()["done"][0]


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        ("no_start", b"P\x1c\r"),
        ("no_end", b"\x0bP"),
        ("no_cr", b"\x0bP\x1c"),
    ],
)
def test_break_framing_writes_raw_bytes(framing, expected):
    plan = apply_one({"type": "corrupt", "mode": "break_framing", "framing": framing}, payload=b"P").plan
    assert plan.forward_raw == expected
    assert break_framing(b"\x0bP\x1c\r", framing) == (expected, break_framing(b"P", framing)[1])


def test_response_target_transforms_the_reply_when_it_arrives():
    fault = apply_one({"type": "corrupt", "mode": "truncate", "keep_bytes": 10, "target": "response"})
    plan = fault.plan
    assert plan.forward_payload is None and plan.forward_raw is None
    assert plan.reply_transform is not None
    assert plan.reply_transform(ack()) == ack()[:10]
    assert any("reply corrupted" in line for line in fault.record()["done"])


def test_response_break_framing_edits_the_framed_reply():
    fault = apply_one({"type": "corrupt", "mode": "break_framing"}, direction="response")
    assert fault.plan.reply_transform is None
    assert fault.plan.reply_raw_transform(b"\x0bACK\x1c\r") == b"ACK\x1c\r"


def test_response_flip_is_reproducible():
    def reply(seed):
        fault = apply_one({"type": "corrupt", "mode": "flip_byte", "seed": seed}, direction="response")
        return fault.plan.reply_transform(ack())

    assert reply(5) == reply(5)
    assert len(_diff(ack(), reply(5))) == 1


@pytest.mark.parametrize(
    ("action", "where", "text"),
    [
        ({"type": "corrupt"}, "action.mode", "required"),
        (
            {"type": "corrupt", "mode": "shred"},
            "action.mode",
            "flip_byte, break_framing, wrong_charset, truncate",
        ),
        (
            {"type": "corrupt", "mode": "truncate", "offset": 3},
            "action.offset",
            "only used with mode flip_byte",
        ),
        (
            {"type": "corrupt", "mode": "wrong_charset", "charset": "klingon"},
            "action.charset",
            "unknown charset",
        ),
        ({"type": "corrupt", "mode": "flip_byte", "seed": "x"}, "action.seed", "integer"),
    ],
)
def test_bad_params(action, where, text):
    with pytest.raises(RuleError) as err:
        parse_rule({"action": action})
    assert err.value.where == where
    assert text in err.value.problem


def test_response_rule_cannot_corrupt_the_request():
    with pytest.raises(RuleError, match="already forwarded"):
        parse_rule(
            {
                "match": {"direction": "response"},
                "action": {"type": "corrupt", "mode": "truncate", "target": "request"},
            }
        )
