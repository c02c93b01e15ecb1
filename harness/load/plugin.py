"""The harness inside locust: runs a plan, records every request, steers the shape, writes the results.

Imported by the locustfile (harness/load/locustfile.py, loadtests/locustfile.py); it only registers
locust event listeners, so it works the same in a single process, as a master with local workers, or
spread over machines (workers get the plan from the master with its options: nothing to copy).

- ``--plan FILE`` (written by `harness load`) names the run; the master hands its JSON to the workers.
- Every request event is added to a `Recorder` (per-second buckets, mergeable); workers send theirs
  with locust's own stats reports, the master merges them.
- `PlanShape` plays the plan's curve: users in the closed model, a fixed pool of users taking scheduled
  arrivals in the open model. When the duration is over it drains: users finish the message they are
  on (their own timeouts bound it), workers report their last requests, and only then does the run end,
  so the request counts match what the target (and the proxy's capture) saw.
- At the end the master writes the results JSON (totals, per name, failures by reason, the timeline,
  the open model's backlog, the thresholds judged) and sets locust's exit code: 1 when a threshold was
  missed, which makes a plain `locust --headless` run usable in CI as well.
- While running it writes one progress line a second (JSON) for `harness load` to show.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gevent
from locust import LoadTestShape, events
from locust.runners import MasterRunner, WorkerRunner

from harness.load import profile as plans
from harness.load.arrivals import Arrivals
from harness.load.hl7v2_factory import Hl7v2Factory, Template, templates_of
from harness.load.ids import ControlIds, MsgIds
from harness.load.medins_flow import Flow, visit_variables
from harness.load.people import People
from harness.load.results import results
from harness.load.timeline import Recorder, round_ms
from harness.load.users import reason_of

__all__ = ["PlanShape", "Runtime"]

log = logging.getLogger("harness.load")
SAMPLE_S = 0.1
PROGRESS_S = 1.0
DRAIN_GRACE_S = 10.0


class Runtime:
    """One locust process's share of a run: the plan, its recorder, arrivals and identifiers."""

    def __init__(self, plan: Mapping[str, Any], worker: int = 0, workers: int = 1) -> None:
        self.plan = plan
        self.model = plan["model"]
        self.wait_s = tuple(plan.get("wait_s") or (0.0, 0.0))
        self.worker = worker
        self.workers = max(1, workers)
        self.recorder = Recorder(plan["interval_s"])
        self.curve = plans.curve(plan)
        self.arrivals = (
            {kind: Arrivals(plans.curve(plan, kind), worker, self.workers) for kind in plan["traffic"]}
            if self.model == "open"
            else {}
        )
        self.control_ids = ControlIds(plan["run_tag"], worker)
        self._msgids: dict[str, MsgIds] = {}
        self._templates: dict[str, tuple[Template, float]] | None = None
        self._flow: Flow | None = None
        self._seeds = random.Random(f"{plan['run_tag']}/{worker}")
        self.people = People(self._seeds.randrange(2**32))
        self.t0 = time.monotonic()
        self.epoch0 = time.time()
        self.end_epoch: float | None = None
        self._due = dict.fromkeys(self.arrivals, 0)
        self._per_arrival = {k: t["requests_per_arrival"] for k, t in plan["traffic"].items()}

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.epoch0 = time.time()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def seed(self) -> int:
        return self._seeds.randrange(2**32)

    def mix_at(self) -> Mapping[str, float] | None:
        return self.curve.mix_at(self.elapsed())

    # -- identifiers and messages --------------------------------------------------------------------

    def msgid(self, fixmedins_code: str) -> str:
        ids = self._msgids.get(fixmedins_code)
        if ids is None:
            ids = self._msgids[fixmedins_code] = MsgIds(fixmedins_code, self.worker % 10_000, self.workers)
        return ids.next()

    def hl7v2_factory(self, seed: int) -> Hl7v2Factory:
        if self._templates is None:
            self._templates = templates_of(self.plan["traffic"]["mllp"])
        return Hl7v2Factory(self._templates, self.control_ids, seed=seed, people=self.people)

    def flow(self) -> Flow:
        if self._flow is None:
            self._flow = Flow.from_json(self.plan["traffic"]["medins"]["flow"])
        return self._flow

    def visit_variables(self) -> dict[str, Any]:
        """A new visit's own values: an invented person, a unique outpatient number, the time."""
        return visit_variables(self.people.new(), self.control_ids.next()[1:])

    # -- the open model ------------------------------------------------------------------------------

    def started(self, kind: str, when: float) -> None:
        """An arrival scheduled at run time `when` starts now: count its requests and how late it is."""
        late_ms = max(0.0, self.elapsed() - when) * 1000.0
        bucket = self.recorder.open_bucket(time.time())
        bucket.started += self._per_arrival[kind]
        bucket.wait[round_ms(late_ms)] += 1

    def sample(self) -> None:
        """Requests that fell due since the last sample, and the backlog (arrivals) now (open model)."""
        elapsed = self.elapsed()
        bucket = self.recorder.open_bucket(time.time())
        backlog = 0
        for kind, arrivals in self.arrivals.items():
            due = arrivals.due(elapsed)
            bucket.scheduled += (due - self._due[kind]) * self._per_arrival[kind]
            self._due[kind] = due
            backlog += arrivals.backlog(elapsed)
        bucket.backlog_max = max(bucket.backlog_max, backlog)

    def backlog(self) -> int:
        elapsed = self.elapsed()
        return sum(a.backlog(elapsed) for a in self.arrivals.values())


