"""The HTTP proxy's per-request core, driven without sockets: events in, actions out."""

from __future__ import annotations

import itertools

import pytest

from harness.proxy.faults.http_plan import HttpPlan
from harness.proxy.http.session import (
    Answer,
    CancelTimer,
    Connect,
    Cut,
    DropUpstream,
    HttpSession,
    PauseClient,
    Relay,
    Reply,
    Resend,
    Reset,
    SessionSettings,
    StartTimer,
)
from tests.proxy.faults.http.views import decide, medins, soap12


def session(**settings) -> HttpSession:
    return HttpSession(SessionSettings(channel="medins", response_timeout_s=2.5, **settings))


def forwarded(s: HttpSession | None = None, *, reused: bool = False) -> HttpSession:
    """A whole request, no fault, written to an upstream connection."""
    s = s or session()
    s.request_done()
    assert s.decided(None, HttpPlan()) == [Connect()]
    assert s.upstream_ready(reused) == [StartTimer("response", 2.5)]
    return s


# -- upstream down, timeout, drops ----------------------------------------------------------------


def test_upstream_down_gives_502_naming_the_channel_and_why():
    s = session()
    s.request_done()
    assert s.decided(None, HttpPlan()) == [Connect()]
    [answer] = s.upstream_failed("127.0.0.1:9: Connection refused (after 0.0 s)")
    assert isinstance(answer, Answer)
    assert (answer.status, answer.reason, answer.outcome) == (502, "Bad Gateway", "upstream_down")
    assert "channel medins" in answer.text and "Connection refused" in answer.text
    assert answer.error == "upstream unavailable: 127.0.0.1:9: Connection refused (after 0.0 s)"


def test_upstream_down_with_close_setting_closes_instead():
    s = session(on_upstream_down="close")
    s.request_done()
    s.decided(None, HttpPlan())
    assert s.upstream_failed("refused") == [Cut("upstream_down", "upstream unavailable: refused")]


def test_no_response_head_in_time_gives_504_and_drops_the_upstream():
    s = forwarded()
    drop, answer = s.timer_fired("response")
    assert drop == DropUpstream()
    assert (answer.status, answer.outcome) == (504, "timeout")
    assert "response_timeout_s (2.5 s)" in answer.error


def test_timeout_after_the_head_went_out_cuts_the_client():
    s = forwarded()
    assert s.response_head(False) == [CancelTimer("response")]
    s.head_forwarded()
    assert s.timer_fired("response") == [
        DropUpstream(),
        Cut("timeout", "no response from the upstream within response_timeout_s (2.5 s)", abort=True),
    ]


def test_upstream_closing_before_a_response_gives_502_upstream_down():
    s = forwarded()
    [answer] = s.upstream_closed(False, "Connection was closed cleanly.")
    assert (answer.status, answer.outcome) == (502, "upstream_down")
    assert "before a complete response: Connection was closed cleanly." in answer.error


def test_drop_mid_response_cuts_the_client_as_upstream_down():
    s = forwarded()
    s.response_head(False)
    s.head_forwarded()
    assert s.upstream_closed(True, "reset by peer") == [
        Cut("upstream_down", "upstream closed mid-response: reset by peer")
    ]


def test_unreadable_response_gives_502_error_or_a_reset_once_the_head_is_out():
    s = forwarded()
    drop, answer = s.response_broken("bad status line")
    assert drop == DropUpstream() and (answer.status, answer.outcome) == (502, "error")
    s = forwarded()
    s.response_head(False)
    s.head_forwarded()
    assert s.response_broken("bad chunk size") == [
        DropUpstream(),
        Cut("error", "upstream response unreadable: bad chunk size", abort=True),
    ]


def test_an_answered_request_ignores_later_events():
    s = forwarded()
    s.finished()
    assert s.upstream_failed("x") == []
    assert s.timer_fired("response") == []
    assert s.timer_fired("delay") == []
    assert s.upstream_closed(False, "x") == []
    assert s.response_broken("x") == []
    assert s.upstream_ready(True) == []


# -- the retry on a stale pooled connection -------------------------------------------------------


def test_stale_pooled_connection_is_retried_once_on_a_fresh_one():
    s = forwarded(reused=True)
    assert s.upstream_closed(False, "closed") == [CancelTimer("response"), Resend(), Connect(fresh=True)]
    assert s.upstream_ready(True) == [StartTimer("response", 2.5)]
    [answer] = s.upstream_closed(False, "closed")  # only once
    assert (answer.status, answer.outcome) == (502, "upstream_down")


@pytest.mark.parametrize("case", ["new connection", "bytes read", "streamed", "incomplete", "head seen"])
def test_no_retry_when_it_could_repeat_or_lose_something(case):
    s = session()
    if case != "incomplete":
        s.request_done()
    if case == "streamed":
        s.request_streamed()
    s.decided(None, HttpPlan())
    s.upstream_ready(case != "new connection")
    if case == "head seen":
        s.response_head(False)
    actions = s.upstream_closed(case == "bytes read", "closed")
    assert not any(isinstance(a, (Resend, Connect)) for a in actions)
    assert actions[0].outcome == "upstream_down"


