"""Field mutations break exactly the constraint they name, variations stay valid: checked against the same
request checks the simulator uses (harness.spec.medins.checks)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.certify import fields
from harness.simulators.medins import RULES, load_spec
from harness.spec.medins import checks

SPEC = load_spec(rules=set(RULES))
TX = SPEC.transactions["2201"]
EXAMPLE = {
    "data": {
        "psn_no": "53010098825988438524", "insutype": "310", "begntime": "2026-01-05 09:30:00",
        "mdtrt_cert_type": "02", "mdtrt_cert_no": "53010219850307123X", "ipt_otp_no": "MZ0001",
        "atddr_no": "D001", "dr_name": "钱医生", "dept_code": "0102", "dept_name": "呼吸内科", "caty": "A03",
    }
}  # fmt: skip
SLOTS = fields.slots(EXAMPLE, TX.input, prefix="input")
MUTATIONS = [(slot, m) for slot in SLOTS for m in fields.mutations(slot, SPEC.codes.get)]


def test_the_example_is_valid_and_every_field_is_a_slot():
    assert checks.check_input(SPEC, TX, EXAMPLE) == []
    assert {s.shown for s in SLOTS} >= {"input.data", "input.data.psn_no", "input.data.begntime"}


def test_every_class_of_invalid_value_is_offered_where_the_rule_states_it():
    offered = {(slot.shown, m.check) for slot, m in MUTATIONS}
    assert ("input.data.psn_no", "required") in offered
    assert ("input.data.psn_no", "length") in offered
    assert ("input.data.insutype", "code") in offered
    assert ("input.data.begntime", "datetime") in offered
    assert ("input.data", "type") in offered
    assert ("input.data.insutype", "length") not in offered  # a code set says more than a length


@pytest.mark.parametrize(
    ("slot", "mutation"), MUTATIONS, ids=lambda v: getattr(v, "shown", getattr(v, "check", ""))
)
@settings(max_examples=15)
@given(data=st.data())
def test_each_mutation_breaks_its_own_field(slot, mutation, data):
    value = data.draw(mutation.values)
    broken = fields.put(EXAMPLE, slot.path, value)
    problems = checks.check_input(SPEC, TX, broken)
    assert problems and all(p.startswith(slot.shown) for p in problems), (mutation.title(value), problems)


@settings(max_examples=30)
@given(data=st.data())
def test_variations_of_optional_coded_fields_stay_valid(data):
    tx = SPEC.transactions["5201"]
    example = {"data": {"psn_no": "53010098825988438524"}}
    slots = fields.slots(example, tx.input, prefix="input")
    variant = data.draw(fields.varied(example, slots, SPEC.codes.get))
    assert checks.check_input(SPEC, tx, variant) == []
