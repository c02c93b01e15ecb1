from datetime import datetime

import pytest

from harness.exchange import Exchange
from harness.load.capture_shape import CaptureShapeError, derive
from harness.load.shapes import Curve
from harness.store import Store
from tests.messages import adt


def at(hhmm: str, second: int = 0, day: str = "2026-11-25") -> float:
    return datetime.fromisoformat(f"{day}T{hhmm}:{second:02d}").timestamp()


def exchange(when: float, message_type: str, kind: str = "hl7v2", **kw) -> Exchange:
    request = adt(f"C{when}", trigger=message_type.split("^")[-1]) if kind == "hl7v2" else b"{}"
    protocol = "mllp" if kind == "hl7v2" else "http"
    return Exchange(
        channel=kw.pop("channel", "adt"),
        protocol=protocol,
        kind=kind,
        started_at=when,
        message_type=message_type,
        request=request,
        **kw,
    )


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "captures.db"
    rows = []
    rows += [exchange(at("08:00", s % 60), "ADT^A04") for s in range(30)]
    rows += [exchange(at("08:00", s % 60), "ADT^A08") for s in range(10)]
    rows += [exchange(at("08:01", s % 60), "ADT^A04") for s in range(60)]
    rows += [exchange(at("08:03", 5), "ADT^A04") for _ in range(5)]
    rows += [exchange(at("08:01", 30), "2207", kind="medins", channel="medins") for _ in range(12)]
    rows += [exchange(at("08:02", 1), "report", kind="cdc", channel="cdc") for _ in range(3)]
    rows += [exchange(at("08:01", 10), "ADT^A04", original_id=1, run_id=None) for _ in range(500)]  # replays
    rows += [exchange(at("08:01", 10, day="2026-11-24"), "ADT^A01") for _ in range(99)]  # another day
    with Store(path) as s:
        s.add_many(rows)
    return path


def test_a_captured_day_becomes_per_minute_steps_with_each_minutes_mix(store):
    day = derive(store, "2026-11-25")
    shape = day.shape
    assert shape.clock and shape.interpolate == "step" and shape.unit == "per_minute"
    assert [p for p in shape.points] == [(480.0, 40.0), (481.0, 72.0), (482.0, 0.0), (483.0, 5.0)]
    assert shape.mixes[0] == {"ADT^A04": 30, "ADT^A08": 10}
    assert shape.mixes[1] == {"ADT^A04": 60, "2207": 12}
    assert (day.first, day.last, day.peak_per_minute, day.total) == ("08:00", "08:03", 72, 117)
    assert dict(day.by_kind) == {"mllp": 105, "medins": 12}
    assert dict(day.not_generated) == {"cdc": 3}
    assert set(day.samples) == {"ADT^A04", "ADT^A08"} and day.samples["ADT^A08"].startswith(b"MSH|")
    # played at twice the captured rate over 8 s: each minute two seconds, its rate kept and doubled
    curve = Curve(shape, 8, shape.peak / 60, scale=2)
    assert curve.target(1) == pytest.approx(40 / 60 * 2) and curve.target(3) == pytest.approx(72 / 60 * 2)
    assert curve.target(5) == 0 and curve.mix_at(3) == {"ADT^A04": 60, "2207": 12}


def test_channels_narrow_the_capture(store):
    day = derive(store, "2026-11-25", channels=["medins"])
    assert day.total == 12 and day.shape.points == ((481.0, 12.0),)


@pytest.mark.parametrize(
    "day, channels, words",
    [
        ("2026-11-26", None, ["no captured traffic on 2026-11-26"]),
        ("25/11/2026", None, ["--day '25/11/2026'", "YYYY-MM-DD"]),
        ("2026-11-25", ["cdc"], ["CDC/raw exchanges only"]),
    ],
)
def test_days_without_usable_traffic_say_so(store, day, channels, words):
    with pytest.raises(CaptureShapeError) as err:
        derive(store, day, channels)
    for word in words:
        assert word in str(err.value)
    with pytest.raises(CaptureShapeError, match="no such capture store"):
        derive(store.with_name("missing.db"), "2026-11-25")
