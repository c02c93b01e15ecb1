"""Generic rules for transactions that upload, change, revoke or query rows (filings, departments, reports).

Most transactions of the interface are of this shape, so they are served by these four rules configured
in their spec (`behaviour:`), not by code of their own:

    record   collection, node, id {field, prefix} or key [fields], needs [{kind, field}], returns
    update   collection, node, by [fields]
    revoke   collection, node, by [fields], match [fields]
    query    collection, node, filter {record field: input field}, returns {node, one}, include_revoked

Filings also change what later transactions accept: a field with `requires_filing` (e.g. med_type 14
门诊慢特病 needs an active 2503 filing for the disease) is checked here for every call.
"""

from __future__ import annotations

from harness.simulators.medins.call import Call, MedinsError
from harness.simulators.medins.centre import Centre
from harness.simulators.medins.state import Record
from harness.spec.medins.checks import parse_time


def _needs(centre: Centre, call: Call, row: dict, at: str) -> None:
    for need in call.params.get("needs", []):
        kind, name = (
            need["kind"],
            need.get(
                "field", {"person": "psn_no", "visit": "mdtrt_id", "settlement": "setl_id"}[need["kind"]]
            ),
        )
        value = row.get(name)
        if value in (None, ""):
            continue  # presence is the spec's `required`; an absent optional link is not checked
        if kind == "person":
            centre.person(value)
        elif kind == "visit":
            psn_no = row.get("psn_no") or (centre.state.visits.get(str(value)) or _Nobody).psn_no
            centre.visit(value, psn_no)
        elif kind == "settlement":
            settlement = centre.state.settlements.get(str(value))
            if settlement is None or settlement.reversed_by:
                raise MedinsError(f"{at}.{name}: settlement {value} not found or reversed")
            if row.get("psn_no") and settlement.psn_no != str(row["psn_no"]):
                raise MedinsError(f"{at}.{name}: settlement {value} belongs to person {settlement.psn_no}")


class _Nobody:
    psn_no = ""


def _key(row: dict, fields: list[str]) -> str:
    return "|".join(str(row.get(f, "")) for f in fields)


def record(centre: Centre, call: Call) -> dict:
    params = call.params
    store = centre.state.collection(params["collection"])
    rows = call.rows()
    where = call.where()
    ids = []
    for i, row in enumerate(rows):
        at = f"{where}[{i}]" if isinstance(call.node(), list) else where
        _needs(centre, call, row, at)
        if "key" in params:
            key = _key(row, params["key"])
            existing = store.get(key)
            if existing is not None and not existing.revoked:
                raise MedinsError(
                    f"{at}: {', '.join(params['key'])} {key} was already uploaded"
                    + (f"; change it with {params['changed_by']}" if params.get("changed_by") else "")
                )
        data = dict(row)
        if "id" in params:
            data[params["id"]["field"]] = centre.next_id(params["id"].get("prefix", ""))
        rid = _key(row, params["key"]) if "key" in params else data[params["id"]["field"]]
        store[rid] = Record(rid, call.infno, call.fixmedins_code, data, centre.now(), nodes=dict(call.inp))
        ids.append(rid)
    call.effect["records"] = (params["collection"], ids)
    returns = params.get("returns")
    if not returns:
        return {}
    values = {f: store[ids[-1]].data.get(f, ids[-1]) for f in returns["fields"]}
    if "node" not in returns:
        return values
    if returns.get("list"):
        return {returns["node"]: [{f: store[i].data.get(f, i) for f in returns["fields"]} for i in ids]}
    return {returns["node"]: values}


def _find(centre: Centre, call: Call, row: dict, at: str) -> Record:
    params = call.params
    store = centre.state.collection(params["collection"])
    by = params["by"]
    found = [r for r in store.values() if all(str(r.data.get(f, "")) == str(row.get(f, "")) for f in by)]
    live = [r for r in found if not r.revoked]
    if not found:
        raise MedinsError(
            f"{at}.{by[0]}: no {params['collection'].replace('_', ' ')} record with {_key(row, by)}"
        )
    if not live:
        raise MedinsError(f"{at}.{by[0]}: {_key(row, by)} was already revoked")
    rec = live[-1]
    for name in params.get("match", []):
        if row.get(name) not in (None, "") and str(rec.data.get(name, "")) != str(row[name]):
            raise MedinsError(
                f"{at}.{name}: record {_key(row, by)} belongs to {rec.data.get(name)}, not {row[name]}"
            )
    if rec.fixmedins_code and rec.fixmedins_code != call.fixmedins_code and params.get("own_only", True):
        raise MedinsError(
            f"{at}.{by[0]}: record {_key(row, by)} was uploaded by institution {rec.fixmedins_code}"
        )
    return rec


