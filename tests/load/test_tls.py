"""`harness load` against targets that want a client certificate: MLLP over TLS and HTTPS, simulators
speaking mutual TLS on loopback, short bounded runs."""

from __future__ import annotations

import pytest
import yaml

from tests.load.runs import load, start_mock, summary, write_profile
from tests.processes import Processes
from tests.tls_material import mutual_tls_options


@pytest.fixture(scope="module")
def mutual(tmp_path_factory):
    listen, ca, cert = mutual_tls_options(tmp_path_factory.mktemp("load-tls"))
    procs = Processes()
    try:
        yield {
            "mllp": start_mock(procs, "mllp", *listen),
            "fhir": start_mock(procs, "fhir", "--quiet", *listen),
            "ca": ca,
            "cert": cert,
        }
    finally:
        procs.stop_all()


def _fhir_profile(folder) -> str:
    path = folder / "fhir-tls.yaml"
    data = {
        "name": "fhir-tls", "shape": "constant", "duration": "2s", "model": "open", "rate": 10,
        "concurrency": 4, "traffic": {"fhir": {"interactions": {"create Patient": 1, "read Patient": 1}}},
        "thresholds": {"error_rate": 0},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("kind", ["mllp", "fhir"])
def test_a_target_wanting_a_client_certificate_gets_it_and_refuses_a_run_without(mutual, tmp_path, kind):
    if kind == "mllp":
        messages, strict = {"ADT^A04": "adt_a04_gb18030.hl7"}, {"error_rate": 0}
        profile = str(write_profile(tmp_path, "mllp-tls", messages, duration="2s", thresholds=strict))
        target = f"127.0.0.1:{mutual['mllp']}"
    else:
        profile, target = _fhir_profile(tmp_path), f"fhir=https://localhost:{mutual['fhir']}/fhir"
    run = load(profile, "--target", target, *mutual["ca"], *mutual["cert"], "--out", str(tmp_path / "ok"))
    s = summary(tmp_path / "ok")
    assert run.returncode == 0 and s["requests"] > 0 and s["failures"] == 0, run.stdout + run.stderr

    run = load(profile, "--target", target, *mutual["ca"], "--out", str(tmp_path / "refused"))
    s = summary(tmp_path / "refused")
    assert run.returncode == 1 and s["failures"] == s["requests"] > 0, run.stdout + run.stderr
    reasons = " ".join(error["reason"] for error in s["errors"]).lower()
    assert "certificate" in reasons or "tls" in reasons or "reset" in reasons, s["errors"]


def test_tls_options_without_a_tls_target_are_refused(tmp_path):
    profile = _fhir_profile(tmp_path)
    run = load(profile, "--target", "fhir=http://127.0.0.1:9/fhir", "--insecure", "--out", str(tmp_path))
    assert run.returncode == 2 and "no target speaks TLS" in run.stderr, run.stderr


def test_through_a_proxy_channel_listening_with_tls_the_load_speaks_it(processes, tmp_path, monkeypatch):
    from tests.proxy.proxy_process import start_tls_mllp_proxy

    config, ca = start_tls_mllp_proxy(processes, tmp_path, start_mock(processes, "mllp"))
    messages, strict = {"ADT^A04": "adt_a04_gb18030.hl7"}, {"error_rate": 0}
    profile = str(write_profile(tmp_path, "through-tls", messages, duration="2s", thresholds=strict))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the proxy's CA, trusted as the system's would be
    run = load(profile, "--through", str(config), "--out", str(tmp_path / "out"))
    s = summary(tmp_path / "out")
    assert run.returncode == 0 and s["requests"] > 0 and s["failures"] == 0, run.stdout + run.stderr
