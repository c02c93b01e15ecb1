"""The HTTP proxy's per-connection session driven by event scripts, no sockets: every decision the
proxy makes about a request, its upstream and its capture."""

from __future__ import annotations

import itertools
import json

import pytest

from harness.proxy.commands import (
    CancelTimer,
    CloseClient,
    CloseUpstream,
    Connect,
    Pause,
    ReleaseUpstream,
    Resume,
    Sleep,
    StartTimer,
    ToClient,
    ToUpstream,
)
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.http.session import _READING, HttpSession, Leg, Reading, SessionBug, SessionSettings, _next
from tests.proxy.playbook import (
    ClientClosed,
    ClientData,
    ClientFull,
    Playbook,
    Start,
    Timer,
    UpstreamClosed,
    UpstreamData,
    UpstreamFailed,
    UpstreamFull,
    UpstreamReady,
    captured,
    sent,
)

GET = b"GET /fhir/Patient/1 HTTP/1.1\r\nHost: his.example\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
MEDINS = json.dumps({"infno": "2207", "msgid": "H530102", "mdtrtarea_admvs": "530102"}).encode()
MEDINS_POST = (
    b"POST /fsi/api/rsfComIfsService/callService HTTP/1.1\r\nHost: his.example\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(MEDINS), MEDINS)
)
MEDINS_OK = b'{"infcode": 0, "inf_refmsgid": "x", "output": {}}'
MEDINS_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(MEDINS_OK), MEDINS_OK)


def session(rules: list | None = None, **settings) -> HttpSession:
    base = {"channel": "medins", "kind": "medins", "response_timeout_s": 2.5}
    faults = FaultEngine("medins", "http", rules or []) if rules is not None else None
    return HttpSession(SessionSettings(**{**base, **settings}), client_addr="10.1.2.3:50000", faults=faults)


def forwarded(s: HttpSession | None = None, request: bytes = GET, *, reused: bool = False) -> Playbook:
    """A request read, an upstream connection taken, the request written to it."""
    pb = Playbook(s or session())
    assert pb >> ClientData(request) << Connect() >> UpstreamReady(reused) << ToUpstream
    return pb


# -- the simple path, byte for byte ----------------------------------------------------------------


def test_a_request_is_forwarded_and_its_response_relayed_byte_for_byte_then_the_connection_waits():
    pb = Playbook(session())
    assert (
        pb
        >> Start()
        << StartTimer("idle", 120.0)
        >> ClientData(MEDINS_POST)
        << CancelTimer("idle")
        << StartTimer("head", 30.0)
        << Connect()
        >> UpstreamReady()
        << ToUpstream(MEDINS_POST)
        << StartTimer("response", 2.5)
        >> UpstreamData(MEDINS_RESPONSE)
        << sent(exact=MEDINS_RESPONSE)
        << ReleaseUpstream()
        << captured(
            outcome="ok", status=200, ack_code="0", message_type="2207", control_id="H530102", then=[]
        )
        << StartTimer("idle", 120.0)
    )
    ex = pb.captures[0]
    assert ex.request == MEDINS_POST and ex.response == MEDINS_RESPONSE
    assert ex.method == "POST" and ex.path == "/fsi/api/rsfComIfsService/callService"
    assert ex.client_addr == "10.1.2.3:50000" and ex.upstream_addr == "127.0.0.1:18080"
    assert ex.meta["infno"] == "2207" and ex.meta["infcode"] == 0 and ex.notes == []
    assert pb.session.reading is Reading.IDLE and pb.session.leg is Leg.NONE


def test_durable_capture_holds_the_response_until_the_commit():
    pb = forwarded(session(durable=True))
    assert (
        pb
        >> UpstreamData(OK[:40])  # head and part of the body: nothing goes out yet
        >> UpstreamData(OK[40:])
        << ReleaseUpstream()
        << captured(outcome="nak", ack_code="200", then=[sent(exact=OK)])  # medins: no infcode
    )


