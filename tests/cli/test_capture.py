"""`harness capture list|show|export|summary` over real store files: output, filters and exit codes."""

from __future__ import annotations

import json
import subprocess

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.exchange import Exchange
from harness.hl7v2.files import iter_messages
from harness.mllp import MLLPDecoder
from harness.store import Store
from tests.messages import ack_for

runner = CliRunner()
T0 = 1764072000.0  # 2025-11-25T12:00:00Z


def hl7(control_id: str, trigger: str = "A01", pid: str = "1001", charset: str | None = None) -> bytes:
    msh18 = f"|||||CHN|{charset}" if charset else ""
    text = (
        f"MSH|^~\\&|HIS|医院|HC|H2|20251125120000||ADT^{trigger}^ADT_{trigger}|{control_id}|P|2.5{msh18}\r"
        f"PID|1||{pid}^^^H1^MR||张^三\r"
    )
    return text.encode(charset.lower() if charset else "utf-8")


def ack(control_id: str, code: str = "AA") -> bytes:
    return ack_for(control_id, code, sender=("HC", "H2"), receiver=("HIS", "H1"))


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "captures.db"
    rows = [
        Exchange(channel="adt", started_at=T0, request=hl7("C1"), response=ack("C1"), ack_code="AA",
                 message_type="ADT^A01", control_id="C1", charset="utf-8"),
        Exchange(channel="adt", started_at=T0 + 10, request=hl7("C2", "A08", pid="2002", charset="GB18030"),
                 response=ack("C2", "AE"), outcome="nak", ack_code="AE", message_type="ADT^A08",
                 control_id="C2", charset="gb18030"),
        Exchange(channel="adt", started_at=T0 + 20, request=hl7("C3/x"), response=None, outcome="timeout",
                 message_type="ADT^A01", control_id="C3/x", charset="utf-8"),
        Exchange(channel="lab", started_at=T0 + 30, request=hl7("C4", "A04"), response=ack("C4", "AE"),
                 outcome="fault", ack_code="AE", message_type="ADT^A04", control_id="C4", charset="utf-8",
                 fault={"id": "r7", "action": {"type": "nak", "code": "AE"}}),
        Exchange(channel="medins", protocol="http", kind="medins", started_at=T0 + 40, method="POST",
                 path="/fsi/api/rsfComIfsService/callService", status=200, request=b'{"infno":"2207"}',
                 response=b'{"infcode":0}', message_type="2207", meta={"infno": "2207", "infcode": 0}),
    ]  # fmt: skip
    for i, ex in enumerate(rows):
        ex.finish(ex.started_at + (i + 1) / 1000)
    with Store(path) as store:
        store.add_many(rows)
        run = store.create_run("replay", {"to": "127.0.0.1:1"})
        replayed = Exchange(channel="adt", started_at=T0 + 100, request=hl7("R1"), response=ack("R1"),
                            ack_code="AA", message_type="ADT^A01", control_id="R1", run_id=run,
                            original_id=1)  # fmt: skip
        replayed.finish(T0 + 100.01)
        store.add(replayed)
    return path


def cli(*args: str):
    return runner.invoke(app, ["capture", *args])


def lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def ids_of(result) -> list[int]:
    return [row["id"] for row in lines(result)]


def test_list_table(store_path):
    result = cli("list", "--store", str(store_path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    live = "5 exchanges (live traffic only"
    for text in ("C1", "C2", "C3/x", "ADT^A08", "timeout", "nak (r7)", "2207 POST 200", live):
        assert text in out, text
    assert out.index("C1") < out.index("C2")


def test_list_json_rows(store_path):
    result = cli("list", "--store", str(store_path), "--json")
    assert result.exit_code == 0, result.output
    rows = lines(result)
    assert [r["control_id"] for r in rows] == ["C1", "C2", "C3/x", "C4", None]  # live traffic only
    for row in rows:
        for key in ("id", "channel", "control_id", "message_type", "ack_code", "outcome", "latency_ms",
                    "fault", "started_at", "kind"):  # fmt: skip
            assert key in row
    assert rows[1]["ack_code"] == "AE" and rows[1]["outcome"] == "nak" and rows[1]["latency_ms"] == 2.0
    assert rows[3]["fault"] == {"id": "r7", "action": {"type": "nak", "code": "AE"}}
    assert rows[0]["started_at"] == "2025-11-25T12:00:00.000Z"
    http = rows[4]
    assert (http["kind"], http["method"], http["status"]) == ("medins", "POST", 200)
    assert http["path"].endswith("callService") and http["meta"] == {"infno": "2207", "infcode": 0}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--channel", "lab"], [4]),
        (["--channel", "lab", "-c", "medins"], [4, 5]),
        (["--outcome", "nak,timeout"], [2, 3]),
        (["--outcome", "nak", "--outcome", "fault"], [2, 4]),
        (["--type", "ADT^A01"], [1, 3]),
        (["--type", "ADT^A01", "--runs", "all"], [1, 3, 6]),
        (["--type", "ADT^A01", "--runs", "1"], [1, 3, 6]),
        (["--type", "ADT^A01", "--runs", "7"], [1, 3]),
        (["--type", "ADT", "--channel", "adt"], [1, 2, 3]),
        (["--control-id", "C2", "--control-id", "C3/x"], [2, 3]),
        (["--since", "2025-11-25T12:00:15Z", "--until", "2025-11-25T20:00:40+08:00"], [3, 4, 5]),
        (["--since", "-1h"], []),
        (["--kind", "medins"], [5]),
        (["--run", "1"], [6]),
        (["--limit", "2"], [1, 2]),
        (["--limit", "2", "--newest-first"], [5, 4]),
        (["--limit", "2", "--newest-first", "--runs", "all"], [6, 5]),
    ],
)
def test_list_filters(store_path, args, expected):
    result = cli("list", "--store", str(store_path), "--json", *args)
    assert result.exit_code == 0, result.output
    assert ids_of(result) == expected


