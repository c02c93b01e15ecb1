import io
import json
import sys
import urllib.error
import urllib.request

import pytest

from harness.proxy.admin import (
    AdminAPI,
    AdminChannel,
    AdminTokenError,
    load_token,
    make_resource,
    start_admin,
)
from harness.proxy.faults.engine import FaultEngine
from harness.proxy.stats import ChannelStats

from . import admin_server

TOKEN = "s3cret-token-for-tests"
AUTH = f"Bearer {TOKEN}"


def make_api() -> AdminAPI:
    channels = {
        "adt": AdminChannel(
            "adt", "mllp", "127.0.0.1:2575", ["127.0.0.1:12575"], ChannelStats(), FaultEngine("adt")
        ),
        "plain": AdminChannel("plain", "mllp", "127.0.0.1:2577", ["127.0.0.1:12577"]),
    }
    return AdminAPI(channels, TOKEN)


# --- token -----------------------------------------------------------------------------------------


def test_token_from_environment_first(tmp_path):
    file = tmp_path / "token"
    file.write_text("from-file-0123456789\n")
    file.chmod(0o600)
    assert load_token(file, {"HARNESS_ADMIN_TOKEN": " from-env-0123456789 "}) == "from-env-0123456789"
    assert load_token(file, {}) == "from-file-0123456789"


def test_no_token_says_why(tmp_path):
    with pytest.raises(AdminTokenError, match="HARNESS_ADMIN_TOKEN or admin.token_file"):
        load_token(None, {})
    with pytest.raises(AdminTokenError, match="cannot read admin.token_file"):
        load_token(tmp_path / "missing", {})
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "empty").chmod(0o600)
    with pytest.raises(AdminTokenError, match="is empty"):
        load_token(tmp_path / "empty", {})


@pytest.mark.parametrize("token", ["x", "fifteen-chars-x", "has a space in it!!", "tab\there-0123456789"])
def test_a_short_or_unprintable_token_is_refused_with_how_to_make_one(tmp_path, token):
    with pytest.raises(AdminTokenError, match="at least 16|space or control") as exc:
        load_token(None, {"HARNESS_ADMIN_TOKEN": token})
    assert "openssl rand" in str(exc.value)
    file = tmp_path / "token"
    file.write_text(token + "\n")
    file.chmod(0o600)
    with pytest.raises(AdminTokenError, match=str(file)):
        load_token(file, {})


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_a_token_file_open_to_group_or_others_is_refused_like_an_ssh_key(tmp_path, mode):
    file = tmp_path / "token"
    file.write_text("a-long-enough-token-0123456789\n")
    file.chmod(mode)
    with pytest.raises(AdminTokenError) as exc:
        load_token(file, {})
    message = str(exc.value)
    assert f"permissions {mode:04o}" in message and "too open" in message
    assert f"chmod 600 {file}" in message
    file.chmod(0o600)
    assert load_token(file, {}) == "a-long-enough-token-0123456789"
    file.chmod(0o400)
    assert load_token(file, {}) == "a-long-enough-token-0123456789"


