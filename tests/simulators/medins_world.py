"""Drive the medical-insurance simulator with specs/medins/examples.yaml: the world, steps and cases.

The examples are hand-written requests; this module fills their placeholders (harness.spec.examples),
numbers the msgids and sends them, so a test can run any transaction on top of a realistic state (a
person, a settled outpatient visit, a settled inpatient stay).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml

from harness.simulators.medins import GATEWAY_PATH, YUNNAN_PATH, MedinsSimulator
from harness.simulators.wire import HttpRequest
from harness.spec.examples import Values, dig, fill

FIXTURE = Path(__file__).resolve().parents[2] / "specs" / "medins" / "examples.yaml"
CLOCK = datetime(2026, 1, 5, 9, 30, 0, 123000)


def load() -> dict:
    return yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))


DATA = load()


class World:
    """A simulator with the fixture's world built, and a way to send more requests on top of it."""

    def __init__(self, core: MedinsSimulator | None = None) -> None:
        self.core = core or MedinsSimulator(clock=lambda: CLOCK)
        self.values = Values(DATA["values"], now=CLOCK)
        self.serial = 0
        for step in DATA["world"]:
            self.run(step)

    def envelope(self, infno: str, inp: dict, overrides: dict | None = None) -> dict:
        self.serial += 1
        env = dict(DATA["envelope"], infno=infno, msgid=f"H5301020012320260105093000{self.serial:04d}")
        env.update(overrides or {})
        env["input"] = inp
        return fill(env, self.values)

    def send(self, env: dict, transport: str = "national"):
        path = YUNNAN_PATH if transport == "yunnan" else GATEWAY_PATH
        resp = self.core.handle(
            HttpRequest("POST", path, {"content-type": "application/json"}, json.dumps(env).encode())
        )
        assert resp.status == 200, resp.body[:300]
        if resp.headers.get("Content-Type") == "application/octet-stream":
            return resp
        return json.loads(resp.body)

    def run(self, step: dict, name: str | None = None) -> dict:
        env = self.envelope(step["infno"], copy.deepcopy(step["input"]), step.get("envelope"))
        answer = self.send(env, step.get("transport", "national"))
        assert isinstance(answer, dict) and answer["infcode"] == 0, (step["infno"], answer)
        if name:
            self.values[f"msgid:{name}"] = env["msgid"]
        for var, path in (step.get("capture") or {}).items():
            self.values[var] = dig(answer["output"], path)
        return answer

    def prepare(self, infno: str) -> None:
        for name in DATA["cases"][infno].get("after") or []:
            self.run(DATA["steps"][name], name)

    def case(self, infno: str, mutate: Callable[[dict], None] | None = None):
        """Send the fixture's request for `infno` (after its steps have run), optionally changed first."""
        case = DATA["cases"][infno]
        inp = fill(copy.deepcopy(case["input"]), self.values)
        if mutate:
            mutate(inp)
        env = self.envelope(infno, inp, case.get("envelope"))
        return self.send(env, case.get("transport", "national"))
