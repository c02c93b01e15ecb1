"""The medical-insurance centre's state across transactions, the corrected facts, and the Yunnan transport."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
import zipfile
from decimal import Decimal

import pytest

from harness import idcard
from harness.simulators.medins import YUNNAN_PATH, MedinsSimulator, load_spec
from harness.simulators.medins.dll import ChsInterfaceYn
from harness.simulators.wire import HttpRequest
from tests.childproc import start_listening
from tests.simulators.medins_world import CLOCK, DATA, World


def ok(answer) -> dict:
    assert answer["infcode"] == 0, answer["err_msg"]
    return answer["output"]


def fail(answer, *words: str) -> str:
    assert answer["infcode"] == -1, answer
    for word in words:
        assert word in answer["err_msg"], answer["err_msg"]
    return answer["err_msg"]


def step(world: World, name: str) -> dict:
    return world.run(DATA["steps"][name], name)


def send(world: World, infno: str, inp: dict, **envelope) -> dict:
    return world.send(world.envelope(infno, inp, envelope))


def unzip(body: bytes) -> list[list[str]]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        text = archive.read(archive.namelist()[0]).decode("utf-8")
    return [line.split("\t") for line in text.splitlines()]


# ------------------------------------------------------------------------------------ corrected facts
def test_code_sets_carry_the_corrected_national_codes():
    spec = load_spec()
    med_type = spec.codes["med_type"]
    assert med_type["23"] == "转外诊治住院" and med_type["24"] == "急诊转住院"
    assert {"350", "360", "370", "380", "399", "410"} <= set(spec.codes["insutype"])
    assert set(spec.codes["clr_way"]) == {"01", "02", "03", "04", "05", "99"}
    assert "07" in spec.codes["psn_cert_type"] and "90" in spec.codes["psn_cert_type"]


@pytest.mark.parametrize("insutype", ["350", "360", "370", "380", "399", "410"])
def test_insutypes_that_were_missing_are_codes_now(insutype):
    world = World()
    answer = world.case("2201", lambda inp: inp["data"].update(insutype=insutype))
    # The code itself passes; the invented person happens to be insured under 310, which the rule then says.
    fail(answer, "input.data.insutype", "insured under 310")
    assert "is not a insutype code" not in answer["err_msg"]


def test_settlement_answers_two_digit_clr_way_and_an_enctype():
    world = World()
    answer = world.case("5203")
    assert answer["enctype"] == ""
    assert ok(answer)["setlinfo"]["clr_way"] == "01"


def test_5203_no_longer_requires_mdtrt_id():
    world = World()
    setl = ok(world.case("5203"))["setlinfo"]
    assert setl["setl_id"] == world.values["otp_setl_id"] and setl["vali_flag"] == "1"


def test_1901_serves_the_code_sets_with_the_area_extension():
    world = World()
    rows = ok(send(world, "1901", {"data": {"type": "med_type", "admdvs": "530100", "date": "2026-01-05"}}))[
        "list"
    ]
    codes = {r["value"]: r["label"] for r in rows}
    assert codes["23"] == "转外诊治住院" and codes["24"] == "急诊转住院" and "9901" in codes
    fail(
        send(world, "1901", {"data": {"type": "nope", "admdvs": "530100", "date": "2026-01-05"}}),
        "no dictionary",
    )


# ------------------------------------------------------------------------------- filings change things
def chronic_visit(world: World) -> dict:
    step(world, "reg2")
    return {
        "mdtrtinfo": {
            "mdtrt_id": world.values["mdtrt_id2"],
            "psn_no": world.values["psn_no"],
            "med_type": "14",
            "begntime": "2026-01-05 09:50:00",
            "dise_codg": "M10900",
            "dise_name": "高血压",
        },
        "diseinfo": DATA["steps"]["info2"]["input"]["diseinfo"],
    }


def test_chronic_disease_visits_need_the_2503_filing_until_it_is_revoked():
    world = World()
    visit = chronic_visit(world)
    fail(
        send(world, "2203", visit),
        "med_type",
        "门诊慢特病备案 (2503)",
        "opsp_dise_code" if False else "M10900",
    )
    check = {
        "data": {
            "psn_no": world.values["psn_no"],
            "insutype": "310",
            "fixmedins_code": "H53010200123",
            "med_type": "14",
            "begntime": "2026-01-05 09:50:00",
            "dise_codg": "M10900",
        }
    }
    assert ok(send(world, "2001", check))["trtinfo"][0]["trt_enjymnt_flag"] == "0"
    step(world, "chronic")
    ok(send(world, "2203", visit))
    assert ok(send(world, "2001", check))["trtinfo"][0]["trt_enjymnt_flag"] == "1"
    filings = ok(send(world, "5301", {"data": {"psn_no": world.values["psn_no"]}}))["feedetail"]
    assert [f["opsp_dise_code"] for f in filings] == ["M10900"]
    # A filing for another disease does not cover this one.
    other = dict(visit, mdtrtinfo=dict(visit["mdtrtinfo"], dise_codg="E11900"))
    fail(send(world, "2203", other), "E11900")
    revoke = {
        "data": {
            "trt_dcla_detl_sn": world.values["chronic_sn"],
            "psn_no": world.values["psn_no"],
            "memo": "撤销",
        }
    }
    ok(send(world, "2504", revoke))
    fail(send(world, "2504", revoke), "already revoked")
    fail(send(world, "2203", visit), "门诊慢特病备案")
    assert ok(send(world, "5301", {"data": {"psn_no": world.values["psn_no"]}}))["feedetail"] == []


def test_transfer_admission_needs_a_transfer_filing_to_this_institution():
    world = World()
    admission = DATA["steps"]["admit2"]["input"]
    transfer = {**admission, "mdtrtinfo": dict(admission["mdtrtinfo"], med_type="23")}
    fail(send(world, "2401", transfer), "mdtrtinfo.med_type", "转院备案 (2501)", "H53010200123")
    ok(world.case("2501"))  # a filing to 大理 (H53290100789) does not cover 昆明
    fail(send(world, "2401", transfer), "转院备案")
    step(world, "transfer")
    ok(send(world, "2401", transfer))
    rows = ok(
        send(
            world,
            "5304",
            DATA["cases"]["5304"]["input"]
            | {
                "data": {
                    "psn_no": world.values["psn_no"],
                    "begntime": "2026-01-01 00:00:00",
                    "endtime": "2026-01-31 23:59:59",
                }
            },
        )
    )
    assert {r["reflin_medins_no"] for r in rows["refmedin"]} == {"H53290100789", "H53010200123"}


# ------------------------------------------------------------------------- reconciliation and clearing
def test_3201_totals_agree_with_the_settlements_the_centre_made_and_name_every_difference():
    world = World()
    request = DATA["cases"]["3201"]["input"]["data"]
    info = ok(send(world, "3201", {"data": request}))["stmtinfo"]
    assert info == {"setl_optins": "530100", "stmt_rslt": "0", "stmt_rslt_dscr": "对账相符"}
    wrong = dict(request, medfee_sumamt=22, fixmedins_setl_cnt=2)
    info = ok(send(world, "3201", {"data": wrong}))["stmtinfo"]
    assert info["stmt_rslt"] == "1"
    assert (
        "medfee_sumamt: 医药机构 22, 中心 21.0" in info["stmt_rslt_dscr"]
        and "fixmedins_setl_cnt" in info["stmt_rslt_dscr"]
    )
    # After a reversal: without refunds the settlement drops out; with refunds both lines count, netting to 0.
    ok(world.case("2208"))
    none = dict(request, medfee_sumamt=0, fund_pay_sumamt=0, acct_pay=0, fixmedins_setl_cnt=0)
    assert ok(send(world, "3201", {"data": none}))["stmtinfo"]["stmt_rslt"] == "0"
    both = dict(none, fixmedins_setl_cnt=2, refd_setl_flag="1")
    assert ok(send(world, "3201", {"data": both}))["stmtinfo"]["stmt_rslt"] == "0"


def upload(world: World, lines: list[str]) -> str:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("dzmx.txt", "".join(line + "\n" for line in lines))
    node = {
        "in": base64.b64encode(out.getvalue()).decode(),
        "filename": "dzmx.txt.zip",
        "fixmedins_code": "H53010200123",
    }
    return ok(send(world, "9101", {"fsUploadIn": node}))["file_qury_no"]


def test_3202_compares_the_uploaded_detail_file_line_by_line_and_returns_a_result_file():
    world = World()
    v = world.values
    good = f"{v['otp_setl_id']}\t{v['otp_mdtrt_id']}\t{v['psn_no']}\t21.00\t8.80\t12.20\t0"
    bogus = f"S999\tM999\t{v['psn_no']}\t5.00\t0\t0\t0"
    number = upload(world, [good, bogus])
    data = {
        "clr_type": "11",
        "setl_optins": "530100",
        "file_qury_no": number,
        "stmt_begndate": "2026-01-01",
        "stmt_enddate": "2026-01-31",
        "medfee_sumamt": 26,
        "fund_pay_sumamt": 8.8,
        "cash_payamt": 5,
        "fixmedins_setl_cnt": 2,
    }
    fail(
        send(world, "3202", {"data": dict(data, medfee_sumamt=99)}),
        "disagree with the uploaded file",
        "medfee_sumamt",
    )
    info = ok(send(world, "3202", {"data": data}))["fileinfo"]
    got = world.send(
        world.envelope(
            "9102",
            {
                "fsDownloadIn": {
                    "file_qury_no": info["file_qury_no"],
                    "filename": info["filename"],
                    "fixmedins_code": "H53010200123",
                }
            },
        )
    )
    rows = {r[2]: r for r in unzip(got.body)}
    assert rows[v["otp_setl_id"]][5] == "0" and rows["S999"][5] == "1" and rows["S999"][6] == "中心无此结算"
    assert rows[v["otp_setl_id"]][3].startswith("H53010200123")  # the centre's record of the msgid
    fail(send(world, "3202", {"data": dict(data, file_qury_no="F0")}), "no file F0")


def test_3203_applies_a_month_once_and_blocks_reversals_until_3204():
    world = World()
    step(world, "clearing")
    fail(send(world, "3203", DATA["steps"]["clearing"]["input"]), "already applied")
    fail(world.case("2208"), "clearing application", "3204")
    ok(send(world, "3204", {"data": {"clr_appy_evt_id": world.values["clr_appy_evt_id"]}}))
    ok(world.case("2208"))
    stale = DATA["steps"]["clearing"]["input"]
    fail(send(world, "3203", stale), "does not match the centre's settlements", "psntime: 医药机构 1, 中心 0")


# ----------------------------------------------------------------------------------- catalogues, files
def test_catalogue_download_via_9102_has_the_interface_columns_and_only_newer_entries():
    world = World()
    answer = ok(send(world, "1301", {"data": {"ver": "0"}}))
    assert answer["data_cn"] == 2 and answer["filename"].endswith(".txt.zip")
    got = world.send(
        world.envelope(
            "9102",
            {
                "fsDownloadIn": {
                    "file_qury_no": answer["file_qury_no"],
                    "filename": "plc",
                    "fixmedins_code": "plc",
                }
            },
        )
    )
    rows = unzip(got.body)
    spec = load_spec()
    assert len(rows) == 2 and all(
        len(r) == len(spec.transactions["1301"].behaviour["columns"]) == 92 for r in rows
    )
    assert {r[0] for r in rows} == {"XA01ABD075A002010100445", "ZA04BAA0241010100763"}
    assert ok(send(world, "1301", {"data": {"ver": "20251231999"}}))["data_cn"] == 1
    bad = {"file_qury_no": answer["file_qury_no"], "filename": "other.zip", "fixmedins_code": "H53010200123"}
    fail(world.send(world.envelope("9102", {"fsDownloadIn": bad})), "is not file")


def test_paged_catalogue_query_pages():
    world = World()
    page = ok(send(world, "1312", {"data": {"updt_time": "2025-01-01", "page_num": 2, "page_size": 3}}))
    assert page["recordCounts"] == 7 and page["pages"] == 3 and page["size"] == 3 and page["startRow"] == 4
    fail(
        send(world, "1312", {"data": {"updt_time": "2025-01-01", "page_num": 0, "page_size": 3}}), "page_num"
    )


def test_departments_and_mappings_are_registers_that_queries_return():
    world = World()
    step(world, "dept")
    rows = ok(world.case("5101"))["feedetail"]
    assert [(r["hosp_dept_codg"], r["vali_flag"]) for r in rows] == [("0102", "1")]
    fail(send(world, "3401", DATA["steps"]["dept"]["input"]), "already uploaded", "3402")
    ok(world.case("3402"))
    assert ok(world.case("5101"))["feedetail"][0]["hosp_dept_name"] == "呼吸与危重症医学科"
    ok(world.case("3403"))
    assert ok(world.case("5101"))["feedetail"] == []
    fail(world.case("3403"), "already revoked")
    step(world, "mapping")
    mapped = ok(world.case("1317"))["data"]
    assert [m["medins_list_codg"] for m in mapped] == ["YP0001"]


# ------------------------------------------------------------------------------ supervision, inventory
def test_settlement_list_needs_a_live_settlement_and_comes_back_from_4103():
    world = World()
    case = DATA["cases"]["4101"]["input"]
    bogus = dict(case, setlinfo=dict(case["setlinfo"], setl_id="S000"))
    fail(send(world, "4101", world_fill(world, bogus)), "settlement S000 not found")
    listed = ok(send(world, "4101", world_fill(world, case)))
    assert listed["setl_list_id"].startswith("QD")
    fail(send(world, "4101", world_fill(world, case)), "already uploaded", "4102")
    back = ok(world.case("4103"))
    assert back["setlinfo"]["medcasno"] == "BA0001" and back["payinfo"][0]["fund_payamt"] == 240


def world_fill(world: World, value):
    from tests.simulators.medins_world import fill

    return fill(value, world.values)


def test_stock_moves_with_purchases_and_sales_and_never_goes_negative():
    world = World()
    step(world, "stock")  # 100 in
    step(world, "sale")  # 2 out
    state = world.core.state.stock
    assert state[("H53010200123", "XA01ABD075A002010100445", "YP0001", "PC0001")] == Decimal(98)
    big = world_fill(world, DATA["steps"]["sale"]["input"])
    big["selinfo"]["sel_retn_cnt"] = 500
    fail(send(world, "3505", big), "holds 98")
    too_many = world_fill(world, DATA["cases"]["3506"]["input"])
    too_many["selinfo"]["sel_retn_cnt"] = 3
    fail(send(world, "3506", too_many), "exceeds the 2 sold")
    ok(world.case("3506"))
    fail(
        send(world, "3507", {"data": {"fixmedins_bchno": "PC0001", "inv_data_type": "3"}}),
        "depend on this upload",
    )


def test_prescreen_rules_find_duplicates_and_price_overruns():
    world = World()
    result = ok(world.case("3101"))["result"]
    assert {r["rule_id"] for r in result} == {"R001", "R002"}
    fail(send(world, "3101", {"data": {"patient_dtos": [{"patn_id": "x"}]}}), "trig_scen or rule_ids")


# ------------------------------------------------------------------------------------------- 身份证
def test_residence_permit_and_foreigner_numbers_get_a_person():
    world = World()
    taiwan = idcard.make("830000", CLOCK.date().replace(year=1990), 11)
    foreigner = idcard.make("953840", CLOCK.date().replace(year=1980), 21)
    for number, cert_type in ((taiwan, "01"), (foreigner, "07")):
        base = ok(
            send(
                world, "1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": number, "certno": number}}
            )
        )
        assert (
            base["baseinfo"]["psn_cert_type"] == cert_type
            and base["insuinfo"][0]["insuplc_admdvs"] == "530100"
        )


# ------------------------------------------------------------------------------------ the DLL transport
def test_yunnan_path_checks_the_dll_credentials_when_configured():
    core = MedinsSimulator(
        clock=lambda: CLOCK, dll_credentials={"infosyscode": "SYS1", "infosyssign": "SIGN1"}
    )
    world = World(core)  # the national path ignores them
    env = world.envelope("9001", DATA["world"][0]["input"])

    def post(body: dict, headers: dict | None = None) -> dict:
        return json.loads(
            core.handle(
                HttpRequest("POST", "/eapdomain/callService", headers or {}, json.dumps(body).encode())
            ).body
        )

    fail(post(env), "infosyscode: missing")
    fail(post(dict(env, infosyscode="SYS1", infosyssign="WRONG")), "infosyssign: does not match")
    ok(post(dict(env, infosyscode="SYS1", infosyssign="SIGN1", msgid=env["msgid"][:-1] + "9")))
    ok(post(dict(env, msgid=env["msgid"][:-1] + "8"), {"infosyscode": "SYS1", "infosyssign": "SIGN1"}))
    fail(world.send(world.envelope("0000", {})), "only served on the yunnan transport")


def test_dll_path_takes_a_short_msgid_unless_strict():
    """A Yunnan DLL demo sends msgid '20210626000000001': accepted there, refused on the gateway path."""
    for strict, accepted in ((False, True), (True, False)):
        world = World(MedinsSimulator(clock=lambda: CLOCK, strict=strict))
        env = world.envelope("9001", DATA["world"][0]["input"], {"msgid": "20210626000000001"})
        answer = world.send(env, "yunnan")
        if accepted:
            ok(answer)
        else:
            fail(answer, "msgid: '20210626000000001' must start with fixmedins_code")
        fail(world.send(env), "msgid: '20210626000000001' must start with fixmedins_code")
    long = World().envelope("9001", DATA["world"][0]["input"], {"msgid": "1" * 49})
    fail(World().send(long, "yunnan"), "msgid: longer than 48 characters")


@pytest.fixture
def medins_server(processes):
    return start_listening(
        processes,
        "mock",
        "medins",
        "--listen",
        "127.0.0.1:0",
        "--infosyscode",
        "SYS1",
        "--infosyssign",
        "SIGN1",
    )


def test_dll_adapter_through_a_real_proxy_keeps_rare_characters_and_is_captured(
    medins_server, processes, tmp_path
):
    from tests.proxy.http_setup import run_proxy, write_http_config

    _, port = medins_server
    config, ports = write_http_config(
        tmp_path, {"medins": {"kind": "medins", "upstream": f"http://127.0.0.1:{port}"}}
    )
    run_proxy(processes, config, ports)
    url = f"http://127.0.0.1:{ports['medins']}{YUNNAN_PATH}"
    dll = ChsInterfaceYn()
    assert dll.init("H53010200123", "SYS1", "WRONG", url)[0] == -1
    assert dll.init("H53010200123", "SYS1", "SIGN1", url) == (0, "")
    world = World()  # builds envelopes only; its own simulator is not used below
    sign_in = world.envelope("9001", DATA["world"][0]["input"])
    ret, out, err = dll.business_handle(json.dumps(sign_in, ensure_ascii=False).encode("gbk"))
    answer = json.loads(out.decode("gb18030"))
    assert ret == 0 and err == b"" and answer["infcode"] == 0
    sign_no = answer["output"]["signinoutb"]["sign_no"]
    person = dict(world.envelope("1101", DATA["world"][1]["input"]), sign_no=sign_no)
    ret, out, _ = dll.business_handle_w(json.dumps(person, ensure_ascii=False))
    name = json.loads(out)["output"]["baseinfo"]["psn_name"]
    assert ret == 0 and name == "周兰𬌗"  # GB18030-only character intact
    ret, raw, _ = dll.business_handle(
        json.dumps(dict(person, msgid=person["msgid"][:-1] + "7")).encode("gbk")
    )
    assert "周兰𬌗" in raw.decode("gb18030")
    old = ChsInterfaceYn(charset="gbk")
    old.init("H53010200123", "SYS1", "SIGN1", url)
    _, raw, _ = old.business_handle(json.dumps(dict(person, msgid=person["msgid"][:-1] + "6")).encode("gbk"))
    assert "周兰?" in raw.decode("gbk")  # what DLLs before 1.0.4.2 did to characters outside GBK
    with sqlite3.connect(tmp_path / "captures.db") as db:
        rows = db.execute("SELECT path, status FROM exchanges ORDER BY id").fetchall()
    assert rows and all(path == YUNNAN_PATH and status == 200 for path, status in rows)
