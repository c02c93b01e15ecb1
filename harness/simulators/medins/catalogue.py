"""Catalogues and dictionaries: 13xx downloads (via 9102), paged catalogue queries, 1901 字典表查询.

The entries are the simulator's invented catalogue (simulator.yaml `catalogue`); the download file's
columns and the query outputs' fields are the interface's (transaction specs), so a HIS parser is
exercised against the real column order even though the drugs are made up.
"""

from __future__ import annotations

import math

from harness.simulators.medins import files
from harness.simulators.medins.call import Call, MedinsError
from harness.simulators.medins.centre import Centre
from harness.simulators.medins.records import project


def complete(centre: Centre, call: Call, node: str, rows: list[dict]) -> list[dict]:
    """Rows with the record fields the output node requires filled in (simulator.yaml record_defaults;
    rid and dates made per row), so every answer matches the transaction's output table."""
    rules = (call.tx.output.get(node) or {}).get("fields") or {}
    defaults = centre.spec.simulator["catalogue"].get("record_defaults") or {}
    today = f"{centre.now():%Y-%m-%d}"
    for i, row in enumerate(rows, 1):
        for name, rule in rules.items():
            if not rule.get("required") or row.get(name) not in (None, ""):
                continue
            if name in defaults:
                row[name] = defaults[name]
            elif name == "rid":
                row[name] = f"{call.infno}{i:010d}"
            elif rule.get("type") in ("date", "datetime"):
                row[name] = today if rule.get("type") == "date" else f"{today} 00:00:00"
    return rows


def _entries(centre: Centre, list_types: list[str] | None) -> list[dict]:
    entries = centre.spec.simulator["catalogue"]["entries"]
    return [dict(e) for e in entries if not list_types or str(e.get("list_type")) in list_types]


def download(centre: Centre, call: Call) -> dict:
    """1301-1315: every entry newer than the version asked for, as a zip to fetch with 9102."""
    ver = str(call.node()["ver"])
    kind = str(call.params["catalogue"])
    sim = centre.spec.simulator["catalogue"]
    columns = call.tx.behaviour["columns"]
    names = sim["column_fields"]
    rows = [
        [str(entry.get(names.get(column, ""), "") or "") for column in columns]
        for entry in _entries(centre, [kind])
        if str(entry.get("ver", "")) > ver
    ]
    stored = files.store(centre, "", b"", call.fixmedins_code, "catalogue")
    stored.filename = f"{stored.file_qury_no}.txt.zip"
    stored.content = files.make_zip(f"{stored.file_qury_no}.txt", rows)
    return {
        "file_qury_no": stored.file_qury_no,
        "filename": stored.filename,
        "dld_end_time": f"{stored.expires:%Y-%m-%d}",
        "data_cn": len(rows),
    }


def paged(centre: Centre, call: Call) -> dict:
    """1304, 1312, 1316, 1318, 1319 (catalogue) and 1317 (this institution's 3301 mappings), paged."""
    data = call.node()
    page_num, page_size = int(data["page_num"]), int(data["page_size"])
    if page_num < 1 or not 1 <= page_size <= call.params.get("max_page_size", 1000):
        raise MedinsError(
            f"{call.where()}.page_size: page_num must be >= 1 and page_size "
            f"1-{call.params.get('max_page_size', 1000)}"
        )
    updated_since = str(data.get("updt_time") or "")
    if call.params.get("rows") == "mappings":
        store = centre.state.collection("mappings")
        rows = [
            dict(
                project(r, []),
                fixmedins_code=r.fixmedins_code,
                medins_list_codg=r.data.get("fixmedins_hilist_id"),
                medins_list_name=r.data.get("fixmedins_hilist_name"),
                updt_time=f"{r.created:%Y-%m-%d %H:%M:%S}",
            )
            for r in store.values()
            if r.fixmedins_code == call.fixmedins_code
        ]
    else:
        rows = _entries(centre, [str(t) for t in call.params.get("list_types", [])])
    filters = call.params.get("filter", {})
    rows = [
        r
        for r in rows
        if str(r.get("updt_time", "")) >= updated_since
        and all(
            data.get(inp) in (None, "") or str(r.get(f, "")) == str(data[inp]) for f, inp in filters.items()
        )
    ]
    fields = list(call.tx.output.get("data", {}).get("fields", {}))
    total = len(rows)
    start = (page_num - 1) * page_size
    page = [{f: r.get(f) for f in fields} if fields else r for r in rows[start : start + page_size]]
    page = complete(centre, call, "data", page)
    pages = math.ceil(total / page_size) if total else 0
    return {
        "data": page,
        "recordCounts": total,
        "pages": pages,
        "pageNum": page_num,
        "pageSize": page_size,
        "size": len(page),
        "startRow": start + 1 if page else 0,
        "endRow": start + len(page),
        "firstPage": 1,
        "lastPage": max(pages, 1),
    }


def dictionary(centre: Centre, call: Call) -> dict:
    """1901: a code set of codes.yaml (national plus the area's local extension) as dictionary rows."""
    data = call.node()
    name = str(data["type"])
    if name not in centre.spec.codes:
        known = ", ".join(sorted(centre.spec.codes))
        raise MedinsError(f"{call.where()}.type: no dictionary {name!r}; known: {known}")
    area = str(data.get("admdvs") or call.env.get("mdtrtarea_admvs") or "")
    codes = centre.spec.codeset(name, area)
    rows = complete(
        centre,
        call,
        "list",
        [
            {
                "type": name,
                "label": label,
                "value": code,
                "parent_value": "",
                "sort": i,
                "vali_flag": "1",
                "create_user": "",
                "create_date": "",
                "version": "1",
            }
            for i, (code, label) in enumerate(codes.items(), 1)
        ],
    )
    return {"list": rows}
