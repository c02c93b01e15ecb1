"""The CDC reporting front end's tables as one model: specs/cdc/tables.yaml, codes.yaml, diseases.yaml.

`load` reads the three files once; `check_row` judges one row of a table (every problem, each naming the
field as it was sent). The simulator (harness mock cdc) keeps rows and answers; certification (harness
certify) builds its cases and judges captured rows from the same model.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from harness import idcard, specfile

SPEC_DIR = specfile.SPECS / "cdc"
MAX_ROWS = 1000
TABLE_KEYS = frozenset({"api", "key", "references", "aliases", "fields", "checks"})
FIELD_KEYS = frozenset({"type", "max", "required", "code"})
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S", "%Y%m%d")


def parse_date(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            pass
    return None


def camel(name: str) -> str:
    return re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)


@dataclass(slots=True)
class CdcSpec:
    tables: dict[str, dict]
    codes: dict[str, dict[str, str]]
    diseases: dict[str, str]  # notifiable disease code -> name (subtypes, not their parents)
    parents: dict[str, dict[str, str]]  # a disease reported by its subtypes -> the subtypes
    icd10: re.Pattern[str]
    transport: dict[str, Any]
    files: list[specfile.SpecFile] = field(default_factory=list)
    by_api: dict[str, str] = field(default_factory=dict)  # camelCase endpoint -> table
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> name as sent -> column

    def __post_init__(self) -> None:
        self.by_api = {body["api"]: table for table, body in self.tables.items()}
        for table, body in self.tables.items():
            names = {}
            for column in body["fields"]:
                names[column] = names[camel(column)] = column
            names.update(body.get("aliases") or {})
            self.names[table] = names

    def value(self, table: str, row: dict, column: str) -> Any:
        """A column's value in a row, whichever of its names (snake, camel, alias) the row used."""
        for sent, col in self.names[table].items():
            if col == column and sent in row:
                return row[sent]
        return None


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


def load(spec_dir: Path = SPEC_DIR) -> CdcSpec:
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(spec_dir.glob("*.yaml")))
    return _load(spec_dir, stamp)


@functools.lru_cache(maxsize=4)
def _load(spec_dir: Path, stamp: tuple) -> CdcSpec:
    tables_file = specfile.load(spec_dir / "tables.yaml", family="cdc", kind="tables")
    diseases_file = specfile.load(spec_dir / "diseases.yaml", family="cdc", kind="diseases")
    codes = load_codes(spec_dir / "codes.yaml")
    body = diseases_file.body
    diseases: dict[str, str] = {}
    parents: dict[str, dict[str, str]] = {}
    for classes in body["classes"].values():
        for code, entry in classes.items():
            subtypes = entry.get("subtypes") or {}
            if subtypes:
                parents[code] = subtypes
                diseases.update(subtypes)
            else:
                diseases[code] = entry["name"]
    tables = tables_file.body["tables"]
    for table, spec in tables.items():
        where = f"{tables_file.path}: tables.{table}"
        specfile.known_keys(spec, TABLE_KEYS, where)
        for key in ("api", "key", "fields"):
            if key not in spec:
                raise specfile.SpecError(f"{where}.{key}: missing")
        for column, rule in spec["fields"].items():
            specfile.known_keys(rule, FIELD_KEYS, f"{where}.fields.{column}")
            if "code" in rule and rule["code"] not in codes:
                raise specfile.SpecError(
                    f"{tables_file.path}: tables.{table}.fields.{column}.code {rule['code']!r} "
                    f"is not a set in codes.yaml"
                )
    return CdcSpec(
        tables=tables,
        codes=codes,
        diseases=diseases,
        parents=parents,
        icd10=re.compile(body["icd10"]["pattern"]),
        transport=tables_file.body.get("transport") or {},
        files=[tables_file, diseases_file],
    )


def split_rows(value: Any) -> tuple[list[tuple[str, Any]], list[str]]:
    """A body as (where, row) pairs (`[2].` for a list), or the problem that it is not rows."""
    if isinstance(value, dict):
        return [("", value)], []
    if isinstance(value, list):
        if not value:
            return [], ["the list of rows is empty"]
        if len(value) > MAX_ROWS:
            return [], [f"{len(value)} rows in one request; at most {MAX_ROWS}"]
        return [(f"[{i}].", row) for i, row in enumerate(value)], []
    return [], [f"body must be a JSON object (one row) or a list of rows, got {type(value).__name__}"]


