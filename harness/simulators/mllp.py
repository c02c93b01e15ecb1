"""`harness mock mllp`: an MLLP ACK server for tests and demos.

``Responder`` decides, without any I/O, what to answer to each message (which ACK codes, a delay, a
close, silence); ``MockMLLPProtocol`` is the thin Twisted shell that moves bytes. Malformed input
gets an AR (or a close, by option) and the server keeps serving. With a profile, each message is
validated against the standard and the interface profile first: an invalid one gets AR or AE with one ERR
segment per error (harness.hl7v2.validation.answer), a valid one the configured answer. Import this
module only where the server runs (it imports the Twisted reactor).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol

from harness.hl7v2.ack import build_ack, plan, reject_unparseable
from harness.hl7v2.message import HL7ParseError, Message, parse_path
from harness.hl7v2.meta import extract
from harness.mllp import DEFAULT_MAX_FRAME, Frame, FrameTooLarge, MLLPDecoder, Problem, encode
from harness.tls import ListenerTLS, describe, server_options

ANSWER_CODES = ("AA", "AE", "AR", "CA", "CE", "CR")
# --answer code -> the outcome the ACK builder's plan() turns into original or enhanced mode codes
_OUTCOME = {
    "AA": "ok",
    "AE": "error",
    "AR": "reject",
    "CA": "ok",
    "CE": "commit_error",
    "CR": "commit_reject",
}


@dataclass(frozen=True, slots=True)
class AnswerRule:
    """``PATH=VALUE:CODE`` or ``PATH=re:REGEX:CODE``: answer CODE to messages whose field matches."""

    path: str
    code: str
    value: str | None = None
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> AnswerRule:
        path, eq, rest = text.partition("=")
        match, colon, code = rest.rpartition(":")
        code = code.strip().upper()
        if not eq or not path.strip() or not colon:
            raise ValueError(f"answer rule {text!r}: expected PATH=VALUE:CODE or PATH=re:REGEX:CODE")
        if code not in ANSWER_CODES:
            raise ValueError(f"answer rule {text!r}: code {code!r} is not one of {', '.join(ANSWER_CODES)}")
        try:
            parse_path(path.strip())
        except ValueError as exc:
            raise ValueError(f"answer rule {text!r}: {exc}") from None
        if match.startswith("re:"):
            try:
                return cls(path.strip(), code, pattern=re.compile(match[3:]))
            except re.error as exc:
                raise ValueError(f"answer rule {text!r}: bad regular expression: {exc}") from None
        return cls(path.strip(), code, value=match)

    def matches(self, value: str | None) -> bool:
        if self.pattern is not None:
            return value is not None and self.pattern.search(value) is not None
        return (value or "") == self.value


@dataclass(frozen=True, slots=True)
class MockSettings:
    answer: str = "AA"
    delay_ms: float = 0.0
    app_delay_ms: float = 0.0
    """Enhanced mode: how long after the accept ACK the application ACK follows."""
    close_after_each: bool = False
    no_answer: bool = False
    malformed: str = "reject"  # or "close"
    nak_every: int = 0
    nak_code: str = "AE"
    rules: tuple[AnswerRule, ...] = ()
    charset: str | None = None
    max_frame: int = DEFAULT_MAX_FRAME
    profile: str | None = None
    """An interface profile file: messages are validated against the standard and it (and its waivers)."""

    def __post_init__(self) -> None:
        for name in ("answer", "nak_code"):
            if getattr(self, name) not in ANSWER_CODES:
                raise ValueError(f"{name} {getattr(self, name)!r}: expected one of {', '.join(ANSWER_CODES)}")
        if self.malformed not in ("reject", "close"):
            raise ValueError(f"malformed {self.malformed!r}: expected reject or close")
        if self.nak_every < 0 or self.delay_ms < 0 or self.app_delay_ms < 0:
            raise ValueError("nak_every, delay_ms and app_delay_ms must not be negative")
        if self.max_frame < 1:
            raise ValueError(f"max_frame {self.max_frame}: must be at least 1 byte")


@dataclass(slots=True)
class Reply:
    """What to do with one message: send these ACKs (unframed) after delay_s, then maybe close.

    With two ACKs (enhanced mode: accept, then application) the second follows the first after
    app_delay_s."""

    acks: list[bytes] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    close: bool = False
    delay_s: float = 0.0
    app_delay_s: float = 0.0
    log: str = ""


class Responder:
    """Sans-IO answer policy; counts messages so ``nak_every`` works across connections."""

    def __init__(self, settings: MockSettings) -> None:
        self.settings = settings
        self.count = 0
        self.validator = None
        self.waivers = None
        if settings.profile:  # ProfileError / WaiverError name the file: the caller reports them
            from harness.hl7v2.validation import profile, waivers
            from harness.hl7v2.validation.validator import Validator

            loaded = profile.load(settings.profile)
            self.validator = Validator(profile=loaded, charset=settings.charset)
            self.waivers = waivers.load(list(loaded.waivers))

    def _validated(self, payload: bytes):
        """The validation answer for a message, or None without a profile."""
        if self.validator is None:
            return None
        from harness.hl7v2.validation.answer import answer

        return answer(self.waivers.apply(self.validator.validate(payload).as_dict()))

    def _code_for(self, payload: bytes) -> tuple[str, str]:
        s = self.settings
        if s.rules:
            try:
                message = Message.parse(payload, s.charset)
            except ValueError as exc:
                return s.answer, f"rules not applied: {exc}"
            for rule in s.rules:
                try:
                    value = message.get(rule.path)
                except (ValueError, KeyError, IndexError) as exc:
                    return s.answer, f"rule {rule.path}: {exc}"
                if rule.matches(value):
                    return rule.code, f"rule {rule.path} matched"
        if s.nak_every and self.count % s.nak_every == 0:
            return s.nak_code, f"every {s.nak_every}th"
        return s.answer, ""

    def answer(self, payload: bytes) -> Reply:
        self.count += 1
        s = self.settings
        meta = extract(payload, s.charset)
        reply = Reply(
            delay_s=s.delay_ms / 1000.0, close=s.close_after_each, app_delay_s=s.app_delay_ms / 1000.0
        )
        head = f"#{self.count} control_id={meta.control_id or '-'} type={meta.message_code or '-'}"
        if s.no_answer:
            reply.log = f"{head} answer=none (--no-answer)"
            return reply
        verdict = self._validated(payload)
        errors = []
        if verdict is not None and verdict.outcome != "ok":
            outcome, why, errors = verdict.outcome, verdict.describe(), verdict.errors
            text = f"{why} (harness mock mllp --profile)"
        else:
            code, why = self._code_for(payload)
            outcome = _OUTCOME[code]
            text = None if code in ("AA", "CA") else f"{code} answered by harness mock mllp"
        ack_plan = plan(meta.accept_ack_type, meta.app_ack_type, outcome)
        try:
            for ack_code in (ack_plan.accept, ack_plan.application):
                if ack_code is not None:
                    found = errors if ack_code not in ("AA", "CA") else ()
                    ack = build_ack(payload, ack_code, text=text, charset=s.charset, errors=found)
                    reply.acks.append(ack)
                    reply.codes.append(ack_code)
        except (HL7ParseError, ValueError) as exc:
            return self.malformed(payload, str(exc), head)
        answered = "+".join(reply.codes) if reply.codes else "none (MSH-15/16 ask for no ACK)"
        reply.log = f"{head} answer={answered}" + (f" ({why})" if why else "")
        if meta.problems:
            reply.log += " problems: " + "; ".join(meta.problems)
        return reply

    def malformed(self, payload: bytes, reason: str, head: str | None = None) -> Reply:
        head = head or f"#{self.count} control_id=- type=-"
        if self.settings.malformed == "close":
            return Reply(close=True, log=f"{head} malformed: {reason}; answer=close")
        ack = reject_unparseable(payload, reason)
        return Reply(
            acks=[ack],
            codes=["AR"],
            delay_s=self.settings.delay_ms / 1000.0,
            close=self.settings.close_after_each,
            log=f"{head} malformed: {reason}; answer=AR",
        )

    def framing(self, event: Problem) -> Reply:
        """A framing problem: an oversized frame is a message and gets an answer; others are logged."""
        if isinstance(event, FrameTooLarge):
            self.count += 1
            return self.malformed(event.head, event.describe())
        return Reply(log=f"framing: {event.describe()}")


class MockMLLPProtocol(Protocol):
    """Twisted shell: decode frames, ask the Responder, write its reply."""

    def __init__(self, responder: Responder, log: Callable[[str], None]) -> None:
        self.responder = responder
        self.log = log
        self.decoder = MLLPDecoder(responder.settings.max_frame)
        self.closing = False
        self.lost = False
        self.peer = "-"

    def connectionMade(self) -> None:  # noqa: N802
        peer = self.transport.getPeer()
        self.peer = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        for event in self.decoder.feed(data):
            if self.closing:
                return
            self._handle(event)

    def connectionLost(self, reason=None) -> None:  # noqa: N802
        self.lost = True
        for event in self.decoder.close():
            if isinstance(event, Problem):
                self.log(f"framing from {self.peer}: {event.describe()}")

    def _handle(self, event) -> None:
        if isinstance(event, Frame):
            reply = self.responder.answer(event.payload)
        else:
            reply = self.responder.framing(event)
        if reply.log:
            self.log(reply.log)
        if reply.close:
            self.closing = True
        if reply.delay_s > 0:
            reactor.callLater(reply.delay_s, self._send, reply)
        else:
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        if self.lost:
            return
        acks = reply.acks
        if len(acks) > 1 and reply.app_delay_s > 0:
            self.transport.write(encode(acks[0]))
            rest = Reply(acks=acks[1:], codes=reply.codes[1:], close=reply.close)
            reactor.callLater(reply.app_delay_s, self._send, rest)
            return
        if acks:
            self.transport.write(b"".join(encode(ack) for ack in acks))
        if reply.close:
            self.transport.loseConnection()


class MockMLLPFactory(Factory):
    def __init__(self, responder: Responder, log: Callable[[str], None]) -> None:
        self.responder = responder
        self.log = log

    def buildProtocol(self, addr) -> MockMLLPProtocol:  # noqa: N802
        return MockMLLPProtocol(self.responder, self.log)


def serve(
    host: str,
    port: int,
    settings: MockSettings,
    *,
    log: Callable[[str], None] = print,
    tls: ListenerTLS | None = None,
    responder: Responder | None = None,
) -> int:
    """Run the server until SIGINT/SIGTERM; logs "listening on HOST:PORT" once listening.

    With `tls`, MLLP over TLS (mutual when `tls.ca` is set; a TLSError names an unusable file).
    `responder` replaces the answer policy built from settings (tests run deliberately broken ones)."""
    factory = MockMLLPFactory(responder or Responder(settings), log)
    if tls is not None:
        listening = reactor.listenSSL(port, factory, server_options(tls), interface=host)
    else:
        listening = reactor.listenTCP(port, factory, interface=host)
    actual = listening.getHost().port
    shown = f"[{host}]" if ":" in host else host
    log(f"listening on {shown}:{actual}{describe(tls)}")
    reactor.run()
    log("stopped")
    return 0
