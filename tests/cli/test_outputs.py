"""What the commands write and print, run as real processes: private files, no clobbering, no traceback,
no raw control characters, live traffic unless replay runs are asked for."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from harness.exchange import Exchange
from harness.mllp import MLLPDecoder
from harness.store import Store
from tests.processes import HARNESS, ROOT

T0 = 1764072000.0
ESC_ID = "C2\x1b]0;pwned\x07[red]x[/]"


def hl7(control_id: str, extra: str = "") -> bytes:
    return (
        f"MSH|^~\\&|HIS|H1|HC|H2|20251125120000||ADT^A01^ADT_A01|{control_id}|P|2.5\r"
        f"PID|1||1001^^^H1^MR||ZHANG^SAN{extra}\r"
    ).encode()


ACK = b"MSH|^~\\&|HC|H2|HIS|H1|||ACK|A1|P|2.5\rMSA|AA|C1\r"
HTTP_REQUEST = b'POST /fsi/api HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 16\r\n\r\n{"infno":"2207"}'
HTTP_RESPONSE = b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"infcode":0}'


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "captures.db"
    rows = [
        Exchange(channel="adt", started_at=T0, request=hl7("C1"), response=ACK, ack_code="AA",
                 message_type="ADT^A01", control_id="C1", charset="utf-8"),
        Exchange(channel="adt", started_at=T0 + 1, request=hl7(ESC_ID), response=ACK, ack_code="AA",
                 message_type="ADT^A01", control_id=ESC_ID, charset="utf-8"),
        Exchange(channel="adt", started_at=T0 + 2, request=hl7("C3", "\x1cX"), response=ACK, ack_code="AA",
                 message_type="ADT^A01", control_id="C3", charset="utf-8"),
        Exchange(channel="medins", protocol="http", kind="medins", started_at=T0 + 3, method="POST",
                 path="/fsi/api", status=200, request=HTTP_REQUEST, response=HTTP_RESPONSE,
                 message_type="2207", upstream_addr="127.0.0.1:8080"),
    ]  # fmt: skip
    for ex in rows:
        ex.finish(ex.started_at + 0.002)
    with Store(path) as db:
        db.add_many(rows)
        run = db.create_run("replay", {"to": "127.0.0.1:1"})
        replayed = [
            Exchange(channel="adt", started_at=T0 + 100, request=hl7("C1"), response=ACK, ack_code="AA",
                     message_type="ADT^A01", control_id="C1", run_id=run, original_id=1, charset="utf-8"),
            # replayed from a file: no original exchange, still a replay run's row
            Exchange(channel="replay", started_at=T0 + 101, request=hl7("F1"), response=ACK, ack_code="AA",
                     message_type="ADT^A01", control_id="F1", run_id=run, charset="utf-8"),
        ]  # fmt: skip
        for ex in replayed:
            ex.finish(ex.started_at + 0.5)
        db.add_many(replayed)
    return path


def run(*args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HARNESS_DEBUG="")
    return subprocess.run(
        [*HARNESS, *args], cwd=ROOT, capture_output=True, timeout=120, env=env,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def text(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr).decode("utf-8", "replace")


# --- files ------------------------------------------------------------------------------------------


def test_every_output_is_0600_in_folders_created_0700_even_under_umask_0(store, tmp_path):
    out = tmp_path / "new" / "exports"
    produced = {
        "hl7 files": (["capture", "export", "--unmasked", "--store", str(store), "--out", str(out / "hl7"),
                       "--responses", str(out / "acks")], out / "hl7"),
        "mllp stream": (["capture", "export", "--unmasked", "--store", str(store), "--out", str(out / "mllp"),
                         "--format", "mllp", "--single"], out / "mllp" / "capture.mllp"),
        "hl7 batch": (["capture", "export", "--unmasked", "--store", str(store), "--out", str(out / "batch"),
                       "--single"], out / "batch" / "capture.hl7"),
        "har": (["capture", "export", "--unmasked", "--store", str(store), "--out", str(out / "har"),
                 "--format", "har"], out / "har" / "capture.har"),
        "mitm": (["capture", "export", "--unmasked", "--store", str(store), "--out", str(out / "mitm"),
                  "--format", "mitm"], out / "mitm" / "capture.mitm"),
        "validate html": (["validate", "--unmasked", "--store", str(store), "--format", "html", "--out",
                           str(out / "v" / "report.html")], out / "v" / "report.html"),
        "validate junit": (["validate", "--unmasked", "--store", str(store), "--format", "junit", "--out",
                            str(out / "v" / "junit.xml")], out / "v" / "junit.xml"),
        "compare reports": (["compare", "--unmasked", "capture", "1", "--store", str(store), "--report-html",
                             str(out / "c" / "r.html"), "--report-junit", str(out / "c" / "r.xml"),
                             "--report-json", str(out / "c" / "r.json")], out / "c"),
    }  # fmt: skip
    for name, (args, _) in produced.items():
        result = run(*args, umask=0)
        assert result.returncode in (0, 1), (name, text(result))
        assert b"Traceback" not in result.stderr, name
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 13
    assert {p.name for p in files} >= {"capture.har", "capture.mitm", "report.html", "r.json", "r.xml"}
    for path in files:
        assert mode(path) == 0o600, path
    for folder in [p for p in out.rglob("*") if p.is_dir()] + [out, out.parent]:
        assert mode(folder) == 0o700, folder
    imported = tmp_path / "fresh" / "imported.db"
    result = run("capture", "import", str(out / "har" / "capture.har"), "--store", str(imported), umask=0)
    assert result.returncode == 0, text(result)
    assert mode(imported.parent) == 0o700 and mode(imported) == 0o600


def test_exports_never_overwrite_without_force(store, tmp_path):
    out = tmp_path / "x"
    assert run("capture", "export", "--unmasked", "--store", str(store), "--out", str(out)).returncode == 0
    first = out / "000001_C1.hl7"
    first.write_bytes(b"edited by hand")
    for args in ([], ["--format", "har"], ["--single"]):
        if args:
            assert (
                run(
                    "capture", "export", "--unmasked", "--store", str(store), "--out", str(out), *args
                ).returncode
                == 0
            )
        again = run("capture", "export", "--unmasked", "--store", str(store), "--out", str(out), *args)
        assert again.returncode == 2 and b"already exists; add --force" in again.stderr, args
    assert first.read_bytes() == b"edited by hand"
    forced = run("capture", "export", "--unmasked", "--store", str(store), "--out", str(out), "--force")
    assert forced.returncode == 0 and first.read_bytes() == hl7("C1")


def test_mllp_export_skips_a_payload_with_framing_bytes_and_says_so(store, tmp_path):
    out = tmp_path / "m"
    args = ["--store", str(store), "--out", str(out), "--format", "mllp", "--single", "--json"]
    result = run("capture", "export", "--unmasked", *args)
    assert result.returncode == 0, text(result)
    report = json.loads(result.stdout)
    assert report["exchanges"] == 2 and len(report["skipped"]) == 1
    assert report["skipped"][0].startswith("exchange 3 request: payload holds an MLLP block character")
    decoder = MLLPDecoder()
    frames = [e.payload for e in decoder.feed((out / "capture.mllp").read_bytes()) + decoder.close()]
    assert frames == [hl7("C1"), hl7(ESC_ID)]
    plain = run(
        "capture",
        "export",
        "--unmasked",
        "--store",
        str(store),
        "--out",
        str(tmp_path / "n"),
        "--format",
        "mllp",
    )
    assert plain.returncode == 0 and b"skipped 1" in plain.stdout and b"exchange 3" in plain.stderr
    hl7_export = run("capture", "export", "--unmasked", "--store", str(store), "--out", str(tmp_path / "h"))
    assert hl7_export.returncode == 0 and (tmp_path / "h" / "000003_C3.hl7").read_bytes() == hl7(
        "C3", "\x1cX"
    )


# --- no traceback -------------------------------------------------------------------------------------


def _damaged_stores(store: Path, folder: Path) -> dict[str, Path]:
    stores = {}
    lies = folder / "lies.db"
    shutil.copy(store, lies)
    with sqlite3.connect(lies) as conn:
        conn.execute("PRAGMA user_version = 1")
    stores["schema version lower than the tables"] = lies
    future = folder / "future.db"
    shutil.copy(store, future)
    with sqlite3.connect(future) as conn:
        conn.execute("PRAGMA user_version = 99")
    stores["schema version from the future"] = future
    data = bytearray(store.read_bytes())
    zeroed = folder / "zeroed.db"
    page = 4096
    data[page : 2 * page] = bytes(page)  # the exchanges table's first page
    zeroed.write_bytes(bytes(data))
    stores["zeroed page"] = zeroed
    header = folder / "header.db"
    header.write_bytes(bytes(page) + store.read_bytes()[page:])
    stores["zeroed header"] = header
    (folder / "text.db").write_text("not sqlite")
    stores["text file"] = folder / "text.db"
    (folder / "adir.db").mkdir()
    stores["a folder"] = folder / "adir.db"
    stores["missing"] = folder / "missing.db"
    return stores


COMMANDS = [
    ["capture", "list"], ["capture", "list", "--json"], ["capture", "summary"],
    ["capture", "show", "--unmasked", "1"], ["capture", "show", "--unmasked", "99999999999999999999999"],
    ["capture", "show", "--unmasked", "--", "-1"],
    ["capture", "export", "--unmasked", "--out", "{out}", "--format", "mllp"],
    ["capture", "export", "--unmasked", "--out", "{out}h", "--format", "har"],
    ["capture", "list", "--runs", "x,y"], ["capture", "list", "--run", "99999999999999999999999"],
    ["capture", "list", "--since", "yesterday-ish"],
    ["capture", "list", "--limit", "99999999999999999999999"],
    ["validate", "--unmasked", "--store"], ["compare", "--unmasked", "capture", "1", "--store"],
]  # fmt: skip


@pytest.mark.slow
def test_odd_stores_and_odd_arguments_end_with_exit_2_and_a_message_never_a_traceback(store, tmp_path):
    stores = {"good": store, **_damaged_stores(store, tmp_path)}
    for label, path in stores.items():
        for i, command in enumerate(COMMANDS):
            args = [a.replace("{out}", str(tmp_path / f"o{i}{label[:4]}")) for a in command]
            args = [*args, str(path)] if args[-1] == "--store" else [*args, "--store", str(path)]
            result = run(*args)
            output = text(result)
            assert "Traceback (most recent" not in output, (label, args, output)
            assert "unexpected failure" not in output, (label, args, output)
            if label != "good":
                assert result.returncode == 2 and "error" in output.lower(), (label, args, output)


def test_the_zeroed_page_and_the_lying_schema_version_are_named(store, tmp_path):
    stores = _damaged_stores(store, tmp_path)
    result = run("capture", "list", "--store", str(stores["zeroed page"]))
    assert result.returncode == 2 and b"cannot be read" in result.stderr and b"Traceback" not in result.stderr
    result = run(
        "capture", "show", "--unmasked", "1", "--store", str(stores["schema version from the future"])
    )
    assert result.returncode == 2 and b"schema version 99" in result.stderr
    result = run("capture", "show", "--unmasked", "99999999999999999999999", "--store", str(store))
    assert result.returncode == 2 and b"no exchange 99999999999999999999999" in result.stderr


# --- terminal ---------------------------------------------------------------------------------------------


def test_control_characters_from_captured_fields_are_shown_never_sent_raw(store):
    commands = (
        ["capture", "list"], ["capture", "list", "--json"], ["capture", "show", "--unmasked", "2"],
        ["capture", "show", "--unmasked", "2", "--json"], ["capture", "summary"],
        ["validate", "--unmasked", "--store", str(store)],
    )  # fmt: skip
    for args in commands:
        if "--store" not in args:
            args = [*args, "--store", str(store)]
        result = run(*args)
        assert result.returncode in (0, 1), (args, text(result))
        raw = result.stdout + result.stderr
        assert b"\x1b" not in raw and b"\x07" not in raw, args
    shown = run("capture", "show", "--unmasked", "2", "--store", str(store)).stdout.decode()
    assert "C2\\x1b]0;pwned\\x07[red]x[/]" in shown
    listed = run("capture", "list", "--store", str(store)).stdout.decode()
    assert "C2\\x1b]0;pwned" in listed
    raw = subprocess.run([*HARNESS, "capture", "show", "--unmasked", "2", "--raw", "--store", str(store)],
                         cwd=ROOT, capture_output=True, timeout=60)  # fmt: skip
    assert raw.returncode == 0 and raw.stdout == hl7(ESC_ID)  # --raw into a pipe: the exact bytes


# --- live traffic by default -------------------------------------------------------------------------------


def test_list_summary_show_export_and_validate_default_to_live_traffic(store, tmp_path):
    def ids(*args: str) -> list[int]:
        result = run("capture", "list", "--store", str(store), "--json", *args)
        assert result.returncode == 0, text(result)
        return [json.loads(line)["id"] for line in result.stdout.splitlines()]

    assert ids() == [1, 2, 3, 4]
    assert ids("--runs", "all") == [1, 2, 3, 4, 5, 6]
    assert ids("--runs", "1") == [1, 2, 3, 4, 5, 6]
    assert ids("--runs", "2") == [1, 2, 3, 4]
    assert ids("--run", "1") == [5, 6]
    table = run("capture", "list", "--store", str(store)).stdout.decode()
    assert "4 exchanges (live traffic only; --runs all adds replay runs)" in table
    assert (
        "6 exchanges (all traffic, replay runs included)"
        in run("capture", "list", "--store", str(store), "--runs", "all").stdout.decode()
    )

    summary = json.loads(run("capture", "summary", "--store", str(store), "--json").stdout)
    assert summary["exchanges"] == 4 and summary["traffic"].startswith("live traffic only")
    assert summary["latency_ms"]["max"] == pytest.approx(2.0, abs=0.01)  # the 500 ms replays left out
    both = json.loads(run("capture", "summary", "--store", str(store), "--json", "--runs", "1").stdout)
    assert both["exchanges"] == 6 and both["traffic"] == "live traffic + replay run 1"

    refused = run("capture", "show", "--unmasked", "5", "--store", str(store))
    assert (
        refused.returncode == 2
        and b"belongs to replay run 1" in refused.stderr
        and b"--runs 1" in refused.stderr
    )
    shown = run("capture", "show", "--unmasked", "5", "--store", str(store), "--runs", "1")
    assert shown.returncode == 0 and b"replay run 1" in shown.stdout

    export = json.loads(
        run(
            "capture", "export", "--unmasked", "--store", str(store), "--out", str(tmp_path / "e"), "--json"
        ).stdout
    )
    assert export["exchanges"] == 3 and export["traffic"].startswith("live traffic only")

    live = json.loads(run("validate", "--unmasked", "--store", str(store), "--format", "json").stdout)
    every = json.loads(
        run("validate", "--unmasked", "--store", str(store), "--format", "json", "--runs", "all").stdout
    )
    assert every["summary"]["messages"] - live["summary"]["messages"] == 2
    bad = run("capture", "list", "--store", str(store), "--runs", "latest")
    assert bad.returncode == 2 and b"--runs 'latest'" in bad.stderr
