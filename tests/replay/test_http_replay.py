"""HTTP exchanges captured by the real proxy, replayed with `harness replay --to http://...` and compared."""

from __future__ import annotations

import json
import subprocess

from tests.processes import HARNESS, ROOT
from tests.proxy.http_setup import (
    MEDINS_PATH,
    medins_visit,
    request,
    run_proxy,
    start_simulator,
    write_http_config,
)


def replay(store, *args: str) -> tuple[int, dict]:
    out = subprocess.run(
        [*HARNESS, "replay", "--unmasked", "--store", str(store), "--json", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stderr
    return out.returncode, json.loads(lines[-1])


def test_fhir_and_medins_replays_are_compared_by_kind(processes, tmp_path):
    sims = {kind: start_simulator(processes, kind) for kind in ("medins", "fhir")}
    config, ports = write_http_config(
        tmp_path,
        {
            "medins": {"kind": "medins", "upstream": f"http://127.0.0.1:{sims['medins']}"},
            "fhir": {"kind": "fhir", "upstream": f"http://127.0.0.1:{sims['fhir']}"},
        },
    )
    run_proxy(processes, config, ports)
    patient = json.dumps({"resourceType": "Patient", "gender": "female", "name": [{"family": "Li"}]}).encode()
    status, headers, _ = request(
        ports["fhir"], "POST", "/fhir/Patient", patient, {"Content-Type": "application/fhir+json"}
    )
    assert status == 201
    pid = headers["location"].split("/Patient/")[1].split("/")[0]
    assert request(ports["fhir"], "GET", f"/fhir/Patient/{pid}")[0] == 200
    medins_visit(ports["medins"])
    store = tmp_path / "captures.db"

    # FHIR: a new create gets a new id, the read finds the same patient: both equivalent or exact
    code, summary = replay(store, "--channel", "fhir", "--to", f"http://127.0.0.1:{sims['fhir']}")
    assert code == 0, summary
    assert summary["sent"] == 2 and summary["different"] == summary["new_error"] == summary["missing"] == 0

    # medins: sign-in and person lookup answer alike; settling the same visit again is refused
    code, summary = replay(
        store,
        "--channel",
        "medins",
        "--type",
        "9001",
        "--type",
        "1101",
        "--to",
        f"http://127.0.0.1:{sims['medins']}",
    )
    assert code == 0 and summary["sent"] == 2, summary
    code, summary = replay(
        store, "--channel", "medins", "--type", "2207", "--to", f"http://127.0.0.1:{sims['medins']}"
    )
    assert code == 1 and summary["new_error"] == 1, summary

    # nothing listening: the run stops, exit 2, and says so
    code, summary = replay(store, "--channel", "fhir", "--to", "http://127.0.0.1:9")
    assert code == 2 and summary["error"]
    assert MEDINS_PATH


def test_replay_to_a_target_that_wants_a_client_certificate(processes, tmp_path):
    from tests.childproc import start_listening
    from tests.tls_material import mutual_tls_options

    plain = start_simulator(processes, "fhir")
    config, ports = write_http_config(tmp_path, {"fhir": {"kind": "fhir", "upstream": f"http://127.0.0.1:{plain}"}})
    run_proxy(processes, config, ports)
    assert request(ports["fhir"], "GET", "/fhir/metadata")[0] == 200
    store = tmp_path / "captures.db"

    listen, ca, cert = mutual_tls_options(tmp_path)
    _, port = start_listening(processes, "mock", "fhir", "--listen", "127.0.0.1:0", *listen)
    to = ["--channel", "fhir", "--to", f"https://localhost:{port}", *ca]
    code, summary = replay(store, *to, *cert)
    # answered over mutual TLS (another simulator's CapabilityStatement: compared as different)
    compared = summary["different"] + summary["exact"] + summary["equivalent"]
    assert summary["sent"] == compared == 1 and summary["missing"] == summary["new_error"] == 0, summary
    assert code in (0, 1), summary
    code, summary = replay(store, *to)  # no client certificate: the target refuses the handshake
    assert code == 2 and "certificate required" in summary["error"], summary

    def refused(*args: str) -> str:
        done = subprocess.run([*HARNESS, "replay", "--unmasked", "--store", str(store), *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
        assert done.returncode == 2, done.stderr
        return done.stderr

    plain_to = ["--to", f"http://127.0.0.1:{plain}"]
    assert "TLS options need an https:// target" in refused(*plain_to, *cert)
    message = refused(*to, *cert[:2])  # --cert alone: its key is in another file
    assert message.startswith("error: --cert: ") and "give the key with --key" in message, message
