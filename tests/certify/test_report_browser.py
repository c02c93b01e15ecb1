"""The certification report in a real browser: headless Chromium renders it, the tests read the DOM.

Needs the Debian packages `chromium` and `fonts-wqy-zenhei` (`make browser`); without Chromium every test
here is skipped with that reason, never passed silently. tests/certify/report-shot.png is not kept: look at
the screenshot the last test writes under pytest's tmp folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import needs_chromium, rendered, screenshot
from tests.certify.runs import certify

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def page(tmp_path_factory, servers) -> Path:
    """A real run against the simulator that accepts codes outside their sets, one failure waived."""
    tmp = tmp_path_factory.mktemp("certify-report")
    path = tmp / "waivers.yaml"
    path.write_text(
        "waivers:\n  - {operation: '2207', check: code, reason: 结算代码由省平台校验 (工单 4711)}\n"
    )
    target = f"http://127.0.0.1:{servers.broken('medins-codes')}"
    operations = "1101,2201,2207,outpatient"
    args = ["--spec", "specs/medins", "--target", target, "--operation", operations, "--waivers", str(path)]
    code, summary, err = certify(*args, "--out", str(tmp))
    assert code == 1, err
    return Path(summary["reports"]["html"])


@pytest.fixture(scope="module")
def dom(tmp_path_factory, page):
    """The DOM Chromium built for the report (one browser run for the tests that read it)."""
    return rendered(tmp_path_factory.mktemp("chromium"), page)


def test_the_rendered_report_leads_with_the_verdict_and_what_was_certified(dom):
    verdict = dom.get_element_by_id("verdict")
    assert verdict.text_content().split()[0] == "FAIL"
    about = dom.get_element_by_id("about").text_content()
    for words in (
        "specs/medins",
        "format 1, sha256",
        "http://",
        "seed",
        "harness certify --spec specs/medins",
    ):
        assert words in about
    assert "patient data" in dom.get_element_by_id("patient-data").text_content()


def test_the_matrix_shows_every_status_and_links_failures_to_their_evidence(dom):
    matrix = dom.get_element_by_id("matrix")
    heads = [th.text_content() for th in matrix.iter("th")]
    assert heads[:2] == ["operation", "name"] and "required" in heads and "flow" in heads
    rows = {tr.get("data-row"): tr for tr in matrix.iter("tr") if tr.get("data-row")}
    assert list(rows) == ["1101", "2201", "2207", "flow:outpatient"]
    statuses = {
        td.get("class").split()[-1]
        for tr in rows.values()
        for td in tr.iter("td")
        if "cell" in td.get("class", "")
    }
    assert {"passed", "failed", "waived", "na"} <= statuses
    link = rows["2201"].find_class("failed")[0].find("a").get("href")
    evidence = dom.get_element_by_id(link[1:])
    text = evidence.text_content()
    assert "accepted (infcode 0) although the spec says it must be refused" in text
    assert "reproduce: harness certify --spec specs/medins" in text and "infno" in text
    waived = rows["2207"].find_class("waived")[0]
    assert "结算代码由省平台校验" in waived.get("title")


def test_the_sign_off_block_is_there_to_fill_in(dom):
    cells = [td for td in dom.get_element_by_id("signoff").iter("td") if td.get("data-field")]
    assert [td.get("data-field") for td in cells] == ["engineer", "role", "date", "signature", "remarks"]
    assert all(td.get("contenteditable") == "true" and not td.text_content().strip() for td in cells)


def test_a_screenshot_of_the_report(tmp_path, page):
    shot = screenshot(tmp_path, page, "certify-report.png", size="1400,2600")
    assert shot.stat().st_size > 50_000  # a drawn page; look at it: tests only prove it was drawn
