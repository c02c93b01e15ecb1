"""Request framing checked against two independent HTTP/1.1 parsers: llhttp (Node's, via httptools)
and h11. Whatever either rejects, the proxy's reader rejects no later; wherever all accept, all three
see the same requests with the same bodies (the condition for no request smuggling through the proxy).

Requests come from a generator of near-valid messages (lengths, codings, chunk-size lines, field
values and line ends varied, stray bytes inserted) followed by a second request, so a disagreement
about where the first one ends shows up as a different second request.
"""

from __future__ import annotations

import h11
import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from harness.http_wire import Body, Broken, End, Head, MessageReader

Verdict = tuple[list[tuple[str, str, bytes]], str]
"""(requests completed in order as (method, target, body), then `ok` | `reject` | `incomplete` |
`head-arriving` (ours only: a head not yet whole, of which nothing has been forwarded) | `upgrade` |
`closed`)."""

SECOND = b"GET /second HTTP/1.1\r\nHost: s\r\n\r\n"


def ours(data: bytes) -> Verdict:
    reader = MessageReader()
    done: list[tuple[str, str, bytes]] = []
    current: list | None = None
    for event in reader.feed(data):
        if isinstance(event, Head):
            current = [event.method, event.target, b""]
        elif isinstance(event, Body):
            current[2] += event.data
        elif isinstance(event, End):
            done.append(tuple(current))
            current = None
        elif isinstance(event, Broken):
            return done, "reject"
    if reader.idle:
        return done, "ok"
    return done, "incomplete" if current is not None else "head-arriving"


def llhttp(data: bytes) -> Verdict:
    done: list[tuple[str, str, bytes]] = []
    current: dict = {}

    class Callbacks:
        def on_message_begin(self) -> None:
            current.clear()
            current.update(url=b"", body=b"")

        def on_url(self, url: bytes) -> None:
            current["url"] += url

        def on_body(self, body: bytes) -> None:
            current["body"] += body

        def on_message_complete(self) -> None:
            method = parser.get_method().decode("latin-1")
            done.append((method, current["url"].decode("latin-1"), current["body"]))

    parser = httptools.HttpRequestParser(Callbacks())
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return done, "upgrade"
    except httptools.HttpParserError:
        return done, "reject"
    return done, "ok"


def h11_server(data: bytes) -> Verdict:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    done: list[tuple[str, str, bytes]] = []
    current: list | None = None
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return done, "incomplete" if current is not None else "ok"
            if event is h11.PAUSED:
                if conn.their_state is h11.MIGHT_SWITCH_PROTOCOL:
                    return done, "upgrade"
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:
                    return done, "closed"
                conn.start_next_cycle()
            elif isinstance(event, h11.Request):
                current = [event.method.decode("latin-1"), event.target.decode("latin-1"), b""]
            elif isinstance(event, h11.Data):
                current[2] += event.data
            elif isinstance(event, h11.EndOfMessage):
                done.append(tuple(current))
                current = None
            elif isinstance(event, h11.ConnectionClosed):
                return done, "closed"
    except h11.RemoteProtocolError:
        return done, "reject"


def check(data: bytes) -> None:
    mine, verdict = ours(data)
    for name, peer in (("llhttp", llhttp), ("h11", h11_server)):
        theirs, their_verdict = peer(data)
        if their_verdict == "reject":
            # A streaming peer may refuse a head mid-line; ours may wait for the whole head (bounded by
            # max_head_bytes and the head timeout), since nothing of it is forwarded before it is whole.
            assert verdict in ("reject", "head-arriving") and len(mine) <= len(theirs), (
                name, data, mine, verdict, theirs)
        # every request both sides completed is the same request (method, target, body)
        shared = min(len(mine), len(theirs))
        assert mine[:shared] == theirs[:shared], (name, data, mine, theirs)
        if verdict == "ok" and their_verdict == "ok":
            assert mine == theirs, (name, data, mine, theirs)


