"""Visits: outpatient registration, inpatient stays, fee details, settlement, reversal and 2601 冲正.

Amounts are priced by an invented, deterministic rule (simulator.yaml `pricing`) so that a visit's figures
always agree: fund_pay_sumamt + psn_part_amt == medfee_sumamt, acct_pay + psn_cash_pay == psn_part_amt.
Every settlement is also indexed centre-wide, which is what reconciliation (3201/3202) and clearing
(3203) sum over.
"""

from __future__ import annotations

import hashlib
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from harness.simulators.medins.call import Call, MedinsError
from harness.simulators.medins.centre import CENT, Centre, money
from harness.simulators.medins.state import Fee, Person, Settlement, Visit
from harness.spec.medins.checks import decimal, parse_time


def _check_insutype(person: Person, insutype: Any, where: str) -> None:
    if str(insutype) != person.insutype:
        raise MedinsError(
            f"{where}: person {person.psn_no} is insured under {person.insutype}, not {insutype}"
        )


def _cancel(visit: Visit) -> None:
    active = visit.active_settlements()
    if active:
        raise MedinsError(
            f"mdtrt_id: visit {visit.mdtrt_id} has settlement {active[0].setl_id}; reverse it first"
        )
    visit.status = "cancelled"


# ------------------------------------------------------------------------------------------ outpatient
def register_outpatient(centre: Centre, call: Call) -> dict:
    data = call.node()
    person = centre.person(data["psn_no"])
    _check_insutype(person, data["insutype"], "input.data.insutype")
    number = str(data["ipt_otp_no"])
    existing = centre.state.live_by_number("otp", number)
    if existing is not None:
        raise MedinsError(
            f"input.data.ipt_otp_no: {number} is already registered as visit {existing.mdtrt_id}"
        )
    visit = Visit(
        centre.next_id(call.env["mdtrtarea_admvs"]),
        person.psn_no,
        str(data["insutype"]),
        "otp",
        number,
        "registered",
        fixmedins_code=call.fixmedins_code,
        info={"begntime": str(data["begntime"])},
    )
    centre.state.add_visit(visit)
    call.effect["visit"] = visit.mdtrt_id
    return {"data": {"mdtrt_id": visit.mdtrt_id, "psn_no": person.psn_no, "ipt_otp_no": number}}


def cancel_outpatient(centre: Centre, call: Call) -> dict:
    data = call.node()
    visit = centre.visit(data["mdtrt_id"], data["psn_no"], "otp")
    if visit.number != str(data["ipt_otp_no"]):
        raise MedinsError(
            f"input.data.ipt_otp_no: {data['ipt_otp_no']} is not visit {visit.mdtrt_id}'s {visit.number}"
        )
    _cancel(visit)
    return {}


def outpatient_info(centre: Centre, call: Call) -> dict:
    info = call.inp["mdtrtinfo"]
    visit = centre.visit(info["mdtrt_id"], info["psn_no"], "otp")
    visit.med_type = str(info["med_type"])
    visit.info = dict(info)
    visit.diseases = list(call.inp["diseinfo"])
    return {}


