"""The inspection report and the capture summary as headless Chromium renders them.

Needs Debian's `chromium` and `fonts-wqy-zenhei` (`make browser`); without Chromium these tests are skipped
with that reason, never passed silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.browser import needs_chromium, rendered, screenshot

pytestmark = needs_chromium
WINDOW = ["--since", "2026-03-02T08:00+08:00", "--until", "2026-03-02T12:00+08:00"]


def text_of(node) -> str:
    return " ".join(" ".join(node.itertext()).split())


@pytest.fixture
def report(synthetic_store, shanghai, tmp_path) -> Path:
    folder = synthetic_store.parent
    page = tmp_path / "inspection.html"
    r = CliRunner().invoke(
        app,
        [
            "inspect",
            "--store",
            str(synthetic_store),
            *WINDOW,
            "--sla",
            str(folder / "sla.yaml"),
            "--config",
            str(folder / "proxy.yaml"),
            "--compare-previous",
            "--html",
            str(page),
        ],
    )
    assert r.exit_code == 1, r.output
    return page


def test_the_report_opens_with_the_verdict_and_the_one_page_summary(report, tmp_path):
    dom = rendered(tmp_path, report)
    body = [el for el in dom.find("body") if isinstance(el.tag, str)]
    assert body[0].get("id") == "verdict" and "FAIL" in body[0].get("class")
    assert text_of(body[0]).startswith("FAIL 5 SLA breaches · 1,300 exchanges · success 97.08 %")
    assert body[1].get("id") == "summary"
    rows = dom.get_element_by_id("channels").findall(".//tr")
    assert [text_of(r.findall("td")[0]) for r in rows[1:]] == ["adt", "cdc", "lab", "medins"]
    adt = [text_of(td) for td in rows[1].findall("td")]
    assert adt[2].startswith("1,000") and "+900.0 %" in adt[2] and adt[5] == "500.5"
    assert "primary 10.10.1.21:12575 75.0 %" in adt[10] and "1 failover" in adt[10]
    breaches = [text_of(li) for li in dom.get_element_by_id("breaches").findall("li")]
    assert "cdc: exchanges 0 < minimum 1" in breaches and len(breaches) == 5
    assert "巡检人" in text_of(dom.get_element_by_id("signoff"))


def test_every_channel_has_its_three_charts_over_time_drawn(report, tmp_path):
    dom = rendered(tmp_path, report)
    for n in range(1, 5):
        section = dom.get_element_by_id(f"ch-{n}")
        charts = section.find_class("chart")
        assert [c.get("class").split()[-1] for c in charts] == ["volume", "error-rate", "p95"]
    adt = dom.get_element_by_id("ch-1")
    bars = [g for g in adt.find_class("bucket") if len(g.findall(".//{*}rect")) > 1]
    assert len(bars) == 48 - 9  # 5-minute buckets with traffic: 4 hours less the silence
    labels = [text_of(t) for t in adt.find_class("marker-label")]
    assert any(label.startswith("failover → 10.10.1.22") for label in labels)
    assert any(label.startswith("silence 49 min") for label in labels)


def test_a_screenshot_of_the_report(report, tmp_path):
    shot = screenshot(tmp_path, report, "inspection.png", "1300,2600")
    assert shot.stat().st_size > 20_000


def test_the_capture_summary_renders_with_the_same_look(synthetic_store, shanghai, tmp_path):
    page = tmp_path / "summary.html"
    r = CliRunner().invoke(
        app,
        [
            "capture",
            "summary",
            "--store",
            str(synthetic_store),
            "--channel",
            "adt",
            "--since",
            "2026-03-02T10:00+08:00",
            "--html",
            str(page),
        ],
    )
    assert r.exit_code == 0, r.output
    dom = rendered(tmp_path, page)
    verdict = dom.get_element_by_id("verdict")
    assert "INFO" in verdict.get("class") and text_of(verdict).startswith("500 exchanges")
    assert [c.get("class").split()[-1] for c in dom.find_class("chart")] == ["volume", "error-rate", "p95"]
    assert "channel adt; since 2026-03-02T10:00+08:00" in text_of(dom.get_element_by_id("summary"))
