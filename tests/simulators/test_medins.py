import http.client
import json
import re
import shutil
import subprocess
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import idcard
from harness.simulators.medins import GATEWAY_PATH, MedinsSimulator
from harness.simulators.wire import HttpRequest
from tests.childproc import start_listening
from tests.simulators import medins_visit

CLOCK = datetime(2026, 1, 5, 9, 30, 0, 123000)


def sim(**kw) -> MedinsSimulator:
    return MedinsSimulator(clock=lambda: CLOCK, **kw)


def post(core, envelope, path=GATEWAY_PATH) -> dict:
    body = envelope if isinstance(envelope, bytes) else json.dumps(envelope, ensure_ascii=False).encode()
    resp = core.handle(HttpRequest("POST", path, {"content-type": "application/json"}, body))
    assert resp.status == 200
    return json.loads(resp.body)


def ok(answer: dict) -> dict:
    assert answer["infcode"] == 0, answer["err_msg"]
    return answer["output"]


def fail(answer: dict, *words: str) -> str:
    assert answer["infcode"] == -1, answer
    for word in words:
        assert word in answer["err_msg"], answer["err_msg"]
    return answer["err_msg"]


def run_visit(send) -> dict:
    """9001 -> 1101 -> 2201 -> 2203 -> 2204 -> 2206 -> 2207 through `send(envelope) -> answer`."""
    steps, values = medins_visit.steps(), {}
    values["sign_no"] = ok(send(steps["9001"]))["signinoutb"]["sign_no"]
    person = ok(send(medins_visit.fill(steps["1101"], values)))
    values["mdtrt_id"] = ok(send(medins_visit.fill(steps["2201"], values)))["data"]["mdtrt_id"]
    ok(send(medins_visit.fill(steps["2203"], values)))
    fees = ok(send(medins_visit.fill(steps["2204"], values)))["result"]
    pre = ok(send(medins_visit.fill(steps["2206"], values)))
    setl = ok(send(medins_visit.fill(steps["2207"], values)))
    values["setl_id"] = setl["setlinfo"]["setl_id"]
    return {"values": values, "person": person, "fees": fees, "pre": pre, "setl": setl, "steps": steps}


def money(x) -> Decimal:
    return Decimal(str(x))


def test_outpatient_visit_amounts_are_consistent_and_settling_twice_fails():
    core = sim()
    visit = run_visit(lambda env: post(core, env))
    base = visit["person"]["baseinfo"]
    assert base["certno"] == "53010219850307123X" and base["gend"] == "1" and base["age"] == 40
    assert len(visit["fees"]) == 3
    info = visit["setl"]["setlinfo"]
    assert money(info["medfee_sumamt"]) == Decimal("79.10")
    assert money(info["fund_pay_sumamt"]) + money(info["psn_part_amt"]) == money(info["medfee_sumamt"])
    assert money(info["acct_pay"]) + money(info["psn_cash_pay"]) == money(info["psn_part_amt"])
    assert sum(money(d["fund_payamt"]) for d in visit["setl"]["setldetail"]) == money(info["fund_pay_sumamt"])
    pre = visit["pre"]["setlinfo"]
    assert pre["fund_pay_sumamt"] == info["fund_pay_sumamt"] and pre["setl_id"] == ""
    assert info["medins_setl_id"] == visit["steps"]["2207"]["msgid"]
    balance_before = visit["person"]["insuinfo"][0]["balc"]
    assert money(info["balc"]) == money(balance_before) - money(info["acct_pay"])

    again = medins_visit.with_msgid(medins_visit.fill(visit["steps"]["2207"], visit["values"]), 9007)
    fail(post(core, again), "already settled", info["setl_id"])

    reversal = ok(post(core, medins_visit.fill(visit["steps"]["2208"], visit["values"])))["setlinfo"]
    assert money(reversal["medfee_sumamt"]) == -money(info["medfee_sumamt"])
    assert money(reversal["balc"]) == money(balance_before)
    fail(
        post(core, medins_visit.with_msgid(medins_visit.fill(visit["steps"]["2208"], visit["values"]), 9008)),
        "already reversed",
    )
    # After the reversal the same visit settles again, under a new setl_id.
    third = ok(
        post(core, medins_visit.with_msgid(medins_visit.fill(visit["steps"]["2207"], visit["values"]), 9009))
    )
    assert third["setlinfo"]["setl_id"] not in ("", info["setl_id"])