def test_a_connection_close_request_closes_after_its_answer_and_reads_nothing_more():
    request = GET.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    pb = forwarded(request=request)
    assert (
        pb
        >> UpstreamData(OK)
        << sent(b"HTTP/1.1 200 OK", contains=b"Connection: close")
        << ReleaseUpstream()
        << captured(then=[CloseClient()])
        >> ClientData(GET)  # ignored: the connection is closing
    )
    assert pb.session.finished


def test_http10_client_gets_keep_alive_said_when_the_connection_stays():
    request = b"GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    assert (
        forwarded(request=request)
        >> UpstreamData(OK)
        << sent(contains=b"Connection: keep-alive")
        << ReleaseUpstream()
        << captured()
    )


def test_a_body_delimited_by_the_close_is_relayed_and_ends_with_the_connection():
    pb = forwarded()
    assert (
        pb
        >> UpstreamData(b"HTTP/1.0 200 OK\r\n\r\nsome")
        << sent(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nsome")
        >> UpstreamData(b" more")
        << sent(exact=b" more")
        >> UpstreamClosed()
        << captured(status=200, then=[CloseClient()])
    )
    assert pb.captures[0].response == b"HTTP/1.0 200 OK\r\n\r\nsome more"


def test_interim_responses_are_relayed_but_not_the_100_continue_the_proxy_answered_itself():
    request = b"POST /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    pb = Playbook(session())
    assert (
        pb
        >> ClientData(request)
        << sent(exact=b"HTTP/1.1 100 Continue\r\n\r\n")
        >> ClientData(b"ok")
        << Connect()
        >> UpstreamReady()
        << ToUpstream(b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok")  # Expect dropped
        >> UpstreamData(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + OK)
        << sent(exact=b"HTTP/1.1 102 Processing\r\n\r\n")
        << sent(exact=OK)
        << ReleaseUpstream()
        << captured()
    )


# -- head rewriting --------------------------------------------------------------------------------


def test_hop_by_hop_headers_and_what_connection_names_are_dropped_and_nothing_else():
    request = (
        b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: 5\r\n"
        b"X-Secret: s\r\nx-CaSe: 1\r\nTE: trailers\r\n\r\n"
    )
    pb = Playbook(session())
    assert (
        pb
        >> ClientData(request)
        << Connect()
        >> UpstreamReady()
        << ToUpstream(b"GET /x HTTP/1.1\r\nHost: h\r\nx-CaSe: 1\r\n\r\n")
    )
    assert pb.session.ex.req_raw[0] == request[:-4]  # the capture keeps the request as received


def test_host_rewrite_and_x_forwarded_for_when_configured():
    request = b"GET /x HTTP/1.1\r\nHost: his.example\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n"
    pb = Playbook(session(rewrite_host=True, x_forwarded_for=True, tls=True))
    assert (
        pb
        >> ClientData(request)
        << Connect()
        >> UpstreamReady(address="10.9.9.9:57772")
        << ToUpstream(
            b"GET /x HTTP/1.1\r\nHost: 10.9.9.9:57772\r\nX-Forwarded-For: 10.0.0.1, 10.1.2.3\r\n"
            b"X-Forwarded-Proto: https\r\n\r\n"
        )
    )


# -- framing verdicts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "words"),
    [
        (b"THIS IS NOT HTTP\r\n\r\n", 400, b"request line"),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: Content-Length\r\n\r\nGET /",
            400,
            b"Connection",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            b"both",
        ),
        ("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ²\r\n\r\n".encode(), 400, b"ASCII digits"),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400, b"0x00"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, b"Host"),
        (b"BREW / HTTP/1.1\r\nHost: h\r\n\r\n", 501, b"method"),
        (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, b"version"),
        (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: 1\r\n" * 300 + b"\r\n", 431, b"header lines"),
    ],
)
def test_bad_or_ambiguous_requests_are_answered_captured_malformed_and_never_forwarded(
    request_bytes, status, words
):
    pb = Playbook(session())
    assert (
        pb
        >> ClientData(request_bytes)
        << Pause("client", "closing")
        << captured(
            outcome="malformed",
            status=status,
            then=[sent(b"HTTP/1.1 %d" % status, contains=words), CloseClient()],
        )
    )
    assert not any(isinstance(c, (Connect, ToUpstream)) for c in pb.commands)
    assert pb.captures[0].response.endswith(b"\n") and b"Connection: close" in pb.captures[0].response


