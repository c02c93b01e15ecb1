"""time_chart: stacked bars, lines with gaps, marked moments, clock-time ticks, valid SVG."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from lxml import etree

from harness.report.charts import Marker, Series, time_chart

CST = timezone(timedelta(hours=8))
START = datetime(2026, 3, 2, 8, 0, tzinfo=CST).timestamp()
SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str):
    return etree.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1).encode())


def test_bars_stack_and_every_bucket_has_a_tooltip():
    svg = time_chart(
        [Series("ok", [3, 0, 5], "#0a0", style="bar"), Series("failed", [1, 2, None], "#a00", style="bar")],
        start=START,
        step_s=3600,
        title="volume",
        css_class="v",
        tz=CST,
    )
    root = parse(svg)
    buckets = root.findall(f"{SVG}g[@class='bucket']")
    assert len(buckets) == 3
    assert buckets[0].find(f"{SVG}title").text == "03-02 08:00:00–09:00:00 · ok: 3 · failed: 1"
    heights = [[float(r.get("height")) for r in g.findall(f"{SVG}rect")[1:]] for g in buckets]
    assert len(heights[0]) == 2 and len(heights[1]) == 1 and len(heights[2]) == 1
    assert abs(heights[0][0] / heights[0][1] - 3.0) < 0.01  # 3 ok on 1 failed, one scale


def test_lines_break_where_there_is_no_value_and_ticks_are_clock_times():
    svg = time_chart(
        [Series("p95", [1.0, 2.0, None, 4.0, 5.0, None, 7.0], "#00a")],
        start=START,
        step_s=900,
        title="p95",
        css_class="p",
        unit=" ms",
        tz=CST,
    )
    root = parse(svg)
    assert len(root.findall(f"{SVG}polyline")) == 2 and len(root.findall(f"{SVG}circle")) == 1
    ticks = [t.text for t in root.findall(f"{SVG}text[@class='tick']")]
    assert "08:00" in ticks and "09:30" in ticks and "10 ms" in ticks and "7.5 ms" in ticks


def test_markers_are_drawn_with_labels_and_spans():
    svg = time_chart(
        [Series("n", [1] * 24, "#0a0", style="bar")],
        start=START,
        step_s=3600,
        title="t",
        css_class="c",
        markers=[
            Marker(START + 3 * 3600, "failover → b"),
            Marker(START + 12 * 3600, "silence", until=START + 14 * 3600),
        ],
        tz=CST,
    )
    root = parse(svg)
    assert [t.text for t in root.findall(f"{SVG}text[@class='marker-label']")] == ["failover → b", "silence"]
    assert (
        len(root.findall(f"{SVG}rect[@class='marker']")) == 1
        and len(root.findall(f"{SVG}line[@class='marker']")) == 1
    )
    ticks = [t.text for t in root.findall(f"{SVG}text[@class='tick']")]
    assert "03-02 12:00" in ticks or "03-03 00:00" in ticks  # spanning a day: the date is shown


def test_no_data():
    assert "no data" in time_chart([], start=START, step_s=60, title="t", css_class="c")
