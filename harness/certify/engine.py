"""Running an active certification: cases go to the target, replies are judged, cells are filled.

Generated cases come from hypothesis. Each probe is one hypothesis run for one operation and check: it
draws data (a person, a variation of the example, a bad value), the suite turns the data into a case
(preparing whatever state the case needs) and sends it; a case that fails makes hypothesis shrink the
data to the simplest that still fails, which becomes the evidence. Probes are seeded from the run's
seed, the operation and the check, so `--seed` reproduces every case. A target is a live system, so
each distinct draw is sent once (a replay during shrinking reuses the reply) and shrinking stops after
a bounded number of extra requests.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from harness.certify.cases import CHECKS, Case, Evidence, Judgement, Reply
from harness.certify.results import NOT_RUN, PASSED, Row, Run
from harness.spec.model import Interface

SHRINK_REQUESTS = 24
"""Extra requests a failing probe may send while shrinking, beyond its examples."""
ABORT_AFTER = 5
"""Consecutive cases with no answer at all (connection refused, reset) before the run stops."""


class Unprepared(Exception):
    """A case could not be set up (a request it needs first was refused): its cell did not run."""


class TargetDown(Exception):
    """The target stopped answering: the run stops, what ran is kept."""


class Sender(Protocol):
    def send(self, case: Case) -> Reply: ...

    def describe(self) -> str: ...


class Suite(Protocol):
    """What a family provides: its operations and flows, which checks apply, how to run and judge."""

    family: str

    def rows(self) -> Iterable[Row]: ...

    def checks(self, row: str) -> dict[str, str | None]:
        """The checks that apply to a row: check -> None, or the reason it cannot run here."""
        ...

    def run(self, row: str, ctx: Context) -> None: ...

    def judge(self, case: Case, reply: Reply) -> Judgement: ...


@dataclass(slots=True)
class Outcome:
    case: Case
    reply: Reply
    judgement: Judgement


class CaseFailed(AssertionError):
    pass


class Context:
    """What a suite's `run` uses: the selection, sending and judging cases, hypothesis probes."""

    def __init__(
        self,
        run: Run,
        suite: Suite,
        sender: Sender,
        *,
        seed: int,
        examples: int = 2,
        invalid_examples: int = 1,
        checks: set[str] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.run = run
        self.suite = suite
        self.sender = sender
        self.seed = seed
        self.examples = examples
        self.invalid_examples = invalid_examples
        self.selected_checks = checks
        self.log = log or (lambda line: None)
        self.silent = 0  # consecutive replies with a transport error
        self.stopped: TargetDown | None = None

    # -- selection -----------------------------------------------------------------------------
    def wants(self, row: str, check: str) -> bool:
        """Whether this row's check is selected and applies (its cell exists)."""
        return (row, check) in self.run.cells

    def skip(self, row: str, check: str, reason: str) -> None:
        if self.wants(row, check):
            self.run.cell(row, check).skip(reason)

    # -- sending -------------------------------------------------------------------------------
    def exchange(self, case: Case) -> Outcome:
        """Send one case and judge the reply (nothing is recorded)."""
        reply = self.sender.send(case)
        if reply.error is not None and reply.status is None and not reply.acks:
            self.silent += 1
            if self.silent >= ABORT_AFTER:
                self.stopped = TargetDown(f"{self.sender.describe()} stopped answering: {reply.error}")
                raise self.stopped
        else:
            self.silent = 0
        return Outcome(case, reply, self.suite.judge(case, reply))

    def record(self, outcome: Outcome, *, seed: int | None = None) -> None:
        case, judgement = outcome.case, outcome.judgement
        if not self.wants(case.operation, case.check):
            return
        cell = self.run.cell(case.operation, case.check)
        evidence = None if judgement.passed else self.evidence(outcome, seed)
        cell.add(judgement.passed, evidence, seen=judgement.finding)

    def case(self, case: Case) -> Outcome:
        """Send, judge and record one deterministic case."""
        outcome = self.exchange(case)
        self.record(outcome)
        return outcome

    def control(self, case: Case) -> Outcome:
        """The unchanged request of a row's invalid cases, sent on state of its own: it must be accepted.

        Each invalid case differs from this request in one thing. Sent before them on separate state
        built the same way (so a target that wrongly accepts an invalid case cannot spoil it), it shows
        the invalid cases are refused for what they change; when it is refused too, `unproven` says so.
        """
        return self.exchange(case)

    def unproven(self, row: str, checks: Iterable[str], control: Outcome) -> None:
        """Mark the passed invalid checks of a row not run: its unchanged request was refused as well."""
        if control.judgement.passed:
            return
        reason = (
            f"the unchanged request was refused as well ({control.judgement.finding}), so the refusals do "
            "not show the spec's constraints were checked"
        )
        for check in checks:
            cell = self.run.cells.get((row, check))
            if cell is not None and cell.status == PASSED:
                cell.status, cell.reason = NOT_RUN, reason

    def walk(self, steps: Generator[Case, Outcome, None]) -> Outcome:
        """Send a flow's steps in order; `steps` yields each case and is sent the outcome of the last.

        The first step that does not go as the spec says ends the flow: its outcome is the flow's, with the
        steps before it as notes. When every step went as expected, the last outcome passes for the flow.
        """
        notes: list[str] = []
        last: Outcome | None = None
        try:
            case = next(steps)
            while True:
                last = self.exchange(case)
                notes.append(f"{case.title}: {last.judgement.finding}")
                if not last.judgement.passed:
                    last.judgement.notes[:0] = notes[:-1]
                    return last
                case = steps.send(last)
        except StopIteration:
            pass
        if last is None:
            raise Unprepared("the flow has no steps")
        return Outcome(last.case, last.reply, Judgement(True, f"{len(notes)} steps as the spec says", notes))

    def require(self, case: Case, why: str) -> Outcome:
        """A request a case needs first: it must be accepted, else the case cannot be prepared."""
        outcome = self.exchange(case)
        if not outcome.judgement.passed:
            raise Unprepared(f"{why}: {case.title} was not accepted ({outcome.judgement.finding})")
        return outcome

    def evidence(self, outcome: Outcome, seed: int | None) -> Evidence:
        case, reply = outcome.case, outcome.reply
        reproduce = ""
        if self.run.command:  # the run's command carries its seed; the probe's seed derives from it
            reproduce = (
                f"{self.run.command} --operation {case.operation.removeprefix('flow:')} --check {case.check}"
            )
        return Evidence(
            operation=case.operation,
            check=case.check,
            title=case.title,
            expect=case.expect,
            constraint=case.constraint,
            finding=outcome.judgement.finding,
            request=case.request.text(),
            reply=reply.text() if reply.error is None else f"(no answer: {reply.error})",
            method=case.request.method,
            path=case.request.path,
            status=reply.status,
            seed=seed,
            reproduce=reproduce,
            notes=list(outcome.judgement.notes),
        )

    # -- hypothesis ----------------------------------------------------------------------------
    def probe_seed(self, row: str, check: str, key: str = "") -> int:
        digest = hashlib.sha256(f"{self.seed}:{row}:{check}:{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def probe(
        self,
        row: str,
        check: str,
        strategy: st.SearchStrategy,
        attempt: Callable[[Any], Outcome],
        *,
        examples: int | None = None,
        key: str = "",
    ) -> None:
        """Draw from strategy, turn each draw into a sent case (`attempt`), shrink the first failure.

        The cell gets one case per distinct draw that was sent; a failure's minimal draw is its evidence.
        """
        if not self.wants(row, check):
            return
        n = examples if examples is not None else self.examples
        seed = self.probe_seed(row, check, key)
        seen: dict[str, Outcome] = {}
        failures: list[Outcome] = []
        budget = n + SHRINK_REQUESTS
        problem: list[str] = []

        def body(data: Any) -> None:
            if self.stopped is not None:  # no shrinking against a target that stopped answering
                raise self.stopped
            if problem:  # no shrinking of a case that cannot be set up: it would only build state again
                raise Unprepared(problem[0])
            marker = repr(data)
            outcome = seen.get(marker)
            if outcome is None:
                if len(seen) >= budget:
                    return
                try:
                    outcome = attempt(data)
                except Unprepared as exc:
                    problem.append(str(exc))
                    raise
                seen[marker] = outcome
            if not outcome.judgement.passed:
                failures.append(outcome)
                raise CaseFailed(outcome.judgement.finding)

        test = settings(
            max_examples=n,
            database=None,
            deadline=None,
            derandomize=False,
            verbosity=Verbosity.quiet,
            phases=(Phase.generate, Phase.shrink),
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
        )(hypothesis_seed(seed)(given(strategy)(body)))
        try:
            test()
        except (CaseFailed, HypothesisException):
            pass
        except Unprepared:
            pass
        except Exception as exc:  # hypothesis re-raises what the body raised, grouped or not
            if isinstance(exc, TargetDown) or any(isinstance(e, TargetDown) for e in _leaves(exc)):
                raise
            if not failures and not problem:
                raise
        cell = self.run.cell(row, check)
        if problem and not seen:
            cell.skip(problem[0])
            return
        minimal = failures[-1] if failures else None
        for outcome in seen.values():
            if outcome is minimal:
                continue
            cell.add(outcome.judgement.passed, None, seen=outcome.judgement.finding)
        if minimal is not None:
            cell.add(False, self.evidence(minimal, seed))
            if len(seen) > 1:
                cell.evidence[-1].notes.append(
                    f"the simplest failing case hypothesis found in {len(seen)} sent (seed {seed})"
                )


def rows_of(interface: Interface, flows: dict[str, Any] | None) -> Iterator[Row]:
    """A suite's rows: the interface's operations, then its flows (`flow:NAME`)."""
    for op_id, op in interface.operations.items():
        yield Row(op_id, op.name, op.group, op.label)
    for name, flow in (flows or {}).items():
        yield Row(f"flow:{name}", str(flow.get("name") or name), "flow", "S", flow=True)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_leaves(inner))
        return out
    return [exc]


