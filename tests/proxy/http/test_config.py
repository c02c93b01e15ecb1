"""HTTP channels in the proxy config: URLs, kinds, limits, errors that name the key."""

from __future__ import annotations

import pytest

from harness.proxy.config import ConfigError, load_config, parse_config
from tests.processes import ROOT


def channel(**extra) -> dict:
    body = {
        "protocol": "http",
        "kind": "medins",
        "listen": "127.0.0.1:8080",
        "upstream": "http://127.0.0.1:18080",
    }
    body.update(extra)
    return {"channels": {"medins": body}}


def error_of(data) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_http_channel_defaults():
    cfg = parse_config(channel()).channels["medins"]
    assert cfg.protocol == "http" and cfg.kind == "medins" and cfg.upstream_scheme == "http"
    assert str(cfg.upstreams[0]) == "127.0.0.1:18080" and cfg.upstream_tls is None
    assert cfg.capture == "durable" and cfg.on_upstream_down == "status" and not cfg.rewrite_host


def test_https_upstream_turns_on_tls_and_backups_keep_their_order():
    cfg = parse_config(channel(upstream=["https://hc-a.example:8443", "https://[::1]"])).channels["medins"]
    assert cfg.upstream_tls is not None and cfg.upstream_tls.verify
    assert [str(a) for a in cfg.upstreams] == ["hc-a.example:8443", "[::1]:443"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"upstream": "127.0.0.1:18080"}, "channels.medins.upstream: expected a URL"),
        ({"upstream": "ftp://x:1"}, "scheme must be http or https"),
        ({"upstream": ["http://a:1", "https://b:2"]}, "same scheme"),
        ({"upstream": "http://a:1/fhir"}, "give only scheme://HOST:PORT"),
        ({"upstream": ["http://a:1", 5]}, "channels.medins.upstream[1]"),
        ({"kind": "hl7v2"}, "channels.medins.kind: expected one of fhir | soap | medins | cdc | raw"),
        ({"max_body_bytes": 0}, "channels.medins.max_body_bytes: must be at least 1"),
        ({"response_timeout_s": -1}, "channels.medins.response_timeout_s"),
        ({"ack_timeout_s": 3}, "channels.medins.ack_timeout_s: unknown key"),
        ({"faults": [{"action": {"type": "nak"}}]}, "unknown action type 'nak' for http"),
        ({"faults": [{"match": {"xpath": {"//[": "x"}}, "action": {"type": "reset"}}]}, "bad XPath"),
    ],
)
def test_errors_name_the_key(extra, message):
    assert message in error_of(channel(**extra))


def test_faults_in_config_are_http_rules():
    rule = {"match": {"meta": {"infno": "2207"}}, "action": {"type": "medins_error", "err_msg": "x"}}
    cfg = parse_config(channel(faults=[rule])).channels["medins"]
    assert cfg.faults[0]["action"]["type"] == "medins_error"


def test_example_yaml_http_channels_load():
    config = load_config(ROOT / "proxies" / "example.yaml")
    kinds = {c.kind for c in config.channels.values() if c.protocol == "http"}
    assert kinds == {"fhir", "soap", "medins", "cdc"}


def test_head_and_body_deadlines_default_and_are_checked():
    cfg = parse_config(channel()).channels["medins"]
    assert (cfg.head_timeout_s, cfg.body_timeout_s, cfg.idle_timeout_s) == (30.0, 120.0, 120.0)
    cfg = parse_config(channel(head_timeout_s=5, body_timeout_s=0.5)).channels["medins"]
    assert (cfg.head_timeout_s, cfg.body_timeout_s) == (5, 0.5)
    assert "head_timeout_s" in error_of(channel(head_timeout_s=0))