def upload_fees(centre: Centre, call: Call) -> dict:
    kind = call.params["kind"]
    details = call.inp["feedetail"]
    first = details[0]
    visit = centre.visit(first["mdtrt_id"], first["psn_no"], kind)
    if (
        kind == "otp"
        and visit.status != "registered"
        or kind == "ipt"
        and visit.status not in ("admitted", "discharged")
    ):
        raise MedinsError(f"mdtrt_id: visit {visit.mdtrt_id} is {visit.status}; fees cannot be uploaded")
    if kind == "otp" and visit.active_settlements():
        raise MedinsError(f"mdtrt_id: visit {visit.mdtrt_id} is settled; reverse the settlement (2208) first")
    new: dict[str, Fee] = {}
    results = []
    for i, item in enumerate(details):
        at = f"input.feedetail[{i}]"
        if str(item["mdtrt_id"]) != visit.mdtrt_id or str(item["psn_no"]) != visit.psn_no:
            raise MedinsError(f"{at}: mdtrt_id/psn_no differ from the first detail's")
        sn = str(item["feedetl_sn"])
        if sn in visit.fees or sn in new:
            raise MedinsError(f"{at}.feedetl_sn: {sn} was already uploaded for visit {visit.mdtrt_id}")
        amount, cnt, pric = (decimal(item[k]) for k in ("det_item_fee_sumamt", "cnt", "pric"))
        if amount < 0 or cnt <= 0 or pric < 0:
            raise MedinsError(f"{at}: cnt must be positive and amounts not negative")
        if abs(cnt * pric - amount) > CENT:
            raise MedinsError(
                f"{at}.det_item_fee_sumamt: {amount} differs from cnt × pric = {(cnt * pric).quantize(CENT)}"
            )
        fee = price(centre, item, sn, amount, call.env["msgid"])
        new[sn] = fee
        results.append(
            {
                "feedetl_sn": sn,
                "det_item_fee_sumamt": money(amount),
                "cnt": float(cnt),
                "pric": float(pric),
                "pric_uplmt_amt": float(pric),
                "selfpay_prop": float(centre.pricing["chrgitm_lv"][fee.chrgitm_lv]["selfpay_prop"]),
                "fulamt_ownpay_amt": money(fee.fulamt_ownpay_amt),
                "overlmt_amt": 0.0,
                "preselfpay_amt": money(fee.preselfpay_amt),
                "inscp_scp_amt": money(fee.inscp_scp_amt),
                "chrgitm_lv": fee.chrgitm_lv,
                "med_chrgitm_type": str(item.get("med_chrgitm_type") or "09"),
                "lmt_used_flag": "0",
                "memo": "",
            }
        )
    visit.fees.update(new)
    call.effect.update(visit=visit.mdtrt_id, fees=list(new))
    return {"result": results}


def price(centre: Centre, item: dict, sn: str, amount: Decimal, msgid: str) -> Fee:
    """Invented deterministic catalogue: the list code's hash picks 甲/乙/丙 (01/02/03)."""
    code = str(item["med_list_codg"])
    level = "0" + str(1 + hashlib.sha256(code.encode("utf-8")).digest()[0] % 3)
    prop = Decimal(str(centre.pricing["chrgitm_lv"][level]["selfpay_prop"]))
    fulamt = amount if prop == 1 else Decimal(0)
    preself = Decimal(0) if prop == 1 else (amount * prop).quantize(CENT, rounding=ROUND_HALF_UP)
    return Fee(
        sn,
        str(item.get("chrg_bchno") or ""),
        amount,
        level,
        fulamt,
        preself,
        amount - fulamt,
        msgid,
        dict(item),
    )


def revoke_outpatient_fees(centre: Centre, call: Call) -> dict:
    data = call.node()
    visit = centre.visit(data["mdtrt_id"], data["psn_no"], "otp")
    batch = str(data["chrg_bchno"])
    chosen = [f for f in visit.fees.values() if batch == "0000" or f.chrg_bchno == batch]
    settled = [f.feedetl_sn for f in chosen if f.setl_id]
    if batch != "0000" and settled:
        raise MedinsError(f"input.data.chrg_bchno: batch {batch} has settled details {', '.join(settled)}")
    removable = [f for f in chosen if not f.setl_id]
    if not removable:
        raise MedinsError(
            f"input.data.chrg_bchno: no unsettled fee details in batch {batch} of visit {visit.mdtrt_id}"
        )
    for fee in removable:
        del visit.fees[fee.feedetl_sn]
    return {}


# ------------------------------------------------------------------------------------------- inpatient
def admit(centre: Centre, call: Call) -> dict:
    info = call.inp["mdtrtinfo"]
    person = centre.person(info["psn_no"])
    _check_insutype(person, info["insutype"], "input.mdtrtinfo.insutype")
    number = str(info["ipt_no"])
    existing = centre.state.live_by_number("ipt", number)
    if existing is not None:
        raise MedinsError(
            f"input.mdtrtinfo.ipt_no: {number} is already admitted as visit {existing.mdtrt_id}"
        )
    for visit in centre.state.visits_of(person.psn_no):
        if visit.kind == "ipt" and visit.status == "admitted":
            raise MedinsError(
                f"input.mdtrtinfo.psn_no: person {person.psn_no} is already in hospital "
                f"(visit {visit.mdtrt_id})"
            )
    visit = Visit(
        centre.next_id(call.env["mdtrtarea_admvs"]),
        person.psn_no,
        str(info["insutype"]),
        "ipt",
        number,
        "admitted",
        fixmedins_code=call.fixmedins_code,
        med_type=str(info["med_type"]),
        info=dict(info),
        diseases=list(call.inp["diseinfo"]),
    )
    centre.state.add_visit(visit)
    call.effect["visit"] = visit.mdtrt_id
    return {"result": {"mdtrt_id": visit.mdtrt_id, "psn_no": person.psn_no, "ipt_otp_no": number}}


