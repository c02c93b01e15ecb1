"""3101/3102 明细审核 (事前/事中分析): a small rule engine over the submitted encounters and orders.

The rules are data (the transaction's `behaviour.rules`): each names a check the engine knows,
`duplicate_item` (the same list code twice in one encounter on one day), `over_list_price` (a unit
price above the catalogue price sent with it) and `amount_mismatch` (sumamt ≠ cnt × pric). A request
picks rules by `rule_ids` or by `trig_scen` (one of them is required).
"""

from __future__ import annotations

from decimal import Decimal

from harness.simulators.medins.call import Call, MedinsError
from harness.simulators.medins.centre import CENT, Centre, money
from harness.spec.medins.checks import decimal


def _duplicate_item(orders: list[dict]) -> list[tuple[list[dict], str, Decimal]]:
    seen: dict[tuple[str, str], dict] = {}
    found = []
    for order in orders:
        key = (str(order.get("hilist_code", "")), str(order.get("drord_begn_date", ""))[:10])
        if not key[0]:
            continue
        if key in seen:
            amount = decimal(order.get("sumamt")) or Decimal(0)
            found.append(
                ([seen[key], order], f"{key[0]} {order.get('hilist_name', '')} 同日重复开具", amount)
            )
        else:
            seen[key] = order
    return found


def _over_list_price(orders: list[dict]) -> list[tuple[list[dict], str, Decimal]]:
    found = []
    for order in orders:
        pric, listed = decimal(order.get("pric")), decimal(order.get("hilist_pric"))
        if pric is not None and listed is not None and listed > 0 and pric > listed:
            over = ((pric - listed) * (decimal(order.get("cnt")) or Decimal(1))).quantize(CENT)
            found.append(([order], f"{order.get('hilist_code')} 单价 {pric} 高于医保目录价格 {listed}", over))
    return found


def _amount_mismatch(orders: list[dict]) -> list[tuple[list[dict], str, Decimal]]:
    found = []
    for order in orders:
        cnt, pric, total = (decimal(order.get(k)) for k in ("cnt", "pric", "sumamt"))
        if None not in (cnt, pric, total) and abs(cnt * pric - total) > CENT:
            found.append(
                (
                    [order],
                    f"{order.get('hilist_code')} 总费用 {total} ≠ 数量 × 单价 {(cnt * pric).quantize(CENT)}",
                    abs(cnt * pric - total),
                )
            )
    return found


CHECKS = {
    "duplicate_item": _duplicate_item,
    "over_list_price": _over_list_price,
    "amount_mismatch": _amount_mismatch,
}


def analyse(centre: Centre, call: Call) -> dict:
    data = call.node()
    rules = call.params["rules"]
    rule_ids = [r.strip() for r in str(data.get("rule_ids") or "").split(",") if r.strip()]
    scene = str(data.get("trig_scen") or "")
    if not rule_ids and not scene:
        raise MedinsError(f"{call.where()}.trig_scen: give trig_scen or rule_ids (one of them is required)")
    unknown = [r for r in rule_ids if r not in {x["rule_id"] for x in rules}]
    if unknown:
        raise MedinsError(
            f"{call.where()}.rule_ids: unknown rule {', '.join(unknown)}; "
            f"known: {', '.join(x['rule_id'] for x in rules)}"
        )
    chosen = [
        r
        for r in rules
        if r["rule_id"] in rule_ids or not rule_ids and scene in [str(s) for s in r["scenes"]]
    ]
    results = []
    for patient in data["patient_dtos"]:
        for encounter in patient.get("fsi_encounter_dtos") or []:
            orders = [o for o in encounter.get("fsi_order_dtos") or [] if isinstance(o, dict)]
            for rule in chosen:
                for involved, text, amount in CHECKS[rule["check"]](orders):
                    jr_id = centre.next_id("JR")
                    results.append(
                        {
                            "jr_id": jr_id,
                            "rule_id": rule["rule_id"],
                            "rule_name": rule["rule_name"],
                            "vola_cont": text,
                            "patn_id": patient.get("patn_id"),
                            "mdtrt_id": encounter.get("mdtrt_id"),
                            "vola_amt": money(amount),
                            "vola_amt_stas": "1",
                            "sev_deg": rule["sev_deg"],
                            "vola_evid": rule.get("vola_evid", ""),
                            "vola_bhvr_type": rule["vola_bhvr_type"],
                            "task_id": call.env["msgid"],
                            "judge_result_detail_dtos": [
                                {
                                    "jrd_id": f"{jr_id}-{n}",
                                    "patn_id": patient.get("patn_id"),
                                    "mdtrt_id": encounter.get("mdtrt_id"),
                                    "rx_id": o.get("rx_id"),
                                    "vola_item_type": "1" if n == 1 else "2",
                                    "vola_amt": money(amount) if n == 1 else 0.0,
                                }
                                for n, o in enumerate(involved, 1)
                            ],
                        }
                    )
    details = [d for r in results for d in r["judge_result_detail_dtos"]]
    return {"result": results, "judge_result_detail_dtos": details}