def test_2207_for_unknown_visit_fails_naming_mdtrt_id():
    core = sim()
    visit = run_visit(lambda env: post(core, env))
    env = medins_visit.fill(
        visit["steps"]["2207"], dict(visit["values"], mdtrt_id="530102202601059999999999")
    )
    fail(post(core, medins_visit.with_msgid(env, 9100)), "mdtrt_id", "not found")


def test_medfee_sumamt_must_match_uploaded_details():
    core = sim()
    visit = run_visit(lambda env: post(core, env))
    ok(post(core, medins_visit.fill(visit["steps"]["2208"], visit["values"])))
    env = medins_visit.fill(visit["steps"]["2206"], visit["values"])
    env["input"]["data"]["medfee_sumamt"] = 80
    fail(post(core, medins_visit.with_msgid(env, 9200)), "medfee_sumamt", "79.1")


def test_1101_rejects_a_wrong_check_digit_and_is_deterministic():
    steps = medins_visit.steps()
    env = steps["1101"]
    env = dict(
        env,
        sign_no="",
        input={
            "data": dict(
                env["input"]["data"], certno="530102198503071231", mdtrt_cert_no="530102198503071231"
            )
        },
    )
    fail(post(sim(), env), "input.data.certno", "check digit")
    good = dict(
        env, input={"data": dict(env["input"]["data"], certno=idcard.make("532901", date(1990, 2, 3), 42))}
    )
    a, b = ok(post(sim(), good)), ok(post(sim(), good))
    assert a == b and a["baseinfo"]["gend"] == "2" and a["baseinfo"]["psn_no"].startswith("532900")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"msgid": "H530102001232026010509300"}, ["msgid", "18 digits"]),
        ({"msgid": "H53999999999202601050930000001"}, ["msgid", "must start with fixmedins_code"]),
        ({"msgid": "H53010200123202613050930000001"}, ["msgid", "yyyyMMddHHmmss"]),
        ({"inf_time": "2026/01/05 09:30:00"}, ["inf_time", "yyyy-MM-dd HH:mm:ss"]),
        ({"mdtrtarea_admvs": "110101"}, ["mdtrtarea_admvs", "not a Yunnan"]),
        ({"mdtrtarea_admvs": "5301"}, ["mdtrtarea_admvs", "6 characters"]),
        ({"infver": "2.0"}, ["infver", "'2.0'"]),
        ({"opter_type": "7"}, ["opter_type"]),
        ({"opter": None}, ["opter: missing"]),
        ({"opter_name": "名" * 51}, ["opter_name", "longer than 50"]),
        ({"input": "[]"}, ["input: must be a JSON object"]),
        ({"infno": "8888"}, ["infno", "not supported"]),
        ({"sign_no": "20260105093000999"}, ["sign_no", "not issued"]),
    ],
)
def test_envelope_problems_name_the_field(change, words):
    env = dict(medins_visit.steps()["9001"], sign_no="")
    env.update(change)
    if change.get("opter") is None and "opter" in change:
        del env["opter"]
    if "sign_no" in change:
        env = dict(medins_visit.steps()["1101"], **change)
    fail(post(sim(), env), *words)


def test_malformed_bodies_get_infcode_minus_1_and_the_core_keeps_serving():
    core = sim()
    fail(post(core, b'{"infno": "9001",'), "not valid JSON", "line 1")
    fail(post(core, b"\xff\xfe"), "not UTF-8", "offset 0")
    fail(post(core, b"[1, 2]"), "JSON object", "list")
    fail(post(core, b""), "empty")
    ok(post(core, dict(medins_visit.steps()["9001"], sign_no="")))


