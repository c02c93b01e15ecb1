"""All 69 互联互通 actions: a valid request is accepted (queries answer what was registered), a missing
required element is an AE naming it, every accepted root/interactionId spelling works, the 测评 wrapper
checks bite. Requests are specs/hl7v3/examples/<Action>.xml (one per action, schema-shaped)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from harness.simulators.soap import HipMessageServer
from harness.spec.hl7v3.model import load
from tests.hl7v3_acks import NS, ack

FIXTURES = Path(__file__).resolve().parents[2] / "specs" / "hl7v3" / "examples"
SPEC = load()


def fixture(action: str) -> str:
    return (FIXTURES / f"{action}.xml").read_text(encoding="utf-8")


def answer(core: HipMessageServer, action: str, message: str) -> etree._Element:
    return etree.fromstring(core.service(action, message).encode("utf-8"))


def first_of(registry: str, ops: tuple[str, ...]) -> str:
    return next(a.name for a in SPEC.actions.values() if a.registry == registry and a.op in ops)


def prepare(core: HipMessageServer, action: str) -> None:
    """Register what the action needs to exist (the registry's add action, or two patients to merge)."""
    spec = SPEC.actions[action]
    if spec.op in ("update", "query"):
        source = first_of(spec.registry, ("add", "upsert"))
        code, texts = ack(answer(core, source, fixture(source)))
        assert code == "AA", texts
    if spec.op == "merge":
        for pid in ("P0001234", "P0005678"):
            message = re.sub(
                r'(<patient[^>]*>\s*<id>\s*<item [^>]*extension=")[^"]*',
                rf"\g<1>{pid}",
                fixture("PatientInfoRegister"),
            )
            assert ack(answer(core, "PatientInfoRegister", message))[0] == "AA"


def test_the_spec_has_all_69_actions_by_level():
    assert len(SPEC.actions) == 69
    assert SPEC.levels == {"三级": 3, "四级乙等": 10, "四级甲等": 33, "五级乙等": 23}
    assert {p.stem for p in FIXTURES.glob("*.xml")} == set(SPEC.actions)


@pytest.mark.parametrize("action", sorted(SPEC.actions))
def test_valid_request_is_accepted(action):
    core = HipMessageServer()
    prepare(core, action)
    spec = SPEC.actions[action]
    message = fixture(action)
    doc = answer(core, action, message)
    root = etree.fromstring(message.encode("utf-8"))
    assert etree.QName(doc).localname == spec.response(etree.QName(root).localname)
    code, texts = ack(doc)
    assert code == "AA", texts
    if spec.op == "query":
        assert doc.find(".//hl7:queryResponseCode", NS).get("code") == "OK"
        assert doc.find("hl7:controlActProcess/hl7:subject", NS) is not None


@pytest.mark.parametrize("action", sorted(a for a, s in SPEC.actions.items() if s.required))
def test_missing_required_element_is_an_ae_naming_it(action):
    core = HipMessageServer()
    spec = SPEC.actions[action]
    item = spec.required[0]
    doc = etree.fromstring(fixture(action).encode("utf-8"))
    attr = re.search(r"@(\w+)(?:\[normalize-space\(\.\)\])?\)?\]?\)?$", item.xpath.path)
    for node in item.xpath(doc):
        if isinstance(node, etree._Element):
            if attr and item.xpath.path.endswith(f"[normalize-space(@{attr.group(1)})]"):
                del node.attrib[attr.group(1)]
            else:
                node.getparent().remove(node)
        else:  # an attribute result (union XPaths): drop it from its element
            del node.getparent().attrib[node.attrname]
    code, texts = ack(answer(core, action, etree.tostring(doc, encoding="unicode")))
    assert code == "AE" and f"missing {item.what}" in texts, texts


SPELLINGS = [
    (action, root, ext)
    for action, spec in SPEC.actions.items()
    for root in spec.roots
    for ext in spec.extensions
    if len(spec.roots) > 1 or len(spec.extensions) > 1
]


@pytest.mark.parametrize(("action", "root", "ext"), SPELLINGS)
def test_every_accepted_root_and_extension_spelling(action, root, ext):
    core = HipMessageServer()
    prepare(core, action)
    message = fixture(action)
    original = etree.QName(etree.fromstring(message.encode("utf-8"))).localname
    message = re.sub(rf"<(/?){original}\b", rf"<\g<1>{root}", message)
    message = re.sub(r'(<interactionId [^>]*extension=")[^"]*', rf"\g<1>{ext}", message)
    doc = answer(core, action, message)
    assert ack(doc)[0] == "AA", ack(doc)


def test_discharge_add_keeps_root_and_extension_apart():
    """A real DischargeInfoAdd: root PRPA_IN400003UV, interactionId@extension PRPA_IN400003UV01."""
    core = HipMessageServer()
    message = fixture("DischargeInfoAdd")
    assert "<PRPA_IN400003UV " in message and 'extension="PRPA_IN400003UV01"' in message
    assert ack(answer(core, "DischargeInfoAdd", message))[0] == "AA"
    wrong = message.replace('extension="PRPA_IN400003UV01"', 'extension="PRPA_IN400002UV01"')
    code, texts = ack(answer(HipMessageServer(), "DischargeInfoAdd", wrong))
    assert code == "AE" and "interactionId@extension is PRPA_IN400002UV01" in texts[0]


@pytest.mark.parametrize(
    ("action", "interaction"),
    [
        ("DischargeInfoUpdate", "PRPA_IN400002UV"),
        ("OrderFillerStatusInfoUpdate", "POOR_IN200901UV"),
        ("SourceAndScheduleInfoAdd", "PRSC_IN030101UV"),
        ("SourceAndScheduleInfoUpdate", "PRSC_IN030102UV"),
        ("OutPatientAppointStatusInfoAdd", "PRPA_IN410001UV"),
        ("OutPatientAppointStatusInfoUpdate", "PRPA_IN410002UV"),
    ],
)
def test_corrected_action_interaction_pairs(action, interaction):
    assert SPEC.actions[action].roots[0] == interaction


def test_the_old_wrong_pairs_are_refused():
    core = HipMessageServer()
    message = fixture("SourceAndScheduleInfoAdd")
    old = re.sub(r"<(/?)PRSC_IN030101UV\b", r"<\1PRSC_IN010101UV01", message)
    code, texts = ack(answer(core, "SourceAndScheduleInfoAdd", old))
    assert code == "AE" and "expects the root element PRSC_IN030101UV" in texts[0]


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            'extension="97756614-d6af-510f-a8dc-9f1599aace6e"',
            'extension="q1"',
            "id (the message id) @extension: 'q1' is 2",
        ),
        (
            '<creationTime value="20260105093000"/>',
            '<creationTime value="20261305093000"/>',
            "creationTime @value",
        ),
        (
            '<processingCode code="P"/>',
            '<processingCode code="X"/>',
            "processingCode @code: 'X' is not one of P, D, T",
        ),
        ("<processingModeCode/>", "", "missing processingModeCode"),
        ('<acceptAckCode code="AL"/>', '<acceptAckCode code="XX"/>', "acceptAckCode @code"),
        (
            '<device classCode="DEV" determinerCode="INSTANCE">',
            '<device classCode="DEV">',
            "receiver/device @determinerCode",
        ),
        ('root="2.16.156.10011.2.5.1.1"', 'root="1.2.3"', "must be 2.16.156.10011.2.5.1.1"),
        (
            'extension="HIP0001"',
            'extension="HIP"',
            "receiver/device/id/item @extension: 'HIP' is 3 characters",
        ),
    ],
)
def test_wrapper_checks_of_the_evaluation(old, new, words):
    message = fixture("OutPatientInfoAdd")
    assert old in message
    code, texts = ack(answer(HipMessageServer(), "OutPatientInfoAdd", message.replace(old, new, 1)))
    assert code == "AE" and any(words in t for t in texts), texts


