"""The Yunnan medical-insurance centre (医保中心), sans-IO: envelope checks and a stateful visit lifecycle.

Requests arrive at the national gateway path `POST /fsi/api/rsfComIfsService/callService` (optionally
followed by `/{infno}`). Every answer is HTTP 200 with the response envelope, as the real gateway does;
bad input of any kind gets `infcode -1` and an `err_msg` naming the field and the problem.

With a `tif_token` the gateway headers are checked too (x-tif-paasid, x-tif-timestamp within 300 s,
x-tif-nonce, x-tif-signature = SHA256Hex(timestamp + token + nonce + timestamp)); a failure is infcode -1.

Sign-in policy: by default a `sign_no` is optional, but when one is sent it must come from a 9001 of
the same institution and not be signed out (9002). With `strict=True` every transaction except 9001
needs a valid `sign_no`, and a repeated `msgid` is refused.

Field lengths, transactions, admdvs codes and code sets come from specs/medins/*.yaml. Amounts are
priced by an invented, deterministic rule (codes.yaml `pricing`) so that a visit's figures are
consistent: fund_pay_sumamt + psn_part_amt == medfee_sumamt, acct_pay + psn_cash_pay == psn_part_amt.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from harness import idcard
from harness.simulators.wire import HttpRequest, HttpResponse, JsonBodyError, json_response, load_json

SPEC_DIR = Path(__file__).resolve().parents[2] / "specs" / "medins"
GATEWAY_PATH = "/fsi/api/rsfComIfsService/callService"
ERR_MSG_MAX = 200
TIF_MAX_SKEW_S = 300  # M: how far the gateway lets x-tif-timestamp drift is not in a public source
CENT = Decimal("0.01")

_SURNAMES = "李王张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗段普杞"
_GIVEN = "云华丽明秀英建国芳艳海燕𬌗亅乗志强桂兰玉珍"


class MedinsError(Exception):
    """A business or input failure: becomes infcode -1 with this text as err_msg."""


@dataclass(slots=True)
class Person:
    psn_no: str
    certno: str
    psn_name: str
    gend: str
    brdy: str
    insutype: str
    psn_type: str
    balc: Decimal
    insuplc_admdvs: str


@dataclass(slots=True)
class Fee:
    feedetl_sn: str
    chrg_bchno: str
    amount: Decimal
    chrgitm_lv: str
    fulamt_ownpay_amt: Decimal
    preselfpay_amt: Decimal
    inscp_scp_amt: Decimal
    msgid: str
    setl_id: str | None = None


@dataclass(slots=True)
class Settlement:
    setl_id: str
    mdtrt_id: str
    fees: list[str]
    medfee_sumamt: Decimal
    fund_pay_sumamt: Decimal
    psn_part_amt: Decimal
    acct_pay: Decimal
    psn_cash_pay: Decimal
    mid: bool = False
    reversed_by: str | None = None
    output: dict = field(default_factory=dict)


@dataclass(slots=True)
class Visit:
    mdtrt_id: str
    psn_no: str
    insutype: str
    kind: str  # "otp" outpatient, "ipt" inpatient
    number: str  # ipt_otp_no or ipt_no
    status: str  # registered | admitted | discharged | cancelled
    med_type: str | None = None
    info: dict = field(default_factory=dict)
    diseases: list = field(default_factory=list)
    fees: dict[str, Fee] = field(default_factory=dict)
    settlements: dict[str, Settlement] = field(default_factory=dict)

    def active_settlements(self) -> list[Settlement]:
        return [s for s in self.settlements.values() if s.reversed_by is None]


@dataclass(slots=True)
class Logged:
    infno: str
    psn_no: str | None
    effect: dict
    reversed: bool = False


def load_spec(spec_dir: Path = SPEC_DIR) -> dict[str, Any]:
    return {
        name: yaml.safe_load((spec_dir / f"{name}.yaml").read_text(encoding="utf-8"))
        for name in ("envelope", "transactions", "admdvs", "codes")
    }


def _now() -> datetime:
    return datetime.now()


def _money(value: Decimal) -> float:
    return float(value.quantize(CENT, rounding=ROUND_HALF_UP))


class _Bounded(OrderedDict):
    """An insertion-ordered dict that forgets its oldest entries beyond `limit`."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class MedinsSimulator:
    name = "medins"

    def __init__(
        self,
        spec: dict[str, Any] | None = None,
        *,
        strict: bool = False,
        clock: Callable[[], datetime] = _now,
        max_entries: int = 10_000,
        tif_token: str | None = None,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec or load_spec()
        self.tif_token = tif_token
        self.epoch = epoch
        self.strict = strict
        self.clock = clock
        self.persons: _Bounded = _Bounded(max_entries)
        self.visits: _Bounded = _Bounded(max_entries)
        # Indexes so that no call scans every visit; entries may name evicted visits and are checked.
        self.by_number: _Bounded = _Bounded(max_entries)  # (kind, ipt_otp_no/ipt_no) -> mdtrt_id
        self.by_person: _Bounded = _Bounded(max_entries)  # psn_no -> [mdtrt_id, ...]
        self.messages: _Bounded = _Bounded(max_entries * 5)
        self.sign_ins: _Bounded = _Bounded(max_entries)
        self.serial = 0
        adm = self.spec["admdvs"]
        self.prefectures = set(adm["prefectures"])
        self.yunnan_extra = {adm["province"]["code"], adm["provincial_pool"]["code"]}
        self.codes = self.spec["codes"]
        self.pricing = self.codes["pricing"]

    # ----------------------------------------------------------------- HTTP
    def handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path.rstrip("/")
        path_infno = None
        if path != GATEWAY_PATH:
            head, _, tail = path.rpartition("/")
            if head != GATEWAY_PATH or not re.fullmatch(r"\d{4}", tail):
                return json_response(404, {"error": f"no such path {request.path}; POST {GATEWAY_PATH}"})
            path_infno = tail
        if request.method != "POST":
            resp = json_response(405, {"error": f"method {request.method} not allowed; use POST"})
            resp.headers["Allow"] = "POST"
            return resp
        received = self.clock()
        envelope: dict | None = None
        try:
            if self.tif_token is not None:
                self.check_gateway_headers(request)
            envelope = self._parse(request.body)
            if path_infno and str(envelope.get("infno")) != path_infno:
                raise MedinsError(f"infno {envelope.get('infno')!r} does not match the path's /{path_infno}")
            output = self.call(envelope)
            return json_response(200, self._reply(envelope, received, 0, "", output))
        except MedinsError as exc:
            return json_response(200, self._reply(envelope, received, -1, str(exc), None))

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        err = f"request body is larger than the {limit}-byte limit"
        return json_response(413, self._reply(None, self.clock(), -1, err, None))

    def check_gateway_headers(self, request: HttpRequest) -> None:
        """The gateway's x-tif-* signature: SHA256Hex(timestamp + token + nonce + timestamp)."""
        values = {}
        for name in ("x-tif-paasid", "x-tif-timestamp", "x-tif-nonce", "x-tif-signature"):
            value = (request.header(name) or "").strip()
            if not value:
                raise MedinsError(f"gateway header {name}: missing")
            values[name] = value
        stamp = values["x-tif-timestamp"]
        if not stamp.isdigit():
            raise MedinsError(f"gateway header x-tif-timestamp: {stamp!r} is not epoch seconds")
        skew = abs(self.epoch() - int(stamp))
        if skew > TIF_MAX_SKEW_S:
            raise MedinsError(
                f"gateway header x-tif-timestamp: {stamp} is {skew:.0f} s away from now "
                f"(at most {TIF_MAX_SKEW_S} s)"
            )
        expected = hashlib.sha256(
            f"{stamp}{self.tif_token}{values['x-tif-nonce']}{stamp}".encode()
        ).hexdigest()
        if values["x-tif-signature"].lower() != expected:
            raise MedinsError(
                "gateway header x-tif-signature: does not match "
                "SHA256Hex(x-tif-timestamp + token + x-tif-nonce + x-tif-timestamp)"
            )

    # ------------------------------------------------------------ envelope
    @staticmethod
    def _parse(body: bytes) -> dict:
        try:
            value = load_json(body)
        except JsonBodyError as exc:
            raise MedinsError(f"request {exc}") from None
        if not isinstance(value, dict):
            raise MedinsError(f"request body must be a JSON object, got {type(value).__name__}")
        return value

    def _reply(self, env: dict | None, received: datetime, code: int, err: str, output: Any) -> dict:
        self.serial += 1
        env = env or {}
        area = env.get("mdtrtarea_admvs")
        receiver = area if isinstance(area, str) and self._is_yunnan(area) else "530000"
        if len(err) > ERR_MSG_MAX:
            err = err[: ERR_MSG_MAX - 1] + "…"
        return {
            "infcode": code,
            "inf_refmsgid": f"{receiver}{received:%Y%m%d%H%M%S}{self.serial % 10**10:010d}",
            "refmsg_time": f"{received:%Y%m%d%H%M%S}{received.microsecond // 1000:03d}",
            "respond_time": self._stamp17(),
            "err_msg": err,
            "warn_msg": "",
            "cainfo": "",
            "signtype": "",
            "output": output if output is not None else {},
        }

    def _stamp17(self) -> str:
        now = self.clock()
        return f"{now:%Y%m%d%H%M%S}{now.microsecond // 1000:03d}"

    def _is_yunnan(self, code: str) -> bool:
        if code in self.prefectures or code in self.yunnan_extra:
            return True
        return len(code) == 6 and code.isdigit() and code[:4] + "00" in self.prefectures and code[4:] != "00"

    def check_envelope(self, env: dict) -> list[str]:
        """Every problem with the envelope, each naming the field."""
        problems: list[str] = []
        for name, rule in self.spec["envelope"]["request"].items():
            value = env.get(name)
            if value is None or value == "":
                if rule.get("required"):
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
            elif "format" in rule:
                try:
                    datetime.strptime(value, rule["format"])
                except ValueError:
                    problems.append(f"{name}: {value!r} is not in the format 'yyyy-MM-dd HH:mm:ss'")
        area = env.get("mdtrtarea_admvs")
        if isinstance(area, str) and re.fullmatch(r"\d{6}", area) and not self._is_yunnan(area):
            problems.append(f"mdtrtarea_admvs: {area} is not a Yunnan admdvs code (53xxxx)")
        problems.extend(self._check_msgid(env))
        return problems

    @staticmethod
    def _check_msgid(env: dict) -> list[str]:
        msgid, code = env.get("msgid"), env.get("fixmedins_code")
        if not isinstance(msgid, str) or not msgid or not isinstance(code, str) or not code:
            return []
        if not msgid.startswith(code):
            return [f"msgid: {msgid!r} must start with fixmedins_code {code!r}"]
        rest = msgid[len(code) :]
        if not re.fullmatch(r"\d{18}", rest):
            return [
                f"msgid: after fixmedins_code expected yyyyMMddHHmmss + 4-digit serial (18 digits), "
                f"got {rest!r}"
            ]
        try:
            datetime.strptime(rest[:14], "%Y%m%d%H%M%S")
        except ValueError:
            return [f"msgid: {rest[:14]!r} is not a valid yyyyMMddHHmmss time"]
        return []

    # --------------------------------------------------------- transactions
    def call(self, env: dict) -> dict:
        """Check one request envelope and run its transaction; returns `output` or raises MedinsError."""
        problems = self.check_envelope(env)
        if problems:
            raise MedinsError("; ".join(problems))
        infno = env["infno"]
        tx = self.spec["transactions"].get(infno)
        handler = getattr(self, f"_t{infno}", None)
        if tx is None or handler is None:
            raise MedinsError(f"infno: transaction {infno} is not supported by this centre")
        if self.strict and env["msgid"] in self.messages:
            raise MedinsError(f"msgid: {env['msgid']} was already used (报文ID重复)")
        self._check_sign_no(env, infno)
        inp = env["input"]
        problems = self._check_input(tx, inp)
        if problems:
            raise MedinsError("; ".join(problems))
        psn_no = self._psn_no_of(inp)
        if psn_no is not None and infno != "1101":
            self._check_insuplc(env, psn_no)
        effect: dict = {}
        output = handler(env, inp, effect)
        self.messages[env["msgid"]] = Logged(infno, psn_no, effect)
        return output

    def _check_sign_no(self, env: dict, infno: str) -> None:
        if infno == "9001":
            return
        sign_no = env.get("sign_no") or ""
        if not sign_no:
            if self.strict:
                raise MedinsError("sign_no: missing; sign in with 9001 first (strict mode)")
            return
        owner = self.sign_ins.get(sign_no)
        if owner is None:
            raise MedinsError(f"sign_no: {sign_no} was not issued by 9001 or is signed out")
        if owner != env["fixmedins_code"]:
            raise MedinsError(
                f"sign_no: {sign_no} belongs to institution {owner}, not {env['fixmedins_code']}"
            )

    def _check_input(self, tx: dict, inp: dict) -> list[str]:
        problems: list[str] = []
        for node, rule in tx["nodes"].items():
            value = inp.get(node)
            where = f"input.{node}"
            if rule["kind"] == "list":
                if not isinstance(value, list) or not value:
                    problems.append(f"{where}: missing or not a non-empty list")
                    continue
                items = [(f"{where}[{i}]", item) for i, item in enumerate(value)]
            else:
                if not isinstance(value, dict):
                    problems.append(f"{where}: missing or not an object")
                    continue
                items = [(where, value)]
            for at, item in items:
                if not isinstance(item, dict):
                    problems.append(f"{at}: must be an object")
                    continue
                problems.extend(self._check_item(at, item, rule))
        return problems

    def _check_item(self, at: str, item: dict, rule: dict) -> list[str]:
        problems = [
            f"{at}.{name}: missing" for name in rule.get("required", ()) if item.get(name) in (None, "")
        ]
        for name, codeset in rule.get("codes", {}).items():
            value = item.get(name)
            if value in (None, ""):
                continue
            allowed = self.codes[codeset]["codes"]
            if str(value) not in allowed:
                problems.append(f"{at}.{name}: {value!r} is not a {codeset} code ({', '.join(allowed)})")
        for name, places in rule.get("amounts", {}).items():
            value = item.get(name)
            if value in (None, ""):
                continue
            amount = _decimal(value)
            if amount is None:
                problems.append(f"{at}.{name}: {value!r} is not a number")
            elif -amount.as_tuple().exponent > places:
                problems.append(f"{at}.{name}: {value!r} has more than {places} decimal places")
        for name in rule.get("datetimes", ()):
            value = item.get(name)
            if value in (None, ""):
                continue
            if not _is_datetime(value):
                problems.append(f"{at}.{name}: {value!r} is not 'yyyy-MM-dd HH:mm:ss' or 'yyyy-MM-dd'")
        return problems

    @staticmethod
    def _psn_no_of(inp: dict) -> str | None:
        for value in inp.values():
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict) and item.get("psn_no"):
                    return str(item["psn_no"])
        return None

    def _check_insuplc(self, env: dict, psn_no: str) -> None:
        person = self._person(psn_no)
        insuplc = env.get("insuplc_admdvs")
        if not insuplc:
            raise MedinsError(
                "insuplc_admdvs: missing (required when input carries psn_no; take it from 1101)"
            )
        if insuplc != person.insuplc_admdvs:
            raise MedinsError(
                f"insuplc_admdvs: {insuplc} is not person {psn_no}'s insurance area {person.insuplc_admdvs}"
            )

    def _person(self, psn_no: str) -> Person:
        person = self.persons.get(psn_no)
        if person is None:
            raise MedinsError(f"psn_no: person {psn_no} not found (get it from 1101 first)")
        return person

    def _visit(self, mdtrt_id: Any, psn_no: Any, kind: str) -> Visit:
        visit = self.visits.get(str(mdtrt_id))
        if visit is None:
            raise MedinsError(f"mdtrt_id: visit {mdtrt_id} not found")
        if visit.kind != kind:
            what = "an outpatient" if visit.kind == "otp" else "an inpatient"
            raise MedinsError(f"mdtrt_id: visit {mdtrt_id} is {what} visit")
        if visit.psn_no != str(psn_no):
            raise MedinsError(f"psn_no: visit {mdtrt_id} belongs to person {visit.psn_no}, not {psn_no}")
        if visit.status == "cancelled":
            raise MedinsError(f"mdtrt_id: visit {mdtrt_id} was cancelled")
        return visit

    def _add_visit(self, visit: Visit) -> None:
        self.visits[visit.mdtrt_id] = visit
        self.by_number[(visit.kind, visit.number)] = visit.mdtrt_id
        ids = [i for i in self.by_person.get(visit.psn_no, []) if i in self.visits]
        self.by_person[visit.psn_no] = [*ids, visit.mdtrt_id]

    def _by_number(self, kind: str, number: str) -> Visit | None:
        """The live (not cancelled) visit registered under this outpatient/inpatient number."""
        visit = self.visits.get(self.by_number.get((kind, number), ""))
        return visit if visit is not None and visit.status != "cancelled" else None

    def _visits_of(self, psn_no: str) -> list[Visit]:
        return [self.visits[i] for i in self.by_person.get(psn_no, []) if i in self.visits]

    def _next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.clock():%Y%m%d}{self.serial:010d}"

    # 9001 / 9002 ----------------------------------------------------------
    def _t9001(self, env: dict, inp: dict, effect: dict) -> dict:
        now = self.clock()
        self.serial += 1
        sign_no = f"{now:%Y%m%d%H%M%S}{self.serial:016d}"
        self.sign_ins[sign_no] = env["fixmedins_code"]
        return {"signinoutb": {"sign_no": sign_no, "sign_time": f"{now:%Y-%m-%d %H:%M:%S}"}}

    def _t9002(self, env: dict, inp: dict, effect: dict) -> dict:
        sign_no = str(inp["signOut"]["sign_no"])
        if self.sign_ins.pop(sign_no, None) is None:
            raise MedinsError(f"input.signOut.sign_no: {sign_no} is not signed in")
        return {"signoutoutb": {"sign_time": f"{self.clock():%Y-%m-%d %H:%M:%S}"}}

    # 1101 -------------------------------------------------------------------
    def _t1101(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        cert_type = str(data["mdtrt_cert_type"])
        if data.get("certno"):
            certno, where = str(data["certno"]), "input.data.certno"
        elif cert_type in ("02", "03"):
            certno, where = str(data["mdtrt_cert_no"]), "input.data.mdtrt_cert_no"
        else:
            raise MedinsError(
                "input.data.certno: missing; an 电子凭证 (01) token is not decoded here, send certno"
            )
        if cert_type == "03" and not data.get("card_sn"):
            raise MedinsError("input.data.card_sn: missing (required for 社会保障卡, mdtrt_cert_type 03)")
        problem = idcard.problem(certno, today=self.clock().date())
        if problem:
            raise MedinsError(f"{where}: 身份证号 {certno} invalid: {problem}")
        person = self._invent(certno.upper())
        self.persons[person.psn_no] = person
        born = idcard.birth_date(person.certno)
        today = self.clock().date()
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        return {
            "baseinfo": {
                "psn_no": person.psn_no,
                "psn_cert_type": "01",
                "certno": person.certno,
                "psn_name": person.psn_name,
                "gend": person.gend,
                "naty": "01",
                "brdy": person.brdy,
                "age": age,
            },
            "insuinfo": [
                {
                    "balc": _money(person.balc),
                    "insutype": person.insutype,
                    "psn_type": person.psn_type,
                    "psn_insu_stas": "1",
                    "psn_insu_date": "2015-01-01",
                    "paus_insu_date": None,
                    "cvlserv_flag": "0",
                    "insuplc_admdvs": person.insuplc_admdvs,
                    "emp_name": "云南省某单位" if person.insutype == "310" else "",
                }
            ],
            "idetinfo": [],
        }

    def _invent(self, certno: str) -> Person:
        """A deterministic person for a valid 身份证 number: same number, same person, every run."""
        digest = hashlib.sha256(certno.encode("ascii")).digest()
        region = certno[:4] + "00"
        insuplc = region if region in self.prefectures else certno[:6]
        name = _SURNAMES[digest[0] % len(_SURNAMES)] + _GIVEN[digest[1] % len(_GIVEN)]
        if digest[2] % 2:
            name += _GIVEN[digest[3] % len(_GIVEN)]
        insutype = "310" if digest[4] % 2 == 0 else "390"
        balc = (
            Decimal(int.from_bytes(digest[5:8], "big") % 500_000) / 100 if insutype == "310" else Decimal(0)
        )
        return Person(
            psn_no=f"{insuplc}{int.from_bytes(digest[8:16], 'big') % 10**14:014d}",
            certno=certno,
            psn_name=name,
            gend=idcard.gender(certno),
            brdy=idcard.birth_date(certno).isoformat(),
            insutype=insutype,
            psn_type="11" if insutype == "310" else "14",
            balc=balc.quantize(CENT),
            insuplc_admdvs=insuplc,
        )

    # outpatient -------------------------------------------------------------
    def _t2201(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        person = self._person(str(data["psn_no"]))
        self._check_insutype(person, data["insutype"], "input.data.insutype")
        number = str(data["ipt_otp_no"])
        existing = self._by_number("otp", number)
        if existing is not None:
            raise MedinsError(
                f"input.data.ipt_otp_no: {number} is already registered as visit {existing.mdtrt_id}"
            )
        visit = Visit(
            self._next_id(env["mdtrtarea_admvs"]),
            person.psn_no,
            str(data["insutype"]),
            "otp",
            number,
            "registered",
        )
        self._add_visit(visit)
        effect["visit"] = visit.mdtrt_id
        return {"data": {"mdtrt_id": visit.mdtrt_id, "psn_no": person.psn_no, "ipt_otp_no": number}}

    def _t2202(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        visit = self._visit(data["mdtrt_id"], data["psn_no"], "otp")
        if visit.number != str(data["ipt_otp_no"]):
            raise MedinsError(
                f"input.data.ipt_otp_no: {data['ipt_otp_no']} is not visit {visit.mdtrt_id}'s {visit.number}"
            )
        self._cancel(visit)
        return {}

    def _cancel(self, visit: Visit) -> None:
        active = visit.active_settlements()
        if active:
            raise MedinsError(
                f"mdtrt_id: visit {visit.mdtrt_id} has settlement {active[0].setl_id}; reverse it first"
            )
        visit.status = "cancelled"

    def _t2203(self, env: dict, inp: dict, effect: dict) -> dict:
        info = inp["mdtrtinfo"]
        visit = self._visit(info["mdtrt_id"], info["psn_no"], "otp")
        visit.med_type = str(info["med_type"])
        visit.info = dict(info)
        visit.diseases = list(inp["diseinfo"])
        return {}

    def _t2204(self, env: dict, inp: dict, effect: dict) -> dict:
        return self._upload_fees(env, inp["feedetail"], "otp", effect)

    def _t2205(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        visit = self._visit(data["mdtrt_id"], data["psn_no"], "otp")
        batch = str(data["chrg_bchno"])
        chosen = [f for f in visit.fees.values() if batch == "0000" or f.chrg_bchno == batch]
        settled = [f.feedetl_sn for f in chosen if f.setl_id]
        if batch != "0000" and settled:
            raise MedinsError(
                f"input.data.chrg_bchno: batch {batch} has settled details {', '.join(settled)}"
            )
        removable = [f for f in chosen if not f.setl_id]
        if not removable:
            raise MedinsError(
                f"input.data.chrg_bchno: no unsettled fee details in batch {batch} of visit {visit.mdtrt_id}"
            )
        for fee in removable:
            del visit.fees[fee.feedetl_sn]
        return {}

    def _t2206(self, env: dict, inp: dict, effect: dict) -> dict:
        return self._settle(env, inp["data"], "otp", commit=False, effect=effect)

    def _t2207(self, env: dict, inp: dict, effect: dict) -> dict:
        return self._settle(env, inp["data"], "otp", commit=True, effect=effect)

    def _t2208(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        return self._reverse(
            self._visit(data["mdtrt_id"], data["psn_no"], "otp"), str(data["setl_id"]), effect
        )

    # inpatient -------------------------------------------------------------
    def _t2401(self, env: dict, inp: dict, effect: dict) -> dict:
        info = inp["mdtrtinfo"]
        person = self._person(str(info["psn_no"]))
        self._check_insutype(person, info["insutype"], "input.mdtrtinfo.insutype")
        number = str(info["ipt_no"])
        existing = self._by_number("ipt", number)
        if existing is not None:
            raise MedinsError(
                f"input.mdtrtinfo.ipt_no: {number} is already admitted as visit {existing.mdtrt_id}"
            )
        for visit in self._visits_of(person.psn_no):
            if visit.kind == "ipt" and visit.status == "admitted":
                raise MedinsError(
                    f"input.mdtrtinfo.psn_no: person {person.psn_no} is already in hospital "
                    f"(visit {visit.mdtrt_id})"
                )
        visit = Visit(
            self._next_id(env["mdtrtarea_admvs"]),
            person.psn_no,
            str(info["insutype"]),
            "ipt",
            number,
            "admitted",
            med_type=str(info["med_type"]),
            info=dict(info),
            diseases=list(inp["diseinfo"]),
        )
        self._add_visit(visit)
        effect["visit"] = visit.mdtrt_id
        return {"result": {"mdtrt_id": visit.mdtrt_id, "psn_no": person.psn_no, "ipt_otp_no": number}}

    def _t2402(self, env: dict, inp: dict, effect: dict) -> dict:
        info = inp["dscginfo"]
        visit = self._visit(info["mdtrt_id"], info["psn_no"], "ipt")
        if visit.status != "admitted":
            raise MedinsError(
                f"input.dscginfo.mdtrt_id: visit {visit.mdtrt_id} is {visit.status}, not admitted"
            )
        visit.status = "discharged"
        visit.info["dscginfo"] = dict(info)
        return {}

    def _t2404(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        visit = self._visit(data["mdtrt_id"], data["psn_no"], "ipt")
        if visit.fees:
            raise MedinsError(
                f"mdtrt_id: visit {visit.mdtrt_id} still has {len(visit.fees)} fee details; "
                "revoke them (2302)"
            )
        self._cancel(visit)
        return {}

    def _t2301(self, env: dict, inp: dict, effect: dict) -> dict:
        return self._upload_fees(env, inp["feedetail"], "ipt", effect)

    def _t2302(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        visit = self._visit(data["mdtrt_id"], data["psn_no"], "ipt")
        sn = str(data["feedetl_sn"])
        if sn == "0000":
            removable = [f for f in visit.fees.values() if not f.setl_id]
            if not removable:
                raise MedinsError(
                    f"input.data.feedetl_sn: visit {visit.mdtrt_id} has no unsettled fee details"
                )
        else:
            fee = visit.fees.get(sn)
            if fee is None:
                raise MedinsError(f"input.data.feedetl_sn: {sn} not found in visit {visit.mdtrt_id}")
            if fee.setl_id:
                raise MedinsError(f"input.data.feedetl_sn: {sn} is settled ({fee.setl_id})")
            removable = [fee]
        for fee in removable:
            del visit.fees[fee.feedetl_sn]
        return {}

    def _t2303(self, env: dict, inp: dict, effect: dict) -> dict:
        return self._settle(env, inp["data"], "ipt", commit=False, effect=effect)

    def _t2304(self, env: dict, inp: dict, effect: dict) -> dict:
        return self._settle(env, inp["data"], "ipt", commit=True, effect=effect)

    def _t2305(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        return self._reverse(
            self._visit(data["mdtrt_id"], data["psn_no"], "ipt"), str(data["setl_id"]), effect
        )

    # queries ----------------------------------------------------------------
    def _t5201(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        psn_no = str(data["psn_no"])
        self._person(psn_no)
        wanted = str(data.get("mdtrt_id") or "")
        rows = []
        for visit in self._visits_of(psn_no):
            if wanted and visit.mdtrt_id != wanted:
                continue
            rows.append(
                {
                    "mdtrt_id": visit.mdtrt_id,
                    "psn_no": visit.psn_no,
                    "insutype": visit.insutype,
                    "med_type": visit.med_type or "",
                    "ipt_otp_no": visit.number,
                    "begntime": str(visit.info.get("begntime", "")),
                    "vali_flag": "0" if visit.status == "cancelled" else "1",
                    "setl_ids": [s.setl_id for s in visit.active_settlements()],
                }
            )
        if wanted and not rows:
            raise MedinsError(f"input.data.mdtrt_id: visit {wanted} not found for person {psn_no}")
        return {"mdtrtinfo": rows}

    def _t5203(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        visit = self.visits.get(str(data["mdtrt_id"]))
        settlement = visit.settlements.get(str(data["setl_id"])) if visit else None
        if visit is None or visit.psn_no != str(data["psn_no"]) or settlement is None:
            raise MedinsError(
                f"input.data.setl_id: settlement {data['setl_id']} of visit {data['mdtrt_id']} "
                f"for person {data['psn_no']} not found"
            )
        output = dict(settlement.output)
        output["setlinfo"] = dict(output["setlinfo"], vali_flag="0" if settlement.reversed_by else "1")
        return output

    # 2601 -------------------------------------------------------------------
    def _t2601(self, env: dict, inp: dict, effect: dict) -> dict:
        data = inp["data"]
        omsgid, oinfno = str(data["omsgid"]), str(data["oinfno"])
        logged = self.messages.get(omsgid)
        if logged is None:
            raise MedinsError(f"input.data.omsgid: no accepted transaction with msgid {omsgid}")
        if logged.infno != oinfno:
            raise MedinsError(f"input.data.oinfno: msgid {omsgid} was a {logged.infno}, not {oinfno}")
        if oinfno not in self.spec["transactions"]["2601"]["reversible"]:
            raise MedinsError(f"input.data.oinfno: transaction {oinfno} cannot be reversed with 2601")
        if logged.psn_no != str(data["psn_no"]):
            raise MedinsError(f"input.data.psn_no: msgid {omsgid} was for person {logged.psn_no}")
        if logged.reversed:
            raise MedinsError(f"input.data.omsgid: {omsgid} was already reversed")
        visit = self.visits.get(logged.effect.get("visit", ""))
        if visit is None:
            raise MedinsError(f"input.data.omsgid: the visit of {omsgid} is no longer known")
        if oinfno in ("2201", "2401"):
            if visit.fees:
                raise MedinsError(
                    f"input.data.omsgid: visit {visit.mdtrt_id} has fee details; revoke them first"
                )
            self._cancel(visit)
        elif oinfno in ("2204", "2301"):
            sns = logged.effect["fees"]
            settled = [sn for sn in sns if sn in visit.fees and visit.fees[sn].setl_id]
            if settled:
                raise MedinsError(
                    f"input.data.omsgid: details {', '.join(settled)} are settled; "
                    "reverse the settlement first"
                )
            for sn in sns:
                visit.fees.pop(sn, None)
        else:
            self._reverse(visit, logged.effect["setl_id"], {})
        logged.reversed = True
        return {}

    # shared pieces ------------------------------------------------------------
    def _check_insutype(self, person: Person, insutype: Any, where: str) -> None:
        if str(insutype) != person.insutype:
            raise MedinsError(
                f"{where}: person {person.psn_no} is insured under {person.insutype}, not {insutype}"
            )

    def _upload_fees(self, env: dict, details: list[dict], kind: str, effect: dict) -> dict:
        first = details[0]
        visit = self._visit(first["mdtrt_id"], first["psn_no"], kind)
        if (
            kind == "otp"
            and visit.status != "registered"
            or kind == "ipt"
            and visit.status not in ("admitted", "discharged")
        ):
            raise MedinsError(f"mdtrt_id: visit {visit.mdtrt_id} is {visit.status}; fees cannot be uploaded")
        if kind == "otp" and visit.active_settlements():
            raise MedinsError(
                f"mdtrt_id: visit {visit.mdtrt_id} is settled; reverse the settlement (2208) first"
            )
        new: dict[str, Fee] = {}
        results = []
        for i, item in enumerate(details):
            at = f"input.feedetail[{i}]"
            if str(item["mdtrt_id"]) != visit.mdtrt_id or str(item["psn_no"]) != visit.psn_no:
                raise MedinsError(f"{at}: mdtrt_id/psn_no differ from the first detail's")
            sn = str(item["feedetl_sn"])
            if sn in visit.fees or sn in new:
                raise MedinsError(f"{at}.feedetl_sn: {sn} was already uploaded for visit {visit.mdtrt_id}")
            amount, cnt, pric = (_decimal(item[k]) for k in ("det_item_fee_sumamt", "cnt", "pric"))
            if amount < 0 or cnt <= 0 or pric < 0:
                raise MedinsError(f"{at}: cnt must be positive and amounts not negative")
            if abs(cnt * pric - amount) > CENT:
                raise MedinsError(
                    f"{at}.det_item_fee_sumamt: {amount} differs from "
                    f"cnt × pric = {(cnt * pric).quantize(CENT)}"
                )
            fee = self._price(item, sn, amount, env["msgid"])
            new[sn] = fee
            results.append(
                {
                    "feedetl_sn": sn,
                    "det_item_fee_sumamt": _money(amount),
                    "cnt": float(cnt),
                    "pric": float(pric),
                    "pric_uplmt_amt": float(pric),
                    "selfpay_prop": float(self.pricing["chrgitm_lv"][fee.chrgitm_lv]["selfpay_prop"]),
                    "fulamt_ownpay_amt": _money(fee.fulamt_ownpay_amt),
                    "overlmt_amt": 0.0,
                    "preselfpay_amt": _money(fee.preselfpay_amt),
                    "inscp_scp_amt": _money(fee.inscp_scp_amt),
                    "chrgitm_lv": fee.chrgitm_lv,
                    "med_chrgitm_type": str(item.get("med_chrgitm_type") or "09"),
                    "lmt_used_flag": "0",
                    "memo": "",
                }
            )
        visit.fees.update(new)
        effect.update(visit=visit.mdtrt_id, fees=list(new))
        return {"result": results}

    def _price(self, item: dict, sn: str, amount: Decimal, msgid: str) -> Fee:
        """Invented deterministic catalogue: the list code's hash picks 甲/乙/丙 (01/02/03)."""
        code = str(item["med_list_codg"])
        level = "0" + str(1 + hashlib.sha256(code.encode("utf-8")).digest()[0] % 3)
        prop = Decimal(str(self.pricing["chrgitm_lv"][level]["selfpay_prop"]))
        fulamt = amount if prop == 1 else Decimal(0)
        preself = Decimal(0) if prop == 1 else (amount * prop).quantize(CENT, rounding=ROUND_HALF_UP)
        return Fee(
            sn, str(item.get("chrg_bchno") or ""), amount, level, fulamt, preself, amount - fulamt, msgid
        )

    def _settle(self, env: dict, data: dict, kind: str, *, commit: bool, effect: dict) -> dict:
        visit = self._visit(data["mdtrt_id"], data["psn_no"], kind)
        person = self._person(visit.psn_no)
        self._check_insutype(person, data["insutype"], "input.data.insutype")
        mid = kind == "ipt" and str(data.get("mid_setl_flag")) == "1"
        active = [s for s in visit.active_settlements() if not s.mid]
        if active:
            raise MedinsError(
                f"mdtrt_id: visit {visit.mdtrt_id} is already settled (setl_id {active[0].setl_id}); "
                f"reverse it ({'2208' if kind == 'otp' else '2305'}) before settling again"
            )
        if kind == "ipt" and not mid and visit.status != "discharged":
            raise MedinsError(
                f"mdtrt_id: visit {visit.mdtrt_id} is not discharged (2402) and mid_setl_flag is not 1"
            )
        batch = str(data.get("chrg_bchno") or "0000")
        fees = [
            f
            for f in visit.fees.values()
            if not f.setl_id and (kind == "ipt" or batch == "0000" or f.chrg_bchno == batch)
        ]
        if not fees:
            raise MedinsError(
                f"mdtrt_id: visit {visit.mdtrt_id} has no unsettled fee details"
                + ("" if kind == "ipt" or batch == "0000" else f" in batch {batch}")
            )
        total = sum((f.amount for f in fees), Decimal(0))
        claimed = _decimal(data["medfee_sumamt"])
        if abs(claimed - total) > Decimal("0.001"):
            raise MedinsError(
                f"input.data.medfee_sumamt: {claimed} does not equal the unsettled details' total {total}"
            )
        ratios = self.pricing["fund_ratio"]
        ratio = Decimal(str(ratios.get(visit.insutype, ratios["default"])))
        inscp = sum((f.inscp_scp_amt for f in fees), Decimal(0))
        preself = sum((f.preselfpay_amt for f in fees), Decimal(0))
        fulamt = sum((f.fulamt_ownpay_amt for f in fees), Decimal(0))
        hifp = ((inscp - preself) * ratio).quantize(CENT, rounding=ROUND_HALF_UP)
        part = total - hifp
        acct = (
            min(person.balc, part)
            if str(data["acct_used_flag"]) == "1" and visit.insutype == "310"
            else Decimal(0)
        )
        cash = part - acct
        setl_id = self._next_id("S" + env["mdtrtarea_admvs"])
        balc_after = person.balc - acct
        if commit:
            settlement = Settlement(
                setl_id, visit.mdtrt_id, [f.feedetl_sn for f in fees], total, hifp, part, acct, cash, mid=mid
            )
            visit.settlements[setl_id] = settlement
            for fee in fees:
                fee.setl_id = setl_id
            person.balc = balc_after
            effect.update(visit=visit.mdtrt_id, setl_id=setl_id)
        setlinfo = {
            "setl_id": setl_id if commit else "",
            "mdtrt_id": visit.mdtrt_id,
            "psn_no": person.psn_no,
            "psn_name": person.psn_name,
            "psn_cert_type": "01",
            "certno": person.certno,
            "gend": person.gend,
            "naty": "01",
            "brdy": person.brdy,
            "insutype": visit.insutype,
            "psn_type": person.psn_type,
            "cvlserv_flag": "0",
            "setl_time": f"{self.clock():%Y-%m-%d %H:%M:%S}",
            "mdtrt_cert_type": str(data["mdtrt_cert_type"]),
            "med_type": str(data.get("med_type") or visit.med_type or ""),
            "medfee_sumamt": _money(total),
            "fulamt_ownpay_amt": _money(fulamt),
            "overlmt_selfpay": 0.0,
            "preselfpay_amt": _money(preself),
            "inscp_scp_amt": _money(inscp),
            "act_pay_dedc": 0.0,
            "hifp_pay": _money(hifp),
            "pool_prop_selfpay": float(1 - ratio),
            "cvlserv_pay": 0.0,
            "hifes_pay": 0.0,
            "hifmi_pay": 0.0,
            "hifob_pay": 0.0,
            "maf_pay": 0.0,
            "oth_pay": 0.0,
            "fund_pay_sumamt": _money(hifp),
            "psn_part_amt": _money(part),
            "acct_pay": _money(acct),
            "psn_cash_pay": _money(cash),
            "hosp_part_amt": 0.0,
            "balc": _money(balc_after),
            "acct_mulaid_pay": 0.0,
            "medins_setl_id": env["msgid"],
            "clr_optins": person.insuplc_admdvs,
            "clr_way": "1",
            "clr_type": "11" if kind == "otp" else "21",
        }
        setldetail = []
        if hifp:
            setldetail.append(
                {
                    "fund_pay_type": "310100" if visit.insutype == "310" else "390100",
                    "inscp_scp_amt": _money(inscp),
                    "crt_payb_lmt_amt": 0.0,
                    "fund_payamt": _money(hifp),
                    "fund_pay_type_name": "统筹基金支出",
                    "setl_proc_info": "",
                }
            )
        output = {"setlinfo": setlinfo, "setldetail": setldetail}
        if commit:
            settlement.output = output
        return output

    def _reverse(self, visit: Visit, setl_id: str, effect: dict) -> dict:
        settlement = visit.settlements.get(setl_id)
        if settlement is None:
            raise MedinsError(
                f"input.data.setl_id: settlement {setl_id} not found for visit {visit.mdtrt_id}"
            )
        if settlement.reversed_by:
            raise MedinsError(
                f"input.data.setl_id: settlement {setl_id} was already reversed ({settlement.reversed_by})"
            )
        person = self._person(visit.psn_no)
        new_id = self._next_id("R" + setl_id[1:7])
        settlement.reversed_by = new_id
        for sn in settlement.fees:
            if sn in visit.fees:
                visit.fees[sn].setl_id = None
        person.balc += settlement.acct_pay
        effect.update(visit=visit.mdtrt_id, setl_id=new_id)
        return {
            "setlinfo": {
                "mdtrt_id": visit.mdtrt_id,
                "setl_id": new_id,
                "psn_no": person.psn_no,
                "medfee_sumamt": _money(-settlement.medfee_sumamt),
                "fund_pay_sumamt": _money(-settlement.fund_pay_sumamt),
                "psn_part_amt": _money(-settlement.psn_part_amt),
                "acct_pay": _money(-settlement.acct_pay),
                "psn_cash_pay": _money(-settlement.psn_cash_pay),
                "balc": _money(person.balc),
                "setl_time": f"{self.clock():%Y-%m-%d %H:%M:%S}",
            },
            "setldetail": [],
        }


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            datetime.strptime(value, fmt)
            return True
        except ValueError:
            pass
    return False