def update_admission(centre: Centre, call: Call) -> dict:
    info = call.inp["adminfo"]
    visit = centre.visit(info["mdtrt_id"], info["psn_no"], "ipt")
    if visit.status != "admitted":
        raise MedinsError(f"input.adminfo.mdtrt_id: visit {visit.mdtrt_id} is {visit.status}, not admitted")
    number = str(info["ipt_otp_no"])
    other = centre.state.live_by_number("ipt", number)
    if other is not None and other.mdtrt_id != visit.mdtrt_id:
        raise MedinsError(f"input.adminfo.ipt_otp_no: {number} belongs to visit {other.mdtrt_id}")
    visit.info.update({k: v for k, v in info.items() if v not in (None, "")})
    visit.med_type = str(info["med_type"])
    if number != visit.number:
        visit.number = number
        centre.state.by_number[("ipt", number)] = visit.mdtrt_id
    if call.inp.get("diseinfo"):
        visit.diseases = list(call.inp["diseinfo"])
    return {}


def discharge(centre: Centre, call: Call) -> dict:
    info = call.inp["dscginfo"]
    visit = centre.visit(info["mdtrt_id"], info["psn_no"], "ipt")
    if visit.status != "admitted":
        raise MedinsError(f"input.dscginfo.mdtrt_id: visit {visit.mdtrt_id} is {visit.status}, not admitted")
    visit.status = "discharged"
    visit.info["dscginfo"] = dict(info)
    visit.info["dscg_diseinfo"] = list(call.inp.get("diseinfo") or [])
    return {}


def cancel_discharge(centre: Centre, call: Call) -> dict:
    data = call.node()
    visit = centre.visit(data["mdtrt_id"], data["psn_no"], "ipt")
    if visit.status != "discharged":
        raise MedinsError(f"input.data.mdtrt_id: visit {visit.mdtrt_id} is {visit.status}, not discharged")
    final = [s for s in visit.active_settlements() if not s.mid]
    if final:
        raise MedinsError(
            f"mdtrt_id: visit {visit.mdtrt_id} is settled ({final[0].setl_id}); reverse it (2305) before 2405"
        )
    visit.status = "admitted"
    visit.info.pop("dscginfo", None)
    return {}


def cancel_admission(centre: Centre, call: Call) -> dict:
    data = call.node()
    visit = centre.visit(data["mdtrt_id"], data["psn_no"], "ipt")
    if visit.fees:
        raise MedinsError(
            f"mdtrt_id: visit {visit.mdtrt_id} still has {len(visit.fees)} fee details; revoke them (2302)"
        )
    _cancel(visit)
    return {}


def revoke_inpatient_fees(centre: Centre, call: Call) -> dict:
    for data in call.rows():
        _revoke_inpatient_fee(centre, data)
    return {}


def _revoke_inpatient_fee(centre: Centre, data: dict) -> None:
    visit = centre.visit(data["mdtrt_id"], data["psn_no"], "ipt")
    sn = str(data["feedetl_sn"])
    if sn == "0000":
        removable = [f for f in visit.fees.values() if not f.setl_id]
        if not removable:
            raise MedinsError(f"input.data.feedetl_sn: visit {visit.mdtrt_id} has no unsettled fee details")
    else:
        fee = visit.fees.get(sn)
        if fee is None:
            raise MedinsError(f"input.data.feedetl_sn: {sn} not found in visit {visit.mdtrt_id}")
        if fee.setl_id:
            raise MedinsError(f"input.data.feedetl_sn: {sn} is settled ({fee.setl_id})")
        removable = [fee]
    for fee in removable:
        del visit.fees[fee.feedetl_sn]


