"""One request through the HTTP proxy, as a sans-IO state machine: what happens around the upstream.

The Twisted shell (`harness.proxy.http.channel`) feeds it — the request decided on (fault plan in hand), an
upstream connection ready or failed, the response head, the upstream closed, a response that cannot
be read, a timer fired — and carries out the actions it returns. The decisions live here, testable
without sockets:

- A fault rule that answers instead of the upstream (status, soap_fault, medins_error, reset) stops
  reading the client, waits out the plan's delay, then answers or resets; the upstream never sees
  the request. Any other plan waits out its delay and then forwards.
- A request written on a pooled connection that the upstream closed before sending a byte is sent
  once more on a fresh connection (the stale keep-alive race every HTTP client retries), but only
  when the whole request is still at hand (not streamed past the capture limit) and only once.
- Never fake success: the proxy's own answers are 502 (upstream unreachable, closed before a
  complete response, unreadable response) and 504 (no response head within response_timeout_s),
  or a closed connection (`on_upstream_down: close`, or when the client already has part of the
  upstream's response: it then sees the response cut). Only an explicit fault rule's reply is
  sent in place of the upstream's.
- A response is held until it is whole when the channel says so (durable capture, response rules)
  or a request fault may edit or slow it; otherwise it streams as it arrives.
- A response fault rule decides once the whole response is at hand: reset the client, replace the
  answer, or relay it edited (truncate, malformed) or later / slower (delay, slow_body).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.proxy.faults.http_plan import HttpPlan, HttpReply

RESET_TEXT = "client connection reset by a fault rule"
"""The error a fault rule's reset leaves in the capture."""

# -- actions -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Connect:
    """Get an upstream connection: `fresh` skips the idle pool (the retry after a stale one)."""

    fresh: bool = False


@dataclass(slots=True)
class Resend:
    """Write the whole request again on the connection the next `Connect` brings."""


@dataclass(slots=True)
class StartTimer:
    key: str
    """`delay` (a fault plan's wait) or `response` (response_timeout_s)."""
    seconds: float


@dataclass(slots=True)
class CancelTimer:
    key: str


@dataclass(slots=True)
class PauseClient:
    """Stop reading the client until this request is answered (a fault answers it, not the upstream)."""


@dataclass(slots=True)
class DropUpstream:
    """Detach the upstream connection from this request and abort it (its answer goes nowhere)."""


@dataclass(slots=True)
class Answer:
    """The proxy's own error response (never a 2xx), captured with `outcome` and `error`."""

    status: int
    reason: str
    text: str
    outcome: str
    error: str


@dataclass(slots=True)
class Cut:
    """No (complete) response for the client: capture `outcome` / `error` and close its connection."""

    outcome: str
    error: str
    abort: bool = False


@dataclass(slots=True)
class Reply:
    """A fault rule's own response, sent instead of the upstream's (captured as `fault`)."""

    reply: HttpReply


@dataclass(slots=True)
class Reset:
    """A fault rule resets the client's connection (captured as `fault`)."""


@dataclass(slots=True)
class Relay:
    """The upstream's response goes to the client; `plan` (when given) edits or slows it."""

    plan: HttpPlan | None = None


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """The channel settings one request needs (from `harness.proxy.http.config.HTTPChannelConfig`)."""

    channel: str = ""
    response_timeout_s: float = 30.0
    on_upstream_down: str = "status"

    @classmethod
    def from_channel(cls, config: Any) -> SessionSettings:
        return cls(
            channel=config.name,
            response_timeout_s=config.response_timeout_s,
            on_upstream_down=config.on_upstream_down,
        )


# the common cases' action lists, built once (the shell only iterates over what it gets)
_NOTHING: list = []
_CONNECT = [Connect()]
_CANCEL_RESPONSE = [CancelTimer("response")]


