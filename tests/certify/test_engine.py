"""The engine: hypothesis probes shrink failures and replay from a seed, controls and aborts keep the
verdict honest. A toy suite and sender, no I/O."""

from __future__ import annotations

from hypothesis import strategies as st

from harness import spec
from harness.certify.cases import ACCEPT, REJECT, Case, Judgement, Reply, Request
from harness.certify.engine import ABORT_AFTER, Unprepared, execute
from harness.certify.results import Row, Run
from harness.specfile import SPECS

INTERFACE = spec.load(SPECS / "cdc")


class ToySuite:
    """Operation `op`: a number is accepted up to 10; `required` cases must be refused."""

    family = "toy"

    def __init__(self, body=None) -> None:
        self.body = body

    def rows(self):
        yield Row("op", "toy operation")
        yield Row("other", "a second operation")

    def checks(self, row):
        return {"generated": None, "required": None}

    def run(self, row, ctx):
        if self.body:
            self.body(row, ctx)
            return

        def attempt(n):
            return ctx.exchange(Case(row, "generated", f"n = {n}", Request(str(n).encode()), ACCEPT))

        ctx.probe(row, "generated", st.integers(min_value=0, max_value=1000), attempt, examples=50)
        control = ctx.control(Case(row, "required", "unchanged", Request(b"1"), ACCEPT))
        ctx.case(Case(row, "required", "missing", Request(b"missing"), REJECT))
        ctx.unproven(row, ["required"], control)

    def judge(self, case, reply):
        if reply.error:
            return Judgement(False, reply.error)
        accepted = reply.status == 200
        return Judgement(accepted == (case.expect == ACCEPT), f"HTTP {reply.status}")


class ToySender:
    def __init__(self, limit=10, refuse_all=False, down=False) -> None:
        self.limit, self.refuse_all, self.down = limit, refuse_all, down
        self.sent = 0

    def describe(self):
        return "toy"

    def send(self, case):
        self.sent += 1
        if self.down:
            return Reply(error="connection refused")
        body = case.request.body
        ok = not self.refuse_all and body.isdigit() and int(body) <= self.limit
        return Reply(status=200 if ok else 400)


def run(sender, suite=None, seed=3):
    result = Run(INTERFACE, "active", "toy", seed=seed)
    return execute(result, suite or ToySuite(), sender, seed=seed, examples=50)


def test_a_failure_shrinks_to_the_simplest_failing_draw_with_its_seed():
    result = run(ToySender())
    cell = result.cells[("op", "generated")]
    assert cell.status == "failed" and cell.evidence[0].title == "n = 11"
    assert "the simplest failing case" in cell.evidence[0].notes[0]
    assert "--seed 3" in cell.evidence[0].reproduce or cell.evidence[0].seed is not None
    assert result.verdict == "FAIL"


def test_the_same_seed_sends_the_same_cases():
    first, second = ToySender(), ToySender()
    a, b = run(first, seed=11), run(second, seed=11)
    assert first.sent == second.sent
    assert a.cells[("op", "generated")].cases == b.cells[("op", "generated")].cases


def test_refusals_do_not_pass_when_the_unchanged_request_is_refused_too():
    result = run(ToySender(refuse_all=True))
    cell = result.cells[("op", "required")]
    assert cell.status == "not run" and "unchanged request was refused as well" in cell.reason
    assert result.cells[("op", "generated")].status == "failed"


def test_a_target_that_stops_answering_stops_the_run_and_leaves_it_incomplete():
    sender = ToySender(down=True)
    result = run(
        sender,
        ToySuite(
            lambda row, ctx: [
                ctx.case(Case(row, "required", "x", Request(b"1"), REJECT)) for _ in range(ABORT_AFTER + 3)
            ]
        ),
    )
    assert sender.sent == ABORT_AFTER
    assert result.aborted and "stopped answering" in result.aborted
    assert result.cells[("other", "required")].reason == "stopped before it ran"
    assert result.verdict == "FAIL"  # the cases that did run failed: nothing answered them


def test_a_case_that_cannot_be_prepared_leaves_its_cells_not_run_with_the_reason():
    def body(row, ctx):
        raise Unprepared("the visit it settles was refused")

    result = run(ToySender(), ToySuite(body))
    assert {c.status for c in result.cells.values()} == {"not run"}
    assert result.cells[("op", "required")].reason == "the visit it settles was refused"
    assert result.verdict == "INCOMPLETE"


def test_a_bug_in_one_operation_leaves_its_cells_not_run_and_the_others_run():
    def body(row, ctx):
        if row == "op":
            raise RuntimeError("a suite bug")
        ctx.case(Case(row, "required", "missing", Request(b"missing"), REJECT))

    result = run(ToySender(), ToySuite(body))
    assert result.cells[("op", "required")].status == "not run"
    assert "the harness failed on op: RuntimeError: a suite bug" in result.cells[("op", "required")].reason
    assert result.cells[("other", "required")].status == "passed"
    assert any("a suite bug" in note for note in result.notes)


def test_a_probe_against_a_target_that_stopped_answering_does_not_keep_sending():
    sender = ToySender(down=True)
    result = run(sender)  # the generated probe would draw 50 cases and shrink its failures
    assert sender.sent == ABORT_AFTER and result.aborted
