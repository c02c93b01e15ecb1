"""The proxy's YAML config: the documented example loads, defaults hold, bad values are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.proxy.config import (
    DEFAULT_STORE,
    Address,
    ConfigError,
    MLLPChannelConfig,
    load_config,
    parse_config,
)

ROOT = Path(__file__).resolve().parents[2]


def minimal(**channel) -> dict:
    body = {"listen": "127.0.0.1:2575", "upstream": "127.0.0.1:12575", **channel}
    return {"channels": {"adt": body}}


def error_of(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_example_yaml_loads_with_the_documented_values():
    config = load_config(ROOT / "proxies" / "example.yaml")
    adt = config.channels["adt"]
    assert isinstance(adt, MLLPChannelConfig)
    assert config.store == Path("reports/captures.db")
    assert config.admin is not None and config.admin.listen == Address("127.0.0.1", 8700)
    assert adt.listen == Address("127.0.0.1", 2575)
    assert adt.upstreams == (Address("127.0.0.1", 12575),)
    assert (adt.charset, adt.ack_timeout_s, adt.capture) == (None, 30.0, "durable")
    assert adt.on_upstream_down == "close"
    assert (adt.on_malformed, adt.on_ack_timeout, adt.max_in_flight) == ("forward", "close", 1)
    assert adt.max_frame_bytes == 16 * 1024 * 1024
    assert adt.faults == ()


def test_defaults_are_loopback_durable_and_the_embedded_store():
    config = parse_config(minimal())
    adt = config.channels["adt"]
    assert config.store == DEFAULT_STORE
    assert config.admin.listen.host == "127.0.0.1"
    assert adt.protocol == "mllp" and adt.kind == "hl7v2"
    assert adt.capture == "durable" and adt.connect_timeout_s == 5.0
    assert adt.tls is None and adt.upstream_tls is None


def test_upstream_list_keeps_the_order_of_backups():
    config = parse_config(minimal(upstream=["10.0.0.5:12575", "[::1]:12576", "hc-backup:12577"]))
    ups = config.channels["adt"].upstreams
    assert ups == (Address("10.0.0.5", 12575), Address("::1", 12576), Address("hc-backup", 12577))
    assert str(ups[1]) == "[::1]:12576"


def test_bad_listen_names_the_key_path_and_value():
    assert error_of(minimal(listen="2575")) == "channels.adt.listen: expected HOST:PORT, got '2575'"
    assert error_of(minimal(listen=2575)) == "channels.adt.listen: expected HOST:PORT, got 2575"
    assert "channels.adt.upstream[1]: expected HOST:PORT, got 'nope'" == error_of(
        minimal(upstream=["127.0.0.1:1", "nope"])
    )
    assert error_of(minimal(upstream=[])) == "channels.adt.upstream: the list of upstreams is empty"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("capture", "x", "channels.adt.capture: expected one of durable | fast | off, got 'x'"),
        ("on_upstream_down", "x", "channels.adt.on_upstream_down: expected one of close | nak, got 'x'"),
        ("on_malformed", "drop", "channels.adt.on_malformed: expected one of forward | refuse, got 'drop'"),
        ("ack_timeout_s", 0, "channels.adt.ack_timeout_s: must be greater than 0, got 0"),
        ("ack_timeout_s", "30s", "channels.adt.ack_timeout_s: expected a number, got '30s'"),
        ("max_frame_bytes", 1.5, "channels.adt.max_frame_bytes: expected a whole number, got 1.5"),
        ("max_in_flight", 0, "channels.adt.max_in_flight: must be at least 1, got 0"),
        ("charset", "klingon-8", "channels.adt.charset: unknown charset 'klingon-8'"),
        ("kind", "fhir", "channels.adt.kind: expected one of hl7v2, got 'fhir'"),
        ("faults", {"type": "nak"}, "channels.adt.faults: expected a list of fault rules, got a mapping"),
    ],
)
def test_bad_values_are_named(key, value, expected):
    assert error_of(minimal(**{key: value})).startswith(expected)


def test_unknown_keys_are_refused_not_ignored():
    message = error_of(minimal(ack_timeout=5))
    assert message.startswith("channels.adt.ack_timeout: unknown key (known here: ")
    assert "ack_timeout_s" in message
    assert error_of({**minimal(), "stor": "x.db"}).startswith("stor: unknown key")


def test_other_protocols_are_refused_clearly():
    assert "unknown protocol 'smtp'" in error_of(minimal(protocol="smtp"))
    assert "supported: http, mllp" in error_of(minimal(protocol="smtp"))


def test_capture_off_survives_yaml_reading_off_as_false(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "channels:\n  adt: {listen: '127.0.0.1:1', upstream: '127.0.0.1:2', capture: off}\nadmin: off\n"
    )
    config = load_config(path)
    assert config.channels["adt"].capture == "off"
    assert config.admin is None


def test_charset_names_resolve_to_codecs():
    assert parse_config(minimal(charset="gb18030")).channels["adt"].charset == "gb18030"
    assert parse_config(minimal(charset="auto")).channels["adt"].charset is None


def test_duplicate_listen_addresses_are_refused():
    data = minimal()
    data["channels"]["lab"] = {"listen": "127.0.0.1:2575", "upstream": "127.0.0.1:1"}
    assert error_of(data) == (
        "channels.lab.listen: 127.0.0.1:2575 is already the listen address of channel 'adt'"
    )


def test_tls_files_must_exist_and_come_in_pairs(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    assert error_of(minimal(tls={"cert": str(cert)})) == "channels.adt.tls.key: required (a file path)"
    assert error_of(minimal(tls={"cert": str(cert), "key": str(tmp_path / "no.pem")})).startswith(
        "channels.adt.tls.key: no such file"
    )
    assert error_of(minimal(upstream_tls={"cert": str(cert)})) == (
        "channels.adt.upstream_tls.key: required when a client certificate is given (cert and key)"
    )
    tls = parse_config(minimal(upstream_tls={"ca": str(cert), "server_name": "hc", "verify": False}))
    up = tls.channels["adt"].upstream_tls
    assert (up.ca, up.server_name, up.verify) == (cert, "hc", False)


def test_unreadable_and_invalid_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels:\n  adt: [unclosed\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML at line \d+"):
        load_config(bad)
    with pytest.raises(ConfigError, match="channels: required"):
        parse_config({})


def test_fault_rules_are_validated_at_load_with_their_location():
    good = {"match": {"message_type": "ADT^A01", "every_nth": 3}, "action": {"type": "delay", "ms": 100}}
    config = parse_config(minimal(faults=[good]))
    assert config.channels["adt"].faults == (good,)
    bad = {"action": {"type": "delay", "ms": -1}}
    message = error_of(minimal(faults=[good, bad]))
    assert message.startswith("channels.adt.faults[1].action.ms: must be at least 0")
    assert "unknown action type 'explode'" in error_of(minimal(faults=[{"action": {"type": "explode"}}]))


def test_healthconnect_yaml_is_a_valid_config_for_the_documented_layout():
    config = load_config(ROOT / "proxies" / "healthconnect.yaml")
    assert set(config.channels) == {"his-adt", "lis-oru", "medins"}
    adt = config.channels["his-adt"]
    assert adt.upstreams == (Address("10.10.1.21", 12575), Address("10.10.1.22", 12575))
    assert (adt.capture, config.channels["lis-oru"].capture) == ("durable", "fast")
    assert config.channels["medins"].protocol == "http"


def test_enhanced_mode_timeouts_default_to_the_ack_timeout_and_must_be_positive():
    base = {"protocol": "mllp", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
    adt = parse_config({"channels": {"adt": base}}).channels["adt"]
    assert (adt.app_ack_timeout_s, adt.conditional_ack_wait_s) == (None, None)
    adt = parse_config({"channels": {"adt": {**base, "app_ack_timeout_s": 120, "conditional_ack_wait_s": 5}}})
    assert (adt.channels["adt"].app_ack_timeout_s, adt.channels["adt"].conditional_ack_wait_s) == (120.0, 5.0)
    with pytest.raises(ConfigError, match="channels.adt.app_ack_timeout_s: must be greater than 0"):
        parse_config({"channels": {"adt": {**base, "app_ack_timeout_s": 0}}})


def test_the_bounds_have_documented_defaults_and_refuse_nonsense():
    base = {"protocol": "mllp", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}
    adt = parse_config({"channels": {"adt": base}}).channels["adt"]
    assert (adt.on_store_error, adt.resend_on_stale_connection) == ("close", False)
    assert (adt.max_pending_bytes, adt.frame_timeout_s, adt.idle_timeout_s, adt.max_connections) == (
        8 * 1024 * 1024, 30.0, 0.0, 512,
    )
    with pytest.raises(ConfigError, match="channels.adt.on_store_error: expected one of close | nak"):
        parse_config({"channels": {"adt": {**base, "on_store_error": "ignore"}}})
    with pytest.raises(ConfigError, match="channels.adt.max_connections: must be at least 1"):
        parse_config({"channels": {"adt": {**base, "max_connections": 0}}})
    assert adt.upstream_connection == "reuse"
    per = parse_config({"channels": {"adt": {**base, "upstream_connection": "per_message"}}})
    assert per.channels["adt"].upstream_connection == "per_message"
    with pytest.raises(ConfigError, match="upstream_connection: expected one of reuse | per_message"):
        parse_config({"channels": {"adt": {**base, "upstream_connection": "always"}}})


def test_a_postgresql_store_stays_a_url_and_a_password_in_it_is_refused():
    config = parse_config({"store": "postgresql://harness@db.hospital.local:5432/captures", **minimal()})
    assert config.store == "postgresql://harness@db.hospital.local:5432/captures"
    assert "PGPASSFILE" in error_of({"store": "postgresql://harness:secret@db/captures", **minimal()})
    assert "secret" not in error_of({"store": "postgresql://harness:secret@db/captures", **minimal()})


def test_the_instance_name_defaults_to_the_host_name():
    import socket

    assert parse_config(minimal()).instance == socket.gethostname()
    assert parse_config({"instance": " his-proxy-1 ", **minimal()}).instance == "his-proxy-1"
    assert "instance" in error_of({"instance": "", **minimal()})


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "[::]", "his-gateway.hospital.local"])
def test_the_admin_api_beyond_loopback_needs_tls_or_an_explicit_insecure_listen(host, tmp_path):
    message = error_of({**minimal(), "admin": {"listen": f"{host}:8700"}})
    assert message.startswith("admin.listen:") and "admin.tls" in message and "insecure_listen" in message
    insecure = parse_config({**minimal(), "admin": {"listen": f"{host}:8700", "insecure_listen": True}})
    assert insecure.admin.insecure_listen and insecure.admin.beyond_loopback
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    tls = {"cert": str(cert), "key": str(key)}
    secured = parse_config({**minimal(), "admin": {"listen": f"{host}:8700", "tls": tls}})
    assert secured.admin.tls is not None and secured.admin.tls.cert == cert


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "[::1]"])
def test_the_admin_api_on_loopback_needs_nothing_more(host):
    admin = parse_config({**minimal(), "admin": {"listen": f"{host}:8700"}}).admin
    assert not admin.beyond_loopback and admin.tls is None
    assert (admin.idle_timeout_s, admin.request_timeout_s, admin.max_body_bytes, admin.max_connections) == (
        60.0, 10.0, 1024 * 1024, 32,
    )  # fmt: skip
    assert admin.health_public is False


@pytest.mark.parametrize(
    ("admin", "where"),
    [
        ({"health_public": "yes"}, "admin.health_public"),
        ({"idle_timeout_s": 0}, "admin.idle_timeout_s"),
        ({"request_timeout_s": -1}, "admin.request_timeout_s"),
        ({"max_body_bytes": 10}, "admin.max_body_bytes"),
        ({"max_connections": 0}, "admin.max_connections"),
        ({"tls": {"cert": "/nonexistent.pem", "key": "/nonexistent.key"}}, "admin.tls.cert"),
        ({"tsl": {}}, "admin.tsl"),
    ],
)
def test_bad_admin_settings_are_named(admin, where):
    assert error_of({**minimal(), "admin": {"listen": "127.0.0.1:8700", **admin}}).startswith(where)


def test_store_encryption_settings_are_read_and_checked(tmp_path, monkeypatch):
    from harness.store import crypto

    (tmp_path / "keys").mkdir()
    key = crypto.new_key_file(tmp_path / "keys" / "k", "sm4-gcm")
    config = parse_config(
        {**minimal(), "store": {"path": "c.db", "encryption": {"key_file": str(tmp_path / "keys" / "k"),
                                                               "algorithm": "sm4-gcm"}}}
    )  # fmt: skip
    assert config.store == Path("c.db") and config.store_encryption.load().id == key.id
    assert "store.encryption.key_file" in error_of(
        {**minimal(), "store": {"encryption": {"key_file": str(tmp_path / "keys" / "k")}}}
    )  # an sm4 key where aes-256-gcm (the default) is asked for
    assert "one of the two" in error_of(
        {**minimal(), "store": {"encryption": {"key_file": str(tmp_path / "keys" / "k"), "key_env": "K"}}}
    )
    assert "no such file" in error_of({**minimal(), "store": {"encryption": {"key_file": "/nonexistent/k"}}})
    assert "expected one of aes-256-gcm | sm4-gcm" in error_of(
        {**minimal(), "store": {"encryption": {"key_env": "K", "algorithm": "des"}}}
    )
    monkeypatch.delenv("MISSING_STORE_KEY", raising=False)
    assert "$MISSING_STORE_KEY is not set" in error_of(
        {**minimal(), "store": {"encryption": {"key_env": "MISSING_STORE_KEY"}}}
    )
    (tmp_path / "keys" / "k").chmod(0o644)
    sm4 = {"key_file": str(tmp_path / "keys" / "k"), "algorithm": "sm4-gcm"}
    assert "chmod 600" in error_of({**minimal(), "store": {"encryption": sm4}})
    assert "unknown key" in error_of({**minimal(), "store": {"path": "c.db", "encrypt": {}}})