class HttpSession:
    """The upstream side of one request: plan steps, upstream failures, the retry, the timeout.

    The shell tells it what the client has seen (`head_forwarded`) and when the request is complete
    (`request_done`, `request_streamed`); everything it returns is a list of actions, empty when
    the request is already answered (`finished`).
    """

    __slots__ = (
        "settings", "fault", "after_delay", "reused", "retried", "request_complete",
        "streamed", "response_started", "holding", "head_sent", "done",
    )  # fmt: skip

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.fault: Any = None
        self.after_delay: list = _NOTHING
        self.reused = False
        self.retried = False
        self.request_complete = False
        self.streamed = False
        self.response_started = False
        self.holding = False
        self.head_sent = False
        self.done = False

    # -- what the shell reports ----------------------------------------------------------------------

    def request_done(self) -> None:
        """The client sent the whole request."""
        self.request_complete = True

    def request_streamed(self) -> None:
        """The request body outgrew the capture limit: it streams, and cannot be sent again."""
        self.streamed = True

    def head_forwarded(self) -> None:
        """The client has the upstream's response head: from now on failures can only cut it."""
        self.head_sent = True

    def finished(self) -> None:
        """The request is answered (or given up); later events change nothing."""
        self.done = True

    # -- events --------------------------------------------------------------------------------------

    def decided(self, fault: Any, plan: HttpPlan) -> list:
        """The request's fault decision (`fault` None: no rule fired; `plan` as the rules left it)."""
        self.fault = fault
        if fault is not None and not plan.forward:
            step = [Reset()] if plan.reset else [Reply(plan.reply)] if plan.reply is not None else []
            return [PauseClient(), *self._after(plan.delay_s, step)]
        return self._after(plan.delay_s, _CONNECT)

    def _after(self, delay_s: float, step: list) -> list:
        if not delay_s:
            return step
        self.after_delay = step
        return [StartTimer("delay", delay_s)]

    def upstream_ready(self, reused: bool) -> list:
        """The request (head and what there is of its body) is on its way to the upstream."""
        if self.done:
            return _NOTHING
        self.reused = reused
        return [StartTimer("response", self.settings.response_timeout_s)]

    def upstream_failed(self, why: str) -> list:
        """No upstream (nor backup) accepted a connection."""
        if self.done:
            return _NOTHING
        text = f"upstream unavailable: {why}" if why else "upstream unavailable"
        if self.settings.on_upstream_down == "close" or self.head_sent:
            return [Cut("upstream_down", text)]
        return [
            Answer(
                502,
                "Bad Gateway",
                f"502 Bad Gateway from the harness proxy: channel {self.settings.channel}: {text}",
                "upstream_down",
                text,
            )
        ]

    def timer_fired(self, key: str) -> list:
        if self.done:
            return _NOTHING
        if key == "delay":
            step, self.after_delay = self.after_delay, _NOTHING
            return step
        seconds = self.settings.response_timeout_s
        text = f"no response from the upstream within response_timeout_s ({seconds:g} s)"
        if self.head_sent:
            return [DropUpstream(), Cut("timeout", text, abort=True)]
        return [
            DropUpstream(),
            Answer(
                504, "Gateway Timeout", f"504 Gateway Timeout from the harness proxy: {text}", "timeout", text
            ),
        ]

    def response_head(self, hold: bool) -> list:
        """The upstream's response head arrived (in time). `hold`: the channel wants every response
        seen whole before it goes out (durable capture, response rules); a request fault holds it too
        (it may edit or slow it). `holding` says whether the shell holds this one."""
        self.response_started = True
        self.holding = hold or self.fault is not None
        return _CANCEL_RESPONSE

    def response_broken(self, problem: str) -> list:
        """The upstream's response does not parse as HTTP."""
        if self.done:
            return _NOTHING
        text = f"upstream response unreadable: {problem}"
        if self.head_sent:
            return [DropUpstream(), Cut("error", text, abort=True)]
        return [
            DropUpstream(),
            Answer(502, "Bad Gateway", f"502 Bad Gateway from the harness proxy: {text}", "error", text),
        ]

    def upstream_closed(self, got_bytes: bool, why: str) -> list:
        """The upstream closed before the response was complete (what it did send was relayed)."""
        if self.done:
            return _NOTHING
        if (
            self.reused
            and not got_bytes
            and not self.retried
            and self.request_complete
            and not self.streamed
            and not self.response_started
        ):
            # a pooled connection the upstream had closed: nothing was read, send again on a new one
            self.retried = True
            return [CancelTimer("response"), Resend(), Connect(fresh=True)]
        if self.head_sent:  # FIN: the client sees the response cut
            return [Cut("upstream_down", f"upstream closed mid-response: {why}")]
        text = f"upstream closed the connection before a complete response: {why}"
        return [
            Answer(
                502, "Bad Gateway", f"502 Bad Gateway from the harness proxy: {text}", "upstream_down", text
            )
        ]

    def client_closed(self) -> list:
        """The client went away before its answer: the upstream's answer has nobody to go to."""
        if self.done:
            return _NOTHING
        return [DropUpstream(), Cut("error", "client closed the connection before the response")]

    def request_broken(self, problem: str) -> list:
        """The request body, already being forwarded, turned out malformed: both sides are cut."""
        if self.done:
            return _NOTHING
        return [DropUpstream(), Cut("error", f"bad request body: {problem}", abort=True)]

    def response_complete(self, fault: Any, plan: HttpPlan | None) -> list:
        """The whole (held) response is here; `fault` is the request's, else the response rules'."""
        if fault is None:
            return [Relay()]
        self.fault = fault
        if plan.reset:
            return [Reset()]
        if plan.reply is not None:
            return [Reply(plan.reply)]
        return [Relay(plan)]
