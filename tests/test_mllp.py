from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.mllp import (
    EndBlockWithoutCR,
    Frame,
    FrameTooLarge,
    Junk,
    MissingStartBlock,
    MLLPDecoder,
    Problem,
    Truncated,
    encode,
)

ADT = b"MSH|^~\\&|HIS|H1|HC|H1|20240101120000||ADT^A01|MSG001|P|2.5\rPID|1||12345^^^H1^MR||ZHANG^SAN\r"


def run(chunks: list[bytes], max_frame: int = 1 << 24) -> list:
    dec = MLLPDecoder(max_frame=max_frame)
    events = []
    for chunk in chunks:
        events.extend(dec.feed(chunk))
    events.extend(dec.close())
    return events


def frames(events) -> list[bytes]:
    return [e.payload for e in events if isinstance(e, Frame)]


def problems(events) -> list:
    return [e for e in events if isinstance(e, Problem)]


def test_encode_frames_payload():
    assert encode(b"MSH|x") == b"\x0bMSH|x\x1c\r"


@pytest.mark.parametrize("bad", [b"a\x0bb", b"a\x1cb"])
def test_encode_refuses_block_characters(bad):
    with pytest.raises(ValueError, match="at byte 1"):
        encode(bad)


def test_one_frame_one_chunk():
    events = run([encode(ADT)])
    assert events == [Frame(0, ADT)]


def test_many_frames_in_one_chunk_and_offsets():
    data = encode(b"one") + encode(b"two") + encode(b"three")
    events = run([data])
    assert frames(events) == [b"one", b"two", b"three"]
    assert [e.offset for e in events] == [0, 6, 12]
    assert problems(events) == []


def test_byte_by_byte():
    data = encode(ADT) + encode(b"second")
    events = run([data[i : i + 1] for i in range(len(data))])
    assert frames(events) == [ADT, b"second"]
    assert problems(events) == []


def test_empty_frame_is_a_frame():
    assert run([b"\x0b\x1c\r"]) == [Frame(0, b"")]


def test_junk_between_frames_is_reported_and_frames_survive():
    events = run([encode(b"a") + b"\r\nGARBAGE" + encode(b"b")])
    assert frames(events) == [b"a", b"b"]
    (junk,) = problems(events)
    assert isinstance(junk, Junk)
    assert junk.offset == 4 and junk.size == 9 and junk.head == b"\r\nGARBAGE"
    assert not junk.whitespace
    assert "9 byte(s) outside any frame at offset 4" in junk.describe()


def test_whitespace_junk_is_flagged():
    events = run([encode(b"a") + b"\n", encode(b"b")])
    (junk,) = problems(events)
    assert junk.whitespace and junk.size == 1


def test_missing_start_block_still_delivers_the_frame():
    events = run([b"MSH|no start\x1c\r" + encode(b"next")])
    assert events[0] == MissingStartBlock(0)
    assert events[1] == Frame(0, b"MSH|no start")
    assert events[2] == Frame(14, b"next")
    assert "no start block" in events[0].describe()


def test_missing_start_block_after_whitespace():
    events = run([encode(b"a") + b"\r\n", b"MSH|x\x1c\r"])
    assert [type(e) for e in events] == [Frame, Junk, MissingStartBlock, Frame]
    assert events[-1].payload == b"MSH|x"


def test_end_block_without_cr_then_next_frame():
    events = run([b"\x0bfirst\x1c\x0bsecond\x1c\r"])
    assert events == [EndBlockWithoutCR(6, 0x0B), Frame(0, b"first"), Frame(7, b"second")]
    assert "followed by byte 0x0B" in events[0].describe()


def test_end_block_without_cr_followed_by_junk():
    events = run([b"\x0bfirst\x1cXY"])
    assert events[:2] == [EndBlockWithoutCR(6, ord("X")), Frame(0, b"first")]
    assert isinstance(events[2], Junk) and events[2].head == b"XY"


def test_end_block_split_from_cr_across_chunks():
    assert run([b"\x0babc\x1c", b"\r"]) == [Frame(0, b"abc")]


