"""The bytes a client gets for a held response, relayed or edited by a fault plan (no sockets)."""

from __future__ import annotations

import json

from harness.http_wire import parse_head, read_message
from harness.proxy.faults.http_plan import HttpPlan
from harness.proxy.http.response import render

BODY = json.dumps({"infcode": 0, "output": {"x": list(range(30))}}).encode()
HEAD = parse_head(
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nx-CaSe: v\r\nContent-Length: %d" % len(BODY),
    request=False,
)
CHUNKED = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5", request=False)
CHUNKED_RAW = b"5\r\nhello\r\n0\r\n\r\n"


def test_relay_keeps_the_head_byte_for_byte():
    out = render(None, HEAD, BODY, BODY, method="POST", close=False)
    assert out.data == HEAD.raw + b"\r\n\r\n" + BODY and not out.close and not out.edited


def test_relay_drops_hop_by_hop_and_says_close_when_closing():
    out = render(None, CHUNKED, b"hello", CHUNKED_RAW, method="GET", close=True)
    assert b"Keep-Alive" not in out.data and b"Connection: close\r\n" in out.data and out.close
    assert out.data.endswith(CHUNKED_RAW)


def test_body_delimited_by_the_close_closes_the_client_too():
    head = parse_head(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain", request=False)
    assert render(None, head, b"abc", b"abc", method="GET", close=False).close
    assert not render(None, head, b"", b"", method="HEAD", close=False).close


def test_malformed_is_a_complete_message_with_an_unparseable_body():
    out = render(HttpPlan(malformed="cut"), CHUNKED, b"hello world!", CHUNKED_RAW, method="GET", close=False)
    msg = read_message(out.data, request=False)
    assert out.edited and msg.complete and msg.body == b"hello " and b"Transfer-Encoding" not in out.data


def test_truncate_announces_the_full_length_sends_part_and_closes():
    out = render(HttpPlan(truncate_keep=10), HEAD, BODY, BODY, method="POST", close=False)
    msg = read_message(out.data, request=False)
    assert out.close and out.edited and not msg.complete and msg.body == BODY[:10]
    half = render(HttpPlan(truncate_keep=-1), HEAD, BODY, BODY, method="POST", close=False)
    assert read_message(half.data, request=False).body == BODY[: len(BODY) // 2]


def test_delay_and_slow_body_relay_unchanged():
    out = render(HttpPlan(hold_s=0.5, body_bps=100), HEAD, BODY, BODY, method="POST", close=False)
    assert out.data.endswith(BODY) and (out.hold_s, out.bps) == (0.5, 100) and not out.edited
