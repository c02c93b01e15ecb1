"""Locust users for the interfaces around HealthConnect: MLLP, 医保, FHIR and SOAP (imports locust).

Importable from any locustfile (`from harness.load.users import MLLPUser`); `harness load` drives them
from a plan through `harness.load.plugin`. Never import this module in a process that runs Twisted:
locust's gevent monkey-patching and the reactor do not share a process.

- `MLLPUser` follows locust's custom-client pattern over a raw socket: one persistent connection per
  user (reopened after the peer closes it or a failure), one message at a time, each reply read
  through the shared acknowledgement model (`harness.load.mllp_ack`: MSA-2 correlation, commit then
  application ACK, AE/AR/CE/CR, bad ACKs, timeouts), and one request event per message: name = the
  message type, response time to the last awaited reply, and the failure's reason.
- `MedinsUser` signs in once (9001), then runs the flow's visit with values chained from answers.
- `FhirUser` and `SoapUser` send FHIR interactions and HIPMessageServer calls.

Both workload models: in the closed model a user sends, waits for the answer, thinks (`wait_s`) and
sends again; in the open model it takes the next scheduled arrival (`harness.load.arrivals`) and
starts it on time, or late when every user was busy, which is recorded.
"""

from __future__ import annotations

import json
import random
import socket
import time
from datetime import datetime
from typing import Any

import gevent
from locust import FastHttpUser, User, task

from harness.address import parse_hostport
from harness.client_tls import TLSOptions
from harness.load import fhir_factory, soap_factory
from harness.load.hl7v2_factory import Hl7v2Factory, Message, templates_of
from harness.load.ids import ControlIds, new_run_tag
from harness.load.medins_flow import Flow, Visit, build, visit_variables
from harness.load.mllp_ack import AckWait
from harness.load.people import People
from harness.mllp import DEFAULT_MAX_FRAME, Frame, FrameTooLarge, MLLPDecoder, encode

__all__ = ["FhirUser", "LoadUser", "MLLPUser", "MLLPError", "MedinsUser", "SoapUser", "reason_of"]

REASON_MAX = 120
IDLE_S = 3600.0
"""How long a user of an open-model run sleeps once the run has no more arrivals (it is stopped first)."""


def split_url(url: str) -> tuple[str, str]:
    """``http://host:port/base/path`` -> (``http://host:port``, ``/base/path``); the path may be empty."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}", (slash + path).rstrip("/")


_LOCAL: dict[str, Any] = {}


def _process_ids() -> ControlIds:
    """Without a plan (a locustfile of your own): one id sequence for every user of this process."""
    if "ids" not in _LOCAL:
        _LOCAL["ids"] = ControlIds(new_run_tag())
    return _LOCAL["ids"]


def _process_people() -> People:
    if "people" not in _LOCAL:
        _LOCAL["people"] = People()
    return _LOCAL["people"]


class MLLPError(Exception):
    """Why an MLLP message failed (a NAK, a timeout, a closed connection); the text is the reason."""


def reason_of(exc: BaseException | str) -> str:
    """A failure's reason as one short line (what load statistics group failures by)."""
    if isinstance(exc, str):
        text = exc
    else:
        text = str(exc)
        name = type(exc).__name__
        if name not in ("MLLPError", "CatchResponseError"):
            text = f"{name}: {text}" if text else name
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