def revoke(centre: Centre, call: Call) -> dict:
    for i, row in enumerate(call.rows()):
        at = f"{call.where()}[{i}]" if isinstance(call.node(), list) else call.where()
        rec = _find(centre, call, row, at)
        rec.revoked, rec.revoked_at = True, centre.now()
        rec.history.append(
            {"revoked_by": call.env["msgid"], **{k: v for k, v in row.items() if v not in (None, "")}}
        )
    return {}


def update(centre: Centre, call: Call) -> dict:
    for i, row in enumerate(call.rows()):
        at = f"{call.where()}[{i}]" if isinstance(call.node(), list) else call.where()
        rec = _find(centre, call, row, at)
        rec.history.append(dict(rec.data))
        rec.data.update({k: v for k, v in row.items() if v not in (None, "")})
    return {}


def query(centre: Centre, call: Call) -> dict:
    params = call.params
    wanted = call.node() or {}
    store = centre.state.collection(params["collection"])
    filters = params.get("filter", {})
    rows = []
    for rec in store.values():
        if rec.revoked and not params.get("include_revoked"):
            continue
        if params.get("own_only") and rec.fixmedins_code != call.fixmedins_code:
            continue
        if not all(
            wanted.get(inp) in (None, "") or str(rec.data.get(field, "")) == str(wanted[inp])
            for field, inp in filters.items()
        ):
            continue
        if not _in_window(rec, wanted, params.get("window")):
            continue
        rows.append(rec)
    returns = params["returns"]
    if returns.get("one"):
        if not rows:
            shown = ", ".join(f"{inp} {wanted.get(inp)}" for inp in filters.values() if wanted.get(inp))
            raise MedinsError(f"{call.where()}: no record found for {shown or 'the request'}")
        rec = rows[-1]
        return {
            node: rec.nodes.get(node) or ({} if node == returns["nodes"][0] else [])
            for node in returns["nodes"]
        }
    fields = list(call.tx.output.get(returns["node"], {}).get("fields", {}))
    return {returns["node"]: [project(rec, fields) for rec in rows]}


def project(rec: Record, fields: list[str]) -> dict:
    """A stored row shaped as the spec's output fields (absent ones as null), plus its validity."""
    row = {f: rec.data.get(f) for f in fields} if fields else dict(rec.data)
    if "vali_flag" in row or not fields:
        row["vali_flag"] = "0" if rec.revoked else "1"
    return row


def _in_window(rec: Record, wanted: dict, window: dict | None) -> bool:
    if not window:
        return True
    stamp = parse_time(rec.data.get(window["field"])) or rec.created
    begin, end = parse_time(wanted.get(window["from"])), parse_time(wanted.get(window["to"]))
    return not (begin and stamp < begin or end and stamp > end)


# ------------------------------------------------------------------------------------------ filings
def check_filings(centre: Centre, call: Call) -> None:
    """Fields with `requires_filing`: the value needs an active filing of the person that matches."""
    for node_name, node in call.tx.input.items():
        for field_name, spec in (node.get("fields") or {}).items():
            for rule in spec.get("requires_filing", []):
                value = call.inp.get(node_name)
                rows = value if isinstance(value, list) else [value]
                for row in [r for r in rows if isinstance(r, dict)]:
                    if str(row.get(field_name)) in [str(v) for v in rule["when"]]:
                        _check_filing(centre, call, rule, row, f"input.{node_name}", field_name)


def _check_filing(centre: Centre, call: Call, rule: dict, row: dict, at: str, field_name: str) -> None:
    match: dict[str, str] = rule["match"]
    for inp in match.values():
        if row.get(inp) in (None, ""):
            raise MedinsError(
                f"{at}.{inp}: missing; {field_name} {row.get(field_name)} needs it to match "
                f"the {rule['name']}"
            )
    when = parse_time(row.get(rule.get("covers", ""))) if rule.get("covers") else None
    for rec in centre.state.collection(rule["filing"]).values():
        if rec.revoked or not all(str(rec.data.get(f, "")) == str(row[inp]) for f, inp in match.items()):
            continue
        if rule.get("institution") and str(rec.data.get(rule["institution"], "")) != call.fixmedins_code:
            continue
        begin, end = parse_time(rec.data.get("begndate")), parse_time(rec.data.get("enddate"))
        if when and (begin and when.date() < begin.date() or end and when.date() > end.date()):
            continue
        return
    shown = ", ".join(f"{inp} {row[inp]}" for inp in match.values())
    raise MedinsError(
        f"{at}.{field_name}: {row.get(field_name)} needs an active {rule['name']} ({rule['by']}) for {shown}"
        + (f" at institution {call.fixmedins_code}" if rule.get("institution") else "")
    )