# -- locust wiring -----------------------------------------------------------------------------------

_state: dict[str, Any] = {
    "runtime": None,
    "written": False,
    "draining": None,
    "drained": {},
    "stopped_at": None,
}


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument(
        "--plan", default="", help="harness: the load plan (JSON) to run", include_in_web_ui=False
    )
    parser.add_argument("--plan-json", default="", help=argparse.SUPPRESS, include_in_web_ui=False)
    parser.add_argument(
        "--harness-workers", type=int, default=0, help=argparse.SUPPRESS, include_in_web_ui=False
    )


def _plan_of(environment) -> dict[str, Any] | None:
    options = environment.parsed_options
    if options is None:
        return None
    if getattr(options, "plan_json", ""):
        return json.loads(options.plan_json)
    path = getattr(options, "plan", "")
    if not path:
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


@events.init.add_listener
def _init(environment, runner=None, **_kw) -> None:
    if "twisted.internet.reactor" in sys.modules:
        log.warning("Twisted's reactor is loaded in this locust process; keep Twisted and locust apart")
    if isinstance(runner, WorkerRunner):
        return
    try:
        plan = _plan_of(environment)
    except (OSError, ValueError) as exc:
        log.error("cannot read the plan: %s", exc)
        environment.process_exit_code = 2
        runner.quit()
        return
    if plan is None:
        return  # a locustfile used without a plan: its own user classes and settings apply
    _interruptible()
    environment.parsed_options.plan_json = json.dumps(plan, ensure_ascii=False)
    environment.stop_timeout = plan["stop_timeout_s"]
    _configure(environment, plan)
    _state["plan"] = plan
    gevent.spawn(_progress, environment)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _interruptible() -> None:
    """Ctrl-C and SIGTERM end a headless shape run the way locust ends it on Ctrl-C (results written,
    workers told to quit). Locust installs its SIGTERM handler only after a shape run has ended, and a
    process started in the background may inherit an ignored SIGINT."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def _configure(environment, plan: Mapping[str, Any]) -> None:
    """Give each user class its kind's settings (every process), weights or counts (the master)."""
    traffic = plan["traffic"]
    keep = []
    for cls in list(environment.user_classes):
        kind = getattr(cls, "kind", None)
        if kind not in traffic:
            continue
        _settle(cls, traffic[kind])
        if plan["model"] == "open":
            cls.fixed_count = traffic[kind]["users"]
            cls.weight = 1
        else:
            cls.fixed_count = 0
            cls.weight = max(1, round(traffic[kind]["weight"] * 100))
        keep.append(cls)
    missing = sorted(set(traffic) - {getattr(c, "kind", None) for c in keep})
    if missing:
        raise RuntimeError(f"the locustfile has no user class for {', '.join(missing)} traffic")
    environment.user_classes[:] = keep