def test_end_block_at_close_without_cr():
    events = run([b"\x0babc\x1c"])
    assert events == [EndBlockWithoutCR(4, None), Frame(0, b"abc")]
    assert "end of the stream" in events[0].describe()


def test_truncated_at_close():
    events = run([encode(b"ok"), b"\x0bMSH|half"])
    assert events[0] == Frame(0, b"ok")
    assert events[1] == Truncated(5, b"MSH|half", "closed")
    assert "truncated after 8 byte(s): the stream closed" in events[1].describe()


def test_new_start_block_inside_frame_truncates_previous():
    events = run([b"\x0bpartial\x0bwhole\x1c\r"])
    assert events == [Truncated(0, b"partial", "new start block"), Frame(8, b"whole")]


def test_stray_end_block_is_junk_not_an_empty_frame():
    events = run([encode(b"a") + b"\x1c\r" + encode(b"b")])
    assert frames(events) == [b"a", b"b"]
    (junk,) = problems(events)
    assert isinstance(junk, Junk) and junk.head == b"\x1c\r"


def test_oversized_frame_is_skipped_and_next_frame_decoded():
    big = b"MSH|" + b"x" * 100
    dec = MLLPDecoder(max_frame=50)
    events = []
    data = encode(big) + encode(b"small")
    for i in range(0, len(data), 7):
        events.extend(dec.feed(data[i : i + 7]))
        assert len(dec._buf) <= 50  # memory stays bounded while skipping
    events.extend(dec.close())
    assert isinstance(events[0], FrameTooLarge)
    assert events[0].size == len(big) and events[0].limit == 50 and events[0].complete
    assert events[0].head == big[:256]
    assert events[1] == Frame(len(big) + 3, b"small")
    assert "larger than the 50-byte limit" in events[0].describe()


def test_oversized_frame_cut_off_at_close():
    events = run([b"\x0b" + b"y" * 30], max_frame=10)
    (ev,) = events
    assert isinstance(ev, FrameTooLarge) and not ev.complete and ev.size == 30


def test_exact_limit_is_accepted():
    assert frames(run([encode(b"z" * 10)], max_frame=10)) == [b"z" * 10]


def test_large_junk_keeps_only_a_head():
    events = run([b"J" * 100_000, encode(b"a")], max_frame=1000)
    assert isinstance(events[0], Junk)
    assert events[0].size == 100_000 and len(events[0].head) == 256
    assert events[1] == Frame(100_000, b"a")


def test_decoder_is_reusable_after_close():
    dec = MLLPDecoder()
    dec.feed(b"\x0bhalf")
    assert isinstance(dec.close()[0], Truncated)
    assert dec.feed(encode(b"again")) == [Frame(0, b"again")]
    assert not dec.in_frame


def test_feed_accepts_bytearray_and_memoryview():
    dec = MLLPDecoder()
    assert dec.feed(bytearray(encode(b"a"))) == [Frame(0, b"a")]
    assert dec.feed(memoryview(encode(b"b"))) == [Frame(4, b"b")]


def test_max_frame_must_be_positive():
    with pytest.raises(ValueError):
        MLLPDecoder(max_frame=0)


def test_many_frames_chunked_randomly_is_fast_enough_to_be_linear():
    # 2,000 frames split at random points: correctness under load, not a timing assertion
    rng = random.Random(7)
    payloads = [ADT.replace(b"MSG001", b"MSG%06d" % i) for i in range(2000)]
    data = b"".join(encode(p) for p in payloads)
    cuts = sorted(rng.sample(range(1, len(data)), 3000))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert frames(run(chunks)) == payloads


# -- properties --------------------------------------------------------------------------

payload_st = st.binary(max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b""))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=300, deadline=None)
@given(st.lists(payload_st, max_size=8), st.lists(st.integers(min_value=0), max_size=40))
def test_roundtrip_under_random_chunking(payloads, cuts):
    data = b"".join(encode(p) for p in payloads)
    events = run(split(data, cuts))
    assert frames(events) == payloads
    assert problems(events) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(payload_st, max_size=5))
