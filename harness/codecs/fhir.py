"""FHIR REST metadata: interaction, resource type, status and OperationOutcome issues.

The server base is not configured per channel: the first path segment shaped like a resource type
(`Patient`, `Observation`) or a FHIR keyword (`metadata`, `$operation`, `_history`) marks where the
FHIR part of the path starts, so `/fhir/Patient/1` and `/csp/healthshare/app/fhir/r4/Patient/1` read alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from harness.codecs import HttpKind, Meta, header, jsonbody, path_segments, register

_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
_KEYWORDS = ("metadata", "_history", "_search")


def _fhir_segments(path: str) -> list[str]:
    parts = path_segments(path)
    for i, part in enumerate(parts):
        if _TYPE.match(part) or part in _KEYWORDS or part.startswith("$"):
            return parts[i:]
    return []


def interaction(method: str, path: str, body_type: str | None = None) -> tuple[str, str | None, str | None]:
    """(interaction, resource type, id) for a FHIR REST call, per the FHIR RESTful API table."""
    method = method.upper()
    segs = _fhir_segments(path)
    if not segs:
        if method == "POST":
            return ("batch" if body_type == "batch" else "transaction"), None, None
        if method == "GET":
            return "search-system", None, None
        return "unknown", None, None
    first = segs[0]
    if first == "metadata":
        return "capabilities", None, None
    if first.startswith("$"):
        return "operation", None, None
    if first == "_history":
        return "history-system", None, None
    rtype = first
    rest = segs[1:]
    if not rest:
        return (
            {
                "GET": "search-type",
                "POST": "create",
                "PUT": "conditional-update",
                "DELETE": "conditional-delete",
                "PATCH": "conditional-patch",
            }.get(method, "unknown"),
            rtype,
            None,
        )
    if rest[0] == "_search":
        return "search-type", rtype, None
    if rest[0] == "_history":
        return "history-type", rtype, None
    if rest[0].startswith("$"):
        return "operation", rtype, None
    rid = rest[0]
    if len(rest) == 1:
        return (
            {"GET": "read", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}.get(method, "unknown"),
            rtype,
            rid,
        )
    if rest[1] == "_history":
        return ("vread" if len(rest) > 2 else "history-instance"), rtype, rid
    if rest[1].startswith("$"):
        return "operation", rtype, rid
    return "unknown", rtype, rid


def _outcome_issues(resource: dict) -> list[dict]:
    issues = []
    for issue in resource.get("issue") or []:
        if isinstance(issue, dict):
            details = issue.get("details") or {}
            issues.append(
                {
                    "severity": issue.get("severity"),
                    "code": issue.get("code"),
                    "diagnostics": issue.get("diagnostics")
                    or (details.get("text") if isinstance(details, dict) else None),
                }
            )
    return issues


FHIR_IGNORES = (
    "meta.lastUpdated", "meta.versionId", "id", "entry[*].resource.id", "entry[*].resource.meta.*",
    "entry[*].fullUrl", "entry[*].response.location", "entry[*].response.etag",
    "entry[*].response.lastModified", "header.location", "header.etag", "header.last-modified",
    "CapabilityStatement.date",
)  # fmt: skip


class FhirCodec(HttpKind):
    kind = "fhir"
    compare_ignores = FHIR_IGNORES

    def read_request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Meta:
        problems: list[str] = []
        body_type = None
        body_resource = None
        if body and method.upper() in ("POST", "PUT", "PATCH"):
            doc = jsonbody.load(body, problems, "request body")
            if isinstance(doc, dict):
                body_resource = doc.get("resourceType")
                body_type = doc.get("type") if body_resource == "Bundle" else None
        kind, rtype, rid = interaction(method, path, body_type)
        meta: Meta = {"interaction": kind, "resource_type": rtype or body_resource}
        if rid:
            meta["id"] = rid
        if body_resource == "Bundle" and body_type:
            meta["bundle_type"] = body_type
        if problems:
            meta["problems"] = problems
        return meta

    def read_response(self, request: Meta, status: int, headers: Mapping[str, str], body: bytes) -> Meta:
        problems: list[str] = []
        meta: Meta = {"status": status}
        location = header(headers, "Location") or header(headers, "Content-Location")
        if location:
            meta["location"] = location
        if body:
            doc = jsonbody.load(body, problems, "response body")
            if isinstance(doc, dict):
                rtype = doc.get("resourceType")
                meta["response_resource_type"] = rtype
                if rtype == "OperationOutcome":
                    meta["issues"] = _outcome_issues(doc)
                elif rtype == "Bundle":
                    meta["bundle_type"] = doc.get("type")
                    if "total" in doc:
                        meta["total"] = doc["total"]
                    entries = doc.get("entry") or []
                    meta["entries"] = len(entries) if isinstance(entries, list) else None
        if problems:
            meta["problems"] = problems
        return meta


    def message_type(self, meta: Meta) -> str | None:
        parts = [meta.get("interaction"), meta.get("resource_type")]
        return " ".join(str(p) for p in parts if p) or None

    def control_id(self, meta: Meta) -> str | None:
        rid = meta.get("id")
        return None if rid is None else str(rid)


register(FhirCodec())
