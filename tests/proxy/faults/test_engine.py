import threading

import pytest

from harness.proxy.faults.context import FaultContext
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.faults.params import RuleError
from harness.proxy.faults.plan import Plan

from .samples import adt


def fired(engine: FaultEngine, count: int, direction: str = "request") -> list[int]:
    """The 1-based message numbers on which a fault fired."""
    return [n for n in range(1, count + 1) if engine.decide(direction, adt(f"M{n}"), None) is not None]


def test_no_rules_means_no_fault_and_no_work():
    engine = FaultEngine("adt")
    assert not engine.has_rules("request") and not engine.has_rules("response")
    assert engine.decide("request", b"not even hl7", None) is None


def test_add_assigns_ids_and_list_shows_counters():
    engine = FaultEngine("adt")
    first = engine.add({"action": {"type": "drop"}})
    second = engine.add({"action": {"type": "delay", "ms": 5}, "limit": 2, "description": "slow"})
    assert (first.id, second.id) == ("r1", "r2")
    listed = [rule.to_json() for rule in engine.list()]
    assert listed[1] == {
        "id": "r2",
        "match": {"direction": "request"},
        "action": {"type": "delay", "ms": 5, "jitter_ms": 0},
        "limit": 2,
        "seen": 0,
        "hits": 0,
        "exhausted": False,
        "description": "slow",
    }


def test_explicit_ids_must_be_unique():
    engine = FaultEngine()
    engine.add({"id": "slow-adt", "action": {"type": "drop"}})
    with pytest.raises(RuleError, match="already exists"):
        engine.add({"id": "slow-adt", "action": {"type": "drop"}})
    assert engine.add({"action": {"type": "drop"}}).id == "r1"


def test_remove_and_reset():
    engine = FaultEngine()
    a = engine.add({"action": {"type": "drop"}})
    engine.add({"action": {"type": "reset"}})
    assert engine.remove(a.id) is a
    with pytest.raises(KeyError):
        engine.remove(a.id)
    assert [r.id for r in engine.list()] == ["r2"]
    assert engine.reset() == 1
    assert engine.list() == [] and engine.decide("request", adt(), None) is None
    assert engine.add({"action": {"type": "drop"}}).id == "r3"


def test_every_nth():
    engine = FaultEngine(rules=[{"match": {"every_nth": 3}, "action": {"type": "drop"}}])
    assert fired(engine, 10) == [3, 6, 9]
    assert engine.list()[0].seen == 10 and engine.list()[0].hits == 3


def test_first_n():
    engine = FaultEngine(rules=[{"match": {"first_n": 2}, "action": {"type": "drop"}}])
    assert fired(engine, 5) == [1, 2]


def test_first_n_and_every_nth_combine():
    engine = FaultEngine(rules=[{"match": {"first_n": 7, "every_nth": 2}, "action": {"type": "drop"}}])
    assert fired(engine, 12) == [2, 4, 6]


def test_limit_exhausts_the_rule():
    engine = FaultEngine(rules=[{"action": {"type": "drop"}, "limit": 2}])
    assert fired(engine, 5) == [1, 2]
    rule = engine.list()[0].to_json()
    assert rule["exhausted"] is True and rule["hits"] == 2


def test_probability_is_deterministic_with_a_seed():
    def run(seed):
        rule = {"match": {"probability": 0.3, "seed": seed}, "action": {"type": "drop"}}
        return fired(FaultEngine(rules=[rule]), 200)

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert 20 < len(first) < 100  # 0.3 of 200, loosely: the seed fixes the exact set


def test_probability_edges():
    assert fired(FaultEngine(rules=[{"match": {"probability": 0}, "action": {"type": "drop"}}]), 20) == []
    assert (
        len(fired(FaultEngine(rules=[{"match": {"probability": 1}, "action": {"type": "drop"}}]), 20)) == 20
    )


def test_first_matching_rule_wins_and_later_rules_do_not_see_the_message():
    engine = FaultEngine(
        rules=[
            {"match": {"every_nth": 2}, "action": {"type": "drop"}},
            {"action": {"type": "delay", "ms": 1}},
        ]
    )
    actions = [engine.decide("request", adt(), None).action for _ in range(4)]
    assert actions == ["delay", "drop", "delay", "drop"]
    assert engine.list()[1].seen == 2  # it only saw the messages the first rule let through
    assert engine.applied == 4


def test_an_exhausted_rule_lets_the_next_one_fire():
    engine = FaultEngine(
        rules=[{"action": {"type": "drop"}, "limit": 1}, {"action": {"type": "reset"}}],
    )
    assert [engine.decide("request", adt(), None).action for _ in range(3)] == ["drop", "reset", "reset"]


def test_direction_separates_rules():
    engine = FaultEngine(rules=[{"match": {"direction": "response"}, "action": {"type": "drop"}}])
    assert engine.has_rules("response") and not engine.has_rules("request")
    assert engine.decide("request", adt(), None) is None
    assert engine.decide("response", b"MSH|", None, FaultContext(request=adt())).action == "drop"


def test_a_given_plan_is_edited_in_place_and_the_record_only_has_this_fault():
    engine = FaultEngine(
        rules=[{"match": {"direction": "response"}, "action": {"type": "hold_reply", "ms": 10}}]
    )
    plan = Plan(delay_s=0.5, notes=["earlier"])
    fault = engine.decide("response", b"MSH|", None, plan=plan)
    assert fault.plan is plan and plan.delay_s == 0.5 and plan.hold_reply_s == pytest.approx(0.01)
    record = fault.record()
    assert record == {
        "rule_id": "r1",
        "action": "hold_reply",
        "params": {"ms": 10},
        "direction": "response",
        "hit": 1,
        "done": ["reply held 10 ms before relaying"],
    }


def test_edits_from_another_thread_while_deciding():
    engine = FaultEngine(rules=[{"match": {"every_nth": 5}, "action": {"type": "drop"}}])
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            rule = engine.add({"action": {"type": "delay", "ms": 0}, "limit": 1})
            engine.remove(rule.id)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(2000):
            engine.decide("request", adt(), None)
    finally:
        stop.set()
        thread.join()
    assert engine.list()[0].seen == 2000 and engine.list()[0].hits == 400
    assert len(engine.list()) == 1