# ------------------------------------------------------------------------------------------ settlement
def settle(centre: Centre, call: Call) -> dict:
    kind, commit = call.params["kind"], bool(call.params.get("commit"))
    data = call.node()
    visit = centre.visit(data["mdtrt_id"], data["psn_no"], kind)
    person = centre.person(visit.psn_no)
    _check_insutype(person, data["insutype"], "input.data.insutype")
    mid = kind == "ipt" and str(data.get("mid_setl_flag")) == "1"
    active = [s for s in visit.active_settlements() if not s.mid]
    if active:
        raise MedinsError(
            f"mdtrt_id: visit {visit.mdtrt_id} is already settled (setl_id {active[0].setl_id}); "
            f"reverse it ({'2208' if kind == 'otp' else '2305'}) before settling again"
        )
    if kind == "ipt" and not mid and visit.status != "discharged":
        raise MedinsError(
            f"mdtrt_id: visit {visit.mdtrt_id} is not discharged (2402) and mid_setl_flag is not 1"
        )
    batch = str(data.get("chrg_bchno") or "0000")
    fees = [
        f
        for f in visit.fees.values()
        if not f.setl_id and (kind == "ipt" or batch == "0000" or f.chrg_bchno == batch)
    ]
    if not fees:
        raise MedinsError(
            f"mdtrt_id: visit {visit.mdtrt_id} has no unsettled fee details"
            + ("" if kind == "ipt" or batch == "0000" else f" in batch {batch}")
        )
    total = sum((f.amount for f in fees), Decimal(0))
    claimed = decimal(data["medfee_sumamt"])
    if abs(claimed - total) > Decimal("0.001"):
        raise MedinsError(
            f"input.data.medfee_sumamt: {claimed} does not equal the unsettled details' total {total}"
        )
    ratios = centre.pricing["fund_ratio"]
    ratio = Decimal(str(ratios.get(visit.insutype, ratios["default"])))
    inscp = sum((f.inscp_scp_amt for f in fees), Decimal(0))
    preself = sum((f.preselfpay_amt for f in fees), Decimal(0))
    fulamt = sum((f.fulamt_ownpay_amt for f in fees), Decimal(0))
    hifp = ((inscp - preself) * ratio).quantize(CENT, rounding=ROUND_HALF_UP)
    part = total - hifp
    acct = (
        min(person.balc, part)
        if str(data.get("acct_used_flag") or "0") == "1" and visit.insutype == "310"
        else Decimal(0)
    )
    cash = part - acct
    setl_id = centre.next_id("S" + call.env["mdtrtarea_admvs"])
    balc_after = person.balc - acct
    clr_type = "11" if kind == "otp" else "21"
    setl_time = centre.now()
    setlinfo = {
        "setl_id": setl_id if commit else "",
        "mdtrt_id": visit.mdtrt_id,
        "psn_no": person.psn_no,
        "psn_name": person.psn_name,
        "psn_cert_type": person.psn_cert_type,
        "certno": person.certno,
        "gend": person.gend,
        "naty": "01",
        "brdy": person.brdy,
        "insutype": visit.insutype,
        "psn_type": person.psn_type,
        "cvlserv_flag": "0",
        "setl_time": f"{setl_time:%Y-%m-%d %H:%M:%S}",
        "mdtrt_cert_type": str(data["mdtrt_cert_type"]),
        "med_type": str(data.get("med_type") or visit.med_type or ""),
        "medfee_sumamt": money(total),
        "fulamt_ownpay_amt": money(fulamt),
        "overlmt_selfpay": 0.0,
        "preselfpay_amt": money(preself),
        "inscp_scp_amt": money(inscp),
        "act_pay_dedc": 0.0,
        "hifp_pay": money(hifp),
        "pool_prop_selfpay": float(1 - ratio),
        "cvlserv_pay": 0.0,
        "hifes_pay": 0.0,
        "hifmi_pay": 0.0,
        "hifob_pay": 0.0,
        "maf_pay": 0.0,
        "oth_pay": 0.0,
        "fund_pay_sumamt": money(hifp),
        "psn_part_amt": money(part),
        "acct_pay": money(acct),
        "psn_cash_pay": money(cash),
        "hosp_part_amt": 0.0,
        "balc": money(balc_after),
        "acct_mulaid_pay": 0.0,
        "medins_setl_id": call.env["msgid"],
        "clr_optins": person.insuplc_admdvs,
        "clr_way": centre.pricing["clr_way"],
        "clr_type": clr_type,
    }
    setldetail = []
    if hifp:
        setldetail.append(
            {
                "fund_pay_type": "310100" if visit.insutype == "310" else "390100",
                "inscp_scp_amt": money(inscp),
                "crt_payb_lmt_amt": 0.0,
                "fund_payamt": money(hifp),
                "fund_pay_type_name": centre.codes("fund_pay_type")[
                    "310100" if visit.insutype == "310" else "390100"
                ],
                "setl_proc_info": "",
            }
        )
    output = {"setlinfo": setlinfo, "setldetail": setldetail}
    if commit:
        settlement = Settlement(
            setl_id,
            visit.mdtrt_id,
            person.psn_no,
            call.fixmedins_code,
            visit.insutype,
            clr_type,
            person.insuplc_admdvs,
            call.env["msgid"],
            setl_time,
            [f.feedetl_sn for f in fees],
            total,
            hifp,
            part,
            acct,
            cash,
            inscp_scp_amt=inscp,
            mid=mid,
            output=output,
        )
        visit.settlements[setl_id] = settlement
        centre.state.settlements[setl_id] = settlement
        for fee in fees:
            fee.setl_id = setl_id
        person.balc = balc_after
        call.effect.update(visit=visit.mdtrt_id, setl_id=setl_id)
    return output