def test_path_infno_must_match_and_wrong_paths_and_methods_are_refused():
    core = sim()
    env = dict(medins_visit.steps()["9001"], sign_no="")
    ok(post(core, env, GATEWAY_PATH + "/9001"))
    fail(post(core, medins_visit.with_msgid(env, 2), GATEWAY_PATH + "/2207"), "does not match")
    assert core.handle(HttpRequest("POST", "/other", {}, b"{}")).status == 404
    assert core.handle(HttpRequest("GET", GATEWAY_PATH, {}, b"")).status == 405
    big = core.too_large(HttpRequest("POST", GATEWAY_PATH, {}, b""), 100)
    assert big.status == 413 and json.loads(big.body)["infcode"] == -1


def test_response_envelope_formats():
    answer = post(sim(), dict(medins_visit.steps()["9001"], sign_no=""))
    assert answer["inf_refmsgid"].startswith("53010220260105093000") and len(answer["inf_refmsgid"]) == 30
    assert answer["refmsg_time"] == "20260105093000123"
    assert re.fullmatch(r"\d{17}", answer["respond_time"])
    assert answer["err_msg"] == ""
    long = post(sim(), b"{" + b'"x' * 300)
    assert len(long["err_msg"]) <= 200


def test_strict_mode_needs_sign_no_and_refuses_repeated_msgid():
    core = sim(strict=True)
    steps = medins_visit.steps()
    fail(post(core, dict(steps["1101"], sign_no="")), "sign_no", "strict")
    sign_no = ok(post(core, steps["9001"]))["signinoutb"]["sign_no"]
    fail(post(core, steps["9001"]), "msgid", "already used")
    ok(post(core, medins_visit.fill(steps["1101"], {"sign_no": sign_no})))
    # Signed out: the sign_no no longer works.
    out = medins_visit.with_msgid(
        dict(
            steps["9001"],
            infno="9002",
            sign_no=sign_no,
            input={"signOut": {"sign_no": sign_no, "opter_no": "0001"}},
        ),
        50,
    )
    ok(post(core, out))
    fail(
        post(core, medins_visit.with_msgid(medins_visit.fill(steps["1101"], {"sign_no": sign_no}), 51)),
        "sign_no",
        "signed out",
    )


def test_psn_no_needs_1101_and_matching_insuplc():
    core = sim()
    steps = medins_visit.steps()
    fail(post(core, medins_visit.fill(steps["2201"], {"sign_no": ""})), "psn_no", "1101")
    ok(post(core, medins_visit.fill(steps["1101"], {"sign_no": ""})))
    env = dict(medins_visit.fill(steps["2201"], {"sign_no": ""}), insuplc_admdvs="530300")
    fail(post(core, env), "insuplc_admdvs", "530100")
    env = medins_visit.fill(steps["2201"], {"sign_no": ""})
    del env["insuplc_admdvs"]
    fail(post(core, env), "insuplc_admdvs: missing")


def test_fee_detail_checks():
    core = sim()
    steps, values = medins_visit.steps(), {"sign_no": ""}
    ok(post(core, medins_visit.fill(steps["1101"], values)))
    values["mdtrt_id"] = ok(post(core, medins_visit.fill(steps["2201"], values)))["data"]["mdtrt_id"]
    env = medins_visit.fill(steps["2204"], values)
    env["input"]["feedetail"][1]["det_item_fee_sumamt"] = 16
    fail(post(core, env), "feedetail[1].det_item_fee_sumamt", "cnt × pric")
    env["input"]["feedetail"][1]["det_item_fee_sumamt"] = "1x"
    fail(post(core, env), "feedetail[1].det_item_fee_sumamt", "not a number")
    del env["input"]["feedetail"][2]["fee_ocur_time"]
    fail(post(core, env), "feedetail[2].fee_ocur_time: missing")
    ok(post(core, medins_visit.fill(steps["2204"], values)))
    fail(
        post(core, medins_visit.with_msgid(medins_visit.fill(steps["2204"], values), 60)),
        "F0001",
        "already uploaded",
    )
    # 2205 revokes the batch; the visit then has nothing to settle.
    revoke = medins_visit.with_msgid(
        dict(
            steps["2201"],
            input={
                "data": {
                    "mdtrt_id": values["mdtrt_id"],
                    "chrg_bchno": "B0001",
                    "psn_no": steps["2201"]["input"]["data"]["psn_no"],
                }
            },
            infno="2205",
            sign_no="",
        ),
        61,
    )
    ok(post(core, revoke))
    fail(post(core, medins_visit.fill(steps["2206"], values)), "no unsettled fee details")


