import json

import pytest

from harness.proxy.faults.actions.http.malformed import malform
from tests.proxy.faults.http.views import decide, medins


def test_malformed_marks_the_plan():
    _, plan = decide({"action": {"type": "malformed", "mode": "garbage"}}, medins())
    assert plan.malformed == "garbage" and plan.forward


@pytest.mark.parametrize("mode", ["cut", "garbage"])
def test_malformed_bodies_do_not_parse(mode):
    body = json.dumps({"infcode": 0, "output": {"x": list(range(20))}}).encode()
    with pytest.raises(ValueError):
        json.loads(malform(body, mode))
