"""The HTML report in a real browser: headless Chromium renders it; the tests read the rendered DOM.

Needs the Debian packages `chromium` and `fonts-wqy-zenhei` (`make browser` installs both); without Chromium
every test here is skipped with that reason, never passed silently.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.browser import chromium, needs_chromium, rendered

pytestmark = needs_chromium
MSGS = (
    "MSH|^~\\&|HIS|H53010001|HC|H53010001|20240301083000||ADT^A01^ADT_A01|M1|P|2.5|||AL|NE||UNICODE UTF-8\r"
    "EVN|A01|20240301083000\rPID|1||P1^^^H53010001^MR||张^伟||19801301|M\rPV1|1|I\r"
    "MSH|^~\\&|HIS|H53010001|HC|H53010001|20240301083000||ADT^A01^ADT_A01|M2|P|2.5|||AL|NE||UNICODE UTF-8\r"
    "EVN|A01|20240301083000\rPID|1||P2^^^H53010001^MR||李^娜||19800101|F\r"
    "MSH|^~\\&|HIS|H53010001|HC|H53010001|20240301083000||ADT^A01^ADT_A01|M3|P|2.5|||AL|NE||UNICODE UTF-8\r"
    "EVN|A01|20240301083000\rPID|1||P3^^^H53010001^MR||王^芳||19800101|F\rPV1|1|I\r"
)
REASON = "出生日期由旧系统迁移，月份为13（升级前接受）"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "adt.hl7").write_text(MSGS, encoding="utf-8")
    (tmp / "waivers.yaml").write_text(
        f"waivers:\n  - code: HL7-DATATYPE-DTM\n    location: PID-7\n    reason: {REASON}\n", encoding="utf-8"
    )
    (tmp / "profile.yaml").write_text(
        "name: yunnan-his-adt\ndescription: 云南 HIS 入出转 ADT 接口\nversion: '2.5'\n", encoding="utf-8"
    )
    out = tmp / "report.html"
    r = CliRunner().invoke(
        app,
        [
            "validate",
            str(tmp / "adt.hl7"),
            "--profile",
            str(tmp / "profile.yaml"),
            "--waivers",
            str(tmp / "waivers.yaml"),
            "--format",
            "html",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 1, r.output  # M2 lacks its PV1
    return out


def text_of(node) -> str:
    return " ".join(" ".join(node.itertext()).split())


def test_the_rendered_report_opens_with_the_verdict(report, tmp_path):
    dom = rendered(tmp_path, report)
    verdict = dom.get_element_by_id("verdict")
    assert "FAIL" in verdict.get("class")
    assert text_of(verdict).startswith("FAIL 1 of 3 messages fail on error")
    body = dom.find("body")
    first = [el for el in body if isinstance(el.tag, str)][0]
    assert first.get("id") == "verdict"
    meta = text_of(dom.find_class("meta")[0])
    assert "yunnan-his-adt" in meta and "waivers.yaml" in meta and "fails on error" in meta
    assert re.search(r"date \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", meta)


def test_the_charts_are_drawn(report, tmp_path):
    dom = rendered(tmp_path, report)
    charts = dom.xpath("//svg[contains(@class, 'chart')]")
    assert len(charts) == 2
    by_code, by_type = charts
    bars = by_code.xpath(".//rect")
    assert bars and all(int(b.get("width")) > 0 for b in bars)
    labels = [" ".join(t.text_content().split()) for t in by_code.xpath(".//text")]
    assert "HL7-STRUCT-MISSING-SEGMENT" in labels and "HL7-DATATYPE-DTM" in labels
    assert "33% (1/3)" in [t.text_content() for t in by_type.xpath(".//text")]


def test_chinese_text_is_in_the_rendered_dom_and_a_cjk_font_draws_it(report, tmp_path):
    dom = rendered(tmp_path, report)
    page = text_of(dom)
    assert REASON in page and "云南 HIS 入出转 ADT 接口" in page
    # with no CJK font every Han character is drawn as the same empty box; with one, 汉 and 字 differ
    probe = tmp_path / "probe.html"
    probe.write_text(
        report.read_text(encoding="utf-8").replace(
            "</body>",
            "<script>(function(){var f=getComputedStyle(document.body).fontFamily;function px(c){var k="
            "document.createElement('canvas');k.width=k.height=40;var x=k.getContext('2d');x.font='32px '+f;"
            "x.fillText(c,2,34);return Array.from(x.getImageData(0,0,40,40).data).join(',');}"
            "document.body.setAttribute('data-han',px('汉')===px('字')?'boxes':'glyphs');})();</script></body>",
        ),
        encoding="utf-8",
    )
    probed = rendered(tmp_path, probe)
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    if not fonts.strip():
        pytest.skip("no CJK font installed (Debian package fonts-wqy-zenhei: `make browser`)")
    assert probed.find("body").get("data-han") == "glyphs"


def test_a_screenshot_is_taken(report, tmp_path):
    shot = tmp_path / "report.png"
    proc = chromium(tmp_path, report.as_uri(), f"--screenshot={shot}", "--window-size=1400,1800")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_the_report_fetches_nothing(report):
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "url(" not in text
    json.dumps(text)  # plain text: nothing binary embedded
