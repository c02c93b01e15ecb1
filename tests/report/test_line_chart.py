from lxml import etree

from harness.report.charts import Series, line_chart, nice_ceiling


def test_nice_ceilings_are_round_numbers():
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 7, 23, 80, 101, 3400)] == [1, 0.5, 1, 10, 25, 100, 200, 5000]


def test_a_line_chart_draws_each_series_with_gaps_axes_and_a_legend():
    svg = line_chart(
        [
            Series("achieved", (0.0, 10.0, None, 30.0, 40.0), "#2f6db5"),
            Series("target <30/s>", (40.0, 40.0, 40.0, 40.0, 40.0), "#6b7280", dashed=True),
        ],
        x_labels=["08:00", "08:01", "08:02", "08:03", "08:04"],
        title="rate & target",
        css_class="rate",
        unit="/s",
    )
    root = etree.fromstring(svg)  # well-formed: labels are escaped
    ns = {"s": "http://www.w3.org/2000/svg"} if root.tag.startswith("{") else {}
    polylines = root.findall(".//s:polyline" if ns else ".//polyline", ns)
    assert len(polylines) == 3  # the gap splits "achieved" in two
    assert 'stroke-dasharray="6 4"' in svg
    texts = ["".join(t.itertext()) for t in root.iter() if t.tag.endswith("text")]
    assert "40/s" in texts and "08:00" in texts and "target <30/s>" in texts
    assert root.findtext("title") == "rate & target"


def test_an_empty_chart_says_so():
    assert "no data" in line_chart([], x_labels=[], title="t", css_class="c")