def test_the_proxy_never_answers_2xx_itself():
    """Every path the upstream can fail by, in every state: the proxy's own answers are 5xx or none."""
    for reused, complete, head, streamed, mode in itertools.product(
        (False, True), (False, True), (False, True), (False, True), ("status", "close")
    ):
        for event in ("failed", "timeout", "closed", "closed_bytes", "broken"):
            s = session(on_upstream_down=mode)
            if complete:
                s.request_done()
            if streamed:
                s.request_streamed()
            s.decided(None, HttpPlan())
            s.upstream_ready(reused)
            if head:
                s.response_head(False)
                s.head_forwarded()
            actions = {
                "failed": lambda s=s: s.upstream_failed("refused"),
                "timeout": lambda s=s: s.timer_fired("response"),
                "closed": lambda s=s: s.upstream_closed(False, "closed"),
                "closed_bytes": lambda s=s: s.upstream_closed(True, "closed"),
                "broken": lambda s=s: s.response_broken("junk"),
            }[event]()
            assert actions, (reused, complete, head, streamed, mode, event)
            for a in actions:
                assert not isinstance(a, (Reply, Relay, Reset))
                if isinstance(a, Answer):
                    assert a.status >= 500 and not head
                if isinstance(a, Cut):
                    assert a.outcome in ("upstream_down", "timeout", "error")


# -- fault plans, carried out in order ------------------------------------------------------------


@pytest.mark.parametrize(
    "action, subject, status",
    [
        ({"type": "status", "code": 503}, medins, 503),
        ({"type": "medins_error"}, medins, 200),
        ({"type": "soap_fault"}, soap12, 500),
    ],
)
def test_answering_faults_stop_reading_and_reply_without_the_upstream(action, subject, status):
    fault, plan = decide({"action": action}, subject())
    s = session()
    s.request_done()
    pause, reply = s.decided(fault, plan)
    assert pause == PauseClient() and isinstance(reply, Reply) and reply.reply.status == status
    assert reply.reply is plan.reply  # only a rule's own reply (medins: a 200 envelope, infcode != 0)


def test_a_reply_plan_with_a_wait_replies_after_it():
    fault, plan = decide({"action": {"type": "status", "code": 429}}, medins())
    plan.delay_s = 0.3
    s = session()
    s.request_done()
    assert s.decided(fault, plan) == [PauseClient(), StartTimer("delay", 0.3)]
    assert s.timer_fired("delay") == [Reply(plan.reply)]


def test_reset_fault_resets_without_forwarding():
    fault, plan = decide({"action": {"type": "reset"}}, medins())
    s = session()
    s.request_done()
    assert s.decided(fault, plan) == [PauseClient(), Reset()]


def test_reset_after_forward_forwards_then_resets_on_the_response():
    fault, plan = decide({"action": {"type": "reset", "when": "after_forward"}}, medins())
    s = session()
    s.request_done()
    assert s.decided(fault, plan) == [Connect()]
    s.upstream_ready(False)
    s.response_head(False)
    assert s.response_complete(fault, plan) == [Reset()]


def test_delay_fault_waits_before_connecting():
    fault, plan = decide({"action": {"type": "delay", "ms": 250}}, medins())
    s = session()
    s.request_done()
    assert s.decided(fault, plan) == [StartTimer("delay", 0.25)]
    assert s.upstream_failed("x")[0].status == 502  # (a failure before the wait ends is still reported)
    s = session()
    s.request_done()
    s.decided(fault, plan)
    assert s.timer_fired("delay") == [Connect()]
    assert s.timer_fired("delay") == []  # one step per wait
    assert s.upstream_ready(False) == [StartTimer("response", 2.5)]
    assert s.response_complete(fault, plan) == [Relay(plan)]


@pytest.mark.parametrize(
    "action, check",
    [
        ({"type": "truncate", "keep_bytes": 10}, lambda p: p.truncate_keep == 10),
        ({"type": "malformed", "mode": "garbage"}, lambda p: p.malformed == "garbage"),
        ({"type": "slow_body", "bps": 500}, lambda p: p.body_bps == 500),
    ],
)
def test_response_editing_faults_forward_then_relay_the_edited_response(action, check):
    fault, plan = decide({"action": action}, medins())
    assert check(plan)
    s = session()
    s.request_done()
    assert s.decided(fault, plan) == [Connect()]
    s.upstream_ready(False)
    assert s.response_head(False) == [CancelTimer("response")]
    assert s.response_complete(fault, plan) == [Relay(plan)]


def test_response_rule_replacing_the_answer():
    fault, plan = decide(
        {"match": {"direction": "response"}, "action": {"type": "status", "code": 502}}, medins(), "response"
    )
    s = forwarded()
    s.response_head(False)
    assert s.response_complete(fault, plan) == [Reply(plan.reply)]
    assert s.fault is fault


def test_no_fault_relays_as_received():
    s = forwarded()
    s.response_head(False)
    assert s.response_complete(None, HttpPlan()) == [Relay()]


def test_a_response_streams_unless_something_must_see_it_whole():
    s = forwarded()
    s.response_head(False)
    assert not s.holding
    s = forwarded()
    s.response_head(True)  # durable capture or response rules
    assert s.holding
    fault, plan = decide({"action": {"type": "truncate", "keep_bytes": 10}}, medins())
    s = session()
    s.request_done()
    s.decided(fault, plan)
    s.upstream_ready(False)
    s.response_head(False)
    assert s.holding  # a request fault edits the response: held until it is whole


def test_client_gone_or_broken_body_drops_the_upstream_and_records_an_error():
    s = forwarded()
    assert s.client_closed() == [
        DropUpstream(),
        Cut("error", "client closed the connection before the response"),
    ]
    s = session()
    s.decided(None, HttpPlan())
    s.upstream_ready(False)
    assert s.request_broken("bad chunk size line") == [
        DropUpstream(),
        Cut("error", "bad request body: bad chunk size line", abort=True),
    ]
    s.finished()
    assert s.client_closed() == [] and s.request_broken("x") == []
