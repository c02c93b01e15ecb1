"""harness.tls without sockets: the material checks and the settings errors an engineer meets at start."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

from harness.proxy.config import ConfigError, parse_config
from harness.tls import ClientTLS, ListenerTLS, TLSError, UpstreamTLS, server_options
from tests.tls_material import TestCA


@pytest.fixture
def pki(tmp_path):
    ca = TestCA(tmp_path)
    return ca, *ca.issue("server")


def where_and_problem(tls) -> tuple[str, str]:
    with pytest.raises(TLSError) as info:
        server_options(tls) if isinstance(tls, ListenerTLS) else ClientTLS(tls)
    return info.value.where, info.value.problem


def test_good_material_with_a_chain_and_a_client_ca_builds(pki, tmp_path):
    ca, cert, key = pki
    chained = tmp_path / "chain.crt"
    chained.write_bytes(cert.read_bytes() + ca.path.read_bytes())
    assert server_options(ListenerTLS(cert=chained, key=key, ca=ca.path, min_version="1.3")) is not None
    client_cert, client_key = ca.issue("c", client=True)
    client = ClientTLS(UpstreamTLS(ca=ca.path, cert=client_cert, key=client_key, ciphers="ECDHE+AESGCM"))
    assert client.for_host("localhost") is client.for_host("localhost")  # one options object per name


def test_a_key_protected_by_a_passphrase_is_named_not_prompted_for(pki, tmp_path):
    _, cert, key = pki
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    where, problem = where_and_problem(ListenerTLS(cert=cert, key=locked, where="channels.adt.tls"))
    assert where == "channels.adt.tls.key" and "passphrase" in problem and str(locked) in problem


def test_unreadable_missing_and_foreign_files_say_which(pki, tmp_path):
    _, cert, key = pki
    assert where_and_problem(ListenerTLS(cert=tmp_path, key=key)) == (
        "tls.cert", f"certificate file {str(tmp_path)!r} is a directory"
    )
    assert where_and_problem(ListenerTLS(cert=cert, key=tmp_path / "gone.key"))[1].endswith("does not exist")
    garbage = tmp_path / "garbage.crt"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    where, problem = where_and_problem(ListenerTLS(cert=garbage, key=key))
    assert where == "tls.cert" and "certificate 1" in problem
    where, problem = where_and_problem(UpstreamTLS(ca=key, where="channels.hc.upstream_tls"))
    assert where == "channels.hc.upstream_tls.ca" and "no PEM certificate" in problem


def test_a_client_certificate_whose_key_does_not_match_is_refused(pki):
    ca, cert, _ = pki
    _, other_key = ca.issue("other", client=True)
    where, problem = where_and_problem(UpstreamTLS(cert=cert, key=other_key))
    assert where == "upstream_tls.key" and "does not belong" in problem


def test_versions_and_cipher_strings_openssl_refuses(pki):
    _, cert, key = pki
    assert where_and_problem(ListenerTLS(cert=cert, key=key, min_version="2.0"))[0] == "tls.min_version"
    where, problem = where_and_problem(ListenerTLS(cert=cert, key=key, ciphers="NOT-A-CIPHER"))
    assert where == "tls.ciphers" and "NOT-A-CIPHER" in problem


def test_config_reads_min_version_and_ciphers_and_names_bad_values(pki):
    _, cert, key = pki
    tls = {"cert": str(cert), "key": str(key)}
    channel = {"listen": "127.0.0.1:2575", "upstream": "127.0.0.1:1"}

    def config(**extra):
        return {"admin": False, "channels": {"adt": {**channel, **extra}}}

    parsed = parse_config(config(tls={**tls, "min_version": 1.3, "ciphers": "ECDHE+AESGCM"}))
    adt = parsed.channels["adt"].tls
    assert (adt.min_version, adt.ciphers, adt.where) == ("1.3", "ECDHE+AESGCM", "channels.adt.tls")
    assert parsed.channels["adt"].tls.where == "channels.adt.tls"
    up = parse_config(config(upstream_tls={"min_version": "1.2"})).channels["adt"].upstream_tls
    assert up.min_version == "1.2" and up.where == "channels.adt.upstream_tls"
    for bad, key_path in (
        ({"tls": {**tls, "min_version": "1.4"}}, "channels.adt.tls.min_version"),
        ({"tls": {**tls, "min_version": True}}, "channels.adt.tls.min_version"),
        ({"tls": {**tls, "ciphers": ""}}, "channels.adt.tls.ciphers"),
        ({"upstream_tls": {"ciphers": ["A", "B"]}}, "channels.adt.upstream_tls.ciphers"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(config(**bad))
        assert info.value.where == key_path
