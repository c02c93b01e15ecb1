"""The public HL7 v2 corpus (../shared/corpus/hl7v2) validated before and after the two-source usage and the
table 0396 rules: expected counts per code and severity, and every verdict that changed, with the reason.

BEFORE is what the validator said at commit dcf34e2 (hl7apy's tables alone, table 0396 = the version's own
list plus 99zzz/L/OIDs). AFTER is what it says now; a change in the validator or the data that moves any count
fails here until this file says why.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from harness.hl7v2 import reference
from harness.hl7v2.validation import report
from harness.hl7v2.validation.usage import datatype_elements, segment_elements

BEFORE = {
    ("HL7-COMPONENT-REQUIRED", "error"): 109,
    ("HL7-COMPONENT-UNDEFINED", "warning"): 222,
    ("HL7-DATATYPE-DT", "error"): 4,
    ("HL7-DATATYPE-DTM", "error"): 121,
    ("HL7-DATATYPE-NM", "error"): 9,
    ("HL7-DATATYPE-SI", "error"): 3,
    ("HL7-DATATYPE-TM", "error"): 44,
    ("HL7-ESCAPE-INVALID", "warning"): 1,
    ("HL7-FIELD-REQUIRED", "error"): 155,
    ("HL7-FIELD-UNDEFINED", "warning"): 541,
    ("HL7-LENGTH-EXCEEDED", "warning"): 97,
    ("HL7-MSH-STRUCTURE-MISMATCH", "warning"): 50,
    ("HL7-MSH-STRUCTURE-UNKNOWN", "error"): 7,
    ("HL7-MSH-VERSION-UNSUPPORTED", "error"): 1,
    ("HL7-PARSE-ENCODING-CHARS", "error"): 3,
    ("HL7-PARSE-FILE", "error"): 4,
    ("HL7-STRUCT-MISSING-SEGMENT", "error"): 12,
    ("HL7-STRUCT-SEGMENT-ORDER", "error"): 4,
    ("HL7-STRUCT-TOO-MANY", "error"): 8,
    ("HL7-STRUCT-UNEXPECTED-SEGMENT", "error"): 46,
    ("HL7-STRUCT-Z-SEGMENT", "info"): 1,
    ("HL7-TABLE-VALUE", "info"): 424,
    ("HL7-TABLE-VALUE", "warning"): 5959,
    ("HL7-WITHDRAWN", "warning"): 2749,
}
BEFORE_VERDICTS = {"messages": 270, "valid": 139, "invalid": 131}

# every count that changed: (after, why). Each reason is also checked by a rule below.
CHANGED = {
    ("HL7-FIELD-REQUIRED", "error"): (
        70,
        "85 fewer: OBX-4 (Observation Sub-ID) is conditional, not required: 73 empty OBX-4 in 2.8 "
        "messages (hl7apy (1,-1), hl7-dictionary 2.7.1 C) and 8 in 2.3.1 (both R, the 2.7 tables C); ORC-7 "
        "and OBR-27 in the one 2.3 order (required in the 2.3 tables only, optional in 2.2 and 2.3.1)",
    ),
    ("HL7-SOURCE-CONFLICT", "warning"): (
        86,
        "the 85 above, now warnings that name both sources, plus ED.5 (Data) empty in one 2.5.1 OBX-5: "
        "hl7-dictionary marks it required, hl7apy optional",
    ),
    ("HL7-TABLE-VALUE", "warning"): (
        212,
        "5,747 fewer: coding systems (table 0396) known in another version or in hl7-dictionary "
        "(PHINQUESTION 1,869, SCT 1,116, FIPS5_2, UCUM, ISO3166_1, CDCPHINVS, CDCREC, ...) or of the table's "
        "own patterns (HL70136 and other HL7nnnn, 1,262); 22 remain: names that are no identifier (place "
        "names, 'RxNorm')",
    ),
    ("HL7-TABLE-VALUE", "info"): (
        569,
        "145 more: coding system names unknown to every table here but shaped like registered ones "
        "(CDCINDUSTRY2010 61, USGSGNIS 32, CDCOCCUPATION2010 24, ...), now info instead of warnings",
    ),
}
AFTER = {**BEFORE, **{key: after for key, (after, _why) in CHANGED.items()}}
AFTER_VERDICTS = {"messages": 270, "valid": 167, "invalid": 103}

# every message whose verdict changed (invalid -> valid), with the elements that made it invalid before
CHANGED_VERDICTS = {
    **{
        f"fhir-converter/{name}.hl7#0": ("OBX-4",)
        for name in (
            "ADT-A01-01 ADT-A02-01 ADT-A03-01 ADT-A04-01 ADT-A05-01 ADT-A08-01 ADT-A11-01 ADT-A13-01 "
            "ADT-A14-01 ADT-A15-01 ADT-A16-01 ADT-A25-01 ADT-A26-01 ADT-A27-01 ADT-A28-01 ADT-A29-01 "
            "ADT-A31-01 BAR-P01-01 BAR-P01-02 BAR-P12-01 BAR-P12-02 DFT-P03-01 DFT-P03-02 DFT-P11-01 "
            "RDE-O11-01 SIU-S12-01"
        ).split()
    },
    "cdc-data-exchange/covid-moved__InterPartner~CELR~TX~AIMSPlatform~Prod~Prod~202104050123~STOP~ATVersion231"
    ".txt#0": ("OBX-4",),
    "fhir-converter/LAB-ORM-1.hl7#0": ("OBR-27", "ORC-7"),
}


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path):
    from harness.hl7v2.files import iter_messages
    from harness.hl7v2.validation.validator import Validator

    folder = corpus_dir / "hl7v2"
    problems: list = []
    found = list(iter_messages([folder], on_error=problems.append))
    v = Validator()
    out = []
    for m in found:
        d = v.validate(m.payload, m.source, m.index).as_dict()
        d["key"] = f"{Path(m.source).relative_to(folder)}#{m.index}"
        out.append(d)
    for p in problems:  # files with no readable message count as one invalid entry, as in `harness validate`
        out.append(
            {
                "key": str(p.source),
                "source": str(p.source),
                "index": 0,
                "valid": False,
                "version": None,
                "control_id": None,
                "message_type": None,
                "structure": None,
                "findings": [
                    {
                        "code": "HL7-PARSE-FILE",
                        "severity": "error",
                        "position": {},
                        "location": "file",
                        "message": str(p),
                        "expected": None,
                        "actual": None,
                    }
                ],
            }
        )
    return out


def test_counts_per_code_and_severity(corpus):
    got = Counter((f["code"], f["severity"]) for m in corpus for f in m["findings"])
    assert dict(got) == {k: v for k, v in AFTER.items() if v}
    for key, before in BEFORE.items():
        if AFTER[key] != before:
            assert key in CHANGED, f"{key} moved from {before} to {AFTER[key]} without an explanation"


def test_every_changed_verdict_is_explained(corpus):
    valid = sum(m["valid"] for m in corpus)
    assert {"messages": len(corpus), "valid": valid, "invalid": len(corpus) - valid} == AFTER_VERDICTS
    assert AFTER_VERDICTS["valid"] - BEFORE_VERDICTS["valid"] == len(CHANGED_VERDICTS)
    by_key = {m["key"]: m for m in corpus}
    for key, elements in CHANGED_VERDICTS.items():
        m = by_key[key]
        assert m["valid"], key
        conflicts = {
            f"{f['position']['segment']}-{f['position']['field']}"
            for f in m["findings"]
            if f["code"] == "HL7-SOURCE-CONFLICT"
        }
        assert set(elements) <= conflicts, (key, conflicts)


def test_no_message_is_invalid_because_of_an_optional_or_conditional_element_alone(corpus):
    for m in corpus:
        for f in m["findings"]:
            if f["severity"] != "error" or f["code"] not in ("HL7-FIELD-REQUIRED", "HL7-COMPONENT-REQUIRED"):
                continue
            std = reference.load(m["version"])
            pos = f["position"]
            if f["code"] == "HL7-FIELD-REQUIRED":
                el = segment_elements(std, pos["segment"])[pos["field"] - 1]
                assert el.usage == "R" or (el.usage == "C" and "required here because" in f["message"]), f
            else:
                dt = re.match(r"([A-Z][A-Z0-9]*) (?:sub)?component (\d+)", f["message"])
                assert dt, f["message"]
                el = datatype_elements(std, dt.group(1))[int(dt.group(2)) - 1]
                assert el.usage == "R", (m["key"], f["location"], el)


def test_coding_system_warnings_left_are_names_that_are_no_identifier(corpus):
    left = Counter(
        f["actual"]
        for m in corpus
        for f in m["findings"]
        if f["code"] == "HL7-TABLE-VALUE"
        and f["expected"] == "a code of table HL70396"
        and f["severity"] == "warning"
    )
    assert sum(left.values()) == 22
    assert all(not re.fullmatch(r"[A-Z0-9][A-Z0-9_.+\-]*", name) for name in left), left


def test_the_corpus_report_opens_with_the_verdict_and_charts_and_stays_under_1_mb(corpus):
    summary = report.Summary()
    msgs = [m | {"source": m["key"], "index": 0} for m in corpus]
    for m in msgs:
        summary.add(m)
    html = report.render_html(msgs, summary.as_dict(1.0), run={"selection": "corpus"})
    assert len(html.encode("utf-8")) < 1_000_000
    body = html[html.index("<body>") :]
    assert body.index('id="verdict"') < body.index("<svg") < body.index('<details class="msg"')
    assert 'class="verdict FAIL"' in body and "103 of 270 messages fail on error" in " ".join(body.split())