def test_registries_answer_queries_with_what_was_registered_and_updates_need_it():
    core = HipMessageServer()
    for registry in ("organizations", "providers", "documents", "orders", "examapps", "schedules"):
        add = first_of(registry, ("add",))
        query = first_of(registry, ("query",))
        update = next(
            (a.name for a in SPEC.actions.values() if a.registry == registry and a.op == "update"), None
        )
        nothing = answer(core, query, fixture(query))
        assert ack(nothing)[0] == "AE" and nothing.find(".//hl7:queryResponseCode", NS).get("code") == "NF"
        if update:
            code, texts = ack(answer(core, update, fixture(update)))
            assert code == "AE" and "not registered" in texts[0]
        assert ack(answer(core, add, fixture(add)))[0] == "AA"
        code, texts = ack(answer(core, add, fixture(add)))
        assert code == "AE" and "already registered" in texts[0]
        found = answer(core, query, fixture(query))
        assert ack(found)[0] == "AA"
        registered = etree.fromstring(fixture(add).encode("utf-8")).find(
            "hl7:controlActProcess/hl7:subject/*", NS
        )
        returned = found.find("hl7:controlActProcess/hl7:subject/*", NS)
        assert etree.QName(returned).localname == etree.QName(registered).localname
        assert etree.tostring(returned, method="c14n") == etree.tostring(registered, method="c14n")
    assert Counter(
        len(core.registries.of(r)) for r in ("organizations", "providers", "documents")
    ) == Counter({1: 3})