def _settle(cls, settings: Mapping[str, Any]) -> None:
    configure = getattr(cls, "configure", None)
    if configure is not None:
        configure(dict(settings))
    else:
        cls.settings = dict(settings)


@events.test_start.add_listener
def _test_start(environment, **_kw) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        if _state.get("plan") is None:
            return
        environment.parsed_options.harness_workers = max(1, runner.worker_count)
        runtime = Runtime(_state["plan"], 0, runner.worker_count)
    else:
        plan = _state.get("plan") if not isinstance(runner, WorkerRunner) else _plan_of(environment)
        if plan is None:
            return
        workers, index = 1, 0
        if isinstance(runner, WorkerRunner):
            workers = max(1, int(getattr(environment.parsed_options, "harness_workers", 0) or 1))
            index = runner.worker_index % workers
            _configure_worker(environment, plan)
        runtime = Runtime(plan, index, workers)
        if runtime.model == "open":
            gevent.spawn(_sampler, runtime)
    runtime.runner = runner
    _state.update(runtime=runtime, written=False, draining=None, drained={}, stopped_at=None, drain_note=None)
    environment.harness = runtime
    runtime.start()


def _configure_worker(environment, plan: Mapping[str, Any]) -> None:
    for cls in environment.user_classes:
        kind = getattr(cls, "kind", None)
        if kind in plan["traffic"]:
            _settle(cls, plan["traffic"][kind])


def _sampler(runtime: Runtime) -> None:
    while _state["runtime"] is runtime:
        runtime.sample()
        gevent.sleep(SAMPLE_S)


@events.request.add_listener
def _request(request_type, name, response_time, response_length, exception=None, context=None, **_kw) -> None:
    runtime = _state["runtime"]
    if runtime is None:
        return
    kind = (context or {}).get("kind") or str(request_type)
    error = reason_of(exception) if exception is not None else None
    runtime.recorder.add(
        str(name), kind, float(response_time or 0.0), int(response_length or 0), error, time.time()
    )


@events.report_to_master.add_listener
def _report(client_id, data) -> None:
    runtime = _state["runtime"]
    if runtime is None:
        return
    data["harness"] = {"recorder": runtime.recorder.drain(), "users": runtime.runner.user_count}


@events.worker_report.add_listener
def _worker_report(client_id, data) -> None:
    runtime = _state["runtime"]
    own = data.get("harness")
    if runtime is None or not own:
        return
    runtime.recorder.merge(own["recorder"])
    if _state["draining"] is not None and own.get("users", 1) == 0:
        _state["drained"][client_id] = True


@events.spawning_complete.add_listener
def _spawned(user_count, **_kw) -> None:
    runtime = _state["runtime"]
    if runtime is None or user_count:
        return
    send = getattr(runtime.runner, "_send_stats", None)
    if isinstance(runtime.runner, WorkerRunner) and send is not None:
        send()  # a drained worker's last requests reach the master now, not at the next report


@events.test_stop.add_listener
def _test_stop(environment, **_kw) -> None:
    runtime = _state["runtime"]
    if runtime is None or isinstance(environment.runner, WorkerRunner):
        return  # a worker keeps its runtime: its last report (sent after this) still carries requests
    complete = _state["draining"] is not None
    _write(environment, runtime, interrupted=not complete)


@events.quitting.add_listener
def _quitting(environment, **_kw) -> None:
    runtime = _state["runtime"]
    if runtime is None or isinstance(environment.runner, WorkerRunner):
        return
    if not _state["written"]:
        _write(environment, runtime, interrupted=True)
    summary = _state.get("results") or {}
    if summary.get("interrupted"):
        environment.process_exit_code = 2
    elif summary.get("breached"):
        environment.process_exit_code = 1
    elif environment.process_exit_code is None:
        environment.process_exit_code = 0