def test_a_broken_chunk_in_a_held_body_is_refused_with_the_head_on_record():
    pb = Playbook(session())
    head = b"POST /fhir/Patient HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (
        pb
        >> ClientData(head + b"5\r\nab")
        >> ClientData(b"cdeXX\r\n")
        << captured(
            outcome="malformed",
            status=400,
            method="POST",
            path="/fhir/Patient",
            then=[sent(b"HTTP/1.1 400"), CloseClient()],
        )
    )
    assert pb.captures[0].request.startswith(head)


def test_a_broken_chunk_after_the_body_started_streaming_cuts_the_upstream_off():
    pb = Playbook(session(capture_body_bytes=10))
    head = b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (
        pb
        >> ClientData(head + b"10\r\n0123456789abcdef\r\n")
        << Connect()
        >> UpstreamReady()
        << ToUpstream(head + b"10\r\n0123456789abcdef\r\n")
        >> ClientData(b"zz\r\n")
        << CloseUpstream(abort=True)
        << captured(outcome="malformed", status=400, then=[sent(b"HTTP/1.1 400"), CloseClient()])
    )
    assert "cut off" in " ".join(pb.captures[0].notes)


def test_a_declared_body_over_max_body_bytes_is_refused_413_before_any_byte_of_it():
    request = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n"
    assert (
        Playbook(session(max_body_bytes=2000))
        >> ClientData(request)
        << captured(
            outcome="error",
            status=413,
            then=[sent(b"HTTP/1.1 413", contains=b"max_body_bytes"), CloseClient()],
        )
    )


def test_a_chunked_body_growing_over_max_body_bytes_is_refused_413():
    head = b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert (
        Playbook(session(max_body_bytes=8))
        >> ClientData(head + b"5\r\nabcde\r\n")
        >> ClientData(b"5\r\nfghij\r\n")
        << captured(
            outcome="error",
            status=413,
            then=[sent(b"HTTP/1.1 413", contains=b"not forwarded"), CloseClient()],
        )
    )


# -- one request at a time, in order ---------------------------------------------------------------


def test_pipelined_requests_wait_for_the_answer_before_and_go_on_the_released_connection():
    second = GET.replace(b"Patient/1", b"Patient/2")
    pb = Playbook(session())
    assert (
        pb
        >> ClientData(GET + second)
        << Connect()  # only one: the second waits
        >> UpstreamReady()
        << ToUpstream(GET)
        >> UpstreamData(OK)
        << sent(exact=OK)
        << ReleaseUpstream()
        << captured(path="/fhir/Patient/1")
        << StartTimer("head", 30.0)
        << Connect()
        >> UpstreamReady(reused=True)
        << ToUpstream(second)
    )


def test_many_pipelined_bytes_pause_the_client_until_the_answer():
    pb = forwarded()
    assert pb >> ClientData(GET * 6000) << Pause("client", "pipeline")
    assert (
        pb
        >> UpstreamData(OK)
        << sent(exact=OK)
        << ReleaseUpstream()
        << Resume("client", "pipeline")
        << captured()
        << Connect()  # the next one
    )