def execute(
    run: Run,
    suite: Suite,
    sender: Sender,
    *,
    seed: int,
    operations: set[str] | None = None,
    checks: set[str] | None = None,
    examples: int = 2,
    invalid_examples: int = 1,
    log: Callable[[str], None] | None = None,
) -> Run:
    """Fill `run` with the cells of the selected rows and checks, then run them in the suite's order."""
    ctx = Context(
        run,
        suite,
        sender,
        seed=seed,
        examples=examples,
        invalid_examples=invalid_examples,
        checks=checks,
        log=log,
    )
    rows = [r for r in suite.rows() if operations is None or _selected(r.id, operations)]
    for row in rows:
        run.add_row(row)
        for check, reason in suite.checks(row.id).items():
            if checks is not None and check not in checks:
                continue
            cell = run.cell(row.id, check)
            if reason:
                cell.skip(reason)
    run.checks = [c for c in CHECKS if any(check == c for (_, check) in run.cells)]
    for row in rows:
        if run.aborted:
            break
        if not any(op == row.id and cell.reason == "" for (op, _), cell in run.cells.items()):
            continue
        ctx.log(f"{row.id} {row.name}")
        try:
            suite.run(row.id, ctx)
        except Unprepared as exc:
            for (op, _), cell in run.cells.items():
                if op == row.id:
                    cell.skip(str(exc))
        except TargetDown as exc:
            run.aborted = str(exc)
            run.notes.append(f"the run stopped at {row.id}: {exc}")
        except Exception as exc:  # noqa: BLE001 - one operation's trouble must not lose the others' results
            problem = f"the harness failed on {row.id}: {type(exc).__name__}: {exc}"
            run.notes.append(problem)
            for (op, _), cell in run.cells.items():
                if op == row.id:
                    cell.skip(problem)
    for cell in run.cells.values():
        if cell.status == "not run" and not cell.reason:
            cell.reason = "stopped before it ran" if run.aborted else "no case could be built"
    return run


def _selected(row: str, wanted: set[str]) -> bool:
    return (
        row in wanted or row.removeprefix("flow:") in wanted or (row.startswith("flow:") and "flow" in wanted)
    )


def progress(stream=None) -> Callable[[str], None] | None:
    """One line per row on a terminal; nothing when stderr is a file or pipe."""
    stream = stream or sys.stderr  # looked up now: the CLI's stderr may be replaced after import
    if not stream.isatty():
        return None

    def log(line: str) -> None:
        stream.write(f"\r\033[K  {line[:100]}")
        stream.flush()

    return log
