"""Reconciliation and clearing: 3201 对总账, 3202 对明细账, 3203 清算申请, 3204 清算申请撤销.

The centre sums the settlements it made itself (the institution's, of the insurance type, clearing type
and clearing area asked, settled in the period), so a HIS whose books differ from what the centre
accepted sees the difference named, field by field or settlement by settlement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from harness.simulators.medins import files
from harness.simulators.medins.call import Call, MedinsError
from harness.simulators.medins.centre import Centre, money
from harness.simulators.medins.state import Record, Settlement
from harness.spec.medins.checks import decimal, parse_time


@dataclass(slots=True)
class Entry:
    """One line of the centre's books: a settlement, or its reversal (negative amounts)."""

    settlement: Settlement
    sign: int

    @property
    def setl_id(self) -> str:
        return self.settlement.setl_id if self.sign > 0 else str(self.settlement.reversed_by)

    def amount(self, name: str) -> Decimal:
        return self.sign * getattr(self.settlement, name)


def _period(data: dict, begin: str, end: str, at: str) -> tuple[datetime, datetime]:
    start, stop = parse_time(data.get(begin)), parse_time(data.get(end))
    if start is None or stop is None:
        raise MedinsError(f"{at}.{begin}: {begin} and {end} must be dates 'yyyy-MM-dd'")
    if stop < start:
        raise MedinsError(f"{at}.{end}: {data[end]} is before {begin} {data[begin]}")
    return start, stop.replace(hour=23, minute=59, second=59)


def books(centre: Centre, call: Call, data: dict, *, refunds: bool, at: str) -> list[Entry]:
    start, stop = _period(data, "stmt_begndate", "stmt_enddate", at)
    entries = []
    for s in centre.state.settlements.values():
        if s.fixmedins_code != call.fixmedins_code or s.mid:
            continue
        if data.get("insutype") and s.insutype != str(data["insutype"]):
            continue
        if s.clr_type != str(data["clr_type"]) or s.clr_optins != str(data["setl_optins"]):
            continue
        if start <= s.setl_time <= stop and (refunds or not s.reversed_by):
            entries.append(Entry(s, 1))
        if refunds and s.reversed_at and start <= s.reversed_at <= stop:
            entries.append(Entry(s, -1))
    return entries


def _compare(claims: dict[str, Decimal | int], actual: dict[str, Decimal | int]) -> list[str]:
    return [
        f"{name}: 医药机构 {claims[name]}, 中心 {actual[name]}"
        for name in claims
        if abs(Decimal(claims[name]) - Decimal(actual[name])) > Decimal("0.001")
    ]


def totals(centre: Centre, call: Call) -> dict:
    """3201: the institution's totals against the centre's; stmt_rslt 0 平 / 1 不平 with the differences."""
    data = call.node()
    refunds = str(data.get("refd_setl_flag") or "0") == "1"
    entries = books(centre, call, data, refunds=refunds, at=call.where())
    actual = {
        "medfee_sumamt": sum((e.amount("medfee_sumamt") for e in entries), Decimal(0)),
        "fund_pay_sumamt": sum((e.amount("fund_pay_sumamt") for e in entries), Decimal(0)),
        "acct_pay": sum((e.amount("acct_pay") for e in entries), Decimal(0)),
        "fixmedins_setl_cnt": len(entries),
    }
    claims = {k: decimal(data[k]) for k in actual}
    differences = _compare(claims, actual)
    return {
        "stmtinfo": {
            "setl_optins": str(data["setl_optins"]),
            "stmt_rslt": "1" if differences else "0",
            "stmt_rslt_dscr": "; ".join(differences) if differences else "对账相符",
        }
    }