def reverse_settlement(centre: Centre, call: Call) -> dict:
    data = call.node()
    visit = centre.visit(data["mdtrt_id"], data["psn_no"], call.params["kind"])
    return _reverse(centre, visit, str(data["setl_id"]), call.effect)


def _reverse(centre: Centre, visit: Visit, setl_id: str, effect: dict) -> dict:
    settlement = visit.settlements.get(setl_id)
    if settlement is None:
        raise MedinsError(f"input.data.setl_id: settlement {setl_id} not found for visit {visit.mdtrt_id}")
    if settlement.reversed_by:
        raise MedinsError(
            f"input.data.setl_id: settlement {setl_id} was already reversed ({settlement.reversed_by})"
        )
    if any(
        not r.revoked and setl_id in r.nodes["setl_ids"] for r in centre.state.collection("clearing").values()
    ):
        raise MedinsError(
            f"input.data.setl_id: settlement {setl_id} is in a clearing application; revoke it (3204) first"
        )
    person = centre.person(visit.psn_no)
    new_id = centre.next_id("R" + setl_id[1:7])
    settlement.reversed_by = new_id
    settlement.reversed_at = centre.now()
    for sn in settlement.fees:
        if sn in visit.fees:
            visit.fees[sn].setl_id = None
    person.balc += settlement.acct_pay
    effect.update(visit=visit.mdtrt_id, setl_id=new_id)
    # The reversal answers like the settlement it reverses, every amount negated (a 冲销 record).
    setlinfo = {
        key: -value if isinstance(value, float) and key not in _NOT_AMOUNTS and value else value
        for key, value in (settlement.output.get("setlinfo") or {}).items()
    }
    setlinfo.update(
        mdtrt_id=visit.mdtrt_id,
        setl_id=new_id,
        psn_no=person.psn_no,
        medfee_sumamt=money(-settlement.medfee_sumamt),
        fund_pay_sumamt=money(-settlement.fund_pay_sumamt),
        psn_part_amt=money(-settlement.psn_part_amt),
        acct_pay=money(-settlement.acct_pay),
        psn_cash_pay=money(-settlement.psn_cash_pay),
        pdn_cash_pay=money(-settlement.psn_cash_pay),  # 2208's output table spells it so (outpatient.yaml)
        balc=money(person.balc),
        setl_time=centre.stamp(),
    )
    return {"setlinfo": setlinfo, "setldetail": []}


_NOT_AMOUNTS = frozenset({"pool_prop_selfpay", "balc"})