def test_a_token_file_that_is_not_a_regular_file_is_refused_without_hanging(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(AdminTokenError, match="not a regular file"):
        load_token(fifo, {})
    with pytest.raises(AdminTokenError, match="not a regular file"):
        load_token(tmp_path, {})


# --- the API as a function -------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_every_endpoint_needs_the_token(auth):
    api = make_api()
    for method, path in [("GET", "/health"), ("GET", "/channels"), ("GET", "/metrics"), ("GET", "/nope")]:
        response = api.handle(method, path, auth)
        assert response.status == 401
        assert "Bearer" in response.json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_health_and_channels():
    api = make_api()
    assert api.handle("GET", "/health", AUTH).json()["status"] == "ok"
    api.channels["adt"].stats.outcome("ok")
    api.channels["adt"].stats.bytes_in += 10
    channels = api.handle("GET", "/channels", AUTH).json()["channels"]
    adt = channels[0]
    assert {k: adt[k] for k in ("name", "protocol", "listen", "upstream")} == {
        "name": "adt",
        "protocol": "mllp",
        "listen": "127.0.0.1:2575",
        "upstream": ["127.0.0.1:12575"],
    }
    counters = adt["counters"]
    for key in ("connections", "messages", "ok", "nak", "timeouts", "faults", "malformed", "bytes"):
        assert key in counters
    assert counters["messages"] == 1 and counters["ok"] == 1 and counters["bytes"] == 10
    assert counters["fault_rules"] == 0
    assert api.handle("GET", "/channels/adt", AUTH).json()["name"] == "adt"


def test_fault_rule_lifecycle():
    api = make_api()
    rule = {"match": {"message_type": "ADT^A01", "every_nth": 2}, "action": {"type": "nak", "code": "AR"}}
    created = api.handle("POST", "/channels/adt/faults", AUTH, json.dumps(rule).encode())
    assert created.status == 201
    body = created.json()["rule"]
    assert body["id"] == "r1" and body["action"] == {
        "type": "nak",
        "code": "AR",
        "text": None,
        "error_location": None,
    }
    api.handle("POST", "/channels/adt/faults", AUTH, b'{"action": {"type": "drop"}}')
    listed = api.handle("GET", "/channels/adt/faults", AUTH).json()
    assert [r["id"] for r in listed["rules"]] == ["r1", "r2"]
    assert api.channels["adt"].faults.has_rules("request")

    removed = api.handle("DELETE", "/channels/adt/faults/r1", AUTH)
    assert removed.status == 200 and removed.json()["removed"]["id"] == "r1"
    missing = api.handle("DELETE", "/channels/adt/faults/r1", AUTH)
    assert (
        missing.status == 404
        and "no fault rule 'r1'" in missing.json()["error"]
        and "r2" in missing.json()["error"]
    )

    reset = api.handle("POST", "/channels/adt/faults/reset", AUTH)
    assert reset.json() == {"channel": "adt", "removed": 1}
    assert api.handle("GET", "/channels/adt/faults", AUTH).json()["rules"] == []


def test_posting_a_list_adds_all_or_nothing():
    api = make_api()
    good = {"action": {"type": "drop"}}
    bad = {"action": {"type": "delay"}}
    response = api.handle("POST", "/channels/adt/faults", AUTH, json.dumps([good, bad]).encode())
    assert response.status == 400
    assert response.json()["where"] == "[1].action.ms"
    assert api.channels["adt"].faults.list() == []
    response = api.handle("POST", "/channels/adt/faults", AUTH, json.dumps([good, good]).encode())
    assert [r["id"] for r in response.json()["rules"]] == ["r1", "r2"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (
            b'{"action": {"type": "nack"}}',
            400,
            "unknown action type 'nack' for mllp; known types: delay, drop, nak",
        ),
        (b'{"action": {"type": "nak", "code": "XX"}}', 400, "action.code"),
        (b'{"action": ', 400, "not valid JSON"),
        (b"", 400, "empty body"),
        (b"\xff\xfe", 400, "not UTF-8"),
        (b"[1]", 400, "[0]: expected a JSON object"),
    ],
)
def test_bad_rules_get_400_with_the_validation_error(body, status, text):
    response = make_api().handle("POST", "/channels/adt/faults", AUTH, body)
    assert response.status == status
    assert text in response.json()["error"]


def test_unknown_channel_endpoint_and_method():
    api = make_api()
    response = api.handle("GET", "/channels/nope/faults", AUTH)
    assert (
        response.status == 404 and "unknown channel 'nope'; channels: adt, plain" in response.json()["error"]
    )
    response = api.handle("GET", "/nope", AUTH)
    assert response.status == 404 and "GET /metrics" in response.json()["endpoints"]
    response = api.handle("POST", "/health", AUTH)
    assert response.status == 405 and response.headers["Allow"] == "GET"
    response = api.handle("PUT", "/channels/adt/faults", AUTH)
    assert response.status == 405
    assert api.handle("GET", "/channels/plain/faults", AUTH).status == 409