class LoadUser(User):
    """What every harness user shares: its traffic settings and the two workload models."""

    abstract = True
    kind = ""
    settings: dict[str, Any] | None = None
    """This kind's section of the run plan (set by the plugin, or by a locustfile of your own)."""

    def __init__(self, environment) -> None:
        super().__init__(environment)
        self.runtime = getattr(environment, "harness", None)
        self._scheduled: float | None = None
        seed = self.runtime.seed() if self.runtime is not None else None
        self.rng = random.Random(seed)

    def config(self) -> dict[str, Any]:
        if self.settings is None:
            raise RuntimeError(f"{type(self).__name__}: no settings; give the class `settings` or run a plan")
        return self.settings

    @property
    def open_model(self) -> bool:
        return self.runtime is not None and self.runtime.model == "open"

    def wait_time(self) -> float:
        runtime = self.runtime
        if runtime is None:
            return 0.0
        if runtime.model != "open":
            low, high = runtime.wait_s
            return low if high <= low else self.rng.uniform(low, high)
        when = runtime.arrivals[self.kind].claim()
        self._scheduled = when
        if when is None:
            return IDLE_S
        return max(0.0, when - runtime.elapsed())

    def context(self) -> dict:
        return {"kind": self.kind}

    def mix(self) -> dict | None:
        return self.runtime.mix_at() if self.runtime is not None else None

    @task
    def arrival(self) -> None:
        """One arrival: in the open model only once one was claimed (the first call has none)."""
        if self.open_model:
            when = self._scheduled
            if when is None:
                return
            self._scheduled = None
            self.runtime.started(self.kind, when)
        self.one()

    def one(self) -> None:  # pragma: no cover - every concrete user overrides
        raise NotImplementedError


class MLLPUser(LoadUser):
    """HL7 v2 over MLLP on a raw socket (see the module docstring)."""

    abstract = True
    kind = "mllp"
    connect_timeout = 5.0

    def on_start(self) -> None:
        s = self.config()
        self.address = s["target"]
        self.peer = parse_hostport(self.address, what="mllp target")
        self.timeout = float(s.get("timeout_s", 10.0))
        self.app_timeout = float(s.get("app_timeout_s", self.timeout))
        self.conditional_wait = float(s.get("conditional_wait_s", 2.0))
        self.factory = self.make_factory()
        self.sock: socket.socket | None = None
        self.decoder = MLLPDecoder(DEFAULT_MAX_FRAME)
        self.pending: list[bytes] = []
        self.backoff = 0.0
        tls = s.get("tls")
        self.tls = TLSOptions(**tls) if tls is not None else None
        self.ssl_context = self.tls.context() if self.tls is not None else None

    def make_factory(self) -> Hl7v2Factory:
        if self.runtime is not None:
            return self.runtime.hl7v2_factory(self.rng.randrange(2**32))
        return Hl7v2Factory(templates_of(self.config()), _process_ids(), seed=self.rng.randrange(2**32))

    def on_stop(self) -> None:
        self._close()

    def one(self) -> None:
        self.send(self.factory.make(self.factory.pick(self.mix())))

    # -- the wire ------------------------------------------------------------------------------------

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        self.decoder = MLLPDecoder(DEFAULT_MAX_FRAME)
        self.pending = []

    def _connect(self) -> socket.socket:
        if self.sock is None:
            try:
                sock = socket.create_connection(self.peer, timeout=self.connect_timeout)
            except OSError as exc:
                raise MLLPError(f"cannot connect to {self.address}: {exc.strerror or exc}") from None
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                name = self.tls.server_name or self.peer[0]
                try:
                    sock = self.ssl_context.wrap_socket(sock, server_hostname=name)
                except OSError as exc:
                    sock.close()
                    raise MLLPError(f"TLS with {self.address} failed: {exc.strerror or exc}") from None
            self.sock = sock
        return self.sock

    def send(self, message: Message) -> str | None:
        """Send one message, wait for what it asks back, fire its request event; the failure or None."""
        started = time.perf_counter()
        wait = AckWait(message.control_id, message.mode)
        length = 0
        error: str | None = None
        try:
            sock = self._connect()
            try:
                sock.sendall(encode(message.payload))
            except OSError as exc:
                raise MLLPError(f"sending to {self.address} failed: {exc.strerror or exc}") from None
            length = self._await(sock, wait, started)
            error = wait.failure()
            self.backoff = 0.0
        except MLLPError as exc:
            error = str(exc)
            self._close()
            self.backoff = min(2.0, self.backoff * 2 or 0.05)
        elapsed = (time.perf_counter() - started) * 1000.0
        if wait.late and self.runtime is not None:
            self.runtime.recorder.late_acks += wait.late
        self.environment.events.request.fire(
            request_type="MLLP",
            name=message.name,
            response_time=elapsed,
            response_length=length,
            exception=MLLPError(error) if error else None,
            context={"kind": "mllp", "control_id": message.control_id, "verdict": wait.verdict()},
        )
        if error and self.backoff and self.sock is None:
            gevent.sleep(self.backoff)  # a peer that refuses connections is not hammered in a loop
        return error

    def _await(self, sock: socket.socket, wait: AckWait, started: float) -> int:
        """Read until the message has every reply it asked for; returns the bytes received."""
        received = 0
        while True:
            for payload in self.pending:
                self.pending = self.pending[1:]
                if wait.frame(payload, time.perf_counter()):
                    return received
            waiting = wait.waiting()
            if waiting == "none":
                return received
            if waiting == "conditional":
                limit, since = self.conditional_wait, wait.accepted_at or started
            elif wait.after_commit:
                limit, since = self.app_timeout, wait.accepted_at or started
            else:
                limit, since = self.timeout, started
            remaining = since + limit - time.perf_counter()
            if remaining <= 0:
                wait.expire(limit)
                return received
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise MLLPError(
                    f"connection to {self.address} failed before the ACK: {exc.strerror or exc}"
                ) from None
            if not data:
                what = "the application ACK" if wait.after_commit else "the ACK"
                raise MLLPError(f"{self.address} closed the connection before {what}")
            received += len(data)
            for event in self.decoder.feed(data):
                if isinstance(event, Frame):
                    self.pending.append(event.payload)
                elif isinstance(event, FrameTooLarge):
                    raise MLLPError(f"a reply over {DEFAULT_MAX_FRAME} bytes from {self.address}")


