"""The harness's own clients over TLS: unusable files are named before anything is sent, and HTTPS
verifies the name asked for, against a real simulator child speaking mutual TLS on loopback."""

from __future__ import annotations

import ssl

import pytest

from harness.client_tls import TLSOptions
from harness.tls import TLSError
from tests.childproc import start_listening
from tests.tls_material import TestCA


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    folder = tmp_path_factory.mktemp("client-tls")
    ca = TestCA(folder)
    return {
        "folder": folder,
        "ca": ca.path,
        "server": ca.issue("server"),
        "client": ca.issue("client", client=True),
        "other": TestCA(folder, "other").issue("other", client=True),
    }


def _encrypted_key(material) -> str:
    from cryptography.hazmat.primitives import serialization

    _, key_path = material["client"]
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    path = material["folder"] / "locked.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return str(path)


def test_each_unusable_file_is_named(material):
    cert, key = map(str, material["client"])
    _, other_key = map(str, material["other"])
    cases = [
        (TLSOptions(ca=str(material["folder"] / "none.crt")), "ca", "does not exist"),
        (TLSOptions(ca=key), "ca", "holds no PEM certificate"),
        (TLSOptions(cert=cert), "client.key", "holds no PEM private key"),  # the key is in another file
        (TLSOptions(cert=cert, key=other_key), "client.key", "does not belong to the certificate"),
        (TLSOptions(cert=cert, key=_encrypted_key(material)), "client.key", "passphrase"),  # never a prompt
        (TLSOptions(key=key), "client.key", "needs its certificate"),
    ]
    for options, where, problem in cases:
        with pytest.raises(TLSError) as caught:
            options.context()
        assert caught.value.where == where and problem in caught.value.problem, (options, caught.value)
    assert TLSOptions(ca=str(material["ca"]), cert=cert, key=key).context().verify_mode == ssl.CERT_REQUIRED


def test_https_presents_the_client_certificate_and_checks_the_server_name(processes, material):
    cert, key = map(str, material["server"])
    _, port = start_listening(
        processes, "mock", "fhir", "--listen", "127.0.0.1:0",
        "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", str(material["ca"]),
    )  # fmt: skip
    ca = str(material["ca"])
    client_cert, client_key = map(str, material["client"])

    def get(options: TLSOptions) -> int:
        conn = options.https_connection("127.0.0.1", port, timeout=20)
        try:
            conn.request("GET", "/fhir/metadata")
            return conn.getresponse().status
        finally:
            conn.close()

    assert get(TLSOptions(ca=ca, cert=client_cert, key=client_key, server_name="localhost")) == 200
    with pytest.raises(ssl.SSLCertVerificationError):  # the certificate names localhost, not this
        get(TLSOptions(ca=ca, cert=client_cert, key=client_key, server_name="his.example"))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):  # no client certificate: refused
        get(TLSOptions(ca=ca, server_name="localhost"))
