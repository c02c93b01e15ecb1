"""Request checks driven by the spec: the envelope (envelope.yaml) and a transaction's input nodes.

Every problem is reported, each naming the field by its path (`input.feedetail[1].cnt: ...`), so one
answer tells the integration engineer everything wrong with the message at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from harness.spec.medins.model import MedinsSpec, Transaction

DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S")


def decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def parse_time(value: Any, formats: tuple[str, ...] = DATETIME_FORMATS) -> datetime | None:
    if not isinstance(value, str):
        return None
    for fmt in formats:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    return None


def file_bytes(value: Any) -> bytes | None:
    """A 9101 `in`: base64 text (what HIS clients send) or a JSON array of byte values."""
    if isinstance(value, str):
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
    if isinstance(value, list) and all(isinstance(b, int) and not isinstance(b, bool) for b in value):
        if all(0 <= b <= 255 for b in value):
            return bytes(value)
        if all(-128 <= b <= 127 for b in value):  # Java byte[] serialised as signed values
            return bytes(b & 0xFF for b in value)
    return None


# ------------------------------------------------------------------------------------------ envelope
def is_yunnan(spec: MedinsSpec, code: str) -> bool:
    adm = spec.admdvs
    prefectures = adm["prefectures"]
    if code in prefectures or code in (adm["province"]["code"], adm["provincial_pool"]["code"]):
        return True
    return len(code) == 6 and code.isdigit() and code[:4] + "00" in prefectures and code[4:] != "00"


def check_envelope(
    spec: MedinsSpec, env: dict, tx: Transaction | None, msgid_structure: bool = True
) -> list[str]:
    """Every problem with the envelope, each naming the field.

    `msgid_structure=False` checks the msgid's length only: a Yunnan DLL demo sends a 17-digit msgid,
    so on the DLL path the national structure is enforced in strict mode only.
    """
    problems: list[str] = []
    optional = set(tx.behaviour.get("envelope_optional", ())) if tx is not None else set()
    for name, rule in spec.envelope["request"].items():
        value = env.get(name)
        if value is None or value == "":
            if rule.get("required") and name not in optional:
                problems.append(f"{name}: missing")
            continue
        if rule.get("type") == "object":
            if not isinstance(value, dict):
                problems.append(f"{name}: must be a JSON object, got {type(value).__name__}")
            elif len(json.dumps(value, ensure_ascii=False)) > rule.get("max_json", 10**9):
                problems.append(f"{name}: longer than {rule['max_json']} characters")
            continue
        if not isinstance(value, str):
            problems.append(f"{name}: must be a string, got {type(value).__name__} {value!r}")
            continue
        if "length" in rule and len(value) != rule["length"]:
            problems.append(f"{name}: must be {rule['length']} characters, got {len(value)} ({value!r})")
        elif "max" in rule and len(value) > rule["max"]:
            problems.append(f"{name}: longer than {rule['max']} characters ({len(value)})")
        elif "pattern" in rule and not re.fullmatch(rule["pattern"], value):
            problems.append(f"{name}: {value!r} does not match {rule['pattern']}")
        elif "one_of" in rule and value not in rule["one_of"]:
            allowed = ", ".join(repr(v) for v in rule["one_of"] if v)
            problems.append(f"{name}: {value!r} is not one of {allowed}")
        elif "format" in rule and parse_time(value, (rule["format"],)) is None:
            problems.append(f"{name}: {value!r} is not in the format 'yyyy-MM-dd HH:mm:ss'")
    area = env.get("mdtrtarea_admvs")
    if isinstance(area, str) and re.fullmatch(r"\d{6}", area) and not is_yunnan(spec, area):
        problems.append(f"mdtrtarea_admvs: {area} is not a Yunnan admdvs code (53xxxx)")
    if msgid_structure and (tx is None or tx.behaviour.get("msgid") != "template"):
        problems.extend(_check_msgid(env))
    return problems


def _check_msgid(env: dict) -> list[str]:
    msgid, code = env.get("msgid"), env.get("fixmedins_code")
    if not isinstance(msgid, str) or not msgid or not isinstance(code, str) or not code:
        return []
    if not msgid.startswith(code):
        return [f"msgid: {msgid!r} must start with fixmedins_code {code!r}"]
    rest = msgid[len(code) :]
    if not re.fullmatch(r"\d{18}", rest):
        return [
            f"msgid: after fixmedins_code expected yyyyMMddHHmmss + 4-digit serial (18 digits), got {rest!r}"
        ]
    if parse_time(rest[:14], ("%Y%m%d%H%M%S",)) is None:
        return [f"msgid: {rest[:14]!r} is not a valid yyyyMMddHHmmss time"]
    return []


# --------------------------------------------------------------------------------------------- input
def check_input(spec: MedinsSpec, tx: Transaction, inp: dict, area: str | None = None) -> list[str]:
    problems: list[str] = []
    for name, node in tx.input.items():
        _check_value(spec, f"input.{name}", inp.get(name), node, problems, area, parent=inp)
    return problems


def check_output(spec: MedinsSpec, tx: Transaction, output: Any) -> list[str]:
    """Every way an answer's `output` differs from the transaction's output nodes (same rules as input)."""
    if not isinstance(output, dict):
        return [f"output: must be a JSON object, got {type(output).__name__}"] if tx.output else []
    problems: list[str] = []
    for name, node in tx.output.items():
        _check_value(spec, f"output.{name}", output.get(name), node, problems, None, parent=output)
    return problems


def _missing(value: Any, kind: str) -> bool:
    """Absent or empty; an empty list is a missing list, but `{}` is an object whose fields are missing."""
    return value is None or value == "" or (kind == "list" and value == [])


def _check_value(
    spec: MedinsSpec, at: str, value: Any, rule: dict, problems: list[str], area: str | None, parent: dict
) -> None:
    kind = rule.get("type", "str")
    if _missing(value, kind):
        if rule.get("required") or _required_when(rule, parent):
            what = "missing or not a non-empty list" if kind == "list" else "missing"
            if kind == "object":
                what = "missing or not an object"
            problems.append(f"{at}: {what}")
        return
    if kind in ("object", "list"):
        if kind == "list" and isinstance(value, dict) and rule.get("one_or_many"):
            items = [(at, value)]
        elif kind == "list" and not isinstance(value, list):
            problems.append(f"{at}: must be a list of objects, got {type(value).__name__}")
            return
        elif kind == "object" and not isinstance(value, dict):
            problems.append(f"{at}: missing or not an object")
            return
        else:
            items = [(f"{at}[{i}]", v) for i, v in enumerate(value)] if kind == "list" else [(at, value)]
        for where, item in items:
            if not isinstance(item, dict):
                problems.append(f"{where}: must be an object")
                continue
            for name, sub in rule["fields"].items():
                _check_value(spec, f"{where}.{name}", item.get(name), sub, problems, area, parent=item)
        return
    problem = _scalar_problem(spec, value, rule, area)
    if problem:
        problems.append(f"{at}: {problem}")


def _required_when(rule: dict, parent: dict) -> bool:
    when = rule.get("required_when")
    if not when or not isinstance(parent, dict):
        return False
    for name, wanted in when.items():
        values = wanted if isinstance(wanted, list) else [wanted]
        if str(parent.get(name)) not in [str(v) for v in values]:
            return False
    return True


def _scalar_problem(spec: MedinsSpec, value: Any, rule: dict, area: str | None) -> str | None:
    kind = rule.get("type", "str")
    if kind == "any":
        return None
    if isinstance(value, (dict, list)) and kind != "bytes":
        return f"must be a single value, got {type(value).__name__}"
    if kind == "bytes":
        return None if file_bytes(value) is not None else "is neither base64 text nor a list of byte values"
    if isinstance(value, bool):
        return f"must be {'a number' if kind in ('num', 'int') else 'a string'}, got {value!r}"
    if kind in ("num", "int"):
        number = decimal(value)
        if number is None:
            return f"{value!r} is not a number"
        places = -number.as_tuple().exponent if number.as_tuple().exponent < 0 else 0
        if kind == "int" and places:
            return f"{value!r} is not a whole number"
        if "decimals" in rule and places > rule["decimals"]:
            return f"{value!r} has more than {rule['decimals']} decimal places"
        if "max" in rule:
            whole = len(str(abs(int(number))))
            if whole > rule["max"] - rule.get("decimals", 0):
                return f"{value!r} has more digits than {rule['max']},{rule.get('decimals', 0)} allows"
        return None
    text = str(value)
    if kind == "datetime" and parse_time(text) is None:
        return f"{value!r} is not 'yyyy-MM-dd HH:mm:ss' or 'yyyy-MM-dd'"
    if kind == "date" and parse_time(text, DATE_FORMATS) is None:
        return f"{value!r} is not a date 'yyyy-MM-dd'"
    if "max" in rule and kind == "str" and len(text) > rule["max"]:
        return f"longer than {rule['max']} characters ({len(text)})"
    if "code" in rule:
        allowed = spec.codeset(rule["code"], area)
        if text not in allowed:
            shown = ", ".join(list(allowed)[:30]) + (", …" if len(allowed) > 30 else "")
            return f"{value!r} is not a {rule['code']} code ({shown})"
    if "values" in rule and text not in [str(v) for v in rule["values"]]:
        return f"{value!r} is not one of {', '.join(str(v) for v in rule['values'])}"
    if "pattern" in rule and not re.fullmatch(rule["pattern"], text):
        return f"{value!r} does not match {rule['pattern']}"
    return None
