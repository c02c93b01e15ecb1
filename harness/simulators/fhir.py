"""An in-memory FHIR R4 server, sans-IO: CRUD, search, transaction/batch Bundles, OperationOutcomes.

Resources are checked with fhir.resources' R4B models (structure, cardinality, regex; R4B is the R4
line the library ships) plus the required bindings it does not enforce (specs/fhir/required-bindings.yaml).
Structural problems answer 400, binding violations 422, each as an OperationOutcome naming the element.
The store keeps every version (vread, ETag/If-Match) and forgets the oldest resources past a bound.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from harness.simulators.wire import HttpRequest, HttpResponse, JsonBodyError, load_json
from harness.spec.fhir import FhirError, Validator, issue, operation_outcome

FHIR_JSON = "application/fhir+json; charset=utf-8"
ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
SEARCH_COMMON = {"_id", "identifier", "_lastUpdated", "_count", "_offset", "_format", "_summary", "_total"}
# Resource types whose `patient` search parameter follows this element (else `subject`).
PATIENT_ELEMENTS = ("subject", "patient", "beneficiary", "individual")


def _now() -> datetime:
    return datetime.now(UTC)


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FhirSimulator:
    name = "fhir"

    def __init__(
        self,
        *,
        base: str = "/fhir",
        validator: Validator | None = None,
        clock: Callable[[], datetime] = _now,
        max_resources: int = 100_000,
        default_count: int = 50,
    ) -> None:
        self.base = "/" + base.strip("/")
        self.validator = validator or Validator()
        self.clock = clock
        self.max_resources = max_resources
        self.default_count = default_count
        # (type, id) -> list of versions; a version is the stored resource dict, or None for a deletion.
        self.store: OrderedDict[tuple[str, str], list[dict | None]] = OrderedDict()
        self.by_type: dict[str, dict[str, None]] = {}  # type -> ids in store order, so searches scan one type
        self.next_id = 0

    # ----------------------------------------------------------------- HTTP
    def handle(self, request: HttpRequest) -> HttpResponse:
        try:
            return self._route(request)
        except FhirError as exc:
            return self._outcome(exc.status, exc.issues)

    def too_large(self, request: HttpRequest, limit: int) -> HttpResponse:
        return self._outcome(
            413, [issue(f"request body is larger than the {limit}-byte limit", code="too-costly")]
        )

    def _outcome(self, status: int, issues: list[dict]) -> HttpResponse:
        return self._json(status, operation_outcome(issues))

    @staticmethod
    def _json(status: int, value: dict, headers: dict[str, str] | None = None) -> HttpResponse:
        body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return HttpResponse(status, {"Content-Type": FHIR_JSON, **(headers or {})}, body)

    def _base_url(self, request: HttpRequest) -> str:
        return f"http://{request.header('host') or 'localhost'}{self.base}"

    def _route(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path != self.base and not path.startswith(self.base + "/"):
            raise FhirError.one(404, f"no FHIR endpoint at {path}; the base is {self.base}", code="not-found")
        parts = [p for p in path[len(self.base) :].split("/") if p]
        method = request.method
        base_url = self._base_url(request)
        if not parts:
            if method == "POST":
                return self._bundle(self._body(request), base_url)
            raise FhirError.one(
                405, f"{method} {self.base} is not supported; POST a transaction or batch Bundle"
            )
        if parts == ["metadata"] and method == "GET":
            return self._json(200, self.capability_statement(base_url))
        rtype = parts[0]
        if not self.validator.is_resource_type(rtype):
            raise FhirError.one(404, f"unknown resource type {rtype!r}", code="not-supported")
        if len(parts) == 1:
            if method == "GET":
                return self._json(
                    200, self.search(rtype, request.params(), base_url, request.header("prefer"))
                )
            if method == "PUT" and request.query:
                resource = self._body(request)
                self._checked(resource, rtype)
                rid = self._conditional_id(rtype, request.params(), resource)
                return self._result_response(self.update(resource, rtype, rid, base_url, checked=True))
            if method == "POST":
                return self._result_response(
                    self.create(self._body(request), rtype, base_url, request.header("if-none-exist"))
                )
        elif len(parts) == 2 and parts[1] == "_search" and method == "POST":
            params = parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
            return self._json(200, self.search(rtype, params, base_url, request.header("prefer")))
        elif len(parts) == 2:
            rid = self._check_id(parts[1])
            if method in ("GET", "HEAD"):
                return self._read_response(rtype, rid, None, base_url)
            if method == "PUT":
                res = self.update(self._body(request), rtype, rid, base_url, request.header("if-match"))
                return self._result_response(res)
            if method == "DELETE":
                self.delete(rtype, rid)
                return HttpResponse(204, {})
        elif len(parts) == 4 and parts[2] == "_history" and method == "GET":
            return self._read_response(rtype, self._check_id(parts[1]), parts[3], base_url)
        raise FhirError.one(405, f"{method} {path} is not a supported FHIR interaction", code="not-supported")

    def _body(self, request: HttpRequest) -> dict:
        ctype = (request.header("content-type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/fhir+json", "application/json", "application/json+fhir"):
            raise FhirError.one(
                415,
                f"Content-Type {ctype or '(none)'} is not supported; send application/fhir+json",
                code="not-supported",
            )
        try:
            value = load_json(request.body)
        except JsonBodyError as exc:
            raise FhirError.one(400, str(exc), code="structure") from None
        if not isinstance(value, dict):
            raise FhirError.one(
                400, f"body must be a JSON object (a resource), got {type(value).__name__}", code="structure"
            )
        return value

    @staticmethod
    def _check_id(rid: str) -> str:
        if not ID_RE.fullmatch(rid):
            raise FhirError.one(400, f"{rid!r} is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})", code="value")
        return rid

    def _read_response(self, rtype: str, rid: str, vid: str | None, base_url: str) -> HttpResponse:
        resource = self.read(rtype, rid, vid)
        meta = resource["meta"]
        return self._json(
            200,
            resource,
            {"ETag": f'W/"{meta["versionId"]}"', "Last-Modified": _http_date(meta["lastUpdated"])},
        )

    @staticmethod
    def _result_response(result: dict) -> HttpResponse:
        headers = {"Location": result["location"], "ETag": result["etag"]}
        if result.get("lastModified"):
            headers["Last-Modified"] = _http_date(result["lastModified"])
        body = result.get("resource") or operation_outcome(
            [issue(result["diagnostics"], severity="information", code="informational")]
        )
        return HttpResponse(
            result["status"],
            {"Content-Type": FHIR_JSON, **headers},
            json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        )

    # ---------------------------------------------------------- interactions
    def read(self, rtype: str, rid: str, vid: str | None = None) -> dict:
        history = self.store.get((rtype, rid))
        if history is None:
            raise FhirError.one(404, f"{rtype}/{rid} not found", code="not-found")
        if vid is not None:
            if not vid.isdigit() or not 1 <= int(vid) <= len(history) or history[int(vid) - 1] is None:
                raise FhirError.one(404, f"{rtype}/{rid}/_history/{vid} not found", code="not-found")
            return history[int(vid) - 1]
        current = history[-1]
        if current is None:
            raise FhirError.one(410, f"{rtype}/{rid} was deleted", code="deleted")
        return current

    def _checked(self, resource: dict, rtype: str | None) -> dict:
        status, problems = self.validator.validate(resource)
        if status:
            raise FhirError(status, problems)
        if rtype is not None and resource["resourceType"] != rtype:
            raise FhirError.one(
                400,
                f"resourceType {resource['resourceType']!r} does not match the URL's {rtype!r}",
                expression="resourceType",
            )
        return resource

    def _new_id(self, rtype: str) -> str:
        while True:
            self.next_id += 1
            rid = str(self.next_id)
            if (rtype, rid) not in self.store:
                return rid

    def _store(self, rtype: str, rid: str, resource: dict | None) -> dict:
        history = self.store.get((rtype, rid), [])
        stamp = _instant(self.clock())
        if resource is not None:
            meta = dict(resource.get("meta") or {})
            meta["versionId"] = str(len(history) + 1)
            meta["lastUpdated"] = stamp
            skip = ("resourceType", "id", "meta")
            rest = {k: v for k, v in copy.deepcopy(resource).items() if k not in skip}
            resource = {"resourceType": rtype, "id": rid, "meta": meta, **rest}
        self.store[(rtype, rid)] = [*history, resource]
        self.store.move_to_end((rtype, rid))
        ids = self.by_type.setdefault(rtype, {})
        ids.pop(rid, None)
        ids[rid] = None
        while len(self.store) > self.max_resources:
            (old_type, old_id), _ = self.store.popitem(last=False)
            self.by_type[old_type].pop(old_id, None)
        version = str(len(history) + 1)
        return {
            "version": version,
            "lastModified": stamp,
            "resource": resource,
            "created": not history or history[-1] is None,
        }

    def create(
        self,
        resource: dict,
        rtype: str | None,
        base_url: str,
        if_none_exist: str | None = None,
        *,
        checked=False,
    ) -> dict:
        if not checked:
            self._checked(resource, rtype)
        rtype = resource["resourceType"]
        if if_none_exist:
            matches = self._matches(
                rtype, parse_qsl(if_none_exist.lstrip("?"), keep_blank_values=True), strict=True
            )
            if len(matches) > 1:
                raise FhirError.one(
                    412,
                    f"If-None-Exist {if_none_exist!r} matches {len(matches)} resources",
                    code="multiple-matches",
                )
            if matches:
                found = matches[0]
                return self._result(200, found, base_url, "resource already exists (If-None-Exist)")
        stored = self._store(rtype, self._new_id(rtype), resource)
        return self._result(201, stored["resource"], base_url, "created")

    def update(
        self,
        resource: dict,
        rtype: str,
        rid: str,
        base_url: str,
        if_match: str | None = None,
        *,
        checked=False,
    ) -> dict:
        if not checked:
            self._checked(resource, rtype)
        if resource.get("id") != rid:
            raise FhirError.one(
                400,
                f"resource id {resource.get('id')!r} does not match the URL's id {rid!r}",
                expression=f"{rtype}.id",
            )
        history = self.store.get((rtype, rid))
        if if_match:
            current = history[-1]["meta"]["versionId"] if history and history[-1] else None
            wanted = if_match.strip().removeprefix("W/").strip('"')
            if current != wanted:
                raise FhirError.one(
                    412, f"If-Match {if_match} but the current version is {current}", code="conflict"
                )
        stored = self._store(rtype, rid, resource)
        return self._result(
            201 if stored["created"] else 200,
            stored["resource"],
            base_url,
            "created" if stored["created"] else "updated",
        )

    def delete(self, rtype: str, rid: str) -> None:
        history = self.store.get((rtype, rid))
        if history and history[-1] is not None:
            self._store(rtype, rid, None)

    @staticmethod
    def _result(status: int, resource: dict, base_url: str, text: str) -> dict:
        meta = resource["meta"]
        return {
            "status": status,
            "location": f"{base_url}/{resource['resourceType']}/{resource['id']}/_history/"
            f"{meta['versionId']}",
            "etag": f'W/"{meta["versionId"]}"',
            "lastModified": meta["lastUpdated"],
            "resource": resource,
            "diagnostics": text,
        }

    # ---------------------------------------------------------------- search
    def search(
        self, rtype: str, params: list[tuple[str, str]], base_url: str, prefer: str | None = None
    ) -> dict:
        strict = bool(prefer and "handling=strict" in prefer)
        count, offset = self.default_count, 0
        criteria = []
        for name, value in params:
            if name == "_count":
                count = self._int_param(name, value)
            elif name == "_offset":
                offset = self._int_param(name, value)
            else:
                criteria.append((name, value))
        warnings: list[dict] = []
        matches = self._matches(rtype, criteria, strict=strict, warnings=warnings)
        page = matches[offset : offset + count]
        query = "&".join(f"{quote(k)}={quote(v)}" for k, v in criteria)
        link = [{"relation": "self", "url": f"{base_url}/{rtype}?{query}&_count={count}&_offset={offset}"}]
        if offset + count < len(matches):
            link.append(
                {
                    "relation": "next",
                    "url": f"{base_url}/{rtype}?{query}&_count={count}&_offset={offset + count}",
                }
            )
        entries = [
            {"fullUrl": f"{base_url}/{rtype}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in page
        ]
        if warnings:
            entries.append({"resource": operation_outcome(warnings), "search": {"mode": "outcome"}})
        return {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": _instant(self.clock())},
            "type": "searchset",
            "total": len(matches),
            "link": link,
            "entry": entries,
        }

    @staticmethod
    def _int_param(name: str, value: str) -> int:
        if not value.isdigit():
            raise FhirError.one(
                400,
                f"search parameter {name}={value!r} must be a non-negative integer",
                code="value",
                expression=name,
            )
        return int(value)

    def _matches(
        self, rtype: str, criteria: list[tuple[str, str]], *, strict: bool, warnings: list[dict] | None = None
    ) -> list[dict]:
        tests: list[Callable[[dict], bool]] = []
        for name, value in criteria:
            base, _, modifier = name.partition(":")
            if base in ("_format", "_summary", "_total"):
                continue
            if base == "_id":
                ids = set(value.split(","))
                tests.append(lambda r, ids=ids: r["id"] in ids)
            elif base == "identifier":
                tests.append(self._identifier_test(value))
            elif base == "_lastUpdated":
                tests.append(self._last_updated_test(value))
            elif base in ("patient", "subject") and rtype != "Patient":
                tests.append(self._reference_test(base, value))
            else:
                text = f"unknown search parameter {name!r} for {rtype}"
                if strict:
                    raise FhirError.one(400, text, code="not-supported", expression=name)
                if warnings is not None:
                    warnings.append(issue(text + " (ignored)", severity="warning", code="not-supported"))
        found = []
        for rid in self.by_type.get(rtype, ()):
            current = self.store[(rtype, rid)][-1]
            if current is not None and all(test(current) for test in tests):
                found.append(current)
        return found

    @staticmethod
    def _identifier_test(value: str) -> Callable[[dict], bool]:
        options = []
        for one in value.split(","):
            if "|" in one:
                system, _, code = one.partition("|")
                options.append((system, code))
            else:
                options.append((None, one))

        def test(resource: dict) -> bool:
            idents = resource.get("identifier") or []
            if isinstance(idents, dict):
                idents = [idents]
            for ident in idents:
                for system, code in options:
                    if system is not None and (ident.get("system") or "") != system:
                        continue
                    if code and ident.get("value") != code:
                        continue
                    return True
            return False

        return test

    @staticmethod
    def _reference_test(name: str, value: str) -> Callable[[dict], bool]:
        wanted = value if "/" in value else f"Patient/{value}"
        elements = PATIENT_ELEMENTS if name == "patient" else ("subject",)

        def test(resource: dict) -> bool:
            for element in elements:
                refs = resource.get(element)
                for ref in refs if isinstance(refs, list) else [refs]:
                    text = ref.get("reference") if isinstance(ref, dict) else None
                    if text and (text == wanted or text.endswith("/" + wanted)):
                        if name == "patient" and not wanted.startswith("Patient/"):
                            continue
                        return True
            return False

        return test

    @staticmethod
    def _last_updated_test(value: str) -> Callable[[dict], bool]:
        match = re.fullmatch(r"(eq|ne|gt|lt|ge|le|sa|eb)?(.+)", value)
        if match is None:
            raise FhirError.one(400, "search parameter _lastUpdated needs a value", code="value")
        prefix, text = match.group(1) or "eq", match.group(2)
        start, end = _date_range(text, "_lastUpdated")

        def test(resource: dict) -> bool:
            moment = datetime.fromisoformat(resource["meta"]["lastUpdated"].replace("Z", "+00:00"))
            return {
                "eq": start <= moment < end,
                "ne": not start <= moment < end,
                "gt": moment >= end,
                "sa": moment >= end,
                "lt": moment < start,
                "eb": moment < start,
                "ge": moment >= start,
                "le": moment < end,
            }[prefix]

        return test

    # ------------------------------------------------------- bundles
    def _bundle(self, bundle: dict, base_url: str) -> HttpResponse:
        if bundle.get("resourceType") != "Bundle":
            raise FhirError.one(
                400,
                f"POST to the base must be a Bundle, got resourceType {bundle.get('resourceType')!r}",
                expression="resourceType",
            )
        btype = bundle.get("type")
        if btype not in ("transaction", "batch"):
            raise FhirError.one(
                400,
                f"Bundle.type must be transaction or batch, got {btype!r}",
                code="value",
                expression="Bundle.type",
            )
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise FhirError.one(
                400, "Bundle.entry must be a list", code="structure", expression="Bundle.entry"
            )
        if btype == "transaction":
            return self._json(200, self.transaction(entries, base_url))
        return self._json(200, self.batch(entries, base_url))

    def _plan(self, i: int, entry: Any) -> dict:
        """Check one entry; returns {method, type, id, resource, url, params} or raises FhirError."""
        where = f"Bundle.entry[{i}]"
        if not isinstance(entry, dict):
            raise FhirError.one(400, f"{where} must be an object", code="structure", expression=where)
        request = entry.get("request")
        if not isinstance(request, dict) or not request.get("method") or not request.get("url"):
            raise FhirError.one(
                400,
                f"{where}.request with method and url is required in a transaction/batch",
                code="required",
                expression=f"{where}.request",
            )
        method = request["method"]
        if method not in ("GET", "HEAD", "POST", "PUT", "DELETE"):
            raise FhirError.one(
                400,
                f"{where}.request.method {method!r} is not supported",
                code="not-supported",
                expression=f"{where}.request.method",
            )
        split = urlsplit(str(request["url"]))
        parts = [p for p in split.path.split("/") if p]
        base_parts = [p for p in self.base.split("/") if p]
        if (split.scheme or split.path.startswith("/")) and parts[: len(base_parts)] == base_parts:
            parts = parts[len(base_parts) :]  # an absolute URL or path under this server's base
        if not parts or not self.validator.is_resource_type(parts[0]):
            raise FhirError.one(
                400,
                f"{where}.request.url {request['url']!r} names no known resource type",
                code="not-supported",
                expression=f"{where}.request.url",
            )
        plan = {
            "method": method,
            "type": parts[0],
            "id": parts[1] if len(parts) > 1 else None,
            "params": parse_qsl(split.query, keep_blank_values=True),
            "fullUrl": entry.get("fullUrl"),
            "resource": entry.get("resource"),
            "ifNoneExist": request.get("ifNoneExist"),
            "ifMatch": request.get("ifMatch"),
            "where": where,
        }
        if plan["id"] is not None:
            self._check_id(plan["id"])
        if method in ("POST", "PUT"):
            resource = plan["resource"]
            if not isinstance(resource, dict):
                raise FhirError.one(
                    400,
                    f"{where}.resource is required for {method}",
                    code="required",
                    expression=f"{where}.resource",
                )
            if method == "PUT" and plan["id"] is None and not plan["params"]:
                raise FhirError.one(
                    400,
                    f"{where}.request.url {request['url']!r} has no id: PUT needs Type/id "
                    "(or Type?search for a conditional update)",
                    code="required",
                    expression=f"{where}.request.url",
                )
            status, problems = self.validator.validate(resource)
            if status:
                for p in problems:
                    p["diagnostics"] = f"{where}.resource: {p['diagnostics']}"
                    p["expression"] = [
                        f"{where}.resource." + e.partition(".")[2] if "." in e else e
                        for e in p.get("expression", [])
                    ]
                raise FhirError(status, problems)
        if method == "DELETE" and plan["id"] is None:
            raise FhirError.one(
                400,
                f"{where}.request.url: conditional delete is not supported; use Type/id",
                code="not-supported",
                expression=f"{where}.request.url",
            )
        return plan

    def transaction(self, entries: list, base_url: str) -> dict:
        """All or nothing: every entry is checked first; a failure leaves the store untouched."""
        plans = [self._plan(i, e) for i, e in enumerate(entries)]
        # Server-assigned ids for POSTs, so urn:uuid references can be rewritten before anything is stored.
        mapping: dict[str, str] = {}
        for plan in plans:
            if plan["method"] == "POST":
                plan["id"] = self._new_id(plan["type"])
            elif plan["method"] == "PUT" and plan["id"] is None:
                plan["id"] = self._conditional_id(plan["type"], plan["params"], plan["resource"])
            if plan["fullUrl"] and plan["id"] and plan["method"] in ("POST", "PUT"):
                mapping[plan["fullUrl"]] = f"{plan['type']}/{plan['id']}"
        for plan in plans:
            if plan["resource"] is not None and mapping:
                plan["resource"] = _rewrite_references(plan["resource"], mapping)
            for ref in _placeholders(plan["resource"]):
                raise FhirError.one(
                    400,
                    f"{plan['where']}.resource: reference {ref} matches no entry's fullUrl "
                    "in this transaction",
                    code="not-found",
                    expression=f"{plan['where']}.resource",
                )
        snapshot = OrderedDict(self.store)  # histories are replaced, never mutated: a shallow copy suffices
        order = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}
        responses: list[dict | None] = [None] * len(plans)
        try:
            for index in sorted(range(len(plans)), key=lambda n: order[plans[n]["method"]]):
                responses[index] = self._execute(plans[index], base_url, assigned=True)
        except FhirError as exc:
            self.store = snapshot
            self.by_type = {}
            for t, i in snapshot:
                self.by_type.setdefault(t, {})[i] = None
            for p in exc.issues:
                p["diagnostics"] = f"{plans[index]['where']}: {p['diagnostics']}"
            raise FhirError(exc.status, exc.issues) from None
        return {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "transaction-response",
            "entry": responses,
        }

    def batch(self, entries: list, base_url: str) -> dict:
        """Each entry on its own: failures are reported in that entry's response.outcome."""
        responses = []
        for i, entry in enumerate(entries):
            try:
                responses.append(self._execute(self._plan(i, entry), base_url, assigned=False))
            except FhirError as exc:
                responses.append(
                    {"response": {"status": f"{exc.status}", "outcome": operation_outcome(exc.issues)}}
                )
        return {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "type": "batch-response",
            "entry": responses,
        }

    def _conditional_id(self, rtype: str, params: list[tuple[str, str]], resource: dict) -> str:
        """The id a conditional update writes to: the one match, or a new id; several matches are 412."""
        matches = self._matches(rtype, params, strict=True)
        if len(matches) > 1:
            raise FhirError.one(
                412, f"conditional update matches {len(matches)} {rtype} resources", code="multiple-matches"
            )
        rid = matches[0]["id"] if matches else self._new_id(rtype)
        if resource.get("id") not in (None, rid):
            raise FhirError.one(
                400,
                f"resource id {resource['id']!r} differs from the matched id {rid!r}",
                expression=f"{rtype}.id",
            )
        resource["id"] = rid
        return rid

    def _execute(self, plan: dict, base_url: str, *, assigned: bool) -> dict:
        if plan["method"] == "PUT" and plan["id"] is None:
            plan["id"] = self._conditional_id(plan["type"], plan["params"], plan["resource"])
        method, rtype, rid = plan["method"], plan["type"], plan["id"]
        if method in ("GET", "HEAD"):
            if rid is None:
                return {
                    "resource": self.search(rtype, plan["params"], base_url),
                    "response": {"status": "200 OK"},
                }
            resource = self.read(rtype, rid)
            return {
                "resource": resource,
                "response": {"status": "200 OK", "etag": f'W/"{resource["meta"]["versionId"]}"'},
            }
        if method == "DELETE":
            self.delete(rtype, rid)
            return {"response": {"status": "204 No Content"}}
        if method == "POST":
            if plan["ifNoneExist"]:
                matches = self._matches(rtype, parse_qsl(plan["ifNoneExist"].lstrip("?")), strict=True)
                if matches:
                    return self._entry_response(self._result(200, matches[0], base_url, "exists"))
            if rtype != plan["resource"]["resourceType"]:
                raise FhirError.one(
                    400,
                    f"request.url type {rtype} differs from the resource's "
                    f"{plan['resource']['resourceType']}",
                )
            if assigned:
                stored = self._store(rtype, rid, plan["resource"])
                return self._entry_response(self._result(201, stored["resource"], base_url, "created"))
            return self._entry_response(self.create(plan["resource"], rtype, base_url, checked=True))
        if rtype != plan["resource"]["resourceType"]:
            raise FhirError.one(
                400,
                f"request.url type {rtype} differs from the resource's {plan['resource']['resourceType']}",
            )
        return self._entry_response(
            self.update(plan["resource"], rtype, rid, base_url, plan["ifMatch"], checked=True)
        )

    @staticmethod
    def _entry_response(result: dict) -> dict:
        status = {200: "200 OK", 201: "201 Created"}[result["status"]]
        resource = result["resource"]
        location = f"{resource['resourceType']}/{resource['id']}/_history/{resource['meta']['versionId']}"
        return {
            "response": {
                "status": status,
                "location": location,
                "etag": result["etag"],
                "lastModified": result["lastModified"],
            }
        }

    # ------------------------------------------------------------ metadata
    def capability_statement(self, base_url: str) -> dict:
        interactions = [{"code": c} for c in ("read", "vread", "update", "delete", "create", "search-type")]
        params = [
            {"name": "_id", "type": "token"},
            {"name": "identifier", "type": "token"},
            {"name": "_lastUpdated", "type": "date"},
            {"name": "patient", "type": "reference"},
            {"name": "subject", "type": "reference"},
        ]
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": _instant(self.clock()),
            "kind": "instance",
            "software": {"name": "harness FHIR simulator"},
            "implementation": {"description": "in-memory FHIR R4 simulator", "url": base_url},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "json"],
            "rest": [
                {
                    "mode": "server",
                    "resource": [
                        {
                            "type": t,
                            "versioning": "versioned",
                            "readHistory": True,
                            "updateCreate": True,
                            "conditionalCreate": True,
                            "interaction": interactions,
                            "searchParam": params,
                        }
                        for t in COMMON_TYPES
                    ],
                    "interaction": [{"code": "transaction"}, {"code": "batch"}],
                }
            ],
        }


