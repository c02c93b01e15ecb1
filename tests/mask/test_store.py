"""A masked store: a capture of GBK HL7 v2, FHIR and medical-insurance traffic with a replay run, copied
with the default policy, holds no original identifier anywhere in its file, and `harness compare` judges
masked originals against masked replays exactly as it judges the unmasked ones."""

from __future__ import annotations

import json
from datetime import date

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.exchange import Exchange
from harness.hl7v2.ack import build_ack
from harness.mask.exchange import mask_exchange
from harness.mask.store import MaskStoreError, mask_store
from harness.simulators.fhir import FhirSimulator
from harness.simulators.medins import MedinsSimulator
from harness.simulators.wire import HttpRequest
from harness.store import Store

from ..simulators.medins_visit import fill, steps
from .support import ROOT, leaks, masker
from .test_hl7v2 import adt

runner = CliRunner()
T0 = 1767576600.0
MEDINS_PATH = "/fsi/api/rsfComIfsService/callService"
PEOPLE = [
    {"family": "段", "given": "亅乗", "kin": "段乗乗", "mr": "ZY0001", "id": "530102198503152312",
     "born": date(1985, 3, 15), "phone": "13800000001", "street": "翠湖南路1号"},
    {"family": "杨", "given": "𬌗亅", "kin": "杨兰乗", "mr": "MZ0002", "id": "532901199211080445",
     "born": date(1992, 11, 8), "phone": "13912345678", "street": "复兴路8号"},
]  # fmt: skip
ORIGINALS = [
    *(v for p in PEOPLE for v in (p["family"] + p["given"], p["kin"], p["mr"], p["id"], p["phone"])),
    *(p["street"] for p in PEOPLE),
    "周兰𬌗", "53010219850307123X", "P0001234", "13800000000", "模拟路1号", "53010098825988438524",
]  # fmt: skip


def http_request(
    method: str, target: str, body: bytes = b"", content_type: str = "application/json"
) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:18080\r\nAuthorization: Bearer secret-token\r\n"
    if body:
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


def http_response(resp) -> bytes:
    head = f"HTTP/1.1 {resp.status} OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in resp.headers.items())
    return (head + f"Content-Length: {len(resp.body)}\r\n\r\n").encode("utf-8") + resp.body


def sim_exchange(sim, kind: str, method: str, target: str, body: bytes, at: float) -> Exchange:
    resp = sim.handle(HttpRequest(method, target, {"host": "127.0.0.1:18080"}, body))
    ex = Exchange(channel=kind, protocol="http", kind=kind, started_at=at, method=method, path=target,
                  status=resp.status, request=http_request(method, target, body),
                  response=http_response(resp))  # fmt: skip
    ex.finish(at + 0.01)
    return ex


def medins_requests() -> list[bytes]:
    """The fixture visit's 9001, 1101 and 2201 with the centre's answers filled in by a first simulator."""
    visit = steps()
    sim = MedinsSimulator()
    out = []
    values: dict[str, str] = {}
    for infno in ("9001", "1101", "2201"):
        body = json.dumps(fill(visit[infno], values), ensure_ascii=False).encode("utf-8")
        resp = json.loads(sim.handle(HttpRequest("POST", MEDINS_PATH, {}, body)).body)
        if infno == "9001":
            values["sign_no"] = resp["output"]["signinoutb"]["sign_no"]
        out.append(body)
    return out


def build_capture(path) -> int:
    """Originals (as captured) and a replay run against fresh simulators; returns the run id."""
    fhir_a, fhir_b = FhirSimulator(), FhirSimulator()
    medins_a, medins_b = MedinsSimulator(), MedinsSimulator()
    patient = (ROOT / "fixtures" / "fhir" / "patient.json").read_bytes()
    search = "/fhir/Patient?identifier=urn:oid:2.16.156.10011.1.3%7C53010219850307123X"
    originals, replays = [], []
    for i, p in enumerate(PEOPLE):
        msg = adt(p, "GBK", f"GBK000{i}")
        originals.append(Exchange(channel="adt", started_at=T0 + i, request=msg,
                                  response=build_ack(msg, "AA"), ack_code="AA", message_type="ADT^A01",
                                  control_id=f"GBK000{i}", charset="gb18030"))  # fmt: skip
        code = "AA" if i == 0 else "AE"
        text = None if i == 0 else f"身份证 {p['id']} 已登记给 {p['family']}{p['given']}"
        reply = build_ack(msg, code, text=text)
        replays.append(Exchange(channel="adt", started_at=T0 + 100 + i, request=msg, response=reply,
                                ack_code=code,
                                outcome="ok" if code == "AA" else "nak", message_type="ADT^A01",
                                control_id=f"GBK000{i}", charset="gb18030"))  # fmt: skip
    at = T0 + 10
    for sim, reps in ((fhir_a, originals), (fhir_b, replays)):
        reps.append(sim_exchange(sim, "fhir", "POST", "/fhir/Patient", patient, at))
        reps.append(sim_exchange(sim, "fhir", "GET", search, b"", at + 1))
    for sim, reps in ((medins_a, originals), (medins_b, replays)):
        for n, body in enumerate(medins_requests()):
            reps.append(sim_exchange(sim, "medins", "POST", MEDINS_PATH, body, at + 2 + n))
    with Store(path) as db:
        db.add_many(originals)
        run = db.create_run("replay", {"target": "127.0.0.1:2575", "selection": {"path_values": {
            "PID-3.1": "ZY0001"}}}, target="127.0.0.1:2575")  # fmt: skip
        for orig, rep in zip(originals, replays, strict=True):
            rep.run_id, rep.original_id = run, orig.id
        db.add_many(replays)
        db.finish_run(run, summary={"sent": len(replays)})
    return run


