"""The CDC reporting front end (国家传染病智能监测预警前置软件), sans-IO: its 20 tables, checked per row.

`POST /hclient/emr/receive/{api}` (api: the table in camelCase, emrInfReport ...) adds or replaces rows
(one JSON object or a list), `DELETE` with the same body removes them by key, as the hub posts them;
`/cdc/{table}` (snake_case) is the simulator's earlier path and does the same except that it checks each
row alone, without references, as it always did (so single report cards still go in). The answer is the front
end's `{result, desc, id, errorCode, errorName}` plus `reasons`, every problem naming the row (`[2].` in
a list) and the field as sent. Rows may use the columns' snake_case names or the hub's camelCase names.

Rows are kept (bounded), so references hold as in the front end's database: an activity, report or
record names an existing patient (emr_patient_info.id), an order item an existing order, and a patient
with rows that name them cannot be deleted. Tables, code sets and diseases come from specs/cdc/*.yaml.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.simulators.wire import HttpRequest, HttpResponse, JsonBodyError, json_response, load_json
from harness.spec import cdc
from harness.spec.cdc import SPEC_DIR, split_rows

API_PREFIX = "/hclient/emr/receive/"
LEGACY_PREFIX = "/cdc/"


def _now() -> datetime:
    return datetime.now()


class CdcFrontEnd:
    name = "cdc"

    def __init__(
        self, spec_dir: Path = SPEC_DIR, *, clock: Callable[[], datetime] = _now, max_rows: int = 10_000
    ) -> None:
        self.spec = cdc.load(spec_dir)
        self.tables = self.spec.tables
        self.codes = self.spec.codes
        self.by_api = self.spec.by_api
        self.clock = clock
        self.rows: dict[str, OrderedDict[str, dict]] = {t: OrderedDict() for t in self.tables}
        self.max_rows = max_rows
        self.accepted: Counter[str] = Counter()

    # ---------------------------------------------------------------------------------- HTTP
    def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        references = True
        if path.startswith(API_PREFIX):
            table = self.by_api.get(path[len(API_PREFIX) :].strip("/"))
            known = ", ".join(self.by_api)
        elif path.startswith(LEGACY_PREFIX):
            name = path[len(LEGACY_PREFIX) :].strip("/")
            table = name if name in self.tables else None
            known = ", ".join(self.tables)
            references = False
        else:
            return self._answer(
                404, False, [f"no endpoint at {request.path}; POST {API_PREFIX}{{api}}"], error="404"
            )
        if table is None:
            return self._answer(
                404, False, [f"unknown table {path.rsplit('/', 1)[-1]!r}; known: {known}"], error="404"
            )
        if request.method not in ("POST", "DELETE"):
            resp = self._answer(
                405, False, [f"method {request.method} not allowed; use POST or DELETE"], error="405"
            )
            resp.headers["Allow"] = "POST, DELETE"
            return resp
        try:
            value = load_json(request.body)
        except JsonBodyError as exc:
            return self._answer(400, False, [str(exc)], error="400")
        rows, reasons = split_rows(value)
        if reasons:
            return self._answer(200, False, reasons, error="400")
        if request.method == "DELETE":
            return self._delete(table, rows)
        return self._add(table, rows, references)

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        return self._answer(413, False, [f"body is larger than the {limit}-byte limit"], error="413")

    @staticmethod
    def _answer(
        status: int, ok: bool, reasons: list[str], *, ids: Any = None, error: str | None = None
    ) -> HttpResponse:
        body = {
            "result": ok,
            "desc": "成功" if ok else reasons[0],
            "id": ids,
            "errorCode": None if ok else error,
            "errorName": None if ok else "; ".join(reasons)[:500],
        }
        if not ok:
            body["reasons"] = reasons
        return json_response(status, body)

    # ------------------------------------------------------------------------------- add/delete
    def _add(self, table: str, rows: list[tuple[str, Any]], references: bool = True) -> HttpResponse:
        reasons: list[str] = []
        normal: list[dict] = []
        batch: dict[str, dict[str, dict]] = {}
        for at, row in rows:
            if not isinstance(row, dict):
                reasons.append(f"{at.rstrip('.')}: a row must be a JSON object, got {type(row).__name__}")
                continue
            found, columns = self.check_row(table, row, at, batch if references else None)
            reasons.extend(found)
            if not found:
                normal.append(columns)
                batch.setdefault(table, {})[str(columns[self.tables[table]["key"]])] = columns
        if reasons:
            return self._answer(200, False, reasons, error="400")
        store = self.rows[table]
        key = self.tables[table]["key"]
        for columns in normal:
            store[str(columns[key])] = columns
            store.move_to_end(str(columns[key]))
            while len(store) > self.max_rows:
                store.popitem(last=False)
        self.accepted[table] += len(normal)
        ids = [str(c[key]) for c in normal]
        return self._answer(200, True, [], ids=ids[0] if len(ids) == 1 else ids)

    def _delete(self, table: str, rows: list[tuple[str, Any]]) -> HttpResponse:
        key = self.tables[table]["key"]
        reasons, keys = [], []
        for at, row in rows:
            value = self.spec.value(table, row, key) if isinstance(row, dict) else None
            if value in (None, ""):
                reasons.append(f"{at}{key}: missing (the key of the row to delete)")
            elif str(value) not in self.rows[table]:
                reasons.append(f"{at}{key}: no {table} row {value}")
            else:
                users = self._referencing(table, str(value))
                if users:
                    reasons.append(
                        f"{at}{key}: {table} {value} is still named by {', '.join(users)}; delete those first"
                    )
                keys.append(str(value))
        if reasons:
            return self._answer(200, False, reasons, error="404")
        for k in keys:
            del self.rows[table][k]
        return self._answer(200, True, [], ids=keys[0] if len(keys) == 1 else keys)

    def _referencing(self, table: str, key: str) -> list[str]:
        users = []
        for other, body in self.tables.items():
            for column, ref in (body.get("references") or {}).items():
                if ref["table"] == table and any(
                    str(r.get(column)) == key for r in self.rows[other].values()
                ):
                    users.append(other)
        return users

    # ------------------------------------------------------------------------------------ checks
    def check(self, table: str, value: Any) -> list[str]:
        """Every problem with one row (an object) or a list of rows of `table` (nothing is stored)."""
        rows, reasons = split_rows(value)
        for at, row in rows:
            if isinstance(row, dict):
                reasons.extend(self.check_row(table, row, at, {})[0])
            else:
                reasons.append(f"{at.rstrip('.')}: a row must be a JSON object, got {type(row).__name__}")
        return reasons

    def check_row(self, table: str, row: dict, at: str, batch: dict | None) -> tuple[list[str], dict]:
        """Every problem with one row, and its columns; `batch=None` skips the references."""

        def exists(ref: str, key: str) -> bool:
            return key in self.rows[ref] or key in (batch or {}).get(ref, {})

        return cdc.check_row(
            self.spec, table, row, at, self.clock().date(), exists if batch is not None else None
        )