def test_metrics_are_prometheus_text_per_channel():
    from prometheus_client.parser import text_string_to_metric_families

    api = make_api()
    stats = api.channels["adt"].stats
    stats.connection_opened()
    stats.outcome("ok")
    stats.outcome("nak")
    stats.observe_latency(0.004)
    api.handle("POST", "/channels/adt/faults", AUTH, b'{"action": {"type": "drop"}, "match": {"first_n": 1}}')
    api.channels["adt"].faults.decide("request", b"MSH|", None)
    response = api.handle("GET", "/metrics", AUTH)
    assert response.status == 200 and response.content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.body.decode())
        for s in family.samples
    }
    assert samples[("harness_connections_total", (("channel", "adt"),))] == 1
    assert samples[("harness_exchanges_total", (("channel", "adt"), ("outcome", "nak")))] == 1
    assert samples[("harness_faults_applied_total", (("channel", "adt"),))] == 1
    assert samples[("harness_latency_seconds_bucket", (("channel", "adt"), ("le", "0.005")))] == 1
    assert samples[("harness_latency_seconds_bucket", (("channel", "adt"), ("le", "0.0025")))] == 0
    assert samples[("harness_latency_seconds_count", (("channel", "plain"),))] == 0
    assert b"python_gc" not in response.body  # a dedicated registry, not the process-global one


# --- through twisted.web -----------------------------------------------------------------------------


def test_resource_adapts_requests():
    from twisted.web.test.requesthelper import DummyRequest

    resource = make_resource(make_api())
    request = DummyRequest([b"channels", b"adt", b"faults"])
    request.method = b"POST"
    request.path = b"/channels/adt/faults"
    request.content = io.BytesIO(b'{"action": {"type": "reset"}}')
    request.requestHeaders.addRawHeader(b"authorization", AUTH.encode())
    body = resource.render(request)
    assert request.responseCode == 201
    assert json.loads(body)["rule"]["action"] == {"type": "reset"}
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"application/json; charset=utf-8"]

    request = DummyRequest([b"health"])
    request.path = b"/health"
    request.content = io.BytesIO(b"")
    assert resource.render(request) and request.responseCode == 401


# --- a real socket, a real reactor, in a child process ---------------------------------------------------


