"""Comparators for HTTP exchanges: JSON bodies (medins, FHIR, CDC, raw) and XML bodies (SOAP).

Each side's response is read with `harness.http_wire`, flattened to path -> value (`status`, then
`output.setlinfo.setl_id`, `entry[0].resource.id` for JSON; `/Envelope/Body/.../@typeCode` for XML,
the HL7 v3 document inside a SOAP `message`/`return` element flattened under `...#`), and judged by
the generic `classify` with each kind's code (medins `infcode`, FHIR status, MCCI acknowledgement or
SOAP fault, CDC `result`) and its default ignore paths: what a server assigns on every call.
Ignore patterns are globs over these paths (`[` is literal, `*` any text).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from harness import codecs, http_summary
from harness.http_wire import HttpError, read_message
from harness.replay.compare import (
    NO_REPLY_OUTCOMES,
    Comparison,
    Difference,
    IgnoreRule,
    Observed,
    classify,
    diff_fields,
)

KEPT_HEADERS = ("content-type", "location", "etag", "last-modified", "retry-after")


def glob_rule(rule: IgnoreRule) -> IgnoreRule:
    """The rule with `[` made literal for fnmatch (`entry[*].id` matches `entry[3].id`)."""
    return IgnoreRule(rule.pattern.replace("[", "[[]"), rule.timestamps_only)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def flatten_json(doc: Any, prefix: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    out = {} if out is None else out
    if isinstance(doc, dict):
        if not doc and prefix:
            out[prefix] = "{}"
        for key, value in doc.items():
            flatten_json(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(doc, list):
        if not doc and prefix:
            out[prefix] = "[]"
        for i, value in enumerate(doc):
            flatten_json(value, f"{prefix}[{i}]", out)
    else:
        out[prefix or "$"] = _text(doc)
    return out


def flatten_xml(
    element: Any, prefix: str = "", out: dict[str, str] | None = None, index: int = 0
) -> dict[str, str]:
    """Element paths (`/Envelope/Body/x[2]/@code`) -> text; an XML document held as text inside an
    element (the HL7 v3 message in a SOAP call) continues under `path#`."""
    from harness import safexml

    out = {} if out is None else out
    path = f"{prefix}/{safexml.local_name(element)}" + (f"[{index}]" if index else "")
    for key, value in element.attrib.items():
        out[f"{path}/@{key.rpartition('}')[2]}"] = value
    text = (element.text or "").strip()
    if text.startswith("<"):
        try:
            flatten_xml(safexml.parse(text.encode("utf-8")), path + "#", out)
        except ValueError:
            out[path] = text
    elif text:
        out[path] = text
    children = [c for c in element if isinstance(c.tag, str)]
    counts: dict[str, int] = {}
    for child in children:
        name = safexml.local_name(child)
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    for child in children:
        name = safexml.local_name(child)
        seen[name] = seen.get(name, 0) + 1
        flatten_xml(child, path, out, seen[name] if counts[name] > 1 else 0)
    return out


class HttpComparator:
    """One kind's comparator (`kind` set per instance); `ignore` adds to the kind's defaults."""

    def __init__(self, kind: str, ignore: Sequence[IgnoreRule] = ()) -> None:
        self.kind = kind
        rules = [IgnoreRule(p) for p in codecs.get(kind).compare_ignores] + list(ignore)
        self.ignore = tuple(glob_rule(r) for r in rules)

    def view(self, observed: Observed) -> tuple[str | None, bool, dict[str, str], str | None]:
        """(code, accepted, flat fields, problem) of one response."""
        try:
            msg = read_message(observed.response or b"", request=False)
        except HttpError as exc:
            return None, False, {}, f"not an HTTP response: {exc}"
        head = msg.head
        headers = head.mapping()
        meta = codecs.get(self.kind).response_meta({}, head.status, headers, msg.body)
        fields: dict[str, str] = {"status": str(head.status)}
        for name, value in headers.items():
            if name.lower() in KEPT_HEADERS:
                fields[f"header.{name.lower()}"] = value
        problem = None
        if msg.body:
            if self.kind == "soap" or msg.body.lstrip()[:1] == b"<":
                from harness import safexml

                try:
                    fields.update(flatten_xml(safexml.parse(msg.body)))
                except ValueError as exc:
                    problem = f"body is not readable XML: {exc}"
                    fields["body"] = msg.body.decode("utf-8", "replace")
            else:
                try:
                    flat = flatten_json(json.loads(msg.body))
                    if flat.get("resourceType") == "CapabilityStatement" and "date" in flat:
                        flat["CapabilityStatement.date"] = flat.pop("date")  # the server's own clock
                    fields.update(flat)
                except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                    problem = f"body is not JSON: {exc}"
                    fields["body"] = msg.body.decode("utf-8", "replace")
        code = http_summary.ack_code(self.kind, head.status, meta)
        accepted = http_summary.accepted(self.kind, head.status, meta)
        return code, accepted, fields, problem

    def compare(self, original: Observed | None, replay: Observed) -> Comparison:
        if replay.response is None:
            local = replay.outcome not in NO_REPLY_OUTCOMES and replay.error is not None
            code = self.view(original)[0] if original is not None and original.response is not None else None
            if local:
                return Comparison("new_error", code, None, note=f"replay failed: {replay.error}")
            return Comparison(
                "missing", code, None, note=f"no response to the replay ({replay.error or replay.outcome})"
            )
        new_code, new_ok, new, problem = self.view(replay)
        if original is None:
            cls = "equivalent" if new_ok else "new_error"
            return Comparison(
                cls, None, new_code, note="no captured response; " + ("accepted" if new_ok else "refused")
            )
        if original.response is None:
            return Comparison(
                "different",
                None,
                new_code,
                differences=[Difference("status", None, new.get("status"))],
                note=f"the original got no response ({original.outcome or 'none'})",
                recovered=new_ok,
            )
        old_code, old_ok, old, old_problem = self.view(original)
        diffs = diff_fields(old, new, self.ignore)
        accepted = frozenset(c for c, ok in ((old_code, old_ok), (new_code, new_ok)) if ok and c is not None)
        if old_ok and not new_ok:
            cls = "new_error"
        else:
            cls = classify(old_code, new_code, diffs, accepted=accepted or frozenset({"\0"}))
        return Comparison(
            cls, old_code, new_code, diffs, note=problem or old_problem, recovered=not old_ok and new_ok
        )