# ------------------------------------------------------------------------------------------------ 2601
def reverse_message(centre: Centre, call: Call) -> dict:
    data = call.node()
    omsgid, oinfno = str(data["omsgid"]), str(data["oinfno"])
    logged = centre.state.messages.get(omsgid)
    if logged is None:
        raise MedinsError(f"input.data.omsgid: no accepted transaction with msgid {omsgid}")
    if logged.infno != oinfno:
        raise MedinsError(f"input.data.oinfno: msgid {omsgid} was a {logged.infno}, not {oinfno}")
    if oinfno not in [str(x) for x in call.params["reversible"]]:
        raise MedinsError(f"input.data.oinfno: transaction {oinfno} cannot be reversed with 2601")
    if logged.psn_no != str(data["psn_no"]):
        raise MedinsError(f"input.data.psn_no: msgid {omsgid} was for person {logged.psn_no}")
    if logged.reversed:
        raise MedinsError(f"input.data.omsgid: {omsgid} was already reversed")
    visit = centre.state.visits.get(logged.effect.get("visit", ""))
    if visit is None:
        raise MedinsError(f"input.data.omsgid: the visit of {omsgid} is no longer known")
    if oinfno in ("2201", "2401"):
        if visit.fees:
            raise MedinsError(f"input.data.omsgid: visit {visit.mdtrt_id} has fee details; revoke them first")
        _cancel(visit)
    elif oinfno in ("2204", "2301"):
        sns = logged.effect["fees"]
        settled = [sn for sn in sns if sn in visit.fees and visit.fees[sn].setl_id]
        if settled:
            raise MedinsError(
                f"input.data.omsgid: details {', '.join(settled)} are settled; reverse the settlement first"
            )
        for sn in sns:
            visit.fees.pop(sn, None)
    else:
        _reverse(centre, visit, logged.effect["setl_id"], {})
    logged.reversed = True
    return {}


# ------------------------------------------------------------------------------------------- queries
def visit_query(centre: Centre, call: Call) -> dict:
    data = call.node()
    psn_no = str(data["psn_no"])
    centre.person(psn_no)
    wanted = str(data.get("mdtrt_id") or "")
    med_type = str(data.get("med_type") or "")
    begin, end = parse_time(data.get("begntime")), parse_time(data.get("endtime"))
    rows = []
    for visit in centre.state.visits_of(psn_no):
        started = parse_time(visit.info.get("begntime"))
        if wanted and visit.mdtrt_id != wanted or med_type and visit.med_type != med_type:
            continue
        if started and (begin and started < begin or end and started > end):
            continue
        rows.append(
            {
                "mdtrt_id": visit.mdtrt_id,
                "psn_no": visit.psn_no,
                "fixmedins_code": visit.fixmedins_code,
                "insutype": visit.insutype,
                "med_type": visit.med_type or "",
                "ipt_otp_no": visit.number,
                "begntime": str(visit.info.get("begntime", "")),
                "endtime": str(visit.info.get("dscginfo", {}).get("endtime", "")),
                "vali_flag": "0" if visit.status == "cancelled" else "1",
                "setl_ids": [s.setl_id for s in visit.active_settlements()],
            }
        )
    if wanted and not rows:
        raise MedinsError(f"input.data.mdtrt_id: visit {wanted} not found for person {psn_no}")
    return {"mdtrtinfo": rows}


def settlement_query(centre: Centre, call: Call) -> dict:
    data = call.node()
    settlement = centre.state.settlements.get(str(data["setl_id"]))
    if (
        settlement is None
        or settlement.psn_no != str(data["psn_no"])
        or data.get("mdtrt_id")
        and settlement.mdtrt_id != str(data["mdtrt_id"])
    ):
        raise MedinsError(
            f"input.data.setl_id: settlement {data['setl_id']} of visit {data.get('mdtrt_id') or '(any)'} "
            f"for person {data['psn_no']} not found"
        )
    output = dict(settlement.output)
    output["setlinfo"] = dict(output["setlinfo"], vali_flag="0" if settlement.reversed_by else "1")
    return output


def diagnosis_query(centre: Centre, call: Call) -> dict:
    data = call.node()
    visit = centre.visit(data["mdtrt_id"], data["psn_no"])
    rows = [
        dict(d, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no, inout_diag_type="1") for d in visit.diseases
    ]
    rows += [
        dict(d, mdtrt_id=visit.mdtrt_id, psn_no=visit.psn_no, inout_diag_type="2")
        for d in visit.info.get("dscg_diseinfo", [])
    ]
    return {"diseinfo": rows}


def fee_query(centre: Centre, call: Call) -> dict:
    data = call.node()
    visit = centre.visit(data["mdtrt_id"], data["psn_no"])
    setl_id = str(data.get("setl_id") or "")
    if setl_id and setl_id not in visit.settlements:
        raise MedinsError(f"input.data.setl_id: settlement {setl_id} is not one of visit {visit.mdtrt_id}'s")
    rows = []
    for fee in visit.fees.values():
        if setl_id and fee.setl_id != setl_id:
            continue
        rows.append(_fee_row(visit, fee))
    return {"output": rows}