def details(centre: Centre, call: Call) -> dict:
    """3202: the uploaded detail file (9101) settlement by settlement; the result comes back as a file."""
    data = call.node()
    at = call.where()
    uploaded = centre.state.files.get(str(data["file_qury_no"]))
    if uploaded is None or uploaded.kind != "upload" or uploaded.fixmedins_code != call.fixmedins_code:
        raise MedinsError(
            f"{at}.file_qury_no: no file {data['file_qury_no']} uploaded (9101) by this institution"
        )
    columns = call.params["file_columns"]
    rows = files.read_rows(uploaded.content, f"{at}.file_qury_no")
    his: dict[str, dict[str, str]] = {}
    for n, row in enumerate(rows, 1):
        if len(row) < len(columns):
            raise MedinsError(
                f"{at}.file_qury_no: line {n} has {len(row)} columns; expected {', '.join(columns)}"
            )
        line = dict(zip(columns, (v.strip() for v in row), strict=False))
        for name in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay"):
            if decimal(line[name]) is None:
                raise MedinsError(f"{at}.file_qury_no: line {n} {name} {line[name]!r} is not a number")
        his[line["setl_id"]] = line
    file_sums = {
        "medfee_sumamt": sum((decimal(v["medfee_sumamt"]) for v in his.values()), Decimal(0)),
        "fund_pay_sumamt": sum((decimal(v["fund_pay_sumamt"]) for v in his.values()), Decimal(0)),
        "cash_payamt": sum(
            (
                decimal(v["medfee_sumamt"]) - decimal(v["fund_pay_sumamt"]) - decimal(v["acct_pay"])
                for v in his.values()
            ),
            Decimal(0),
        ),
        "fixmedins_setl_cnt": len(his),
    }
    own = _compare({k: decimal(data[k]) for k in file_sums}, file_sums)
    if own:
        raise MedinsError(f"{at}: the totals disagree with the uploaded file's lines ({'; '.join(own)})")
    centre_rows = {e.setl_id: e for e in books(centre, call, data, refunds=True, at=at)}
    result = []
    for setl_id, line in his.items():
        entry = centre_rows.pop(setl_id, None)
        if entry is None:
            result.append(
                [
                    line["psn_no"],
                    line["mdtrt_id"],
                    setl_id,
                    "",
                    line.get("refd_setl_flag", ""),
                    "1",
                    "中心无此结算",
                ]
            )
            continue
        differ = [
            f"{n} {line[n]}≠{money(entry.amount(n))}"
            for n in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")
            if abs(decimal(line[n]) - entry.amount(n)) > Decimal("0.001")
        ]
        result.append(_centre_line(setl_id, entry, "1" if differ else "0", "; ".join(differ) or "相符"))
    for setl_id, entry in centre_rows.items():
        result.append(_centre_line(setl_id, entry, "1", "医药机构无此结算"))
    stored = files.store(centre, "", b"", call.fixmedins_code, "reconciliation")
    stored.filename = f"{stored.file_qury_no}.txt.zip"
    stored.content = files.make_zip(f"{stored.file_qury_no}.txt", result)
    return {
        "fileinfo": {
            "file_qury_no": stored.file_qury_no,
            "filename": stored.filename,
            "dld_endtime": f"{stored.expires:%Y-%m-%d %H:%M:%S}",
        }
    }


def _centre_line(setl_id: str, entry: Entry, differs: str, text: str) -> list[str]:
    """A 3202 result line for a settlement the centre made (the columns of the reconciliation file)."""
    settlement = entry.settlement
    sign = "1" if entry.sign < 0 else "0"
    return [settlement.psn_no, settlement.mdtrt_id, setl_id, settlement.msgid, sign, differs, text]


def apply(centre: Centre, call: Call) -> dict:
    """3203: a month's clearing application; its figures must be the centre's for that period."""
    data = call.node()
    at = call.where()
    setlym = str(data["setlym"])
    start, stop = _period(data, "begndate", "enddate", at)
    if f"{start:%Y%m}" != setlym or f"{stop:%Y%m}" != setlym:
        raise MedinsError(
            f"{at}.setlym: {setlym} does not contain the period {data['begndate']} - {data['enddate']}"
        )
    store = centre.state.collection("clearing")
    for rec in store.values():
        if (
            not rec.revoked
            and rec.fixmedins_code == call.fixmedins_code
            and rec.data["setlym"] == setlym
            and rec.data["clr_type"] == str(data["clr_type"])
        ):
            raise MedinsError(
                f"{at}.setlym: {setlym} clr_type {data['clr_type']} is already applied ({rec.id}); "
                "revoke it (3204)"
            )
    chosen = [
        s
        for s in centre.state.settlements.values()
        if s.fixmedins_code == call.fixmedins_code
        and not s.reversed_by
        and not s.mid
        and s.clr_type == str(data["clr_type"])
        and start <= s.setl_time <= stop
    ]
    actual = {
        "psntime": len(chosen),
        "medfee_sumamt": sum((s.medfee_sumamt for s in chosen), Decimal(0)),
        "med_sumfee": sum((s.inscp_scp_amt for s in chosen), Decimal(0)),
        "fund_appy_sum": sum((s.fund_pay_sumamt for s in chosen), Decimal(0)),
        "cash_payamt": sum((s.psn_cash_pay for s in chosen), Decimal(0)),
        "acct_pay": sum((s.acct_pay for s in chosen), Decimal(0)),
    }
    differences = _compare({k: decimal(data[k]) for k in actual}, actual)
    if differences:
        raise MedinsError(
            f"{at}: the application does not match the centre's settlements ({'; '.join(differences)})"
        )
    rid = centre.next_id("CL")
    store[rid] = Record(
        rid,
        call.infno,
        call.fixmedins_code,
        {**{k: str(v) for k, v in data.items()}, "clr_appy_evt_id": rid},
        centre.now(),
        nodes={"setl_ids": [s.setl_id for s in chosen]},
    )
    return {"result": {"clr_appy_evt_id": rid}}


def revoke(centre: Centre, call: Call) -> dict:
    data = call.node()
    rid = str(data["clr_appy_evt_id"])
    rec = centre.state.collection("clearing").get(rid)
    if rec is None or rec.fixmedins_code != call.fixmedins_code:
        raise MedinsError(
            f"{call.where()}.clr_appy_evt_id: no clearing application {rid} of this institution"
        )
    if rec.revoked:
        raise MedinsError(f"{call.where()}.clr_appy_evt_id: {rid} was already revoked")
    rec.revoked, rec.revoked_at = True, centre.now()
    return {}
