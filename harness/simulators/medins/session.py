"""Sign-in, the DLL handshake, people and the centre's own registers (institutions, staff, treatment).

1101 invents a deterministic person for any valid 身份证 (same number, same person, every run), so a
test can use any invented number and the centre answers as if the person were insured in Yunnan.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from harness import idcard
from harness.simulators.medins.call import Call, MedinsError
from harness.simulators.medins.centre import CENT, Centre, money
from harness.simulators.medins.state import Person

_SURNAMES = "李王张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗段普杞"
_GIVEN = "云华丽明秀英建国芳艳海燕𬌗亅乗志强桂兰玉珍"


def sign_in(centre: Centre, call: Call) -> dict:
    now = centre.now()
    centre.state.serial += 1
    sign_no = f"{now:%Y%m%d%H%M%S}{centre.state.serial:016d}"
    centre.state.sign_ins[sign_no] = call.fixmedins_code
    return {"signinoutb": {"sign_no": sign_no, "sign_time": f"{now:%Y-%m-%d %H:%M:%S}"}}


def sign_out(centre: Centre, call: Call) -> dict:
    sign_no = str(call.node()["sign_no"])
    if centre.state.sign_ins.pop(sign_no, None) is None:
        raise MedinsError(f"{call.where()}.sign_no: {sign_no} is not signed in")
    return {"signoutoutb": {"sign_time": centre.stamp()}}


def dll_init(centre: Centre, call: Call) -> dict:
    """CHSInterfaceYn.dll's Init handshake (infno 0000); its credentials are checked by the transport."""
    return {}


# ------------------------------------------------------------------------------------------ people
def person_info(centre: Centre, call: Call) -> dict:
    data = call.node()
    cert_type = str(data["mdtrt_cert_type"])
    if data.get("certno"):
        certno, where = str(data["certno"]), "input.data.certno"
    elif cert_type in ("02", "03"):
        certno, where = str(data["mdtrt_cert_no"]), "input.data.mdtrt_cert_no"
    else:
        raise MedinsError(
            "input.data.certno: missing; an 电子凭证 (01) token is not decoded here, send certno"
        )
    problem = idcard.problem(certno, today=centre.now().date())
    if problem:
        raise MedinsError(f"{where}: 身份证号 {certno} invalid: {problem}")
    person = invent(centre, certno.upper())
    centre.state.persons[person.psn_no] = person
    born = idcard.birth_date(person.certno)
    today = centre.now().date()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return {
        "baseinfo": {
            "psn_no": person.psn_no,
            "psn_cert_type": person.psn_cert_type,
            "certno": person.certno,
            "psn_name": person.psn_name,
            "gend": person.gend,
            "naty": "01",
            "brdy": person.brdy,
            "age": age,
        },
        "insuinfo": [
            {
                "balc": money(person.balc),
                "insutype": person.insutype,
                "psn_type": person.psn_type,
                "psn_insu_stas": "1",
                "psn_insu_date": "2015-01-01",
                "paus_insu_date": None,
                "cvlserv_flag": "0",
                "insuplc_admdvs": person.insuplc_admdvs,
                "emp_name": "云南省某单位" if person.insutype == "310" else "",
            }
        ],
        "idetinfo": [],
    }


def invent(centre: Centre, certno: str) -> Person:
    """A deterministic person for a valid number: insured where the number was issued (53xx00)."""
    digest = hashlib.sha256(certno.encode("ascii")).digest()
    prefectures = centre.spec.admdvs["prefectures"]
    if idcard.kind(certno) == "resident":
        region = certno[:4] + "00"
        insuplc = region if region in prefectures else certno[:6]
    else:  # a residence permit or foreigner's number names no prefecture: insured in the capital
        insuplc = centre.spec.simulator["people"]["permit_insuplc"]
    name = _SURNAMES[digest[0] % len(_SURNAMES)] + _GIVEN[digest[1] % len(_GIVEN)]
    if digest[2] % 2:
        name += _GIVEN[digest[3] % len(_GIVEN)]
    insutype = "310" if digest[4] % 2 == 0 else "390"
    balc = Decimal(int.from_bytes(digest[5:8], "big") % 500_000) / 100 if insutype == "310" else Decimal(0)
    return Person(
        psn_no=f"{insuplc}{int.from_bytes(digest[8:16], 'big') % 10**14:014d}",
        certno=certno,
        psn_name=name,
        gend=idcard.gender(certno),
        brdy=idcard.birth_date(certno).isoformat(),
        insutype=insutype,
        psn_type="11" if insutype == "310" else "14",
        balc=balc.quantize(CENT),
        insuplc_admdvs=insuplc,
        psn_cert_type=idcard.cert_type(certno),
    )


# ---------------------------------------------------------------------------------- the registers
def institutions(centre: Centre, call: Call) -> dict:
    """1201: the centre's register of designated institutions (simulator.yaml), filtered."""
    wanted = call.node() or {}
    rows = []
    for row in centre.spec.simulator["institutions"]:
        if all(
            not wanted.get(key) or str(wanted[key]) in str(row.get(key, ""))
            for key in ("fixmedins_type", "fixmedins_code", "fixmedins_name")
        ):
            rows.append(dict(row))
    return {"medinsinfo": rows}


def staff(centre: Centre, call: Call) -> dict:
    """5102: registered practitioners (simulator.yaml), filtered by whatever the request names."""
    wanted = {k: v for k, v in (call.node() or {}).items() if v not in (None, "")}
    rows = [
        dict(row)
        for row in centre.spec.simulator["practitioners"]
        if all(str(row.get(k, "")) == str(v) for k, v in wanted.items() if k in row)
    ]
    return {"data": rows}


def treatment_check(centre: Centre, call: Call) -> dict:
    """2001: which funds pay for this person and medical type; a chronic-disease type needs its filing."""
    data = call.node()
    person = centre.person(data["psn_no"])
    insutype = str(data.get("insutype") or person.insutype)
    if insutype != person.insutype:
        raise MedinsError(
            f"input.data.insutype: person {person.psn_no} is insured under {person.insutype}, not {insutype}"
        )
    med_type = str(data.get("med_type") or "")
    fund = "310100" if insutype == "310" else "390100"
    allowed, reason = True, ""
    for need in call.params.get("needs_filing", []):
        if med_type in [str(v) for v in need["med_type"]]:
            found = [
                r
                for r in centre.state.find(need["collection"], psn_no=person.psn_no)
                if not r.revoked
                and (not data.get("dise_codg") or r.data.get(need["match"]) == data.get("dise_codg"))
            ]
            if not found:
                allowed, reason = False, need["reason"]
    return {
        "trtinfo": [
            {
                "fund_pay_type": fund,
                "trt_enjymnt_flag": "1" if allowed else "0",
                "begndate": f"{centre.now():%Y}-01-01",
                "enddate": f"{centre.now():%Y}-12-31",
                "trt_chk_rslt": reason or "享受待遇",
            }
        ]
    }