def test_2601_reverses_a_settlement_by_msgid():
    core = sim()
    visit = run_visit(lambda env: post(core, env))
    psn_no = visit["person"]["baseinfo"]["psn_no"]
    env = dict(
        visit["steps"]["2208"],
        infno="2601",
        sign_no=visit["values"]["sign_no"],
        input={"data": {"psn_no": psn_no, "omsgid": visit["steps"]["2207"]["msgid"], "oinfno": "2207"}},
    )
    env = medins_visit.with_msgid(env, 70)
    ok(post(core, env))
    fail(post(core, medins_visit.with_msgid(env, 71)), "already reversed")
    fail(
        post(core, medins_visit.with_msgid(medins_visit.fill(visit["steps"]["2208"], visit["values"]), 72)),
        "already reversed",
    )
    bad = medins_visit.with_msgid(dict(env, input={"data": dict(env["input"]["data"], oinfno="2204")}), 73)
    fail(post(core, bad), "oinfno", "was a 2207")


def test_inpatient_stay():
    core = sim()
    steps, values = medins_visit.steps(), {"sign_no": ""}
    base = ok(post(core, medins_visit.fill(steps["1101"], values)))["baseinfo"]
    psn, cert = base["psn_no"], base["certno"]
    tmpl = medins_visit.fill(steps["2201"], values)
    n = iter(range(100, 200))

    def env(infno, inp):
        return medins_visit.with_msgid(dict(tmpl, infno=infno, input=inp), next(n))

    dise = {
        "psn_no": psn,
        "diag_type": "1",
        "maindiag_flag": "1",
        "diag_srt_no": "1",
        "diag_code": "J18.900",
        "diag_name": "肺炎",
        "diag_dept": "呼吸内科",
        "dise_dor_no": "D1",
        "dise_dor_name": "钱医生",
        "diag_time": "2026-01-05 10:00:00",
    }
    adm = {
        "mdtrtinfo": {
            "psn_no": psn,
            "insutype": "310",
            "begntime": "2026-01-05 10:00:00",
            "mdtrt_cert_type": "02",
            "mdtrt_cert_no": cert,
            "med_type": "21",
            "ipt_no": "ZY0001",
            "atddr_no": "D1",
            "chfpdr_name": "钱医生",
            "adm_diag_dscr": "肺炎",
            "adm_dept_codg": "A0301",
            "adm_dept_name": "呼吸内科",
            "adm_bed": "12",
            "dscg_maindiag_code": "J18.900",
            "dscg_maindiag_name": "肺炎",
        },
        "diseinfo": [dise],
    }
    mdtrt_id = ok(post(core, env("2401", adm)))["result"]["mdtrt_id"]
    fail(post(core, env("2401", adm)), "ipt_no", "already admitted")
    fee = {
        "feedetl_sn": "Z1",
        "mdtrt_id": mdtrt_id,
        "psn_no": psn,
        "med_type": "21",
        "fee_ocur_time": "2026-01-05 11:00:00",
        "med_list_codg": "C1",
        "medins_list_codg": "L1",
        "det_item_fee_sumamt": "300.00",
        "cnt": 3,
        "pric": 100,
        "bilg_dept_codg": "A0301",
        "bilg_dept_name": "呼吸内科",
        "bilg_dr_codg": "D1",
        "bilg_dr_name": "钱医生",
    }
    ok(post(core, env("2301", {"feedetail": [fee]})))
    fail(post(core, env("2404", {"data": {"mdtrt_id": mdtrt_id, "psn_no": psn}})), "fee details")
    setl = {
        "psn_no": psn,
        "mdtrt_cert_type": "02",
        "mdtrt_cert_no": cert,
        "medfee_sumamt": 300,
        "psn_setlway": "01",
        "mdtrt_id": mdtrt_id,
        "insutype": "310",
        "acct_used_flag": "0",
        "mid_setl_flag": "0",
        # 2303 requires the HIS's own split of the amount (OH Input_2303.cs); the centre recomputes it.
        "fulamt_ownpay_amt": 0,
        "overlmt_selfpay": 0,
        "preselfpay_amt": 0,
        "inscp_scp_amt": 300,
    }
    fail(post(core, env("2304", {"data": setl})), "not discharged")
    dscg = {
        "mdtrt_id": mdtrt_id,
        "psn_no": psn,
        "insutype": "310",
        "endtime": "2026-01-09 10:00:00",
        "dscg_dept_codg": "A0301",
        "dscg_dept_name": "呼吸内科",
        "dscg_way": "1",
    }
    ok(post(core, env("2402", {"dscginfo": dscg, "diseinfo": [dict(dise, mdtrt_id=mdtrt_id)]})))
    ok(post(core, env("2303", {"data": setl})))
    info = ok(post(core, env("2304", {"data": setl})))["setlinfo"]
    assert money(info["fund_pay_sumamt"]) + money(info["psn_part_amt"]) == Decimal(300)
    assert info["acct_pay"] == 0
    fail(post(core, env("2304", {"data": setl})), "already settled")
    ok(post(core, env("2305", {"data": {"mdtrt_id": mdtrt_id, "setl_id": info["setl_id"], "psn_no": psn}})))
    ok(post(core, env("2302", {"data": {"feedetl_sn": "0000", "mdtrt_id": mdtrt_id, "psn_no": psn}})))
    ok(post(core, env("2404", {"data": {"mdtrt_id": mdtrt_id, "psn_no": psn}})))
    fail(
        post(core, env("2402", {"dscginfo": dscg, "diseinfo": [dict(dise, mdtrt_id=mdtrt_id)]})), "cancelled"
    )


