"""A sender that hands cases straight to a simulator core (sans-IO), for fast tests of the suites.

The end-to-end tests (test_active.py, test_broken.py, ...) send over real sockets instead.
"""

from __future__ import annotations

import time

from harness import spec
from harness.certify.cases import Case, Reply
from harness.certify.certification import suite_for
from harness.certify.engine import execute
from harness.certify.results import Run
from harness.simulators.wire import HttpRequest
from harness.specfile import SPECS


class CoreSender:
    def __init__(self, core, base: str = "") -> None:
        self.core = core
        self.base = base
        self.sent: list[Case] = []

    def describe(self) -> str:
        return f"in-process {self.core.name}"

    def send(self, case: Case) -> Reply:
        self.sent.append(case)
        r = case.request
        started = time.perf_counter()
        headers = {k.lower(): v for k, v in r.headers.items()}
        resp = self.core.handle(HttpRequest(r.method, self.base + r.path, headers, r.body))
        return Reply(
            status=resp.status,
            headers={k.lower(): v for k, v in resp.headers.items()},
            body=resp.body,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def close(self) -> None:
        pass


def certify(
    path: str, core, *, operations=None, checks=None, seed: int = 7, examples: int = 1, base: str = ""
):
    """Run a spec's suite against a core in-process; returns (run, sender)."""
    interface = spec.load(SPECS / path)
    run = Run(interface, "active", "in-process", seed=seed)
    sender = CoreSender(core, base)
    execute(
        run,
        suite_for(interface),
        sender,
        seed=seed,
        operations=set(operations) if operations else None,
        checks=set(checks) if checks else None,
        examples=examples,
    )
    return run, sender
