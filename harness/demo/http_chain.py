"""`harness demo`'s HTTP steps: one medical-insurance visit and a FHIR Patient through the HTTP proxy.

`harness mock medins` and `harness mock fhir` run as children behind one `harness proxy` with two HTTP
channels (durable capture into demo-http-captures.db in the demo's output folder, apart from the MLLP
demo's store).
The visit is 9001 sign-in -> 1101 person -> 2201 registration -> 2204 fee details -> 2206 pre-settlement
-> 2207 settlement, from fixtures/medins with the values the centre assigns filled in on the way.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.datafiles import data_dir
from harness.demo.context import DemoContext, DemoFailure, SharedStep, shown

MEDINS_FIXTURES = data_dir("fixtures") / "medins"
MEDINS_PATH = "/fsi/api/rsfComIfsService/callService"
VISIT = ("9001", "1101", "2201", "2204", "2206", "2207")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_CHANNEL = re.compile(r"channel (?P<name>\w+) listening on (?P<host>[^\s:]+):(?P<port>\d+)")


class HttpRun:
    def __init__(self, reports: Path) -> None:
        self.reports = reports
        self.store = reports / "demo-http-captures.db"
        self.config = reports / "demo-http-proxy.yaml"
        self.ports: dict[str, int] = {}
        self.sent: list[tuple[str, int, str]] = []  # (what, HTTP status, application code)


class StartHttpChain(SharedStep[HttpRun]):
    name = "start harness mock medins and harness mock fhir behind harness proxy (HTTP channels)"

    def run(self, ctx: DemoContext) -> None:
        state = self.state
        upstreams = {}
        for kind in ("medins", "fhir"):
            host, port = ctx.start_child(f"mock {kind}", ["mock", kind, "--listen", "127.0.0.1:0"])
            upstreams[kind] = f"http://{host}:{port}"
            ctx.echo(f"  harness mock {kind} listening on {host}:{port}")
        from harness.private_files import private_dir, write_private

        private_dir(state.reports)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{state.store}{suffix}").unlink(missing_ok=True)
        channels = "".join(
            f"  {kind}:\n    protocol: http\n    kind: {kind}\n    listen: 127.0.0.1:0\n"
            f'    upstream: "{url}"\n    capture: durable\n'
            for kind, url in upstreams.items()
        )
        write_private(
            state.config,
            f"# written by `harness demo`\nstore: {state.store}\nadmin: off\nchannels:\n{channels}",
            force=True,
        )
        ctx.start_child("http proxy", ["proxy", "--config", str(state.config)])
        child = ctx.children["http proxy"]
        for kind in upstreams:
            m = child.wait_for(
                re.compile(rf"channel {kind} listening on (?P<host>[^\s:]+):(?P<port>\d+)"), 30
            )
            state.ports[kind] = int(m.group("port"))
            ctx.echo(f"  proxy channel {kind} on {m.group('host')}:{m.group('port')} -> {upstreams[kind]}")
        ctx.echo(f"  capture store {shown(state.store)} (durable)")


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict]:
    conn.request("POST", MEDINS_PATH, body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        raise DemoFailure(f"the medical-insurance answer is not JSON: {data[:200]!r}") from None


@contextmanager
def _channel(run: HttpRun, which: str, what: str, timeout: float) -> Iterator[http.client.HTTPConnection]:
    """A connection to one of the proxy's HTTP channels; a socket error fails the demo, naming the channel."""
    conn = http.client.HTTPConnection("127.0.0.1", run.ports[which], timeout=timeout)
    try:
        yield conn
    except OSError as exc:
        raise DemoFailure(f"{what} channel: {exc}") from None
    finally:
        conn.close()