# -- the known smuggling and framing cases ------------------------------------------------------------

H = b"POST /a HTTP/1.1\r\nHost: x\r\n"
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
KNOWN = [
    H + b"Content-Length: %d\r\nConnection: Content-Length\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
    H + b"Transfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n0\r\n\r\n" + SMUGGLED,
    H + b"Content-Length: 4\r\nConnection: close, Host\r\n\r\nabcd",
    H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    H + b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n" + SMUGGLED,
    H + b"Content-Length: 6\r\nContent-Length: 5\r\n\r\nabcdef",
    H + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nabcde",
    H + b"Content-Length: 5, 5\r\n\r\nabcde",
    H + "Content-Length: ²\r\n\r\nab".encode(),
    H + b"Content-Length: +2\r\n\r\nab",
    H + b"Content-Length: 0x2\r\n\r\nab",
    H + b"Content-Length: 2 2\r\n\r\nab",
    H + b"Content-Length:!",  # refused before the head is whole, as llhttp does
    b"GET ,/ HTTP/1.1\r\nHost: x\r\n\r\n" + SECOND,  # a target that is neither a path nor a URL
    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
    H + b"content-length: 1x",
    *(
        H + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\nab\r\n0\r\n\r\n" + SMUGGLED
        for size in (b"0x2", b"+2", b"0_2", b" 2 ", b" 2", b"2 ", b"-2", b"2\x00", b"2;\x00")
    ),
    H + b"Transfer-Encoding: chunked\r\n\r\n-0\r\n\r\n" + SMUGGLED,
    H + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX: a\rb\r\n\r\n",
    H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    H + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
    H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    H + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    H + b"X: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # obs-fold
    H + b"X: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # bare CR
    H + b"X: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",  # bare LF
    H + b"X: a\x00b\r\nContent-Length: 0\r\n\r\n",  # NUL
    H + b"X: a\x01b\r\nContent-Length: 0\r\n\r\n",
    b"GET /a HTTP/1.1\nHost: x\n\n" + SMUGGLED,
    b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"GET /a HTTP/1.1\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\r\n" + SMUGGLED,
    b"GET /a HTTP/1.2\r\nHost: x\r\n\r\n",
    b"GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"get /a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
    b"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("data", KNOWN)
def test_known_smuggling_and_framing_cases_are_refused(data):
    mine, verdict = ours(data)
    assert verdict == "reject" and all(target != "/admin" for _, target, _ in mine), (data, mine)
    check(data)


def test_valid_requests_read_the_same_by_all_three():
    data = (
        H + b"Content-Length: 5\r\n\r\nhello"
        + H + b"Transfer-Encoding: chunked\r\n\r\n5;name=\"a b\"\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
        + b"GET /x?q=%E4 HTTP/1.1\r\nHost: x\r\nX: a\tb \x80\r\n\r\n"
        + b"GET /y HTTP/1.0\r\n\r\n"
    )  # fmt: skip
    mine, verdict = ours(data)
    assert verdict == "ok" and len(mine) == 4
    assert mine[1] == ("POST", "/a", b"hello")
    check(data)


# -- generated near-valid requests ---------------------------------------------------------------------

_EOL = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\r\n", b"\n\r"])
_SEP = st.sampled_from([b": ", b":", b":\t", b" : ", b": \t", b":  "])
_METHOD = st.sampled_from([b"GET", b"POST", b"PUT", b"get", b"PO ST", b"M-SEARCH", b"CONNECT", b"G\x00T"])
_TARGET = st.sampled_from([b"/", b"/fhir/Patient/1", b"*", b"http://a/b", b"/a b", b"/\x80", b"/%20", b""])
_VERSION = st.sampled_from(
    [b"HTTP/1.1"] * 6 + [b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.10"]
)
_LENGTH = st.sampled_from(
    [b"0", b"1", b"2", b"3", b"02", b"+2", b"-1", b"2 2", b"2,2", b"0x2", "²".encode(), b" 2", b"", b"9" * 20]
)
_CODING = st.sampled_from(
    [b"chunked", b"Chunked", b"chunked ", b"gzip, chunked", b"chunked, gzip", b"identity", b"xchunked",
     b"chunked,", b",chunked", b"\x0bchunked", b"chunked\x00", b"chunked, chunked"]
)  # fmt: skip
_CONNECTION = st.sampled_from(
    [b"close", b"keep-alive", b"Content-Length", b"Transfer-Encoding", b"host", b"close, X-Y", b"a b", b""]
)
_VALUE = st.sampled_from([b"v", b"", b"a\tb", b"a\x00b", b"a\x7fb", b"\x80\xff", b"a\rb", b"a\nb", b" v "])
_NAME = st.sampled_from([b"X-A", b"X A", b"X-\xe4", b"", b"x-b", b"Content-Length", b"Transfer-Encoding"])
_CHUNK_SIZE = st.sampled_from(
    [b"2", b"02", b"0x2", b"+2", b"0_2", b" 2 ", b"2 ", b" 2", b"-2", b"2;a=b", b"2;a", b"2 ;a",
     b"2;a=\"b c\"", b"2;a = b", b"2;\x00", b"ffffffffffffffffff", b"G", b""]
)  # fmt: skip
_STRAY = st.sampled_from([b"\x00", b"\r", b"\n", b"\t", b" ", b"\x7f", b"\x80", b",", b";", b'"', b":"])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    eol = draw(_EOL) if draw(st.integers(0, 9)) == 0 else b"\r\n"
    start = draw(_METHOD) + b" " + draw(_TARGET) + b" " + draw(_VERSION)
    lines: list[bytes] = [start]
    if draw(st.integers(0, 9)):
        lines.append(b"Host" + draw(_SEP) + b"x")
    framing = draw(st.sampled_from(["none", "length", "chunked", "both", "two-lengths", "two-codings"]))
    body = b""
    if framing in ("length", "both", "two-lengths"):
        lines.append(b"Content-Length" + draw(_SEP) + draw(_LENGTH))
    if framing == "two-lengths":
        lines.append(b"Content-Length" + draw(_SEP) + draw(_LENGTH))
    if framing in ("chunked", "both", "two-codings"):
        lines.append(b"Transfer-Encoding" + draw(_SEP) + draw(_CODING))
    if framing == "two-codings":
        lines.append(b"Transfer-Encoding" + draw(_SEP) + draw(_CODING))
    for _ in range(draw(st.integers(0, 2))):
        lines.append(draw(_NAME) + draw(_SEP) + draw(_VALUE))
    if draw(st.booleans()):
        lines.append(b"Connection" + draw(_SEP) + draw(_CONNECTION))
    if draw(st.integers(0, 9)) == 0:
        lines.append(b" folded")
    if framing in ("length", "two-lengths"):
        body = b"ab"
    elif framing in ("chunked", "both", "two-codings"):
        body = draw(_CHUNK_SIZE) + b"\r\nab\r\n0" + b"\r\n"
        if draw(st.booleans()):
            body += draw(_NAME) + draw(_SEP) + draw(_VALUE) + b"\r\n"
        body += b"\r\n"
    data = eol.join(lines) + eol + eol + body
    if draw(st.integers(0, 3)) == 0:  # one stray byte anywhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(_STRAY) + data[at:]
    return data + SECOND


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
@example(H + b"Content-Length: 2\r\n\r\nab" + SECOND)
def test_whatever_llhttp_or_h11_rejects_the_proxy_rejects(data):
    check(data)


@pytest.mark.slow
@settings(max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_whatever_llhttp_or_h11_rejects_the_proxy_rejects_long_run(data):
    check(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_on_arbitrary_bytes_too(data):
    check(b"POST /a HTTP/1.1\r\nHost: x\r\n" + data)