def check_row(
    spec: CdcSpec,
    table: str,
    row: dict,
    at: str,
    today: date,
    exists: Callable[[str, str], bool] | None = None,
) -> tuple[list[str], dict]:
    """Every problem with one row, and its columns; `exists(table, key)` checks references (None: skip)."""
    body = spec.tables[table]
    names = spec.names[table]
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

    dates: dict[str, date] = {}
    for column, rule in body["fields"].items():
        if not present(column):
            if rule.get("required"):
                reasons.append(f"{shown(column)}: missing")
            continue
        value = columns[column]
        if isinstance(value, (dict, list, bool)):
            reasons.append(f"{shown(column)}: must be a single value, got {type(value).__name__}")
            continue
        text = str(value)
        if rule.get("type") in ("date", "datetime"):
            parsed = parse_date(text)
            if parsed is None:
                reasons.append(
                    f"{shown(column)}: {value!r} is not a date (yyyy-MM-dd or yyyy-MM-dd HH:mm:ss)"
                )
            elif parsed > today:
                reasons.append(f"{shown(column)}: {value} is in the future")
            else:
                dates[column] = parsed
            continue
        if "max" in rule and len(text) > rule["max"]:
            reasons.append(f"{shown(column)}: longer than {rule['max']} characters ({len(text)})")
        if "code" in rule and text not in spec.codes[rule["code"]]:
            allowed = ", ".join(spec.codes[rule["code"]])
            reasons.append(f"{shown(column)}: {value!r} is not a {rule['code']} code ({allowed})")
    checks = body.get("checks") or {}
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
            reasons.append(f"{shown(column)}: {columns[column]!r} must be a 9-character organisation code")
    if "idcard" in checks:
        reasons.extend(_check_idcard(columns, checks["idcard"], shown, dates, today))
    if "disease" in checks and present(checks["disease"]):
        reasons.extend(_check_disease(spec, str(columns[checks["disease"]]), shown(checks["disease"])))
    if exists is not None:
        for column, ref in (body.get("references") or {}).items():
            if present(column) and not exists(ref["table"], str(columns[column])):
                reasons.append(f"{shown(column)}: no {ref['table']} row {columns[column]} (send it first)")
    return reasons, columns


def _check_idcard(columns: dict, column: str, shown, dates: dict[str, date], today: date) -> list[str]:
    number = columns.get(column)
    if str(columns.get("id_card_type_code")) != "01" or not number:
        return []
    problem = idcard.problem(str(number), today=today)
    if problem:
        return [f"{shown(column)}: 身份证号 {number} invalid: {problem}"]
    reasons = []
    number = str(number).upper()
    gender = str(columns.get("gender_code", ""))
    if gender in ("1", "2") and gender != idcard.gender(number):
        expected = idcard.gender(number)
        reasons.append(f"{shown('gender_code')}: {gender} contradicts {column} {number} (gender {expected})")
    born = idcard.birth_date(number)
    if "birth_date" in dates and dates["birth_date"] != born:
        reasons.append(
            f"{shown('birth_date')}: {columns['birth_date']} contradicts {column} {number} (born {born})"
        )
    return reasons


def _check_disease(spec: CdcSpec, code: str, where: str) -> list[str]:
    if code in spec.parents:
        subtypes = ", ".join(f"{c} {n}" for c, n in spec.parents[code].items())
        return [f"{where}: {code} has subtypes; report one of {subtypes}"]
    if code not in spec.diseases and not spec.icd10.fullmatch(code):
        return [f"{where}: {code!r} is not a notifiable disease code (NNDRS) nor an ICD-10 code"]
    return []


def interface(spec_dir: Path = SPEC_DIR):
    """The common view (harness.spec.model.Interface) of a CDC spec folder, its model in `native`."""
    from harness.spec import examples
    from harness.spec.model import Interface, Operation

    spec = load(spec_dir)
    meta = spec.files[0].meta
    operations = {
        table: Operation(
            table,
            str(body.get("name") or table),
            body["api"],
            str(body.get("label") or meta["label"]),
            "tables.yaml",
        )
        for table, body in spec.tables.items()
    }
    found = examples.find(spec_dir)
    files = (
        [f.path for f in spec.files]
        + [spec_dir / "codes.yaml"]
        + sorted((spec_dir / "examples").glob("*.json"))
    )
    return Interface(
        family="cdc",
        title=meta["title"],
        path=spec_dir,
        files=files + ([found] if found else []),
        operations=operations,
        transport=f"HTTP POST of JSON rows to {spec.transport.get('path', '/hclient/emr/receive/{api}')}",
        rejection="result: false with errorName (and reasons) naming every problem",
        native=spec,
        examples=examples.load(found, family="cdc") if found else None,
    )
