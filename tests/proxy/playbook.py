"""Event scripts for sans-IO proxy sessions (after mitmproxy's test/mitmproxy/proxy/tutils.py).

    assert (
        Playbook(session)
        >> ClientData(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
        << Connect()
        >> UpstreamReady()
        << ToUpstream(b"GET / ...")
    )

`>> event` feeds the session; `<< expected` names the next command it must have produced since. The
commands that move bytes or change connections (`SIGNIFICANT`) must match one for one, in order; timer
and pause bookkeeping is skipped unless a step names it. An expected command is a command (compared
with ==), a command class, or a predicate; `sent(...)` and `captured(...)` build the common predicates.
Every command produced is kept in `commands`, every captured exchange in `captures`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.proxy.commands import (
    Capture,
    CloseClient,
    CloseUpstream,
    Connect,
    ReleaseUpstream,
    ToClient,
    ToUpstream,
)

SIGNIFICANT = (ToClient, ToUpstream, Capture, Connect, CloseClient, CloseUpstream, ReleaseUpstream)


# -- events -------------------------------------------------------------------------------------------


@dataclass
class Start:
    def feed(self, s: Any) -> list:
        return s.start()


@dataclass
class ClientData:
    data: bytes

    def feed(self, s: Any) -> list:
        return s.client_data(self.data)


@dataclass
class ClientClosed:
    def feed(self, s: Any) -> list:
        return s.client_closed()


@dataclass
class ClientFull:
    full: bool = True

    def feed(self, s: Any) -> list:
        return s.client_full(self.full)


@dataclass
class UpstreamFull:
    full: bool = True

    def feed(self, s: Any) -> list:
        return s.upstream_full(self.full)


@dataclass
class UpstreamReady:
    reused: bool = False
    address: str = "127.0.0.1:18080"

    def feed(self, s: Any) -> list:
        return s.upstream_ready(self.reused, self.address)


@dataclass
class UpstreamFailed:
    why: str = "127.0.0.1:9: Connection refused (after 0.0 s)"

    def feed(self, s: Any) -> list:
        return s.upstream_failed(self.why)


@dataclass
class UpstreamData:
    data: bytes

    def feed(self, s: Any) -> list:
        return s.upstream_data(self.data)


@dataclass
class UpstreamClosed:
    why: str = "Connection was closed cleanly."

    def feed(self, s: Any) -> list:
        return s.upstream_closed(self.why)


@dataclass
class Timer:
    key: str

    def feed(self, s: Any) -> list:
        return s.timer(self.key)


# -- expectations -------------------------------------------------------------------------------------


def sent(prefix: bytes = b"", *, contains: bytes = b"", exact: bytes | None = None) -> Callable[[Any], bool]:
    """A `ToClient` whose bytes start with `prefix` and contain `contains` (or are `exact`)."""

    def check(c: Any) -> bool:
        if not isinstance(c, ToClient):
            return False
        if exact is not None:
            return c.data == exact
        return c.data.startswith(prefix) and contains in c.data

    check.__name__ = f"sent({prefix!r}, contains={contains!r})"
    return check


def captured(then: list | None = None, **fields: Any) -> Callable[[Any], bool]:
    """A `Capture` whose exchange has these field values (and, when given, exactly these `then`
    commands, each matched like a playbook step)."""

    def check(c: Any) -> bool:
        if not isinstance(c, Capture):
            return False
        for name, want in fields.items():
            got = getattr(c.exchange, name)
            if callable(want) and not isinstance(want, type):
                if not want(got):
                    return False
            elif got != want:
                return False
        if then is not None:
            return len(then) == len(c.then) and all(_matches(w, g) for w, g in zip(then, c.then, strict=True))
        return True

    check.__name__ = f"captured({fields}, then={then})"
    return check


def _matches(expected: Any, command: Any) -> bool:
    if isinstance(expected, type):
        return isinstance(command, expected)
    if callable(expected) and not hasattr(expected, "__dataclass_fields__"):
        return bool(expected(command))
    return expected == command


class Playbook:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.script: list[tuple[str, Any]] = []
        self.commands: list = []
        self.captures: list = []
        self._ran = 0

    def __rshift__(self, event: Any) -> Playbook:
        self.script.append((">>", event))
        return self

    def __lshift__(self, expected: Any) -> Playbook:
        self.script.append(("<<", expected))
        return self

    def __bool__(self) -> bool:
        """Run the script steps added since the last run; raise AssertionError with the story so far."""
        pending: list = []
        log: list[str] = []
        steps = self.script[self._ran :]
        self._ran = len(self.script)
        for kind, item in steps:
            if kind == ">>":
                self._leftovers(pending, log)
                produced = item.feed(self.session)
                self.commands += produced
                self.captures += [c.exchange for c in produced if isinstance(c, Capture)]
                log.append(f">> {item}")
                pending = list(produced)
                continue
            while pending:
                command = pending.pop(0)
                if _matches(item, command):
                    log.append(f"<< {command}")
                    break
                if isinstance(command, SIGNIFICANT):
                    raise AssertionError(self._story(log, f"expected {_name(item)}, got {command}"))
            else:
                raise AssertionError(self._story(log, f"expected {_name(item)}, got nothing more"))
        self._leftovers(pending, log)
        return True

    def _leftovers(self, pending: list, log: list[str]) -> None:
        extra = [c for c in pending if isinstance(c, SIGNIFICANT)]
        if extra:
            raise AssertionError(self._story(log, f"unexpected {extra[0]}"))

    def _story(self, log: list[str], problem: str) -> str:
        lines = "\n".join(line[:300] for line in log)
        return f"{problem}\nso far:\n{lines}"


def _name(expected: Any) -> str:
    return getattr(expected, "__name__", None) or repr(expected)