def test_state_is_bounded():
    core = MedinsSimulator(clock=lambda: CLOCK, max_entries=3)
    env = dict(medins_visit.steps()["9001"], sign_no="")
    for i in range(10):
        ok(post(core, medins_visit.with_msgid(env, i)))
    assert len(core.sign_ins) == 3 and len(core.messages) <= 15


# ---------------------------------------------------------------- real sockets
@pytest.fixture
def server(processes):
    return start_listening(processes, "mock", "medins", "--listen", "127.0.0.1:0", "--max-body", "65536")


def test_visit_over_a_real_socket_with_keep_alive(server):
    child, port = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sockets = set()

    def send(env):
        conn.request(
            "POST",
            GATEWAY_PATH,
            json.dumps(env, ensure_ascii=False).encode(),
            {"Content-Type": "application/json"},
        )
        resp = conn.getresponse()
        assert resp.status == 200
        sockets.add(id(conn.sock))
        return json.loads(resp.read())

    visit = run_visit(send)
    again = medins_visit.with_msgid(medins_visit.fill(visit["steps"]["2207"], visit["values"]), 9999)
    fail(send(again), "already settled")
    ok(send(medins_visit.fill(visit["steps"]["2208"], visit["values"])))
    assert len(sockets) == 1  # one kept-alive connection for the whole visit
    conn.close()
    code = child.stop()
    out = child.text()
    assert code == 0
    assert out.count(f"POST {GATEWAY_PATH}") == 9  # one log line per request
    assert "stopped" in out


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed on this machine")
def test_curl_bad_input_and_oversized_body(server, tmp_path):
    _, port = server
    url = f"http://127.0.0.1:{port}{GATEWAY_PATH}"

    def curl(*args):
        done = subprocess.run(
            ["curl", "-sS", "-w", "\n%{http_code}", *args, url], capture_output=True, text=True, timeout=20
        )
        body, _, code = done.stdout.rpartition("\n")
        return int(code), body

    code, body = curl("-H", "Content-Type: application/json", "--data-binary", '{"infno": ')
    assert (
        code == 200 and json.loads(body)["infcode"] == -1 and "not valid JSON" in json.loads(body)["err_msg"]
    )
    big = tmp_path / "big.json"
    big.write_bytes(b'{"x": "' + b"a" * 200_000 + b'"}')
    code, body = curl("-H", "Content-Type: application/json", "--data-binary", f"@{big}")
    assert code == 413 and "65536-byte limit" in json.loads(body)["err_msg"]
    env = dict(medins_visit.steps()["9001"], sign_no="")
    code, body = curl("-H", "Content-Type: application/json", "--data-binary", json.dumps(env))
    assert code == 200 and json.loads(body)["infcode"] == 0