def compare_results(store, run: int) -> list[tuple]:
    from harness.replay.report import CAPTURE, collect

    with Store(store, create=False) as db:
        report = collect(db, CAPTURE, run)
    return [(r.replay.kind, r.comparison.classification, r.comparison.recovered) for r in report.results]


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "data" / "captures.db"
    path.parent.mkdir()
    return path, build_capture(path)


def test_a_masked_copy_holds_no_identifier_and_compares_as_the_original_does(capture, tmp_path, monkeypatch):
    source, run = capture
    assert leaks(source.read_bytes(), ORIGINALS)  # the capture does hold them
    target = tmp_path / "shared" / "masked.db"
    monkeypatch.setenv("HARNESS_MASK_KEY", "a-test-key-for-the-store-copy-0123")
    result = runner.invoke(app, ["mask", str(source), "--out", str(target), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["exchanges"] == 14 and summary["runs"] == 1 and summary["withheld"] == 0
    with Store(target, create=False) as db:
        db.close()  # checkpoints the WAL into the file
    raw = b"".join(p.read_bytes() for p in target.parent.iterdir())
    assert leaks(raw, ORIGINALS) == []
    assert b"secret-token" not in raw
    before, after = compare_results(source, run), compare_results(target, 1)
    assert after == before
    assert {c for _, c, _ in before} >= {"equivalent", "new_error"}


def test_masked_exchanges_keep_their_formats_links_and_derived_columns(capture, tmp_path):
    source, run = capture
    target = tmp_path / "masked.db"
    copy = mask_store(masker(), source, target)
    assert copy.exchanges == 14 and copy.unlinked == 0
    with Store(target, create=False) as db:
        rows = list(db.query())
        runs = db.runs()
    originals = {ex.id: ex for ex in rows if ex.run_id is None}
    replays = [ex for ex in rows if ex.run_id is not None]
    assert all(ex.original_id in originals for ex in replays)
    assert runs[0].params["selection"]["path_values"]["PID-3.1"] == masker().pseudonyms.identifier("ZY0001")
    assert runs[0].params["masked_from"]["run_id"] == run
    search = next(ex for ex in rows if ex.method == "GET")
    assert "53010219850307123X" not in search.path and search.path.startswith("/fhir/Patient?identifier=")
    assert "[redacted]" in search.request.decode("latin-1")
    for ex in rows:
        if ex.protocol == "http" and ex.response:
            head, _, body = ex.response.partition(b"\r\n\r\n")
            assert f"Content-Length: {len(body)}".encode() in head
            json.loads(body)
    gbk = [ex for ex in rows if ex.kind == "hl7v2"]
    assert all(ex.request.decode("gb18030").startswith("MSH|^~\\&|") for ex in gbk)


def test_the_copy_is_always_a_new_file_and_a_failed_copy_leaves_nothing(capture, tmp_path, monkeypatch):
    source, _ = capture
    target = tmp_path / "exists.db"
    target.write_bytes(b"")
    with pytest.raises(MaskStoreError, match="exists"):
        mask_store(masker(), source, target)
    with pytest.raises(MaskStoreError, match="another file"):
        mask_store(masker(), source, tmp_path / "data" / ".." / "data" / "captures.db")
    calls = []

    def failing(m, ex):
        calls.append(ex.id)
        if len(calls) > 3:
            raise RuntimeError("disk gone")
        return mask_exchange(m, ex)

    monkeypatch.setattr("harness.mask.store.mask_exchange", failing)
    half = tmp_path / "half.db"
    with pytest.raises(RuntimeError, match="disk gone"):
        mask_store(masker(), source, half)
    assert not half.exists() and not (tmp_path / "half.db-wal").exists()


def test_a_body_that_cannot_be_masked_is_withheld_and_said_so(tmp_path):
    source = tmp_path / "captures.db"
    with Store(source) as db:
        problem = "no MSH segment at start of message (starts 'PID|1||530102198503')"
        db.add(Exchange(channel="adt", request=b"PID|1||530102198503152312\r", outcome="malformed",
                        meta={"problems": [problem]}))  # fmt: skip
        cut = http_request("POST", MEDINS_PATH, b'{"psn_name":"\xe5\x91\xa8', "application/json")
        cut = cut.replace(b"Content-Length: 16", b"Content-Length: 99")
        db.add(Exchange(channel="medins", protocol="http", kind="medins", request=cut, method="POST"))
    target = tmp_path / "out" / "masked.db"
    copy = mask_store(masker(), source, target)
    assert copy.withheld == 2
    with Store(target, create=False) as db:
        rows = list(db.query())
    assert rows[0].request == b"" and any("request withheld" in n for n in rows[0].notes)
    assert "530102198503152312" not in json.dumps(rows[0].meta) and "周" not in rows[1].request.decode(
        "latin-1"
    )
    assert rows[1].request == b""