def _fee_row(visit: Visit, fee: Fee) -> dict:
    item = fee.item
    return {
        "feedetl_sn": fee.feedetl_sn,
        "mdtrt_id": visit.mdtrt_id,
        "psn_no": visit.psn_no,
        "setl_id": fee.setl_id or "",
        "med_list_codg": item.get("med_list_codg", ""),
        "medins_list_codg": item.get("medins_list_codg", ""),
        "fee_ocur_time": item.get("fee_ocur_time", ""),
        "cnt": float(decimal(item.get("cnt")) or 0),
        "pric": float(decimal(item.get("pric")) or 0),
        "det_item_fee_sumamt": money(fee.amount),
        "chrgitm_lv": fee.chrgitm_lv,
        "fulamt_ownpay_amt": money(fee.fulamt_ownpay_amt),
        "preselfpay_amt": money(fee.preselfpay_amt),
        "inscp_scp_amt": money(fee.inscp_scp_amt),
        "bilg_dept_codg": item.get("bilg_dept_codg", ""),
        "bilg_dr_codg": item.get("bilg_dr_codg", ""),
    }


def chronic_drug_query(centre: Centre, call: Call) -> dict:
    """5205: the person's fee details on visits of the chronic-disease medical types in the window."""
    data = call.node()
    person = centre.person(data["psn_no"])
    begin, end = parse_time(data.get("begntime")), parse_time(data.get("endtime"))
    types = [str(t) for t in call.params["med_types"]]
    rows = []
    for visit in centre.state.visits_of(person.psn_no):
        if visit.med_type not in types or visit.status == "cancelled":
            continue
        for fee in visit.fees.values():
            when = parse_time(fee.item.get("fee_ocur_time"))
            if when and (begin and when < begin or end and when > end):
                continue
            rows.append(
                dict(_fee_row(visit, fee), med_type=visit.med_type, dise_codg=visit.info.get("dise_codg", ""))
            )
    return {"feedetail": rows}


def cumulative_query(centre: Centre, call: Call) -> dict:
    """5206: the year's totals of the person's settlements up to the month asked (cum_ym yyyyMM)."""
    data = call.node()
    person = centre.person(data["psn_no"])
    cum_ym = str(data.get("cum_ym") or f"{centre.now():%Y%m}")
    if len(cum_ym) != 6 or not cum_ym.isdigit():
        raise MedinsError(f"input.data.cum_ym: {cum_ym!r} is not yyyyMM")
    totals = {"medfee": Decimal(0), "fund": Decimal(0), "acct": Decimal(0), "cash": Decimal(0)}
    count = 0
    for s in centre.state.settlements.values():
        if s.psn_no != person.psn_no or s.reversed_by or s.setl_time.strftime("%Y") != cum_ym[:4]:
            continue
        if s.setl_time.strftime("%Y%m") > cum_ym:
            continue
        count += 1
        for key, value in zip(
            totals, (s.medfee_sumamt, s.fund_pay_sumamt, s.acct_pay, s.psn_cash_pay), strict=True
        ):
            totals[key] += value
    rows = [
        {
            "insutype": person.insutype,
            "year": cum_ym[:4],
            "cum_ym": cum_ym,
            "cum_type_code": code,
            "cum": money(v),
        }
        for code, v in zip(call.params["cum_types"], totals.values(), strict=True)
    ]
    rows.append(
        {
            "insutype": person.insutype,
            "year": cum_ym[:4],
            "cum_ym": cum_ym,
            "cum_type_code": "S",
            "cum": count,
        }
    )
    return {"cuminfo": rows}


def in_hospital_query(centre: Centre, call: Call) -> dict:
    data = call.node()
    person = centre.person(data["psn_no"])
    rows = [
        {
            "mdtrt_id": v.mdtrt_id,
            "psn_no": v.psn_no,
            "fixmedins_code": v.fixmedins_code,
            "insutype": v.insutype,
            "med_type": v.med_type or "",
            "ipt_no": v.number,
            "begntime": str(v.info.get("begntime", "")),
            "adm_dept_codg": v.info.get("adm_dept_codg", ""),
            "adm_dept_name": v.info.get("adm_dept_name", ""),
            "adm_bed": v.info.get("adm_bed", ""),
        }
        for v in centre.state.visits_of(person.psn_no)
        if v.kind == "ipt" and v.status == "admitted"
    ]
    return {"data": rows}
