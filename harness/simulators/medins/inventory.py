"""进销存 3501-3507: stocktake, stock changes, purchases, sales and their returns, and deletions.

Each upload moves the stock of one batch (institution, med_list_codg, fixmedins_hilist_id,
fixmedins_bchno); the stock can never go below zero, a sale return cannot exceed what was sold, and a
3507 deletion undoes its movement unless later movements depend on it.
"""

from __future__ import annotations

from decimal import Decimal

from harness.simulators.medins.call import Call, MedinsError
from harness.simulators.medins.centre import Centre
from harness.simulators.medins.records import _needs
from harness.simulators.medins.state import Record
from harness.spec.medins.checks import decimal

COLLECTION = "inventory"


def _batch(call: Call, row: dict) -> tuple[str, str, str, str]:
    return (
        call.fixmedins_code,
        str(row.get("med_list_codg", "")),
        str(row.get("fixmedins_hilist_id", "")),
        str(row.get("fixmedins_bchno", "")),
    )


def move(centre: Centre, call: Call) -> dict:
    params = call.params
    stock = centre.state.stock
    store = centre.state.collection(COLLECTION)
    for i, row in enumerate(call.rows()):
        at = f"{call.where()}[{i}]" if isinstance(call.node(), list) else call.where()
        _needs(centre, call, row, at)
        batch = _batch(call, row)
        current = stock.get(batch, Decimal(0))
        qty_field = params["quantity"]
        qty = decimal(row[qty_field])
        if qty is None or qty < 0:
            raise MedinsError(f"{at}.{qty_field}: {row.get(qty_field)!r} must be a quantity of 0 or more")
        how = params["effect"]
        if how == "set":
            delta = qty - current
        elif how == "change":
            kind = str(row[params["kind_field"]])
            delta = qty if kind in [str(k) for k in params["increase"]] else -qty
        else:
            delta = qty if how == "in" else -qty
        if how == "return_sale":
            sold = -sum(  # sales are negative movements of type 4, earlier returns positive ones
                (
                    decimal(r.data["delta"])
                    for r in store.values()
                    if not r.revoked and r.data["inv_data_type"] == "4" and r.data["batch"] == "|".join(batch)
                ),
                Decimal(0),
            )
            if qty > sold:
                raise MedinsError(f"{at}.{qty_field}: {qty} exceeds the {sold} sold from batch {batch[3]}")
            delta = qty
        if current + delta < 0:
            raise MedinsError(f"{at}.{qty_field}: batch {batch[3]} holds {current}; cannot take {-delta}")
        stock[batch] = current + delta
        rid = centre.next_id("KC")
        store[rid] = Record(
            rid,
            call.infno,
            call.fixmedins_code,
            {
                **row,
                "inv_data_type": str(params["inv_data_type"]),
                "delta": str(delta),
                "batch": "|".join(batch),
            },
            centre.now(),
        )
    return {}


def delete(centre: Centre, call: Call) -> dict:
    data = call.node()
    at = call.where()
    bchno, kind = str(data["fixmedins_bchno"]), str(data["inv_data_type"])
    store = centre.state.collection(COLLECTION)
    live = [
        r
        for r in store.values()
        if not r.revoked
        and r.fixmedins_code == call.fixmedins_code
        and str(r.data.get("fixmedins_bchno")) == bchno
        and r.data["inv_data_type"] == kind
    ]
    if not live:
        raise MedinsError(f"{at}.fixmedins_bchno: no live inventory upload of type {kind} for batch {bchno}")
    rec = live[-1]
    batch = tuple(rec.data["batch"].split("|"))
    current = centre.state.stock.get(batch, Decimal(0))
    delta = decimal(rec.data["delta"])
    if current - delta < 0:
        raise MedinsError(f"{at}.fixmedins_bchno: later movements of batch {bchno} depend on this upload")
    centre.state.stock[batch] = current - delta
    rec.revoked, rec.revoked_at = True, centre.now()
    return {}
