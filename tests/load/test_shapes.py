import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.load.shapes import Curve, Shape, ShapeError, clock, parse_shape


def test_outpatient_peak_ramps_from_0730_holds_0800_to_1100_then_declines():
    shape = parse_shape("outpatient-peak")
    assert shape.clock and shape.unit == "per_minute"
    curve = Curve(shape, duration_s=300, peak=50)  # 07:00-12:00 in 300 s: one clock minute a second
    at = {
        label: curve.target(minutes - 420)
        for label, minutes in [
            ("07:10", 430),
            ("07:45", 465),
            ("08:00", 480),
            ("09:30", 570),
            ("11:00", 660),
            ("11:30", 690),
        ]
    }
    assert at["07:10"] == pytest.approx(5.0)
    assert at["07:10"] < at["07:45"] < at["08:00"]
    assert at["08:00"] == at["09:30"] == at["11:00"] == pytest.approx(50.0)
    assert at["11:30"] < at["11:00"]
    assert curve.label_at(150) == "09:30"


def test_step_spike_and_soak_are_levels_of_the_peak():
    step = Curve(parse_shape({"type": "step", "steps": 4, "start": 0.25, "step": 0.25}), 100, 40)
    assert [step.target(t) for t in (1, 30, 60, 99)] == [10, 20, 30, 40]
    spike = Curve(
        parse_shape({"type": "spike", "base": 0.2, "spike": 1.0, "at": 0.5, "length": 0.1}), 100, 50
    )
    assert [spike.target(t) for t in (10, 55, 70)] == [10, 50, 10]
    soak = Curve(parse_shape({"type": "soak", "ramp": 0.1}), 1000, 100)
    assert soak.target(0) == 0 and soak.target(500) == 100
    assert soak.total == pytest.approx(100 * 0.5 * 100 + 100 * 900)


def test_points_shape_takes_clock_times_or_run_fractions():
    shape = parse_shape({"type": "points", "at": [["17:00", 600], ["17:30", 1200], ["18:00", 0]]})
    assert shape.clock and shape.points[1] == (1050.0, 1200.0)
    assert clock(1050) == "17:30"
    frac = parse_shape({"type": "points", "unit": "level", "interpolate": "step", "at": [[0, 0.5], [0.5, 1]]})
    assert Curve(frac, 10, 8).target(7) == 8


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"type": "stairs"}, ["shape.type", "unknown shape 'stairs'", "outpatient-peak"]),
        ({"type": "step", "steps": 0}, ["shape.steps", "whole number >= 1"]),
        ({"type": "step", "stepz": 3}, ["shape.stepz", "unknown key", "steps"]),
        ({"type": "spike", "at": 0.95, "length": 0.1}, ["at and length"]),
        ({"type": "points", "at": [["7:61", 1]]}, ["shape.at[0]", "clock time"]),
        ({"type": "points", "at": [["07:00", 1], [0.5, 2]]}, ["shape.at[1]", "mix of clock times"]),
        ({"type": "points", "at": [["08:00", 1], ["07:00", 2]]}, ["time order"]),
        ({"type": "points", "at": [["08:00", -1]]}, ["not negative"]),
        (42, ["expected a shape name"]),
    ],
)
def test_bad_shapes_name_the_key(spec, words):
    with pytest.raises(ShapeError) as err:
        parse_shape(spec)
    for word in words:
        assert word in str(err.value)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=0, max_value=500).map(lambda v: v if v > 1e-6 else 0.0), min_size=2, max_size=8
    ),
    step=st.booleans(),
    duration=st.floats(min_value=1, max_value=3600),
    peak=st.floats(min_value=0.5, max_value=5000),
)
@example(values=[389.54296875, 389.546875], step=False, duration=340.0, peak=257.0)  # an almost flat line
def test_arrival_times_invert_the_integral_exactly(values, step, duration, peak):
    if max(values) == 0:
        values[0] = 1.0
    points = tuple((i / (len(values) - 1), v) for i, v in enumerate(values))
    curve = Curve(Shape("t", points, "step" if step else "linear", "level"), duration, peak)
    assert curve.due(duration) == pytest.approx(curve.total)
    assert curve.time_for(curve.total * 1.001 + 1) is None
    previous = 0.0
    for n in range(1, min(int(curve.total), 200) + 1):
        t = curve.time_for(n)
        assert t is not None and previous - 1e-6 <= t <= duration + 1e-6
        assert curve.due(t) == pytest.approx(n, rel=1e-6, abs=1e-6)
        previous = t


def test_a_captured_step_shape_lasts_its_last_minute_and_keeps_each_minutes_mix():
    shape = Shape(
        "capture",
        ((480.0, 60.0), (481.0, 120.0)),
        "step",
        "per_minute",
        clock=True,
        mixes=({"ADT^A04": 60}, {"ADT^A08": 120}),
    )
    curve = Curve(shape, duration_s=120, peak=2.0)  # two captured minutes in two minutes: rates kept
    assert curve.target(30) == 1.0 and curve.target(90) == 2.0
    assert curve.total == pytest.approx(180)
    assert curve.mix_at(90) == {"ADT^A08": 120}
    assert math.isclose(curve.time_for(60), 60)