def _write(environment, runtime: Runtime, *, interrupted: bool) -> None:
    if _state["written"]:
        return
    runtime.end_epoch = _state["stopped_at"] or time.time()
    notes = []
    if _state.get("drain_note"):
        notes.append(_state["drain_note"])
    out = results(
        runtime.plan, runtime.recorder, runtime.epoch0, runtime.end_epoch, workers=runtime.workers,
        interrupted=interrupted, notes=notes,
    )  # fmt: skip
    _state["results"] = out
    _state["written"] = True
    path = runtime.plan.get("results")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
    for line in _summary_lines(out):
        log.info(line)


def _summary_lines(out: Mapping[str, Any]) -> list[str]:
    lines = [
        f"harness: {out['requests']} requests, {out['failures']} failed, {out['rate']:.1f}/s, "
        f"p95 {out['p95_ms']} ms, p99 {out['p99_ms']} ms"
    ]
    lines += [f"harness: threshold missed: {text}" for text in out["breached"]]
    return lines


def _progress(environment) -> None:
    """One JSON line a second for `harness load` (and the users running, for the timeline)."""
    while True:
        gevent.sleep(PROGRESS_S)
        runtime = _state["runtime"]
        if runtime is None or _state["written"]:
            continue
        runner = environment.runner
        now = time.time()
        runtime.recorder.note_users(now, runner.user_count)
        path = runtime.plan.get("progress")
        if not path:
            continue
        lag = 4 if isinstance(runner, MasterRunner) else 1  # workers report every 3 s
        recent = runtime.recorder.total(since=now - lag - 5, until=now - lag)  # five complete seconds
        window = recent.count / 5
        total = runtime.recorder.total()
        line = {
            "t": round(runtime.elapsed(), 1),
            "duration": runtime.plan["duration_s"],
            "phase": "drain" if _state["draining"] is not None else "run",
            "users": runner.user_count,
            "requests": total.count,
            "failures": total.failures,
            "rate": round(window, 1),
            "p95_ms": recent.percentile(95),
            "target": round(runtime.curve.target(runtime.elapsed()), 2),
        }
        if runtime.model == "open" and not isinstance(runner, MasterRunner):
            line["backlog"] = runtime.backlog()
        elif runtime.model == "open":
            last = max(runtime.recorder.open, default=None)
            line["backlog"] = runtime.recorder.open[last].backlog_max if last is not None else 0
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
        except OSError:
            pass


class PlanShape(LoadTestShape):
    """The plan's curve as locust ticks, then the drain (see the module docstring)."""

    abstract = True
    _curve = None

    def tick(self):
        plan = _state.get("plan")
        if plan is None:
            return None
        t = self.get_run_time()
        if t < plan["duration_s"]:
            if plan["model"] == "open":
                users = sum(k["users"] for k in plan["traffic"].values())
                return (users, max(users, 1))
            if self._curve is None:
                self._curve = plans.curve(plan)
            target = self._curve.target(t)
            users = max(1, round(target)) if target > 0 else 0
            return (users, max(users, 10))
        return self._drain(plan)

    def _drain(self, plan: Mapping[str, Any]):
        if _state["draining"] is None:
            _state["draining"] = time.monotonic()
        runner = self.runner
        waited = time.monotonic() - _state["draining"]
        if isinstance(runner, MasterRunner):
            ids = {c.id for c in runner.clients.all}
            done = bool(ids) and all(_state["drained"].get(i) for i in ids)
        else:
            done = runner.user_count == 0
        if done or waited > plan["stop_timeout_s"] + DRAIN_GRACE_S:
            if not done:
                _state["drain_note"] = (
                    f"users still busy {waited:.0f} s after the end: their last requests may be missing"
                )
            _state["stopped_at"] = time.time()
            return None
        return (0, 1000)