def test_2601_reverses_fee_upload_and_registration():
    core = sim()
    steps, values = medins_visit.steps(), {"sign_no": ""}
    psn_no = ok(post(core, medins_visit.fill(steps["1101"], values)))["baseinfo"]["psn_no"]
    values["mdtrt_id"] = ok(post(core, medins_visit.fill(steps["2201"], values)))["data"]["mdtrt_id"]
    ok(post(core, medins_visit.fill(steps["2204"], values)))

    def reversal(oinfno, serial):
        data = {"psn_no": psn_no, "omsgid": steps[oinfno]["msgid"], "oinfno": oinfno}
        return medins_visit.with_msgid(
            dict(steps["2201"], infno="2601", sign_no="", input={"data": data}), serial
        )

    fail(post(core, reversal("2201", 80)), "has fee details")
    ok(post(core, reversal("2204", 81)))
    fail(post(core, medins_visit.fill(steps["2206"], values)), "no unsettled fee details")
    ok(post(core, reversal("2201", 82)))
    fail(post(core, medins_visit.with_msgid(medins_visit.fill(steps["2204"], values), 83)), "was cancelled")
    unknown = reversal("2201", 84)
    unknown["input"]["data"]["omsgid"] = "H53010200123202601050930009999"
    fail(post(core, unknown), "no accepted transaction")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(step=st.sampled_from(sorted(medins_visit.steps())), data=st.data())
def test_any_field_value_gets_an_envelope_never_a_crash(step, data):
    core = sim()
    run = run_visit(lambda env: post(core, env))
    env = medins_visit.fill(run["steps"][step], run["values"])
    node = data.draw(st.sampled_from(["envelope", *env["input"]]))
    target = env if node == "envelope" else env["input"][node]
    if isinstance(target, list):
        target = target[0]
    key = data.draw(st.sampled_from(sorted(target)))
    target[key] = data.draw(JSON_VALUES)
    answer = post(core, medins_visit.with_msgid(env, 5000) if key != "msgid" else env)
    assert answer["infcode"] in (0, -1)
    assert isinstance(answer["err_msg"], str) and len(answer["err_msg"]) <= 200


