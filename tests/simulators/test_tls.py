"""Every simulator over TLS and mutual TLS, as child processes, with peers nobody here wrote: requests
for the HTTP ones, zeep for SOAP, python-hl7's MLLP client (its socket wrapped) for MLLP."""

from __future__ import annotations

import socket
import ssl
import subprocess

import hl7
import hl7.client
import pytest
import requests

from tests.childproc import start_listening
from tests.processes import HARNESS, ROOT
from tests.tls_material import TestCA

ADT = "MSH|^~\\&|HIS|H|HC|H|20260101120000||ADT^A01^ADT_A01|TLS1|P|2.4\rPID|1||123^^^H^MR||张^三\r"
GET = {
    "medins": None,
    "fhir": "/fhir/metadata",
    "soap": "/services/HIPMessageServer?wsdl",
    "cdc": None,
}


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim-tls")
    ca = TestCA(folder)
    server = ca.issue("server")
    client = ca.issue("client", client=True)
    stranger = TestCA(folder, "stranger").issue("stranger", client=True)
    return {"ca": ca, "server": server, "client": client, "stranger": stranger}


def tls_args(material, *, mutual: bool) -> list[str]:
    cert, key = material["server"]
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    return [*args, "--tls-client-ca", str(material["ca"].path)] if mutual else args


@pytest.mark.parametrize("kind", ["medins", "fhir", "soap", "cdc"])
def test_http_simulator_over_mutual_tls_with_requests(processes, material, kind):
    child, port = start_listening(
        processes, "mock", kind, "--listen", "127.0.0.1:0", *tls_args(material, mutual=True)
    )
    assert "client certificate required" in child.lines[0]
    ca = str(material["ca"].path)
    base = f"https://localhost:{port}"
    path = GET[kind] or "/"
    answer = requests.get(base + path, verify=ca, cert=tuple(map(str, material["client"])), timeout=20)
    assert answer.status_code < 500 and answer.content  # the simulator's own answer, over TLS
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(base + path, verify=ca, timeout=20)  # no client certificate
    with pytest.raises(requests.exceptions.ConnectionError):  # one from a CA the simulator does not trust
        requests.get(base + path, verify=ca, cert=tuple(map(str, material["stranger"])), timeout=20)


def test_zeep_calls_the_soap_simulator_over_mutual_tls(processes, material):
    import zeep
    from zeep.transports import Transport

    _, port = start_listening(
        processes, "mock", "soap", "--listen", "127.0.0.1:0", *tls_args(material, mutual=True)
    )
    session = requests.Session()
    session.trust_env = False  # $REQUESTS_CA_BUNDLE would otherwise replace session.verify
    session.verify = str(material["ca"].path)
    session.cert = tuple(map(str, material["client"]))
    client = zeep.Client(
        f"https://localhost:{port}/services/HIPMessageServer?wsdl", transport=Transport(session=session)
    )
    answer = client.service.HIPMessageServer(action="PatientInfoQuery", message="<not-hl7v3/>")
    assert answer is not None


class TLSClient(hl7.client.MLLPClient):
    """python-hl7's MLLP client with its socket wrapped in TLS (it has no TLS of its own)."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        raw = socket.create_connection((host, port), timeout=10)
        self.socket = context.wrap_socket(raw, server_hostname="localhost")
        self.encoding = "utf-8"


def test_python_hl7_client_over_mutual_tls_to_the_mllp_simulator(processes, material):
    _, port = start_listening(
        processes, "mock", "mllp", "--listen", "127.0.0.1:0", *tls_args(material, mutual=True)
    )
    context = ssl.create_default_context(cafile=str(material["ca"].path))
    context.load_cert_chain(*map(str, material["client"]))
    with TLSClient("127.0.0.1", port, context) as client:
        ack = hl7.parse(client.send_message(ADT))
    assert str(ack.segment("MSA")[1]) == "AA" and str(ack.segment("MSA")[2]) == "TLS1"
    bare = ssl.create_default_context(cafile=str(material["ca"].path))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with TLSClient("127.0.0.1", port, bare) as client:
            if not client.send_message(ADT):  # TLS 1.3: the refusal may come with the first read
                raise ConnectionError("closed without an answer")


def test_harness_send_with_a_client_certificate_to_the_mllp_simulator(processes, material, tmp_path):
    _, port = start_listening(
        processes, "mock", "mllp", "--listen", "127.0.0.1:0", *tls_args(material, mutual=True)
    )
    message = tmp_path / "adt.hl7"
    message.write_text(ADT, encoding="utf-8")
    ca = str(material["ca"].path)
    cert, key = map(str, material["client"])
    target = f"127.0.0.1:{port}"
    common = [*HARNESS, "send", target, str(message), "--ca", ca, "--server-name", "localhost"]
    done = subprocess.run([*common, "--cert", cert, "--key", key], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    refused = subprocess.run(common, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert refused.returncode != 0


def test_an_mllp_listener_does_not_abort_a_client_that_offers_alpn(processes, material):
    _, port = start_listening(
        processes, "mock", "mllp", "--listen", "127.0.0.1:0", *tls_args(material, mutual=False)
    )
    context = ssl.create_default_context(cafile=str(material["ca"].path))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with TLSClient("127.0.0.1", port, context) as client:
        assert client.socket.selected_alpn_protocol() is None
        assert b"MSA|AA|TLS1" in client.send_message(ADT)


@pytest.mark.parametrize(
    ("args", "option", "problem"),
    [
        (["--tls-cert", "{dir}/none.crt"], "--tls-cert", "does not exist"),
        (["--tls-cert", "{server}", "--tls-key", "{client_key}"], "--tls-key", "does not belong"),
        (["--tls-cert", "{server}", "--tls-key", "{server}"], "--tls-key", "no PEM private key"),
        (["--tls-cert", "{server_key}", "--tls-key", "{server_key}"], "--tls-cert", "no PEM certificate"),
        (["--tls-cert", "{server}", "--tls-key", "{server_key}", "--tls-client-ca", "{server_key}"],
         "--tls-client-ca", "no PEM certificate"),
        (["--tls-cert", "{server}", "--tls-key", "{server_key}", "--tls-min-version", "1.4"],
         "--tls-min-version", "expected one of"),
        (["--tls-key", "{server_key}"], "--tls-key", "needs --tls-cert"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["mllp", "fhir"])
def test_unusable_tls_material_is_a_usage_error_naming_option_and_file(material, kind, args, option, problem):
    values = {
        "dir": material["ca"].folder,
        "server": material["server"][0],
        "server_key": material["server"][1],
        "client_key": material["client"][1],
    }
    argv = [a.format(**values) for a in args]
    done = subprocess.run(
        [*HARNESS, "mock", kind, "--listen", "127.0.0.1:0", *argv],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert option in done.stderr and problem in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused_by_default_and_accepted_only_when_lowered_with_the_security_level(
    processes, material
):
    def tls11_handshake(port: int) -> str:
        old = ssl.create_default_context(cafile=str(material["ca"].path))
        old.minimum_version, old.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with old.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.version()

    tls = tls_args(material, mutual=False)
    _, default = start_listening(processes, "mock", "fhir", "--listen", "127.0.0.1:0", *tls)
    with pytest.raises(ssl.SSLError):
        tls11_handshake(default)
    legacy = [*tls, "--tls-min-version", "1.1", "--tls-ciphers", "DEFAULT:@SECLEVEL=0"]
    _, lowered = start_listening(processes, "mock", "fhir", "--listen", "127.0.0.1:0", *legacy)
    assert tls11_handshake(lowered) == "TLSv1.1"