class MedinsVisit(SharedStep[HttpRun]):
    name = "one medical-insurance visit through the proxy: 9001 -> 1101 -> 2201 -> 2204 -> 2206 -> 2207"

    def run(self, ctx: DemoContext) -> None:
        values: dict[str, str] = {}
        with _channel(self.state, "medins", "medical-insurance", ctx.timeout) as conn:
            for infno in VISIT:
                (path,) = MEDINS_FIXTURES.glob(f"visit-*-{infno}.json")
                text = _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), path.read_text("utf-8"))
                status, doc = _post(conn, text.encode("utf-8"))
                code = str(doc.get("infcode"))
                out = doc.get("output") or {}
                if "signinoutb" in out:
                    values["sign_no"] = out["signinoutb"]["sign_no"]
                if isinstance(out.get("data"), dict) and "mdtrt_id" in out["data"]:
                    values["mdtrt_id"] = out["data"]["mdtrt_id"]
                detail = doc.get("err_msg") or ""
                if "setlinfo" in out:
                    setl = out["setlinfo"]
                    detail = f"fund pays {setl.get('fund_pay_sumamt')}, patient {setl.get('psn_cash_pay')}"
                    if setl.get("setl_id"):
                        detail += f", setl_id {setl['setl_id']}"
                ctx.echo(f"  {infno}: HTTP {status} infcode {code}  {detail}".rstrip())
                self.state.sent.append((infno, status, code))


class FhirPatient(SharedStep[HttpRun]):
    name = "FHIR Patient create and read through the proxy (http.client)"

    def run(self, ctx: DemoContext) -> None:
        patient = json.loads((data_dir("fixtures") / "fhir" / "patient.json").read_text("utf-8"))
        patient.pop("id", None)
        with _channel(self.state, "fhir", "FHIR", ctx.timeout) as conn:
            conn.request(
                "POST",
                "/fhir/Patient",
                json.dumps(patient).encode(),
                {"Content-Type": "application/fhir+json"},
            )
            resp = conn.getresponse()
            resp.read()
            location = resp.getheader("Location") or ""
            ctx.echo(f"  POST /fhir/Patient: HTTP {resp.status} Location {location}")
            self.state.sent.append(("create Patient", resp.status, str(resp.status)))
            if resp.status != 201 or "/Patient/" not in location:
                raise DemoFailure(f"FHIR create answered {resp.status} without a Patient location")
            pid = location.split("/Patient/")[1].split("/")[0]
            conn.request("GET", f"/fhir/Patient/{pid}")
            resp = conn.getresponse()
            read = json.loads(resp.read())
            ctx.echo(
                f"  GET /fhir/Patient/{pid}: HTTP {resp.status} {read.get('resourceType')} {read.get('id')}"
            )
            self.state.sent.append(("read Patient", resp.status, str(resp.status)))


class JudgeHttp(SharedStep[HttpRun]):
    name = "check the HTTP results and their captures"

    def run(self, ctx: DemoContext) -> None:
        from harness.store import ExchangeFilter, Store

        state = self.state
        bad = [s for s in state.sent if s[1] >= 400 or (s[0] in VISIT and s[2] != "0")]
        if bad or len(state.sent) != len(VISIT) + 2:
            raise DemoFailure(f"HTTP calls not accepted: {bad or state.sent}")
        for name in ("http proxy", "mock fhir", "mock medins"):
            code = ctx.children[name].stop()
            if code != 0:
                raise DemoFailure(f"{name} exited with {code}")
        with Store(state.store) as store:
            rows = list(store.query(ExchangeFilter()))
        got = [(ex.channel, ex.message_type, ex.ack_code, ex.outcome) for ex in rows]
        want = [("medins", infno, "0", "ok") for infno in VISIT] + [
            ("fhir", "create Patient", "201", "ok"),
            ("fhir", "read Patient", "200", "ok"),
        ]
        if got != want:
            raise DemoFailure(f"captured {got}, expected {want}")
        ctx.echo(f"  {len(rows)} HTTP exchange(s) captured with infno/infcode and FHIR interaction metadata")
        ctx.echo(
            f"  for mitmweb: harness capture export --store {shown(state.store)} --format mitm"
            f" --out {shown(state.reports)} --unmasked"
            " (invented patients; real captures export masked by default)"
        )


def http_steps(out: Path) -> list:
    run = HttpRun(out)
    return [StartHttpChain(run), MedinsVisit(run), FhirPatient(run), JudgeHttp(run)]
