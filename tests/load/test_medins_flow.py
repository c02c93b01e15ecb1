import json
from datetime import datetime
from pathlib import Path

import pytest

from harness import idcard
from harness.load.ids import MsgIds
from harness.load.medins_flow import Flow, FlowError, Visit, build, fill, get_path, set_path
from harness.load.people import People
from harness.simulators.medins import MedinsError, MedinsSimulator

ROOT = Path(__file__).resolve().parents[2]
FLOW = ROOT / "loadtests" / "flows" / "outpatient-visit.yaml"


def test_paths_read_and_write_nested_envelopes():
    doc = {"input": {"feedetail": [{"psn_no": "a"}, {"psn_no": "b"}]}, "output": {"insuinfo": [{"x": 1}]}}
    assert set_path(doc, "input.feedetail[*].psn_no", "P1") == 2
    assert [d["psn_no"] for d in doc["input"]["feedetail"]] == ["P1", "P1"]
    assert get_path(doc, "output.insuinfo[0].x") == 1
    assert get_path(doc, "output.insuinfo[3].x") is None and get_path(doc, "output.none") is None
    assert fill({"a": "{{n}}", "b": "INV{{n}}", "c": ["{{missing}}"]}, {"n": 7}) == {
        "a": 7,
        "b": "INV7",
        "c": ["{{missing}}"],
    }


def run_visits(flow: Flow, count: int, strict: bool = True) -> list[list[tuple[str, str | None]]]:
    """Send `count` visits to the simulator's core (no sockets), as the load user does."""
    centre = MedinsSimulator(strict=strict)
    ids = MsgIds("H53010200123")

    def envelope(sign_no: str = "") -> dict:
        return {
            "msgid": ids.next(),
            "inf_time": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "sign_no": sign_no,
        }

    def call(body: dict) -> dict:
        try:
            return {"infcode": 0, "output": centre.serve(json.loads(json.dumps(body)))}
        except MedinsError as exc:
            return {"infcode": -1, "err_msg": str(exc)}

    sign_no = call(build(flow.sign_in, {}, envelope()))["output"]["signinoutb"]["sign_no"]
    people = People(4)
    visits = []
    for n in range(count):
        person = people.new()
        visit = Visit(
            flow,
            {
                "certno": person.idcard,
                "visit_no": f"MZ{n:08d}",
                "chrg_bchno": f"B{n}",
                "now": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
        steps = []
        while not visit.finished:
            infno = visit.step.infno
            failure = visit.answer(call(visit.request(envelope(sign_no))))
            steps.append((infno, failure))
            if failure:
                break
        visits.append(steps)
    return visits


def test_the_outpatient_flow_settles_visits_for_new_people_against_the_strict_centre():
    flow = Flow.load(FLOW)
    assert flow.sign_in.infno == "9001" and flow.names == ["1101", "2201", "2204", "2206", "2207"]
    for steps in run_visits(flow, 5):
        assert steps == [(n, None) for n in flow.names]


def test_a_refused_step_ends_the_visit_with_the_centres_reason(tmp_path):
    text = FLOW.read_text(encoding="utf-8").replace(
        'input.data.ipt_otp_no: "{{visit_no}}"', 'input.data.ipt_otp_no: "SAME"'
    )
    text = text.replace("../../fixtures", str(ROOT / "fixtures"))
    path = tmp_path / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    first, second = run_visits(Flow.load(path), 2)
    assert first[-1] == ("2207", None)
    assert second[-1][0] == "2201" and second[-1][1].startswith(
        "infcode -1: input.data.ipt_otp_no: SAME is already"
    )


def test_the_flow_is_data_a_new_transaction_is_one_more_step(tmp_path):
    flow = Flow.load(FLOW)
    text = FLOW.read_text(encoding="utf-8").replace("../../fixtures", str(ROOT / "fixtures"))
    text += (
        f"  - template: {ROOT / 'fixtures/medins/visit-08-2208.json'}\n"
        '    set:\n      insuplc_admdvs: "{{insuplc_admdvs}}"\n      input.data.psn_no: "{{psn_no}}"\n'
    )
    text = text.replace(
        '      input.data.invono: "INV{{visit_no}}"\n',
        '      input.data.invono: "INV{{visit_no}}"\n    save:\n      setl_id: output.setlinfo.setl_id\n',
    )
    path = tmp_path / "with-reversal.yaml"
    path.write_text(text, encoding="utf-8")
    longer = Flow.load(path)
    assert longer.names == [*flow.names, "2208"]
    for steps in run_visits(longer, 2):
        assert steps == [(n, None) for n in longer.names]


@pytest.mark.parametrize(
    "content, words",
    [
        ("steps: []\n", ["steps: expected a non-empty list"]),
        ("stepz: [a]\n", ["stepz: unknown key"]),
        ("steps:\n  - template: nowhere.json\n", ["steps[0].template", "nowhere.json"]),
        ("steps:\n  - {template: T, set: {input.nothing.here: 1}}\n", ["steps[0].set", "names nothing"]),
        ("steps:\n  - {template: T, sav: {}}\n", ["steps[0].sav: unknown key"]),
        ("steps:\n  - {template: T, set: {'a..b': 1}}\n", ["path 'a..b'"]),
    ],
)
def test_bad_flow_files_name_the_step_and_key(tmp_path, content, words):
    path = tmp_path / "flow.yaml"
    path.write_text(content.replace("T", str(ROOT / "fixtures/medins/visit-02-1101.json")), encoding="utf-8")
    with pytest.raises(FlowError) as err:
        Flow.load(path)
    for word in words:
        assert word in str(err.value)


def test_msgids_stay_unique_across_workers_even_past_ten_thousand_a_second():
    now = [1_767_580_200.0]
    workers = [MsgIds("H53010200123", w, 3, clock=lambda: now[0]) for w in range(3)]
    ids = [w.next() for _ in range(4000) for w in workers]
    assert len(set(ids)) == len(ids) == 12000
    assert all(len(i) == len("H53010200123") + 18 for i in ids)
    assert workers[0].ran_ahead > 0  # its share of the second's 10,000 serials was used up
    assert idcard.is_valid(People(1).new().idcard)
