"""HTTP/1.1 framing without sockets: split feeds, chunked bodies, bodies to close, hop-by-hop headers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.http_wire import (
    Body,
    Broken,
    End,
    Head,
    Interim,
    MessageReader,
    forward_headers,
    parse_head,
    read_message,
)

REQ = b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
)


def collect(reader: MessageReader, data: bytes, step: int) -> list:
    events = []
    for i in range(0, len(data), step):
        events += reader.feed(data[i : i + step])
    return events


def summary(events: list) -> tuple[list[str], bytes, bytes]:
    kinds = [type(e).__name__ for e in events]
    raw = b"".join(e.raw for e in events if isinstance(e, (Body, End)))
    data = b"".join(e.data for e in events if isinstance(e, Body))
    return kinds, raw, data


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_content_length_request_in_any_split(step):
    kinds, raw, data = summary(collect(MessageReader(), REQ + REQ, step))
    assert kinds.count("Head") == 2 and kinds.count("End") == 2
    assert data == b"hellohello" and raw == data


@pytest.mark.parametrize("step", [1, 4, 1000])
def test_chunked_body_raw_bytes_pass_through_and_decode(step):
    reader = MessageReader(request=False)
    events = collect(reader, CHUNKED, step)
    kinds, raw, data = summary(events)
    head = events[0]
    assert isinstance(head, Head) and head.status == 200 and head.chunked
    assert data == b"hello world"
    assert head.raw + b"\r\n\r\n" + raw == CHUNKED  # byte for byte, framing and trailer included
    assert kinds[-1] == "End" and reader.idle


def test_response_to_head_and_204_have_no_body_and_close_delimited_body_ends_at_close():
    reader = MessageReader(request=False, request_method="HEAD")
    events = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n")
    assert [type(e).__name__ for e in events] == ["Head", "End"]
    reader = MessageReader(request=False)
    assert [type(e).__name__ for e in reader.feed(b"HTTP/1.1 204 No Content\r\n\r\n")] == ["Head", "End"]
    reader = MessageReader(request=False)
    events = reader.feed(b"HTTP/1.0 200 OK\r\n\r\nsome body")
    assert [type(e).__name__ for e in events] == ["Head", "Body"]
    assert [type(e).__name__ for e in reader.close()] == ["End"]


def test_interim_responses_come_before_the_final_one():
    reader = MessageReader(request=False)
    events = reader.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(events[0], Interim) and events[0].head.status == 100
    assert isinstance(events[1], Head) and events[1].status == 201 and isinstance(events[2], End)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"GARBAGE\r\n\r\n", "request line"),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", "header line 2"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", "Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX", "CRLF"),
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70000, "longer than"),
    ],
)
def test_bad_input_is_reported_with_what_and_where(data, words):
    reader = MessageReader()
    events = reader.feed(data)
    assert isinstance(events[-1], Broken), events
    assert words in events[-1].problem
    assert reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == []  # stops after a broken message


def test_cut_short_message_is_reported_at_close():
    reader = MessageReader()
    reader.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    (event,) = reader.close()
    assert isinstance(event, Broken) and "body" in event.problem


def test_forward_headers_drops_hop_by_hop_and_what_connection_names_keeps_order_and_case():
    head = parse_head(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n"
        b"X-Secret: s\r\nx-CaSe: 1\r\nTE: trailers\r\nProxy-Connection: x\r\nTransfer-Encoding: chunked",
        request=True,
    )
    assert forward_headers(head) == [("Host", "a"), ("x-CaSe", "1"), ("Transfer-Encoding", "chunked")]
    assert forward_headers(head, drop=("host",)) == [("x-CaSe", "1"), ("Transfer-Encoding", "chunked")]
    assert head.keep_alive()
    assert not parse_head(b"GET / HTTP/1.0", request=True).keep_alive()
    assert parse_head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive", request=True).keep_alive()


def test_read_message_of_a_stored_exchange_and_of_a_truncated_one():
    msg = read_message(CHUNKED, request=False)
    assert msg.body == b"hello world" and msg.complete and msg.head.get("transfer-encoding") == "chunked"
    cut = read_message(REQ[:-2], request=True)
    assert cut.body == b"hel" and not cut.complete


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_reader_never_raises_on_any_bytes(data, step):
    for request in (True, False):
        reader = MessageReader(request=request)
        collect(reader, data, step)
        reader.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=40), max_size=6), st.integers(min_value=1, max_value=17))
def test_chunked_round_trip_property(chunks, step):
    wire = b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    kinds, raw, data = summary(collect(MessageReader(), wire + body, step))
    assert data == b"".join(chunks) and raw == body and kinds[-1] == "End"


@pytest.mark.parametrize(
    ("head", "words"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked", "both Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3", "more than one Content-Length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: ²".encode(), "ASCII digits"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: Content-Length", "Connection header names"),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0", "control character 0x00"),
        (b"HTTP/1.1 200 OK\r\nX: a\r\n b", "folded"),
        (b"HTTP/1.1 200 OK\nContent-Length: 0", "LF without CR"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip", "chunked must come last"),
        (b"HTTP/2 200 OK", "status line"),
    ],
)
def test_a_response_with_ambiguous_framing_is_broken_with_502(head, words):
    events = MessageReader(request=False).feed(head + b"\r\n\r\n")
    assert isinstance(events[-1], Broken) and events[-1].status == 502, events
    assert words in events[-1].problem


def test_a_response_may_carry_codings_before_chunked_and_its_bytes_pass_unchanged():
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    kinds, raw, body = summary(MessageReader(request=False).feed(data))
    assert kinds == ["Head", "Body", "Body", "End"] and body == b"abc"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: 1\r\n" * 300 + b"\r\n", 431),
    ],
)
def test_refusals_carry_the_status_to_answer(data, status):
    events = MessageReader().feed(data)
    assert isinstance(events[-1], Broken) and events[-1].status == status, events


def test_a_head_is_refused_as_soon_as_a_line_is_wrong_not_when_it_ends():
    reader = MessageReader()
    assert reader.feed(b"GET / HTTP/1.1\r\nHost: x\r\nX-Ok: 1\r\nX") == []
    (event,) = reader.feed(b" Bad")
    assert isinstance(event, Broken) and "header line" in event.problem
    (event,) = MessageReader().feed(b"GET / HTTP/1.1\nHost")
    assert isinstance(event, Broken) and "LF without CR" in event.problem


def test_nothing_may_follow_a_request_that_closes_the_connection():
    events = MessageReader().feed(b"GET / HTTP/1.0\r\n\r\nGET /next HTTP/1.0\r\n\r\n")
    assert [type(e).__name__ for e in events] == ["Head", "End", "Broken"]