def test_roundtrip_one_byte_at_a_time(payloads):
    data = b"".join(encode(p) for p in payloads)
    assert frames(run([data[i : i + 1] for i in range(len(data))])) == payloads


@settings(max_examples=100, deadline=None)
@given(st.lists(payload_st, max_size=8))
def test_roundtrip_all_in_one_chunk(payloads):
    assert frames(run([b"".join(encode(p) for p in payloads)])) == payloads


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\x1c\r", b"\x00", b"\n", b"MSH|"]),
        ),
        max_size=30,
    ),
    st.integers(min_value=1, max_value=64),
)
def test_never_raises_on_arbitrary_bytes(chunks, max_frame):
    dec = MLLPDecoder(max_frame=max_frame)
    events = []
    for chunk in chunks:
        events.extend(dec.feed(chunk))
    events.extend(dec.close())
    total = sum(len(c) for c in chunks)
    for ev in events:
        assert 0 <= ev.offset <= total
        if isinstance(ev, Frame):
            assert b"\x0b" not in ev.payload and b"\x1c" not in ev.payload
            assert len(ev.payload) <= max_frame
        if isinstance(ev, Problem):
            assert ev.describe()
    assert not dec.in_frame


@settings(max_examples=200, deadline=None)
@given(
    st.lists(payload_st, min_size=1, max_size=5),
    st.binary(max_size=40),
    st.lists(st.integers(0), max_size=10),
)
def test_frames_after_garbage_are_recovered(payloads, garbage, cuts):
    # whatever precedes it, a well-formed frame after a start block is decoded intact
    data = garbage + b"".join(encode(p) for p in payloads)
    got = frames(run(split(data, cuts)))
    assert got[-len(payloads) :] == payloads


@pytest.mark.slow
@settings(max_examples=20_000, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=50), st.integers(min_value=1, max_value=500))
def test_never_raises_fuzz_long(chunks, max_frame):
    dec = MLLPDecoder(max_frame=max_frame)
    for chunk in chunks:
        dec.feed(chunk)
    dec.close()
    assert not dec.in_frame


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([b"\x0b", b"\x1c", b"\r", b"\x1c\r", b" ", b"\x0bMSH|\x1c\r", b"\x0b\x1c\r",
                             b"\x0bab\x0bcd\x1c\r", b"\x0bab\x1c\rcd\x1c\r", b"MSH|a\x1c\r", b"\x0bab\x1cX"]),
            payload_st.map(encode),
        ),
        max_size=20,
    ),
    st.integers(min_value=1, max_value=64),
)
def test_whole_frame_shortcut_decodes_like_the_state_machine(chunks, max_frame):
    # `feed` takes a chunk that is exactly one clean frame without running the state machine; it must
    # give the same events (offsets included) as the state machine for any chunk in any state
    fast, slow = MLLPDecoder(max_frame=max_frame), MLLPDecoder(max_frame=max_frame)
    for chunk in chunks:
        assert fast.feed(chunk) == slow._scan(chunk)
    assert fast.close() == slow.close()


def test_whole_frame_shortcut_keeps_pending_whitespace_and_limits():
    dec = MLLPDecoder(max_frame=5)
    assert dec.feed(b"\x0b12345\x1c\r") == [Frame(0, b"12345")]
    assert isinstance(dec.feed(b"\x0b123456\x1c\r")[0], FrameTooLarge)
    assert dec.feed(b"\n") == []
    assert dec.feed(b"\x0bab\x1c\r") == [Junk(17, 1, b"\n"), Frame(18, b"ab")]
    events = dec.feed(b"\x0bab\x0bcd\x1c\r")  # a start block inside: the first frame is cut short
    assert isinstance(events[0], Truncated) and events[1] == Frame(26, b"cd")
    assert isinstance(dec.feed(b"ab\x1c\r")[0], MissingStartBlock)  # no start block: not the shortcut's
    assert isinstance(dec.feed(b"\x0bab\x1cX")[0], EndBlockWithoutCR)
