"""Every transaction of specs/medins: a valid request succeeds; a missing required field and a code outside
its set get infcode -1 naming the field. The requests are specs/medins/examples.yaml (hand-written)."""

from __future__ import annotations

import pytest

from harness.simulators.medins import RULES, load_spec
from tests.simulators.medins_world import DATA, World

SPEC = load_spec(rules=set(RULES))
NATIONAL = sorted(infno for infno in SPEC.transactions if infno != "0000")


def test_every_transaction_has_a_fixture_request_and_the_spec_has_at_least_75():
    assert len(NATIONAL) >= 75
    assert set(DATA["cases"]) == set(SPEC.transactions), (
        "specs/medins/examples.yaml lacks or has extra cases"
    )


def _first_required(fields: dict, at: str) -> tuple[list[str], str] | None:
    """A path (list of keys, with 0 for list items) to the first required scalar field, and its name."""
    for name, spec in fields.items():
        if spec.get("type") in ("object", "list"):
            if spec.get("required"):
                inner = _first_required(spec["fields"], f"{at}.{name}")
                if inner:
                    return [name, *([0] if spec["type"] == "list" else []), *inner[0]], inner[1]
        elif spec.get("required"):
            return [name], name
    return None


def _first_coded(fields: dict) -> tuple[list, str, str] | None:
    for name, spec in fields.items():
        if spec.get("type") in ("object", "list"):
            inner = _first_coded(spec["fields"])
            if inner:
                return [name, *([0] if spec["type"] == "list" else []), *inner[0]], inner[1], inner[2]
        elif "code" in spec:
            return [name], name, spec["code"]
    return None


def _walk(value, path):
    for key in path[:-1]:
        if isinstance(value, list) and key == 0 and isinstance(value, list):
            value = value[0]
        else:
            value = value[key]
    return value


@pytest.mark.parametrize("infno", sorted(SPEC.transactions))
def test_valid_request_succeeds_with_the_spec_output_nodes(infno):
    world = World()
    world.prepare(infno)
    answer = world.case(infno)
    tx = SPEC.transactions[infno]
    if infno == "9102":
        assert answer.headers["Content-Type"] == "application/octet-stream" and answer.body[:2] == b"PK"
        return
    assert answer["infcode"] == 0, answer["err_msg"]
    missing = [node for node in tx.output if node not in answer["output"]]
    assert not missing, f"{infno} output lacks {missing}: {answer['output']}"


@pytest.mark.parametrize(
    "infno",
    sorted(
        i
        for i in SPEC.transactions
        if any(_first_required({n: s}, "input") for n, s in SPEC.transactions[i].input.items())
    ),
)
def test_missing_required_field_names_it(infno):
    world = World()
    world.prepare(infno)
    tx = SPEC.transactions[infno]
    path, name = next(found for n, s in tx.input.items() if (found := _first_required({n: s}, "input")))
    present = DATA["cases"][infno]["input"]
    if not _has(present, path):
        pytest.skip(f"{infno}: the fixture's first required field sits in an absent optional node")

    def drop(inp):
        parent = _walk(inp, path)
        if isinstance(parent, list):
            parent = parent[0]
        parent.pop(path[-1], None)

    answer = world.case(infno, drop)
    assert answer["infcode"] == -1
    assert f"{name}: missing" in answer["err_msg"], answer["err_msg"]


def _has(value, path) -> bool:
    for key in path:
        if isinstance(value, list):
            if not value:
                return False
            value = value[0]
            if key == 0:
                continue
        if not isinstance(value, dict) or key not in value:
            return False
        value = value[key]
    return True


CODED = sorted(i for i in SPEC.transactions if _first_coded(SPEC.transactions[i].input))


@pytest.mark.parametrize("infno", CODED)
def test_code_outside_its_set_names_the_field_and_the_set(infno):
    world = World()
    world.prepare(infno)
    path, name, codeset = _first_coded(SPEC.transactions[infno].input)

    def spoil(inp):
        parent = _walk(inp, path)
        if isinstance(parent, list):
            parent = parent[0]
        parent[path[-1]] = "ZZZ"

    answer = world.case(infno, spoil)
    assert answer["infcode"] == -1
    assert f"{name}: 'ZZZ' is not a {codeset} code" in answer["err_msg"], answer["err_msg"]
