from tests.proxy.faults.http.views import decide, medins


def test_truncate_keeps_half_by_default_or_the_given_bytes():
    _, plan = decide({"action": {"type": "truncate"}}, medins())
    assert plan.truncate_keep == -1 and plan.forward
    _, plan = decide({"action": {"type": "truncate", "keep_bytes": 10}}, medins())
    assert plan.truncate_keep == 10