def _message_module_or_skip() -> None:
    try:
        import harness.hl7v2.message  # noqa: F401
    except Exception as exc:
        pytest.skip(f"harness.hl7v2.message not importable: {exc}")


def test_list_where_terse_path(store_path):
    _message_module_or_skip()
    result = cli("list", "--store", str(store_path), "--json", "--where", "PID-3.1=2002")
    assert result.exit_code == 0, result.output
    assert ids_of(result) == [2]  # decoded with its recorded charset (GB18030)
    result = cli("list", "--store", str(store_path), "--json", "-w", "PID-3.1=re:^100", "-w", "MSH-9.2=A01")
    assert ids_of(result) == [1, 3]
    result = cli("list", "--store", str(store_path), "--where", "PID-3.1=re:(")
    assert result.exit_code == 2 and "regular expression" in result.output
    result = cli("list", "--store", str(store_path), "--where", "PID-x=1")
    assert result.exit_code == 2 and "bad terse path 'PID-x'" in result.output


def test_long_listing_prints_in_chunks(tmp_path):
    path = tmp_path / "long.db"
    with Store(path) as store:
        store.add_many([Exchange(channel="adt", started_at=T0 + i, control_id=f"M{i:04d}", request=b"x")
                        for i in range(450)])  # fmt: skip
    result = cli("list", "--store", str(path))
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0][:2] == ["id", "time"]  # one header, then every row in order
    assert [r[0] for r in rows[1:-1]] == [str(i) for i in range(1, 451)]
    assert result.stdout.count("control id") == 1 and rows[-1][:2] == ["450", "exchanges"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since: time 'yesterday'"),
        (["--until", "2025-13-01"], "--until"),
        (["--outcome", "great"], "--outcome great: expected one of"),
        (["--where", "PID-3.1"], "expected PATH=VALUE"),
        (["--limit", "-1"], "--limit"),
    ],
)
def test_bad_filters_exit_2(store_path, args, message):
    result = cli("list", "--store", str(store_path), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_missing_or_foreign_store_exit_2(tmp_path):
    missing = tmp_path / "nope.db"
    for command in (
        ["list"],
        ["show", "--unmasked", "1"],
        ["summary"],
        ["export", "--unmasked", "--out", str(tmp_path / "o")],
    ):
        result = cli(*command, "--store", str(missing))
        assert result.exit_code == 2, command
        assert f"capture store {missing} does not exist" in result.output
    assert not missing.exists()  # reading never creates a store
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite" * 200)
    result = cli("list", "--store", str(junk))
    assert result.exit_code == 2 and "not a usable SQLite file" in result.output


def test_show_decodes_with_recorded_charset(store_path):
    result = cli("show", "--unmasked", "2", "--store", str(store_path))
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    msh = next(i for i, line in enumerate(out) if line.startswith("MSH|") and "ADT^A08" in line)
    assert "医院" in out[msh] and out[msh + 1] == "PID|1||2002^^^H1^MR||张^三"
    assert any(line.startswith("MSA|AE|C2") for line in out)
    assert any(line.startswith("outcome") and "nak" in line for line in out)
    assert "-- response: none" in cli("show", "--unmasked", "3", "--store", str(store_path)).stdout


def test_show_raw_and_json(store_path):
    raw = cli("show", "--unmasked", "2", "--store", str(store_path), "--raw")
    assert raw.exit_code == 0 and raw.stdout_bytes == hl7("C2", "A08", pid="2002", charset="GB18030")
    reply = cli("show", "--unmasked", "2", "--store", str(store_path), "--raw", "--response")
    assert reply.stdout_bytes == ack("C2", "AE")
    assert cli("show", "--unmasked", "3", "--store", str(store_path), "--raw", "--response").exit_code == 2
    view = json.loads(cli("show", "--unmasked", "5", "--store", str(store_path), "--json").stdout)
    assert view["request"] == '{"infno":"2207"}' and view["method"] == "POST"
    missing = cli("show", "--unmasked", "99", "--store", str(store_path))
    assert missing.exit_code == 2 and "no exchange 99" in missing.output


def test_export_files(store_path, tmp_path):
    out = tmp_path / "export"
    result = cli(
        "export",
        "--unmasked",
        "--store",
        str(store_path),
        "--out",
        str(out),
        "--channel",
        "adt",
        "--json",
        "--runs",
        "all",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    names = sorted(p.name for p in out.iterdir())
    assert report["exchanges"] == 4
    assert names == ["000001_C1.hl7", "000002_C2.hl7", "000003_C3_x.hl7", "000006_R1.hl7"]
    assert (out / "000002_C2.hl7").read_bytes() == hl7("C2", "A08", pid="2002", charset="GB18030")
    with Store(store_path) as store:
        read_back = [m.payload for m in iter_messages([out])]
        assert read_back == [store.get(i).request for i in (1, 2, 3, 6)]


def test_export_mllp_single_and_responses(store_path, tmp_path):
    result = cli(
        "export",
        "--unmasked",
        "--store",
        str(store_path),
        "--out",
        str(tmp_path / "m"),
        "--format",
        "mllp",
        "--single",
    )
    assert result.exit_code == 0, result.output
    decoder = MLLPDecoder()
    frames = [
        e.payload for e in decoder.feed((tmp_path / "m" / "capture.mllp").read_bytes()) + decoder.close()
    ]
    # hl7v2 only, live traffic only
    assert len(frames) == 4 and frames[1] == hl7("C2", "A08", pid="2002", charset="GB18030")
    result = cli(
        "export",
        "--unmasked",
        "--store",
        str(store_path),
        "--out",
        str(tmp_path / "b"),
        "--single",
        "-o",
        "nak,fault",
    )
    batch = [m for m in iter_messages([tmp_path / "b" / "capture.hl7"])]
    assert [m.payload for m in batch] == [
        hl7("C2", "A08", pid="2002", charset="GB18030"),
        hl7("C4", "A04"),
    ]
    assert batch[0].batch is not None and batch[0].batch.file_header.startswith(b"FHS|^~\\&|harness")
    assert (tmp_path / "b" / "capture.hl7").read_bytes().endswith(b"BTS|2\rFTS|1\r")
    result = cli("export", "--unmasked", "--store", str(store_path), "--out", str(tmp_path / "r"),
                 "-c", "lab", "--runs", "all", "--responses", str(tmp_path / "acks"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["000004_C4.hl7"]
    assert (tmp_path / "acks" / "000004_C4.hl7").read_bytes() == ack("C4", "AE")
    same = cli(
        "export",
        "--unmasked",
        "--store",
        str(store_path),
        "--out",
        str(tmp_path / "r"),
        "--responses",
        str(tmp_path / "r"),
    )
    assert same.exit_code == 2 and "folder of its own" in same.output
    bad = cli(
        "export", "--unmasked", "--store", str(store_path), "--out", str(tmp_path / "x"), "--format", "xml"
    )
    assert bad.exit_code == 2 and "--format 'xml'" in bad.output


def test_summary(store_path):
    result = cli("summary", "--store", str(store_path), "--json", "--runs", "all")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["exchanges"] == 6
    assert summary["by_channel"] == {"adt": 4, "lab": 1, "medins": 1}
    assert summary["by_outcome"] == {"ok": 3, "nak": 1, "timeout": 1, "fault": 1}
    assert summary["by_message_type"]["ADT^A01"] == 3 and summary["by_fault"] == {"nak": 1}
    latency = summary["latency_ms"]
    assert latency["count"] == 6 and latency["max"] == pytest.approx(10.0, abs=0.01)
    assert latency["p50"] == pytest.approx(3.5, abs=0.01)
    text = cli("summary", "--store", str(store_path), "--channel", "adt")
    assert text.exit_code == 0 and "3 exchanges (live traffic only" in text.stdout and "p99" in text.stdout


def test_summary_in_a_real_process(store_path, processes):
    proc = processes.harness("capture", "summary", "--store", str(store_path), "--json", "--outcome", "ok",
                             stderr=subprocess.PIPE)  # fmt: skip
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["by_outcome"] == {"ok": 2} and summary["traffic"].startswith("live traffic")
    proc = processes.harness("capture", "list", "--store", str(store_path.with_name("gone.db")))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "does not exist" in out


def test_help_lists_commands():
    result = runner.invoke(app, ["capture", "--help"])
    assert result.exit_code == 0
    for command in ("list", "show", "export", "summary"):
        assert command in result.stdout
