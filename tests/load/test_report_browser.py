"""The load report as headless Chromium renders it (look at the screenshot, not only the DOM)."""

from __future__ import annotations

import pytest

from harness.load.report import write_reports
from tests.browser import needs_chromium, rendered, screenshot
from tests.load.summaries import synthetic

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("load-report")
    s = synthetic(60)
    upstream = "10.10.1.21:12575"
    by_name = {
        name: {"captured": r["requests"], "matches": True, "upstream_p50_ms": 2.0, "upstream_p95_ms": 9.0,
               "naks": r["failures"], "timeouts": 0, "upstreams": {upstream: r["requests"]}}
        for name, r in s["by_name"].items()
    }  # fmt: skip
    s["proxy"] = {
        "store": "reports/captures.db", "channels": ["adt"], "captured": s["requests"],
        "requests": s["requests"], "counts_match": True, "other_senders": {}, "by_name": by_name,
        "outcomes": {"ok": s["requests"] - s["failures"], "nak": s["failures"]},
        "upstreams": {upstream: s["requests"]},
    }  # fmt: skip
    write_reports(s, folder)
    return folder


def test_the_report_leads_with_the_verdict_and_draws_its_charts(report, tmp_path):
    dom = rendered(tmp_path, report / "report.html")
    verdict = dom.get_element_by_id("verdict").text_content()
    assert "FAIL" in verdict and "error rate <= 0.5%" in verdict
    charts = dom.xpath("//svg[contains(@class, 'chart')]")
    assert len(charts) == 4
    assert all(c.xpath(".//polyline") for c in charts[:2])  # rate and latency drawn as lines
    rows = {r.xpath("./td")[0].text_content(): r for r in dom.xpath("//table[@id='by-type']//tr[td]")}
    assert set(rows) == {"ADT^A04", "ADT^A08", "ORM^O01", "2207"}
    assert "10.10.1.21:12575" in rows["ADT^A04"].text_content()
    failures = dom.xpath("//table[@id='failures']//td/text()")
    assert any("病人不存在" in f for f in failures)
    assert not dom.xpath("//script") and not dom.xpath("//link[@href]")  # nothing fetched at run time
    shot = screenshot(tmp_path, report / "report.html", "load-report.png", "1300,2200")
    assert shot.stat().st_size > 20_000
