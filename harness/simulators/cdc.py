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

import re
from collections import Counter, OrderedDict
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from harness import idcard, specfile
from harness.simulators.wire import HttpRequest, HttpResponse, JsonBodyError, json_response, load_json

SPEC_DIR = Path(__file__).resolve().parents[2] / "specs" / "cdc"
API_PREFIX = "/hclient/emr/receive/"
LEGACY_PREFIX = "/cdc/"
MAX_ROWS = 1000
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S", "%Y%m%d")


def _now() -> datetime:
    return datetime.now()


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            pass
    return None


def _camel(name: str) -> str:
    return re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)


def load_codes(path: Path) -> dict[str, dict[str, str]]:
    spec = specfile.load(path, family="cdc", kind="codes")
    out: dict[str, dict[str, str]] = {}
    for name, body in spec.body["sets"].items():
        codes: dict[str, str] = {}
        if body.get("file"):
            included = specfile.read_yaml(path.parent / body["file"])
            codes.update({str(k): str(v) for k, v in included["codes"].items()})
        for code, value in (body.get("codes") or {}).items():
            codes[str(code)] = str(value.get("name") if isinstance(value, dict) else value)
        out[name] = codes
    return out


class CdcFrontEnd:
    name = "cdc"

    def __init__(
        self, spec_dir: Path = SPEC_DIR, *, clock: Callable[[], datetime] = _now, max_rows: int = 10_000
    ) -> None:
        self.tables: dict[str, dict] = specfile.load(spec_dir / "tables.yaml", family="cdc").body["tables"]
        self.codes = load_codes(spec_dir / "codes.yaml")
        diseases = specfile.load(spec_dir / "diseases.yaml", family="cdc").body
        self.icd10 = re.compile(diseases["icd10"]["pattern"])
        self.diseases: dict[str, str] = {}
        self.parents: dict[str, dict[str, str]] = {}
        for classes in diseases["classes"].values():
            for code, body in classes.items():
                subtypes = body.get("subtypes") or {}
                if subtypes:
                    self.parents[code] = subtypes
                    self.diseases.update(subtypes)
                else:
                    self.diseases[code] = body["name"]
        self.by_api = {body["api"]: table for table, body in self.tables.items()}
        self.names: dict[str, dict[str, str]] = {}  # table -> name as sent (snake, camel, alias) -> column
        for table, body in self.tables.items():
            names = {}
            for column in body["fields"]:
                names[column] = names[_camel(column)] = column
            names.update(body.get("aliases") or {})
            self.names[table] = names
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
        rows, reasons = self._rows(value)
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

    @staticmethod
    def _rows(value: Any) -> tuple[list[tuple[str, Any]], list[str]]:
        if isinstance(value, dict):
            return [("", value)], []
        if isinstance(value, list):
            if not value:
                return [], ["the list of rows is empty"]
            if len(value) > MAX_ROWS:
                return [], [f"{len(value)} rows in one request; at most {MAX_ROWS}"]
            return [(f"[{i}].", row) for i, row in enumerate(value)], []
        return [], [f"body must be a JSON object (one row) or a list of rows, got {type(value).__name__}"]

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
            value = self._get(table, row, key) if isinstance(row, dict) else None
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

    def _get(self, table: str, row: dict, column: str) -> Any:
        for sent, col in self.names[table].items():
            if col == column and sent in row:
                return row[sent]
        return None

    # ------------------------------------------------------------------------------------ checks
    def check(self, table: str, value: Any) -> list[str]:
        """Every problem with one row (an object) or a list of rows of `table` (nothing is stored)."""
        rows, reasons = self._rows(value)
        for at, row in rows:
            if isinstance(row, dict):
                reasons.extend(self.check_row(table, row, at, {})[0])
            else:
                reasons.append(f"{at.rstrip('.')}: a row must be a JSON object, got {type(row).__name__}")
        return reasons

    def check_row(self, table: str, row: dict, at: str, batch: dict | None) -> tuple[list[str], dict]:
        """Every problem with one row, and its columns; `batch=None` skips the references."""
        spec = self.tables[table]
        names = self.names[table]
        reasons: list[str] = []
        columns: dict[str, Any] = {}
        sent_as: dict[str, str] = {}
        for sent, value in row.items():
            column = names.get(sent)
            if column is None:
                reasons.append(f"{at}{sent}: not a column of {table} (unknown field)")
                continue
            columns[column] = value
            sent_as[column] = sent

        def shown(column: str) -> str:
            return f"{at}{sent_as.get(column, column)}"

        def present(column: str) -> bool:
            return columns.get(column) not in (None, "")

        today = self.clock().date()
        dates: dict[str, date] = {}
        for column, field in spec["fields"].items():
            if not present(column):
                if field.get("required"):
                    reasons.append(f"{shown(column)}: missing")
                continue
            value = columns[column]
            if isinstance(value, (dict, list, bool)):
                reasons.append(f"{shown(column)}: must be a single value, got {type(value).__name__}")
                continue
            text = str(value)
            if field.get("type") in ("date", "datetime"):
                parsed = _parse_date(text)
                if parsed is None:
                    reasons.append(
                        f"{shown(column)}: {value!r} is not a date (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss)"
                    )
                elif parsed > today:
                    reasons.append(f"{shown(column)}: {value} is in the future")
                else:
                    dates[column] = parsed
                continue
            if "max" in field and len(text) > field["max"]:
                reasons.append(f"{shown(column)}: longer than {field['max']} characters ({len(text)})")
            if "code" in field and text not in self.codes[field["code"]]:
                allowed = ", ".join(self.codes[field["code"]])
                reasons.append(f"{shown(column)}: {value!r} is not a {field['code']} code ({allowed})")
        checks = spec.get("checks") or {}
        for earlier, later in checks.get("order", ()):
            if earlier in dates and later in dates and dates[earlier] > dates[later]:
                reasons.append(f"{shown(later)}: {columns[later]} is before {earlier} {columns[earlier]}")
        for column, digits in [(c, (9,)) for c in checks.get("zone9", ())] + [
            (c, (6, 9)) for c in checks.get("zone", ())
        ]:
            if present(column):
                text = str(columns[column])
                if not (text.isdigit() and len(text) in digits):
                    reasons.append(
                        f"{shown(column)}: {text!r} must be a {' or '.join(map(str, digits))}-digit zone code"
                    )
                elif text[:2] not in idcard.PROVINCES:
                    reasons.append(f"{shown(column)}: {text} does not start with a province code")
        for column in checks.get("org9", ()):
            if present(column) and not re.fullmatch(r"[0-9A-Z]{9}", str(columns[column])):
                reasons.append(
                    f"{shown(column)}: {columns[column]!r} must be a 9-character organisation code"
                )
        if "idcard" in checks:
            reasons.extend(self._check_idcard(columns, checks["idcard"], shown, dates))
        if "disease" in checks and present(checks["disease"]):
            reasons.extend(self._check_disease(str(columns[checks["disease"]]), shown(checks["disease"])))
        references = (spec.get("references") or {}) if batch is not None else {}
        for column, ref in references.items():
            if present(column):
                key = str(columns[column])
                if key not in self.rows[ref["table"]] and key not in batch.get(ref["table"], {}):
                    reasons.append(f"{shown(column)}: no {ref['table']} row {key} (send it first)")
        return reasons, columns

    def _check_idcard(self, columns: dict, column: str, shown, dates: dict[str, date]) -> list[str]:
        number = columns.get(column)
        if str(columns.get("id_card_type_code")) != "01" or not number:
            return []
        problem = idcard.problem(str(number), today=self.clock().date())
        if problem:
            return [f"{shown(column)}: 身份证号 {number} invalid: {problem}"]
        reasons = []
        number = str(number).upper()
        gender = str(columns.get("gender_code", ""))
        if gender in ("1", "2") and gender != idcard.gender(number):
            expected = idcard.gender(number)
            where = shown("gender_code")
            reasons.append(f"{where}: {gender} contradicts {column} {number} (gender {expected})")
        born = idcard.birth_date(number)
        if "birth_date" in dates and dates["birth_date"] != born:
            reasons.append(
                f"{shown('birth_date')}: {columns['birth_date']} contradicts {column} {number} (born {born})"
            )
        return reasons

    def _check_disease(self, code: str, where: str) -> list[str]:
        if code in self.parents:
            subtypes = ", ".join(f"{c} {n}" for c, n in self.parents[code].items())
            return [f"{where}: {code} has subtypes; report one of {subtypes}"]
        if code not in self.diseases and not self.icd10.fullmatch(code):
            return [f"{where}: {code!r} is not a notifiable disease code (NNDRS) nor an ICD-10 code"]
        return []