class _HttpUser(FastHttpUser, LoadUser):
    abstract = True

    @classmethod
    def configure(cls, settings: dict[str, Any]) -> None:
        """Set what FastHttpUser reads when a user is created: the host and the timeouts."""
        cls.settings = settings
        cls.host = split_url(settings["target"])[0]
        cls.network_timeout = cls.connection_timeout = float(settings.get("timeout_s", 30.0))
        if cls.host.startswith("https://"):  # verified unless --insecure, as every sender of the harness
            tls = TLSOptions(**settings.get("tls", {}))
            context = tls.context()
            cls.insecure = not tls.verify
            cls.ssl_context_factory = staticmethod(lambda **_: context)

    def base_path(self, default: str) -> str:
        """The target URL's own path (http://hc:57772/csp/healthshare/fhir), else the default."""
        return split_url(self.config()["target"])[1] or default

    def new_id(self, letter: str):
        ids = self.runtime.control_ids if self.runtime is not None else _process_ids()
        return lambda: letter + ids.next()[1:]

    def _post(self, name: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[Any, str | None]:
        """POST and judge; returns (response, failure) after the request event fired."""
        with self.client.post(
            path, data=body, headers=headers, name=name, catch_response=True, context={"kind": self.kind}
        ) as resp:
            failure = self._transport_failure(resp)
            if failure is None:
                failure = self.judge(name, resp)
            if failure is None:
                resp.success()
            else:
                resp.failure(failure)
        return resp, failure

    @staticmethod
    def _transport_failure(resp: Any) -> str | None:
        """A request that got no HTTP response at all (refused, reset, timed out)."""
        if resp.status_code:
            return None
        error = resp.request_meta.get("exception") or getattr(resp, "error", None)
        return reason_of(error) if error else "no response"

    def judge(self, name: str, resp: Any) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError


class MedinsUser(_HttpUser):
    """The medical-insurance centre's gateway: 9001 once, then the flow's visits (see medins_flow)."""

    abstract = True
    kind = "medins"

    def on_start(self) -> None:
        s = self.config()
        self.flow = self.runtime.flow() if self.runtime is not None else Flow.from_json(s["flow"])
        self.path = self.base_path(self.flow.path)
        self.sign_no: str | None = None
        self.headers = {"Content-Type": "application/json;charset=utf-8"}
        if self.flow.sign_in is not None:
            self.sign_in()

    def judge(self, name: str, resp: Any) -> str | None:
        try:
            doc = json.loads(resp.content)
        except (ValueError, TypeError):
            return f"HTTP {resp.status_code}: the answer is not JSON"
        self._doc = doc
        if resp.status_code != 200:
            return f"HTTP {resp.status_code}"
        return self._judge_doc(doc)

    def _judge_doc(self, doc: Any) -> str | None:
        from harness.load.medins_flow import answer_failure

        return answer_failure(doc)

    def _envelope(self, fixmedins_code: str) -> dict[str, str]:
        now = datetime.now()
        if self.runtime is not None:
            msgid = self.runtime.msgid(fixmedins_code)
        else:
            msgid = f"{fixmedins_code}{now:%Y%m%d%H%M%S}{self.rng.randrange(10000):04d}"
        return {"msgid": msgid, "inf_time": f"{now:%Y-%m-%d %H:%M:%S}", "sign_no": self.sign_no or ""}

    def _call(self, name: str, body: dict) -> tuple[Any, str | None]:
        self._doc = None
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        resp, failure = self._post(name, self.path, data, self.headers)
        return self._doc, failure

    def sign_in(self) -> bool:
        step = self.flow.sign_in
        assert step is not None
        body = build(step, {}, self._envelope(step.template.get("fixmedins_code", "")))
        doc, failure = self._call(step.infno, body)
        if failure is None:
            sign = ((doc or {}).get("output") or {}).get("signinoutb") or {}
            self.sign_no = sign.get("sign_no") or None
        return self.sign_no is not None

    def one(self) -> None:
        if self.flow.sign_in is not None and self.sign_no is None and not self.sign_in():
            gevent.sleep(1.0)  # the centre refuses sign-in: retry later rather than in a loop
            return
        if self.runtime is not None:
            variables = self.runtime.visit_variables()
        else:
            variables = visit_variables(_process_people().new(), _process_ids().next()[1:])
        visit = Visit(self.flow, variables)
        while not visit.finished:
            step = visit.step
            body = visit.request(self._envelope(step.template.get("fixmedins_code", "")))
            doc, failure = self._call(step.infno, body)
            if failure is not None:
                return
            failure = visit.answer(doc)
            if failure is not None:  # accepted, but a value the next step needs is missing
                return


class FhirUser(_HttpUser):
    """FHIR R4 Patient interactions (see fhir_factory)."""

    abstract = True
    kind = "fhir"

    def on_start(self) -> None:
        s = self.config()
        self.factory = fhir_factory.FhirFactory(
            s["interactions"], new_id=self.new_id("M"), seed=self.rng.randrange(2**32)
        )
        self.base = self.base_path(s.get("path", "/fhir")).rstrip("/")

    def judge(self, name: str, resp: Any) -> str | None:
        return fhir_factory.answer_failure(resp.status_code, resp.content or b"")

    def one(self) -> None:
        request = self.factory.make(self.factory.pick(self.mix()), self.base)
        headers = {"Accept": fhir_factory.CONTENT_TYPE}
        kwargs: dict[str, Any] = {}
        if request.body is not None:
            headers["Content-Type"] = fhir_factory.CONTENT_TYPE
            kwargs["data"] = request.body
        with self.client.request(
            request.method,
            request.path,
            name=request.name,
            headers=headers,
            catch_response=True,
            context={"kind": self.kind},
            **kwargs,
        ) as resp:
            failure = self._transport_failure(resp) or self.judge(request.name, resp)
            if failure is None:
                resp.success()
                self.factory.created_as(request, resp.headers.get("location") if resp.headers else None)
            else:
                resp.failure(failure)


class SoapUser(_HttpUser):
    """互联互通 HIPMessageServer calls (see soap_factory)."""

    abstract = True
    kind = "soap"

    def on_start(self) -> None:
        s = self.config()
        self.factory = soap_factory.SoapFactory(
            s["actions"],
            new_id=self.new_id("P"),
            version=s.get("version", "1.2"),
            seed=self.rng.randrange(2**32),
        )
        self.path = self.base_path(s.get("path", "/services/HIPMessageServer"))

    def judge(self, name: str, resp: Any) -> str | None:
        return soap_factory.answer_failure(resp.status_code, resp.content or b"")

    def one(self) -> None:
        request = self.factory.make(self.factory.pick(self.mix()))
        _, failure = self._post(request.name, self.path, request.body, request.headers)
        if failure is None:
            self.factory.accepted(request)
