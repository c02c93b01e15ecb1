"""Active certification over real sockets: every family's suite passes against the harness's simulator.

The default run certifies a few operations and a flow of each family (seconds); `make test-slow` runs the
whole suites (every operation, every check).
"""

from __future__ import annotations

import pytest

from tests.certify.runs import certify, report

FAMILIES = {
    "medins": ("specs/medins", ["mock", "medins"], "http://127.0.0.1:{port}", "2207,outpatient"),
    "cdc": (
        "specs/cdc",
        ["mock", "cdc"],
        "http://127.0.0.1:{port}",
        "emr_patient_info,emr_inf_report,report-card",
    ),
    "hl7v3": (
        "specs/hl7v3",
        ["mock", "soap"],
        "http://127.0.0.1:{port}",
        "PatientInfoRegister,PatientInfoQuery,patient",
    ),
    "fhir": ("specs/fhir", ["mock", "fhir"], "http://127.0.0.1:{port}/fhir", "Patient,Observation,patient"),
    "adt": (
        "specs/hl7v2/yunnan-his-adt.yaml",
        ["mock", "mllp", "--profile", "specs/hl7v2/yunnan-his-adt.yaml"],
        "127.0.0.1:{port}",
        "ADT^A01,stay",
    ),
    "lis": (
        "specs/hl7v2/lis-oru.yaml",
        ["mock", "mllp", "--profile", "specs/hl7v2/lis-oru.yaml"],
        "127.0.0.1:{port}",
        "OUL^R24",
    ),
}


def _target(servers, name: str) -> tuple[str, str]:
    spec, command, url, _ = FAMILIES[name]
    port = servers.start(name, *command[:2], "--listen", "127.0.0.1:0", *command[2:])
    return spec, url.format(port=port)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_passes_against_its_simulator(servers, tmp_path, name):
    spec, target = _target(servers, name)
    code, summary, err = certify("--spec", spec, "--target", target, "--operation", FAMILIES[name][3],
                                 "--out", str(tmp_path))  # fmt: skip
    assert code == 0, (summary, err)
    assert summary["verdict"] == "PASS" and summary["failed"] == summary["skipped"] == 0
    assert summary["checks"] > 10 and summary["cases"] > summary["checks"]
    doc = report(summary)
    assert any(r["flow"] for r in doc["rows"]) or name == "lis"
    assert {c["status"] for c in doc["cells"]} == {"passed"}


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_passes_its_whole_suite(servers, tmp_path, name):
    spec, target = _target(servers, name)
    code, summary, err = certify("--spec", spec, "--target", target, "--out", str(tmp_path))
    assert code == 0 and summary["verdict"] == "PASS", (summary, err)
    assert summary["operations_covered"] == summary["operations"]


@pytest.fixture(scope="module")
def mutual_tls(tmp_path_factory):
    from tests.tls_material import mutual_tls_options

    listen, ca, cert = mutual_tls_options(tmp_path_factory.mktemp("certify-tls"))
    return listen, ca + cert


@pytest.mark.parametrize("name", ["medins", "adt"])
def test_certification_against_a_target_that_wants_a_client_certificate(servers, tmp_path, mutual_tls, name):
    listen, client = mutual_tls
    spec, command, url, operations = FAMILIES[name]
    port = servers.start(f"{name} mutual tls", *command[:2], "--listen", "127.0.0.1:0", *command[2:], *listen)
    target = url.format(port=port).replace("http://", "https://")
    operation = operations.split(",")[0]
    args = ["--spec", spec, "--target", target, "--operation", operation, "--out", str(tmp_path)]
    code, summary, err = certify(*args, *client)
    assert code == 0 and summary["verdict"] == "PASS", (summary, err)
    reproduce = report(summary)["command"]
    assert all(part in reproduce for part in client), reproduce  # the evidence sends the same way again
    code, summary, err = certify(*args, *client[:2], "--out", str(tmp_path / "refused"))  # no client cert
    assert code != 0 and summary.get("verdict") != "PASS", (summary, err)


def test_certification_through_a_proxy_channel_that_listens_with_tls(
    servers, processes, tmp_path, monkeypatch
):
    from tests.proxy.proxy_process import start_tls_mllp_proxy

    spec, command, _, _ = FAMILIES["adt"]
    upstream = servers.start("adt", *command[:2], "--listen", "127.0.0.1:0", *command[2:])
    config, ca = start_tls_mllp_proxy(processes, tmp_path, upstream)
    args = ["--spec", spec, "--target", f"127.0.0.1:{upstream}", "--through", str(config),
            "--operation", "ADT^A01", "--check", "example", "--no-reports"]  # fmt: skip
    # no TLS option given: the channel's config says it listens with TLS, verified with the system's CAs
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # (standing in for the hospital's CA there)
    code, summary, err = certify(*args)
    assert code == 0 and summary["verdict"] == "PASS", (summary, err)
    monkeypatch.delenv("SSL_CERT_FILE")
    code, summary, err = certify(*args)  # now the proxy's certificate is trusted by nothing
    assert code != 0 and summary.get("verdict") != "PASS", (summary, err)
    code, summary, err = certify(*args, "--ca", str(ca))
    assert code == 0 and summary["verdict"] == "PASS", (summary, err)
