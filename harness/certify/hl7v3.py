"""Certifying a 互联互通 HIPMessageServer: cases from specs/hl7v3/services.yaml and its example messages.

One operation per action. Every case sends the action's example message (SOAP 1.2, HIPMessageServer(action,
message)) with a message id and creationTime of its own and the registry identifier given a suffix of its
own; an update, query or merge first registers that identifier with the registry's add action. Per action:

- invalid messages: each of the action's required elements removed, each element and attribute rule of
  the 测评 wrapper broken (missing, a value outside `equals`/`one_of`, a message id of the wrong length, a
  creationTime that is not yyyyMMddHHmmss), a wrong interactionId and a wrong root element: each must
  get MCCI_IN000002UV01 with acknowledgement typeCode AE and a detail saying why; a broken SOAP envelope
  (not well-formed, no action, a DTD) and a body whose bytes are not the charset its XML declaration
  names must get a SOAP Fault;
- the example, then generated messages (for patient actions a generated patient: 身份证, name, sex,
  birthTime, phone): AA, and the answer (`response`) is the interaction the spec names for the action
  with the 测评 wrapper, acknowledging the request's message id.

Flows (examples.yaml) chain actions on one identifier: a query must find what was registered, a second
register or an update before the add must be refused.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape

from hypothesis import strategies as st
from lxml import etree

from harness import safexml
from harness.certify.cases import ACCEPT, REJECT, Case, Judgement, Reply, Request
from harness.certify.engine import Context, Outcome, rows_of
from harness.certify.people import Person, people
from harness.certify.results import Row
from harness.spec.examples import Values, fill
from harness.spec.hl7v3.checks import check as check_document
from harness.spec.hl7v3.checks import wrapper_problems
from harness.spec.hl7v3.model import HL7, NS, Action, Check, ServicesSpec
from harness.spec.model import Interface

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
HEADERS = {"Content-Type": 'application/soap+xml; charset=utf-8; action="urn:hl7-org:v3/HIPMessageServer"'}
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
)


class Hl7v3Suite:
    family = "hl7v3"

    def __init__(self, interface: Interface) -> None:
        self.interface = interface
        self.spec: ServicesSpec = interface.native
        self.data = interface.examples.body if interface.examples is not None else {}
        folder = Path(interface.path) / "examples"
        self.texts = {
            name: (folder / f"{name}.xml").read_text(encoding="utf-8")
            for name in self.spec.actions
            if (folder / f"{name}.xml").is_file()
        }
        self.adds: dict[str, str] = {}
        for name, action in self.spec.actions.items():
            if action.op in ("add", "upsert") and name in self.texts:
                self.adds.setdefault(action.registry, name)
        service = self.spec.file.body.get("transport", {}).get("service_path", "/services/HIPMessageServer")
        self.path = str(service)
        self.tag = f"{random.SystemRandom().randrange(36**4):04x}"
        self.cases = 0

    # -- rows and checks -------------------------------------------------------------------------
    def rows(self) -> Iterable[Row]:
        return rows_of(self.interface, self.data.get("flows"))

    def checks(self, row: str) -> dict[str, str | None]:
        if row.startswith("flow:"):
            return {"flow": None}
        checks = dict.fromkeys(_ORDER)
        if row not in self.texts:
            return dict.fromkeys(checks, f"no example message specs/hl7v3/examples/{row}.xml")
        return checks

    # -- running ---------------------------------------------------------------------------------
    def run(self, row: str, ctx: Context) -> None:
        if row.startswith("flow:"):
            self._flow(row, ctx)
            return
        action = self.spec.actions[row]
        if any(ctx.wants(row, c) for c in INVALID_CHECKS):
            twin = self.next_suffix()
            self.prepare(action, twin, ctx)
            control = ctx.control(
                self.case(row, "example", "the unchanged message", self.document(row, twin), ACCEPT)
            )
            suffix = self.next_suffix()
            self.prepare(action, suffix, ctx)
            for check, title, constraint, doc in self._invalid(action, suffix):
                if ctx.wants(row, check):
                    ctx.case(self.case(row, check, title, doc, REJECT, constraint))
            self._envelopes(action, suffix, ctx)
            ctx.unproven(row, INVALID_CHECKS, control)
        if ctx.wants(row, "example") or ctx.wants(row, "response"):
            suffix = self.next_suffix()
            self.prepare(action, suffix, ctx)
            outcome = ctx.case(self.case(row, "example", "the example", self.document(row, suffix), ACCEPT))
            self._response(action, outcome, ctx)
        if ctx.wants(row, "generated"):
            patients = row in (self.data.get("person") or {})

            def attempt(person: Person | None) -> Outcome:
                suffix = self.next_suffix()
                self.prepare(action, suffix, ctx)
                doc = self.document(row, suffix, person)
                title = (
                    f"a generated patient {person.name} ({person.certno})" if person else "a fresh message"
                )
                outcome = ctx.exchange(self.case(row, "generated", title, doc, ACCEPT))
                self._response(action, outcome, ctx)
                return outcome

            ctx.probe(
                row,
                "generated",
                people() if patients else st.none(),
                attempt,
                examples=ctx.examples if patients else 1,
            )

    def prepare(self, action: Action, suffix: str, ctx: Context) -> None:
        """Register the identifier an update, query or merge names (with the registry's add action)."""
        if action.op not in ("update", "query", "merge"):
            return
        add = self.adds.get(action.registry)
        if add is None:
            return
        wanted = [self._key(action.name, action.key)]
        if action.op == "merge" and action.prior is not None:
            wanted.append(self._key(action.name, action.prior))
        add_key = self._key(add, self.spec.actions[add].key)
        for value in wanted:
            if not value:
                continue
            doc = self.document(add, suffix, keys={add_key: f"{value}{suffix}"})
            case = self.case(
                action.name, "example", f"{add} registering {value}{suffix}", doc, ACCEPT, action=add
            )
            ctx.require(case, f"the {action.registry} record {action.name} names")

    def _invalid(self, action: Action, suffix: str) -> Iterable[tuple[str, str, str, etree._Element]]:
        name = action.name
        for item in action.required:
            doc = self.document(name, suffix)
            if _remove(doc, item):
                yield "required", f"{item.what} removed", f"{item.what} required (V)", doc
        for item in self.spec.wrapper:
            doc = self.document(name, suffix)
            if _remove(doc, item, whole=True):
                yield "required", f"wrapper {item.what} removed", f"wrapper: {item.what} required (V)", doc
            for attr, rule in item.attrs.items():
                for check, title, value in _broken(item, attr, rule):
                    doc = self.document(name, suffix)
                    found = item.xpath(doc)
                    if not found:
                        continue
                    for el in found:
                        if value is None:
                            el.attrib.pop(attr, None)
                        else:
                            el.set(attr, value)
                    yield check, title, f"wrapper: {item.what} @{attr} {_rule(rule)} (V)", doc
        others = [a for a in self.spec.actions.values() if a.name != name]
        other = next((a for a in others if not set(a.extensions) & set(action.extensions)), None)
        if other is not None:
            doc = self.document(name, suffix)
            el = doc.find("hl7:interactionId", NS)
            if el is not None:
                el.set("extension", other.extensions[0])
                yield (
                    "interaction",
                    f"interactionId@extension {other.extensions[0]} (the {other.name} interaction)",
                    f"{name} takes interactionId {' or '.join(action.extensions)} (V)",
                    doc,
                )
            root = next((r for r in other.roots if r not in action.roots), None)
            if root is not None:
                doc = self.document(name, suffix)
                doc.tag = f"{{{HL7}}}{root}"
                yield (
                    "interaction",
                    f"root element {root} (the {other.name} message)",
                    f"{name} takes the root {' or '.join(action.roots)} (V)",
                    doc,
                )

    def _envelopes(self, action: Action, suffix: str, ctx: Context) -> None:
        row = action.name
        text = _text(self.document(row, suffix))
        if ctx.wants(row, "envelope"):
            body = self.envelope(row, text)
            cases = [
                ("the SOAP envelope cut short (not well-formed)", body[: len(body) // 2]),
                (
                    "no action element in HIPMessageServer",
                    body.replace(f"<action>{row}</action>".encode(), b""),
                ),
                (
                    "a DTD with entities before the envelope",
                    BILLION_LAUGHS.encode() + body.split(b"?>", 1)[-1],
                ),
            ]
            for title, raw in cases:
                case = self.raw(
                    row,
                    "envelope",
                    title,
                    raw,
                    "a SOAP 1.2 envelope with HIPMessageServer(action, message), no DTD (V)",
                )
                case.context["fault"] = True
                ctx.case(case)
        if ctx.wants(row, "charset"):
            # a comment with Chinese text, so every message has bytes that differ between the two charsets
            body = (
                self.envelope(row, text)
                .decode("utf-8")
                .replace("<soap:Body>", "<soap:Body><!--互联互通-->", 1)
            )
            raw = body.encode("gb18030")
            title = "the envelope's bytes are GB18030 while its XML declaration says UTF-8"
            case = self.raw(
                row, "charset", title, raw, "the bytes are in the charset the XML declaration names"
            )
            case.context["fault"] = "either"
            ctx.case(case)

    def _response(self, action: Action, outcome: Outcome, ctx: Context) -> None:
        if not ctx.wants(action.name, "response") or not outcome.judgement.passed:
            return
        doc = _result(outcome.reply)
        case = outcome.case
        problems: list[str] = []
        if doc is None:
            problems.append("no HL7 v3 document in HIPMessageServerResult")
        else:
            sent = case.context.get("root") or action.roots[0]
            want = action.response(sent)
            got = safexml.local_name(doc)
            if got != want:
                problems.append(f"the answer is {got}; the spec answers {action.name} with {want}")
            problems += [
                f"answer wrapper: {p}" for item in self.spec.wrapper for p in wrapper_problems(doc, item)
            ]
            target = doc.find("hl7:acknowledgement/hl7:targetMessage/hl7:id", NS)
            if target is None or target.get("extension") != case.context.get("msgid"):
                got_id = target.get("extension") if target is not None else None
                problems.append(
                    f"acknowledgement/targetMessage/id@extension is {got_id!r}, not the request's "
                    f"message id {case.context.get('msgid')!r}"
                )
        judged = Judgement(not problems, "; ".join(problems[:6]) or f"{want} with the 测评 wrapper, AA")
        ctx.record(
            Outcome(
                Case(case.operation, "response", case.title, case.request, case.expect, "", case.context),
                outcome.reply,
                judged,
            )
        )

    def _flow(self, row: str, ctx: Context) -> None:
        flow = self.data["flows"][row.removeprefix("flow:")]
        patients = self.data.get("person") or {}

        def steps(person: Person):
            suffix = self.next_suffix()
            for step in flow.get("steps") or []:
                name = str(step["action"])
                doc = self.document(name, suffix, person if name in patients else None)
                title = f"{name}" + (f": {step['why']}" if step.get("why") else "")
                case = self.case(row, "flow", title, doc, step.get("expect", ACCEPT), action=name)
                if step.get("found"):
                    case.context["found"] = f"{self._key(name, self.spec.actions[name].key)}{suffix}"
                yield case

        ctx.probe(row, "flow", people(), lambda person: ctx.walk(steps(person)))

    # -- judging ---------------------------------------------------------------------------------
    def judge(self, case: Case, reply: Reply) -> Judgement:
        if reply.error is not None:
            return Judgement(False, f"no answer: {reply.error}")
        fault = _fault(reply)
        want_fault = case.context.get("fault")
        if fault is not None:
            if case.expect == REJECT and want_fault:
                return Judgement(True, f"SOAP Fault (HTTP {reply.status}): {fault[:160]}")
            return Judgement(False, f"SOAP Fault (HTTP {reply.status}): {fault[:200]}")
        if reply.status != 200:
            return Judgement(False, f"HTTP {reply.status} without a SOAP Fault: {reply.body[:120]!r}")
        doc = _result(reply)
        if doc is None:
            return Judgement(False, "no HL7 v3 document in HIPMessageServerResult")
        ack = doc.find("hl7:acknowledgement", NS)
        code = ack.get("typeCode") if ack is not None else None
        texts = [
            t.get("value") or ""
            for t in doc.iterfind("hl7:acknowledgement/hl7:acknowledgementDetail/hl7:text", NS)
        ]
        shown = "; ".join(t for t in texts if t)[:200]
        if case.expect == ACCEPT:
            if code != "AA":
                return Judgement(False, f"refused: acknowledgement {code}: {shown or '(no detail)'}")
            found = case.context.get("found")
            if found and found not in etree.tostring(doc, encoding="unicode"):
                return Judgement(False, f"AA, but the answer does not return {found}, which was registered")
            return Judgement(True, f"{safexml.local_name(doc)} AA")
        if want_fault is True:
            return Judgement(
                False, f"acknowledgement {code} where the spec answers a broken envelope with a SOAP Fault"
            )
        if code == "AA":
            return Judgement(False, "accepted (acknowledgement AA) although the spec says it must be refused")
        if code not in ("AE", "AR") or not shown:
            return Judgement(False, f"acknowledgement {code} without an acknowledgementDetail saying why")
        return Judgement(True, f"{code}: {shown}")

    # -- passive ---------------------------------------------------------------------------------
    def passive(self, request: Request, reply: Reply) -> tuple[str | None, list[tuple[str, Judgement]]]:
        """A captured HIPMessageServer call: its action; request, rejection and response judgements."""
        found = _call(request.body)
        if found is None:
            return None, []
        name, doc = found
        action = self.spec.actions.get(name)
        if action is None:
            problems = [f"action {name!r} is not one of the spec's {len(self.spec.actions)} actions"]
        elif doc is None:
            problems = ["the message is not an XML document"]
        else:
            problems = check_document(self.spec, action, doc)
        out: list[tuple[str, Judgement]] = [("request", Judgement.of(problems, "the message conforms"))]
        if problems:
            out.append(("rejected", self.judge(Case.captured(name, "rejected", request, REJECT), reply)))
        answer = _result(reply)
        if answer is not None and action is not None and doc is not None and not problems:
            want = action.response(safexml.local_name(doc))
            issues = [
                f"answer wrapper: {p}" for item in self.spec.wrapper for p in wrapper_problems(answer, item)
            ]
            if safexml.local_name(answer) != want:
                issues.append(
                    f"the answer is {safexml.local_name(answer)}; the spec answers {name} with {want}"
                )
            out.append(("response", Judgement.of(issues, f"{want} with the 测评 wrapper")))
        return name, out

    # -- building --------------------------------------------------------------------------------
    def next_suffix(self) -> str:
        self.cases += 1
        return f"-{self.tag}{self.cases:04d}"

    def _key(self, name: str, xpath: etree.XPath) -> str:
        doc = safexml.parse(self.texts[name].encode("utf-8"))
        for value in xpath(doc):
            if str(value).strip():
                return str(value).strip()
        return ""

    def document(
        self, name: str, suffix: str, person: Person | None = None, *, keys: dict[str, str] | None = None
    ) -> etree._Element:
        """The action's example with a fresh message id and time, its identifiers suffixed, maybe a person."""
        doc = safexml.parse(self.texts[name].encode("utf-8"))
        action = self.spec.actions[name]
        renames = dict(keys or {})
        if not keys:
            for xpath in (action.key, action.prior):
                value = self._key(name, xpath) if xpath is not None else ""
                if value:
                    renames[value] = f"{value}{suffix}"
        for el in doc.iter():
            for attr, value in el.attrib.items():
                if value in renames:
                    el.set(attr, renames[value])
        msg = doc.find("hl7:id", NS)
        if msg is not None:
            msg.set("extension", str(uuid.uuid4()))
        created = doc.find("hl7:creationTime", NS)
        if created is not None:
            created.set("value", f"{datetime.now():%Y%m%d%H%M%S}")
        if person is not None:
            values = Values(person.values())
            for path, template in ((self.data.get("person") or {}).get(name) or {}).items():
                _set(doc, str(path), str(fill(template, values)))
        return doc

    def envelope(self, action: str, message: str) -> bytes:
        return (
            f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP12}" xmlns:urn="{HL7}">'
            f"<soap:Body><urn:HIPMessageServer><action>{escape(action)}</action>"
            f"<message><![CDATA[{message}]]></message></urn:HIPMessageServer></soap:Body></soap:Envelope>"
        ).encode()

    def case(
        self,
        op: str,
        check: str,
        title: str,
        doc: etree._Element,
        expect: str,
        constraint: str = "",
        *,
        action: str | None = None,
    ) -> Case:
        """A case sending doc as `action` (default: the operation itself)."""
        case = self.raw(op, check, title, self.envelope(action or op, _text(doc)), constraint, expect=expect)
        msg = doc.find("hl7:id", NS)
        case.context.update(
            msgid=msg.get("extension") if msg is not None else None, root=safexml.local_name(doc)
        )
        return case

    def raw(
        self, op: str, check: str, title: str, body: bytes, constraint: str, expect: str = REJECT
    ) -> Case:
        return Case(op, check, title, Request(body, "POST", self.path, dict(HEADERS)), expect, constraint)


INVALID_CHECKS = ("required", "length", "code", "datetime", "msgid", "interaction", "envelope", "charset")
_ORDER = ("example", "generated", "response", "required", "length", "code", "datetime", "msgid", "envelope",
          "interaction", "charset")  # fmt: skip


def _text(doc: etree._Element) -> str:
    return etree.tostring(doc, encoding="unicode")


def _remove(doc: etree._Element, item: Check, *, whole: bool = False) -> bool:
    """Break a required-element check: blank the attribute its predicate needs, or drop the element."""
    found = item.xpath(doc)
    if not found:
        return False
    source = item.xpath.path
    attr = None
    if not whole and "normalize-space(@" in source.rsplit("/", 1)[-1]:
        attr = source.rsplit("normalize-space(@", 1)[1].split(")", 1)[0]
    for el in found:
        if not isinstance(el, etree._Element):
            return False
        if attr:
            el.attrib.pop(attr, None)
        elif el.getparent() is not None:
            el.getparent().remove(el)
    return True


def _broken(item: Check, attr: str, rule: dict) -> list[tuple[str, str, str | None]]:
    what = f"{item.what} @{attr}"
    if not rule or rule.get("required"):
        return [("required", f"{what} removed", None)]
    out: list[tuple[str, str, str | None]] = [("required", f"{what} removed", None)]
    if "equals" in rule:
        out.append(("code", f"{what} = 'X' (must be {rule['equals']})", "X"))
    if "one_of" in rule:
        out.append(("code", f"{what} = 'ZZ' (not one of {', '.join(map(str, rule['one_of']))})", "ZZ"))
    if "length" in rule:
        low, high = rule["length"]
        check = "msgid" if item.xpath.path == "hl7:id" else "length"
        out.append((check, f"{what} of {high + 1} characters (must be {low}-{high})", "A" * (high + 1)))
        if low > 1:
            out.append((check, f"{what} of {low - 1} characters (must be {low}-{high})", "A" * (low - 1)))
    if "format" in rule:
        out.append(
            ("datetime", f"{what} = '2026-01-05 09:30:00' (not yyyyMMddHHmmss)", "2026-01-05 09:30:00")
        )
    return out


def _rule(rule: dict) -> str:
    parts = [f"{k} {v}" for k, v in rule.items() if k not in ("label", "source", "note")]
    return ", ".join(parts) or "required"


def _set(doc: etree._Element, path: str, value: str) -> None:
    if "/@" in path:
        element, attr = path.rsplit("/@", 1)
        for el in doc.xpath(element, namespaces=NS):
            el.set(attr, value)
    else:
        for el in doc.xpath(path, namespaces=NS):
            el.text = value


def _envelope(reply: Reply) -> etree._Element | None:
    try:
        root = safexml.parse(reply.body)
    except (safexml.UnsafeXMLError, safexml.XMLSyntaxError):
        return None
    if safexml.local_name(root) != "Envelope":
        return None
    return root


def _fault(reply: Reply) -> str | None:
    root = _envelope(reply)
    if root is None:
        return None
    for el in root.iter():
        if isinstance(el.tag, str) and safexml.local_name(el) == "Fault":
            return " ".join(t.strip() for t in el.itertext() if t.strip()) or "Fault"
    return None


def _call(body: bytes) -> tuple[str, etree._Element | None] | None:
    """(action, HL7 v3 document) of a HIPMessageServer request, or None when it is not one."""
    try:
        root = safexml.parse(body)
    except (safexml.UnsafeXMLError, safexml.XMLSyntaxError):
        return None
    op = next(
        (
            el
            for el in root.iter()
            if isinstance(el.tag, str) and safexml.local_name(el) == "HIPMessageServer"
        ),
        None,
    )
    if op is None:
        return None
    parts = {safexml.local_name(el): el for el in op if isinstance(el.tag, str)}
    action = (parts["action"].text or "").strip() if "action" in parts else ""
    message = parts.get("message")
    if not action or message is None:
        return None
    if len(message):
        return action, message[0]
    text = (message.text or "").strip()
    try:
        return action, safexml.parse(text.encode("utf-8")) if text else None
    except (safexml.UnsafeXMLError, safexml.XMLSyntaxError):
        return action, None


def _result(reply: Reply) -> etree._Element | None:
    root = _envelope(reply)
    if root is None:
        return None
    for el in root.iter():
        if isinstance(el.tag, str) and safexml.local_name(el) == "HIPMessageServerResult":
            text = (el.text or "").strip()
            if len(el):
                return el[0]
            if not text:
                return None
            try:
                return safexml.parse(text.encode("utf-8"))
            except (safexml.UnsafeXMLError, safexml.XMLSyntaxError):
                return None
    return None
