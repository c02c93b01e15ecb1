"""The CDC reporting front end (传染病智能监测预警前置软件), sans-IO: report-card tables checked per field.

`POST /cdc/{table}` with one JSON row (an object) or several (a list) of emr_patient_info,
emr_activity_info, emr_inf_report, emr_order_item or emr_discharge_info. The answer is
`{"result": true}` or `{"result": false, "reasons": [...]}`, each reason naming the row (for a list),
the field and the problem. Tables, code sets and diseases come from specs/cdc/*.yaml.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from harness import idcard
from harness.simulators.wire import HttpRequest, HttpResponse, JsonBodyError, json_response, load_json

SPEC_DIR = Path(__file__).resolve().parents[2] / "specs" / "cdc"
PREFIX = "/cdc/"
MAX_ROWS = 1000


def _now() -> datetime:
    return datetime.now()


def _parse_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S", "%Y%m%d"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            pass
    return None


class CdcFrontEnd:
    name = "cdc"

    def __init__(self, spec_dir: Path = SPEC_DIR, *, clock: Callable[[], datetime] = _now) -> None:
        load = lambda name: yaml.safe_load((spec_dir / f"{name}.yaml").read_text(encoding="utf-8"))  # noqa: E731
        self.tables = load("tables")
        self.codes = load("codes")
        self.diseases: dict[str, str] = {}
        self.parents: dict[str, dict[str, str]] = {}
        for diseases in load("diseases")["classes"].values():
            for code, body in diseases.items():
                subtypes = body.get("subtypes") or {}
                if subtypes:
                    self.parents[code] = subtypes
                    self.diseases.update(subtypes)
                else:
                    self.diseases[code] = body["name"]
        self.clock = clock
        self.accepted: Counter[str] = Counter()

    def handle(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(PREFIX):
            return json_response(
                404, {"result": False, "reasons": [f"no endpoint at {request.path}; POST /cdc/{{table}}"]}
            )
        table = request.path[len(PREFIX) :].strip("/")
        if table not in self.tables:
            known = ", ".join(self.tables)
            return json_response(
                404, {"result": False, "reasons": [f"unknown table {table!r}; known: {known}"]}
            )
        if request.method != "POST":
            resp = json_response(
                405, {"result": False, "reasons": [f"method {request.method} not allowed; use POST"]}
            )
            resp.headers["Allow"] = "POST"
            return resp
        try:
            value = load_json(request.body)
        except JsonBodyError as exc:
            return json_response(400, {"result": False, "reasons": [str(exc)]})
        reasons = self.check(table, value)
        if reasons:
            return json_response(200, {"result": False, "reasons": reasons})
        self.accepted[table] += len(value) if isinstance(value, list) else 1
        return json_response(200, {"result": True})

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        return json_response(
            413, {"result": False, "reasons": [f"body is larger than the {limit}-byte limit"]}
        )

    def check(self, table: str, value: Any) -> list[str]:
        """Every problem with one row (an object) or a list of rows of `table`."""
        if isinstance(value, dict):
            return self.check_row(table, value, "")
        if isinstance(value, list):
            if not value:
                return ["the list of rows is empty"]
            if len(value) > MAX_ROWS:
                return [f"{len(value)} rows in one request; at most {MAX_ROWS}"]
            reasons = []
            for i, row in enumerate(value):
                if isinstance(row, dict):
                    reasons.extend(self.check_row(table, row, f"[{i}]."))
                else:
                    reasons.append(f"[{i}]: a row must be a JSON object, got {type(row).__name__}")
            return reasons
        return [f"body must be a JSON object (one row) or a list of rows, got {type(value).__name__}"]

    def check_row(self, table: str, row: dict, at: str) -> list[str]:
        rule = self.tables[table]
        reasons = [f"{at}{name}: missing" for name in rule.get("required", ()) if row.get(name) in (None, "")]

        def present(name: str) -> bool:
            return row.get(name) not in (None, "")

        for name, codeset in rule.get("codes", {}).items():
            if present(name):
                allowed = self.codes[codeset]["codes"]
                if str(row[name]) not in allowed:
                    reasons.append(
                        f"{at}{name}: {row[name]!r} is not a {codeset} code ({', '.join(allowed)})"
                    )
        dates: dict[str, date] = {}
        today = self.clock().date()
        for name in rule.get("dates", ()):
            if present(name):
                parsed = _parse_date(row[name])
                if parsed is None:
                    reasons.append(
                        f"{at}{name}: {row[name]!r} is not a date (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss)"
                    )
                elif parsed > today:
                    reasons.append(f"{at}{name}: {row[name]} is in the future")
                else:
                    dates[name] = parsed
        for earlier, later in rule.get("order", ()):
            if earlier in dates and later in dates and dates[earlier] > dates[later]:
                reasons.append(f"{at}{later}: {row[later]} is before {earlier} {row[earlier]}")
        for name in rule.get("zone9", ()):
            if present(name):
                text = str(row[name])
                if not re.fullmatch(r"\d{9}", text):
                    reasons.append(f"{at}{name}: {text!r} must be a 9-digit zone code")
                elif text[:2] not in idcard.PROVINCES:
                    reasons.append(f"{at}{name}: {text} does not start with a province code")
        for name in rule.get("org9", ()):
            if present(name) and not re.fullmatch(r"[0-9A-Z]{9}", str(row[name])):
                reasons.append(f"{at}{name}: {row[name]!r} must be a 9-character organisation code")
        if "idcard" in rule:
            reasons.extend(self._check_idcard(row, rule["idcard"], at, dates))
        if "disease" in rule and present(rule["disease"]):
            reasons.extend(self._check_disease(str(row[rule["disease"]]), rule["disease"], at))
        return reasons

    def _check_idcard(self, row: dict, field: str, at: str, dates: dict[str, date]) -> list[str]:
        number = row.get(field)
        if str(row.get("id_card_type_code")) != "01" or not number:
            return []
        problem = idcard.problem(str(number), today=self.clock().date())
        if problem:
            return [f"{at}{field}: 身份证号 {number} invalid: {problem}"]
        reasons = []
        number = str(number).upper()
        gender = str(row.get("gender_code", ""))
        if gender in ("1", "2") and gender != idcard.gender(number):
            reasons.append(
                f"{at}gender_code: {gender} contradicts {field} {number} (gender {idcard.gender(number)})"
            )
        born = idcard.birth_date(number)
        if "birth_date" in dates and dates["birth_date"] != born:
            reasons.append(f"{at}birth_date: {row['birth_date']} contradicts {field} {number} (born {born})")
        return reasons

    def _check_disease(self, code: str, field: str, at: str) -> list[str]:
        if code in self.parents:
            subtypes = ", ".join(f"{c} {n}" for c, n in self.parents[code].items())
            return [f"{at}{field}: {code} has subtypes; report one of {subtypes}"]
        if code not in self.diseases:
            return [f"{at}{field}: {code!r} is not a notifiable disease code"]
        return []