@pytest.mark.parametrize(
    ("response", "why"),
    [
        (OK.replace(b"200 OK", b"200 OK\r\nConnection: close"), "the upstream closes it"),
        (OK + b"HTTP/1.1 200 OK\r\n", "bytes after the response"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.0 without keep-alive"),
    ],
)
def test_an_upstream_connection_goes_back_to_the_pool_only_after_a_complete_clean_response(response, why):
    assert forwarded() >> UpstreamData(response) << sent(b"HTTP/1.") << CloseUpstream() << captured(), why


def test_an_early_response_to_a_body_still_coming_closes_both_connections_after_it():
    head = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n"
    pb = Playbook(session(capture_body_bytes=100))
    assert (
        pb
        >> ClientData(head + b"x" * 200)
        << Connect()
        >> UpstreamReady()
        << ToUpstream(head + b"x" * 200)
        >> UpstreamData(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
        << sent(b"HTTP/1.1 413", contains=b"Connection: close")
        << CloseUpstream()  # the upstream may still read the rest of the body: never reused
        << captured(status=413, outcome="nak", then=[CloseClient()])
    )


# -- request bodies over the capture limit stream, and say so ---------------------------------------


def test_a_request_over_the_capture_limit_streams_and_the_capture_keeps_a_part():
    head = b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n"
    pb = Playbook(session(capture_body_bytes=10))
    assert (
        pb
        >> ClientData(head + b"a" * 12)
        << Pause("client", "stream")
        << Connect()
        >> UpstreamReady()
        << ToUpstream(head + b"a" * 12)
        << Resume("client", "stream")
        >> ClientData(b"b" * 18)
        << ToUpstream(b"b" * 18)
        >> UpstreamData(OK)
        << sent(exact=OK)
        << ReleaseUpstream()
        << captured(status=200)
    )
    ex = pb.captures[0]
    assert ex.request == head + b"a" * 10
    assert any("kept 10 of 30 bytes" in n for n in ex.notes) and any("streamed" in n for n in ex.notes)


def test_a_slow_upstream_pauses_the_client_and_a_full_client_pauses_the_upstream():
    pb = forwarded()
    assert (
        pb
        >> UpstreamFull(True)
        << Pause("client", "upstream")
        >> UpstreamFull(False)
        << Resume("client", "upstream")
    )
    assert (
        pb
        >> ClientFull(True)
        << Pause("upstream", "client")
        >> ClientFull(False)
        << Resume("upstream", "client")
    )


# -- responses: stream or hold -----------------------------------------------------------------------


def test_a_held_response_too_big_to_hold_goes_out_and_streams_the_rest():
    pb = forwarded(session(durable=True, capture_body_bytes=5))
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"
    assert (
        pb
        >> UpstreamData(head + b"abcd")
        >> UpstreamData(b"efgh")
        << sent(exact=head + b"abcdefgh")
        >> UpstreamData(b"ijkl")
        << sent(exact=b"ijkl")
        << ReleaseUpstream()
        << captured(status=200, then=[])
    )
    ex = pb.captures[0]
    assert ex.response == head + b"abcd" and any("kept 5 of 12" in n for n in ex.notes)


def test_a_response_streamed_and_cut_by_the_upstream_closes_the_client():
    pb = forwarded()
    assert (
        pb
        >> UpstreamData(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
        << sent(b"HTTP/1.1 200", contains=b"x" * 40)
        >> UpstreamClosed("reset by peer")
        << captured(
            outcome="upstream_down", error="upstream closed mid-response: reset by peer", then=[CloseClient()]
        )
    )


# -- the upstream fails: never fake success ----------------------------------------------------------


def test_upstream_down_gives_502_naming_the_channel_and_why():
    pb = Playbook(session())
    assert (
        pb
        >> ClientData(GET)
        << Connect()
        >> UpstreamFailed()
        << captured(
            outcome="upstream_down", status=502, then=[sent(b"HTTP/1.1 502", contains=b"channel medins")]
        )
    )
    assert "Connection refused" in pb.captures[0].error


def test_upstream_down_with_the_close_setting_closes_instead():
    assert (
        Playbook(session(on_upstream_down="close"))
        >> ClientData(GET)
        << Connect()
        >> UpstreamFailed("refused")
        << captured(outcome="upstream_down", error="upstream unavailable: refused", then=[CloseClient()])
    )


def test_no_response_head_in_time_gives_504_and_drops_the_upstream():
    pb = forwarded()
    assert (
        pb
        >> Timer("response")
        << CloseUpstream(abort=True)
        << captured(
            outcome="timeout",
            status=504,
            then=[sent(b"HTTP/1.1 504", contains=b"response_timeout_s (2.5 s)")],
        )
    )


def test_unreadable_response_gives_502_or_cuts_the_client_once_the_head_went_out():
    assert (
        forwarded()
        >> UpstreamData(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        << CloseUpstream(abort=True)
        << captured(outcome="error", status=502, then=[sent(b"HTTP/1.1 502", contains=b"Content-Length")])
    )
    assert (
        forwarded()
        >> UpstreamData(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        << sent(b"HTTP/1.1 200")
        >> UpstreamData(b"0x2\r\n")
        << CloseUpstream(abort=True)
        << captured(outcome="error", status=200, then=[CloseClient(abort=True)])
    )


def test_stale_pooled_connection_is_retried_once_on_a_fresh_one():
    pb = forwarded(reused=True)
    assert (
        pb
        >> UpstreamClosed("closed")
        << Connect(fresh=True)
        >> UpstreamReady(reused=False)
        << ToUpstream(GET)
        >> UpstreamClosed("closed")  # only once
        << captured(outcome="upstream_down", status=502)
    )


@pytest.mark.parametrize("case", ["new connection", "bytes read", "streamed", "head seen"])
def test_no_retry_when_it_could_repeat_or_lose_something(case):
    s = session(capture_body_bytes=4 if case == "streamed" else 1024)
    request = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n12345678"
    pb = Playbook(s)
    assert (
        pb >> ClientData(request) << Connect() >> UpstreamReady(reused=case != "new connection") << ToUpstream
    )
    if case == "bytes read":
        assert pb >> UpstreamData(b"HTTP/1.1 200 OK\r\n")
    if case == "head seen":
        assert pb >> UpstreamData(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n") << sent(b"HTTP/1.1 200")
    assert pb >> UpstreamClosed() << captured(outcome="upstream_down")
    assert not any(isinstance(c, Connect) and c.fresh for c in pb.commands)


def test_the_proxy_never_answers_2xx_itself():
    """Every way the upstream can fail, in every state: the proxy's own answers are 5xx or none."""
    for reused, head, durable, mode, event in itertools.product(
        (False, True), (False, True), (False, True), ("status", "close"),
        ("failed", "timeout", "closed", "broken"),
    ):  # fmt: skip
        s = session(on_upstream_down=mode, durable=durable)
        s.client_data(GET)
        commands = []
        if event == "failed":
            commands += s.upstream_failed("refused")
        else:
            s.upstream_ready(reused, "u:1")
            if head:
                commands += s.upstream_data(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
            commands += {
                "timeout": lambda s=s: s.timer("response"),
                "closed": lambda s=s: s.upstream_closed("closed"),
                "broken": lambda s=s: s.upstream_data(b"\x00junk\r\n"),
            }[event]()
        own = [
            c.data
            for c in commands + [t for c in commands if hasattr(c, "then") for t in c.then]
            if isinstance(c, ToClient) and b"X-Harness-Proxy: error" in c.data
        ]
        assert all(int(d[9:12]) >= 500 for d in own), (reused, head, durable, mode, event)


# -- the client goes away, or is too slow ------------------------------------------------------------


def test_client_gone_drops_the_upstream_and_records_an_error():
    assert (
        forwarded()
        >> ClientClosed()
        << CloseUpstream(abort=True)
        << captured(outcome="error", error="client closed the connection before the response")
    )


def test_a_head_that_never_ends_is_refused_408_after_head_timeout_whatever_trickles_in():
    pb = Playbook(session(head_timeout_s=5))
    assert pb >> ClientData(b"GET / HTTP/1.1\r\nHost: h\r\n") << StartTimer("head", 5)
    before = len(pb.commands)
    assert pb >> ClientData(b"X-A: 1\r\n")  # bytes do not restart the deadline
    assert not any(isinstance(c, StartTimer) for c in pb.commands[before:])
    assert (
        pb
        >> Timer("head")
        << captured(
            outcome="error",
            status=408,
            then=[sent(b"HTTP/1.1 408", contains=b"head_timeout_s"), CloseClient()],
        )
    )


def test_a_body_that_never_ends_is_refused_408_and_a_streaming_one_cuts_the_upstream():
    head = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n"
    pb = Playbook(session(body_timeout_s=7))
    assert (
        pb
        >> ClientData(head + b"ab")
        << StartTimer("body", 7)
        >> Timer("body")
        << captured(
            outcome="error",
            status=408,
            then=[sent(b"HTTP/1.1 408", contains=b"body_timeout_s (7 s)"), CloseClient()],
        )
    )
    pb = Playbook(session(capture_body_bytes=1))
    assert (
        pb
        >> ClientData(head + b"ab")
        << Connect()
        >> UpstreamReady()
        << ToUpstream
        >> Timer("body")
        << CloseUpstream(abort=True)
        << captured(status=408)
    )


def test_an_idle_keep_alive_connection_is_closed_and_not_captured():
    pb = Playbook(session())
    assert pb >> Start() >> Timer("idle") << CloseClient()
    assert pb.captures == []
    pb = forwarded()
    assert pb >> Timer("idle")  # the timer of a connection with a request in hand changes nothing


# -- fault plans -------------------------------------------------------------------------------------

STATUS_503 = {"action": {"type": "status", "code": 503}}


def test_an_answering_fault_stops_reading_and_replies_without_the_upstream():
    pb = Playbook(session([STATUS_503]))
    assert (
        pb
        >> ClientData(MEDINS_POST)
        << Pause("client", "fault")
        << Resume("client", "fault")
        << captured(outcome="fault", status=503, then=[sent(b"HTTP/1.1 503")])
    )
    assert not any(isinstance(c, Connect) for c in pb.commands)
    assert pb.captures[0].fault["action"] == "status"


def test_a_reset_fault_resets_the_client_and_records_it():
    pb = Playbook(session([{"action": {"type": "reset"}}]))
    assert (
        pb
        >> ClientData(MEDINS_POST)
        << captured(
            outcome="fault", error="client connection reset by a fault rule", then=[CloseClient(abort=True)]
        )
    )


def test_a_reset_after_forward_resets_once_the_upstream_answered():
    pb = Playbook(session([{"action": {"type": "reset", "when": "after_forward"}}]))
    assert (
        pb
        >> ClientData(MEDINS_POST)
        << Connect()
        >> UpstreamReady()
        << ToUpstream(MEDINS_POST)
        >> UpstreamData(MEDINS_RESPONSE)
        << ReleaseUpstream()
        << captured(outcome="fault", then=[CloseClient(abort=True)])
    )
    assert pb.captures[0].meta["upstream_status"] == 200


def test_a_delay_fault_forwards_after_the_delay():
    pb = Playbook(session([{"action": {"type": "delay", "ms": 250}}]))
    assert pb >> ClientData(MEDINS_POST) << StartTimer("delay", 0.25) >> Timer("delay") << Connect()
    assert pb >> Timer("delay")  # one step per wait


@pytest.mark.parametrize(
    ("action", "check"),
    [
        ({"type": "truncate", "keep_bytes": 10}, lambda c: c.data.endswith(MEDINS_OK[:10])),
        ({"type": "malformed", "mode": "garbage"}, lambda c: MEDINS_OK not in c.data),
        ({"type": "slow_body", "bps": 500}, lambda c: c.bps == 500 and c.data == MEDINS_RESPONSE),
    ],
)
def test_response_editing_faults_hold_the_response_and_send_it_edited(action, check):
    pb = Playbook(session([{"action": action}]))
    assert (
        pb
        >> ClientData(MEDINS_POST)
        << Connect()
        >> UpstreamReady()
        << ToUpstream(MEDINS_POST)
        >> UpstreamData(MEDINS_RESPONSE)
        << ReleaseUpstream()
        << captured(
            then=[lambda c: isinstance(c, ToClient) and check(c)]
            + ([CloseClient()] if "truncate" in action["type"] else [])
        )
    )


def test_a_response_rule_replaces_the_answer_and_notes_what_the_upstream_said():
    rule = {"match": {"direction": "response"}, "action": {"type": "status", "code": 502}}
    pb = forwarded(session([rule]), MEDINS_POST)
    assert pb >> UpstreamData(MEDINS_RESPONSE) << ReleaseUpstream() << captured(outcome="fault", status=502)
    ex = pb.captures[0]
    assert ex.meta["upstream_status"] == 200 and any("upstream answered 200" in n for n in ex.notes)


def test_a_response_delay_rule_sends_the_answer_late():
    rule = {"match": {"direction": "response"}, "action": {"type": "delay", "ms": 400}}
    assert (
        forwarded(session([rule]), MEDINS_POST)
        >> UpstreamData(MEDINS_RESPONSE)
        << ReleaseUpstream()
        << captured(outcome="ok", then=[Sleep(0.4), sent(exact=MEDINS_RESPONSE)])
    )


# -- capture: never depends on what the body holds ---------------------------------------------------


def test_metadata_that_cannot_be_stored_is_replaced_and_noted_and_the_exchange_goes_through():
    body = b'{"infno": "2207", "msgid": "H\\ud800", "input": ' + b"[" * 1200 + b"]" * 1200 + b"}"
    request = b"POST /fsi HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    deep_answer = b'{"infcode": ' + b"9" * 5000 + b"}"
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(deep_answer), deep_answer)
    pb = forwarded(session(), request)
    assert pb >> UpstreamData(response) << sent(exact=response) << ReleaseUpstream() << captured()
    ex = pb.captures[0]
    assert ex.request == request and ex.response == response
    json.dumps(ex.meta, ensure_ascii=False).encode("utf-8")
    assert any("problems" in k for k in ex.meta) and ex.outcome == "nak"


# -- the states --------------------------------------------------------------------------------------


def test_states_move_only_along_their_tables():
    with pytest.raises(SessionBug):
        _next(_READING, Reading.CLOSED, "head")
    with pytest.raises(SessionBug):
        _next(_READING, Reading.DONE, "head")
    s = session()
    s.client_data(GET)
    assert (s.reading, s.leg) == (Reading.DONE, Leg.CONNECTING)
    s.upstream_ready(False, "u:1")
    assert s.leg is Leg.SENT
    s.upstream_data(OK[:-2])
    assert s.leg is Leg.STREAMING
    s.upstream_data(OK[-2:])
    assert (s.reading, s.leg) == (Reading.IDLE, Leg.NONE)


# -- the store cannot record ------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["status", "close"])
def test_a_durable_channel_whose_store_cannot_record_forwards_nothing(policy):
    s = HttpSession(
        SessionSettings(channel="medins", kind="medins", durable=True, on_store_error=policy),
        client_addr="10.1.2.3:50000",
        store_ok=lambda: False,
    )
    out = s.client_data(MEDINS_POST)
    assert not [c for c in out if isinstance(c, (Connect, ToUpstream))]
    (cap,) = [c for c in out if type(c).__name__ == "Capture"]
    assert cap.optional and cap.exchange.outcome == "error" and "capture store" in cap.exchange.error
    if policy == "status":
        (reply,) = [c.data for c in cap.then if isinstance(c, ToClient)]
        assert reply.startswith(b"HTTP/1.1 503 ") and cap.exchange.status == 503
    else:
        assert [type(c) for c in cap.then] == [CloseClient]