COMMON_TYPES = (
    "Patient Practitioner PractitionerRole Organization Location Encounter EpisodeOfCare Observation "
    "DiagnosticReport ServiceRequest Specimen Condition Procedure AllergyIntolerance MedicationRequest "
    "MedicationDispense MedicationAdministration Medication Immunization Appointment Schedule Slot "
    "DocumentReference Composition Account Coverage ChargeItem Claim ClaimResponse Device Provenance "
    "RelatedPerson MessageHeader Consent Task Substance NutritionOrder SupplyRequest ResearchStudy Linkage"
).split()


def _placeholders(value: Any) -> Iterable[str]:
    """urn:uuid:/urn:oid: references left unresolved (placeholders a transaction must resolve)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item.startswith(("urn:uuid:", "urn:oid:")):
                yield item
            else:
                yield from _placeholders(item)
    elif isinstance(value, list):
        for item in value:
            yield from _placeholders(item)


def _http_date(instant: str) -> str:
    """A FHIR instant as an HTTP date (RFC 9110 IMF-fixdate) for Last-Modified."""
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def _rewrite_references(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in mapping:
                out[key] = mapping[item]
            else:
                out[key] = _rewrite_references(item, mapping)
        return out
    if isinstance(value, list):
        return [_rewrite_references(v, mapping) for v in value]
    return value


def _date_range(text: str, name: str) -> tuple[datetime, datetime]:
    """The [start, end) interval a FHIR date/dateTime search value covers at its precision."""
    try:
        if re.fullmatch(r"\d{4}", text):
            start = datetime(int(text), 1, 1, tzinfo=UTC)
            return start, start.replace(year=start.year + 1)
        if re.fullmatch(r"\d{4}-\d{2}", text):
            start = datetime(int(text[:4]), int(text[5:]), 1, tzinfo=UTC)
            nxt = (
                start.replace(year=start.year + 1, month=1)
                if start.month == 12
                else start.replace(month=start.month + 1)
            )
            return start, nxt
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            start = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return start, start + timedelta(days=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        step = timedelta(milliseconds=1) if moment.microsecond else timedelta(seconds=1)
        return moment, moment + step
    except ValueError:
        raise FhirError.one(
            400,
            f"search parameter {name}: {text!r} is not a FHIR date or dateTime",
            code="value",
            expression=name,
        ) from None