def _call(port, method, path, token=TOKEN, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_real_socket(processes):
    _, port = admin_server.start(processes, TOKEN)
    assert _call(port, "GET", "/health", token=None)[0] == 401
    assert _call(port, "GET", "/health", token="nope")[0] == 401
    status, body = _call(port, "GET", "/health")
    assert status == 200 and json.loads(body)["status"] == "ok"

    status, body = _call(
        port, "POST", "/channels/adt/faults", body=b'{"action": {"type": "drop"}, "limit": 3}'
    )
    assert status == 201
    rule_id = json.loads(body)["rule"]["id"]
    # the server's timer feeds messages through the engine: the rule fires three times, then is exhausted
    for _ in range(200):
        status, body = _call(port, "GET", "/channels/adt/faults")
        if json.loads(body)["rules"][0]["exhausted"]:
            break
    rule = json.loads(body)["rules"][0]
    assert rule["id"] == rule_id and rule["hits"] == 3
    channels = json.loads(_call(port, "GET", "/channels")[1])["channels"]
    assert channels[0]["counters"]["faults"] == 3 and channels[0]["counters"]["faults_applied"] == 3
    status, body = _call(port, "GET", "/metrics")
    assert status == 200 and b'harness_faults_applied_total{channel="adt"} 3.0' in body
    assert _call(port, "DELETE", f"/channels/adt/faults/{rule_id}")[0] == 200
    status, body = _call(port, "POST", "/channels/adt/faults", body=b'{"action": {"type": "bogus"}}')
    assert status == 400 and b"known types" in body


def test_no_token_means_no_admin_api(processes):
    proc = processes.start(
        [sys.executable, "-m", "tests.proxy.admin_server"], env={"HARNESS_ADMIN_TOKEN": ""}
    )
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "admin API not started: no token" in out


# --- where the admin API may listen -------------------------------------------------------------------


def test_start_admin_refuses_plain_http_beyond_loopback_before_binding():
    from twisted.internet.error import CannotListenError
    from twisted.internet.testing import MemoryReactor

    reactor = MemoryReactor()
    with pytest.raises(CannotListenError) as info:
        start_admin(reactor, {}, TOKEN, "0.0.0.0", 8700)
    assert "admin.tls" in str(info.value.socketError) and "insecure_listen" in str(info.value.socketError)
    assert reactor.tcpServers == []


def test_insecure_listen_binds_beyond_loopback_with_a_warning():
    from twisted.internet.testing import MemoryReactor

    from harness.proxy.config import parse_config

    config = parse_config(
        {
            "admin": {"listen": "0.0.0.0:8700", "insecure_listen": True},
            "channels": {"adt": {"listen": "127.0.0.1:2575", "upstream": "127.0.0.1:1"}},
        }
    )
    reactor = MemoryReactor()
    warnings = []
    start_admin(
        reactor, {}, TOKEN, config=config.admin, log=lambda level, text: warnings.append((level, text))
    )
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [(8700, "0.0.0.0")]
    assert warnings and warnings[0][0] == "warning" and "in clear" in warnings[0][1]


def test_health_public_answers_up_or_down_only_without_the_token():
    api = AdminAPI({}, TOKEN, health_public=True)
    assert api.gate("GET", "/health", None, None) is None
    public = api.handle("GET", "/health", None)
    assert public.status == 200 and public.json() == {"status": "ok"}
    assert api.handle("GET", "/health", AUTH).json().keys() >= {"status", "channels", "uptime_s"}
    for method, path in [("GET", "/channels"), ("POST", "/health"), ("GET", "/metrics")]:
        assert api.gate(method, path, None, None).status == 401
        assert api.handle(method, path, None).status == 401
    assert make_api().gate("GET", "/health", None, None).status == 401  # off by default


def test_the_gate_judges_token_then_size_on_the_head():
    api = AdminAPI({}, TOKEN, max_body=100)
    assert api.gate("POST", "/channels/adt/faults", None, 10**9).status == 401
    assert api.gate("POST", "/channels/adt/faults", AUTH, 101).status == 413
    assert api.gate("POST", "/channels/adt/faults", AUTH, 100) is None
    assert api.gate("POST", "/channels/adt/faults", AUTH, None) is None  # chunked: counted as it comes


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"action": {"type": "drop"}, "limit": ' + b"9" * 5000 + b"}", "too large"),
        (b'{"action": {"type": "drop"}, "limit": 99999999999999999999}', "out of range"),
        (b'{"action": {"type": "delay", "ms": 1e999}}', "too large"),
        (b'{"action": {"type": "delay", "ms": NaN}}', "NaN"),
        (b'{"action": {"type": "drop"}, "x": ' + b"[" * 100000 + b"]" * 100000 + b"}", "nested too deeply"),
        (b"[" * 50 + b"]" * 50, "nested too deeply"),
        (b'{"action": {"type": "drop"}, "match": {"seed": -99999999999999999999}}', "out of range"),
    ],
)
def test_oversized_numbers_and_deep_json_get_400_not_500(body, text):
    response = make_api().handle("POST", "/channels/adt/faults", AUTH, body)
    assert response.status == 400, response.body
    assert text in response.json()["error"]