def test_5201_and_5203_queries():
    core = sim()
    visit = run_visit(lambda env: post(core, env))
    psn_no = visit["person"]["baseinfo"]["psn_no"]
    values = visit["values"]
    base = dict(visit["steps"]["2208"], sign_no=values["sign_no"])
    query = medins_visit.with_msgid(dict(base, infno="5201", input={"data": {"psn_no": psn_no}}), 90)
    rows = ok(post(core, query))["mdtrtinfo"]
    assert [r["mdtrt_id"] for r in rows] == [values["mdtrt_id"]] and rows[0]["setl_ids"] == [
        values["setl_id"]
    ]
    data = {"psn_no": psn_no, "setl_id": values["setl_id"], "mdtrt_id": values["mdtrt_id"]}
    found = ok(post(core, medins_visit.with_msgid(dict(base, infno="5203", input={"data": data}), 91)))
    assert found["setlinfo"]["setl_id"] == values["setl_id"] and found["setlinfo"]["vali_flag"] == "1"
    assert found["setlinfo"]["fund_pay_sumamt"] == visit["setl"]["setlinfo"]["fund_pay_sumamt"]
    ok(post(core, medins_visit.fill(visit["steps"]["2208"], values)))
    again = ok(post(core, medins_visit.with_msgid(dict(base, infno="5203", input={"data": data}), 92)))
    assert again["setlinfo"]["vali_flag"] == "0"
    missing = dict(data, setl_id="S0")
    fail(
        post(core, medins_visit.with_msgid(dict(base, infno="5203", input={"data": missing}), 93)),
        "S0",
        "not found",
    )


def test_outpatient_number_is_unique_until_cancelled():
    core = sim()
    steps, values = medins_visit.steps(), {"sign_no": ""}
    ok(post(core, medins_visit.fill(steps["1101"], values)))
    first = ok(post(core, medins_visit.fill(steps["2201"], values)))["data"]
    fail(
        post(core, medins_visit.with_msgid(medins_visit.fill(steps["2201"], values), 40)),
        "MZ202601050001",
        "already registered",
        first["mdtrt_id"],
    )
    cancel = {"psn_no": first["psn_no"], "mdtrt_id": first["mdtrt_id"], "ipt_otp_no": first["ipt_otp_no"]}
    ok(
        post(
            core,
            medins_visit.with_msgid(
                dict(steps["2201"], infno="2202", sign_no="", input={"data": cancel}), 41
            ),
        )
    )
    second = ok(post(core, medins_visit.with_msgid(medins_visit.fill(steps["2201"], values), 42)))["data"]
    assert second["mdtrt_id"] != first["mdtrt_id"]
    query = dict(steps["2201"], infno="5201", sign_no="", input={"data": {"psn_no": first["psn_no"]}})
    rows = ok(post(core, medins_visit.with_msgid(query, 43)))["mdtrtinfo"]
    assert [(r["mdtrt_id"], r["vali_flag"]) for r in rows] == [
        (first["mdtrt_id"], "0"),
        (second["mdtrt_id"], "1"),
    ]


def test_gateway_signature_headers_with_a_token():
    import hashlib

    core = MedinsSimulator(clock=lambda: CLOCK, tif_token="secret-token", epoch=lambda: 1_767_576_600.0)
    env = json.dumps(dict(medins_visit.steps()["9001"], sign_no="")).encode()

    def send(**headers):
        resp = core.handle(HttpRequest("POST", GATEWAY_PATH, headers, env))
        return json.loads(resp.body)

    stamp, nonce = "1767576600", "0d9f7c1e-3c55-4d1f-a0f1-2a6b1c3d4e5f"
    good = hashlib.sha256(f"{stamp}secret-token{nonce}{stamp}".encode()).hexdigest()
    base = {"x-tif-paasid": "hosp01", "x-tif-timestamp": stamp, "x-tif-nonce": nonce}
    ok(send(**base, **{"x-tif-signature": good}))
    fail(send(**base, **{"x-tif-signature": "0" * 64}), "x-tif-signature", "does not match")
    fail(send(**base), "x-tif-signature: missing")
    late = dict(base, **{"x-tif-timestamp": "1767570000"})
    fail(send(**late, **{"x-tif-signature": good}), "x-tif-timestamp", "6600 s away")
    # Without a token the headers are not looked at.
    ok(post(sim(), dict(medins_visit.steps()["9001"], sign_no="")))
