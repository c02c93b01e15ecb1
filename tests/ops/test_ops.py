"""ops/: the alert rules load in promtool and pass their unit tests, the Prometheus config is valid, and every
metric the alert rules and the Grafana dashboard use is on a running proxy's /metrics.

promtool comes with Debian's `prometheus` package; without it the promtool tests skip and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.childproc import Child
from tests.mock_mllp_process import start_mock
from tests.processes import ROOT, Processes
from tests.proxy.proxy_process import Sender, adt

OPS = ROOT / "ops"
RULES = OPS / "prometheus" / "alerts.yml"
DASHBOARD = OPS / "grafana" / "harness-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package `prometheus`)"
)
TOKEN = "ops-t0ken-0123456789"
NOT_OURS = {"up"}  # Prometheus's own series


def rule_expressions() -> list[str]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule["expr"] for group in data["groups"] for rule in group["rules"]]


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def dashboard_expressions() -> list[str]:
    board = dashboard()
    found = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    found += [v["query"]["query"] for v in board["templating"]["list"] if isinstance(v.get("query"), dict)]
    return found


def concrete(expr: str) -> str:
    """A dashboard expression with Grafana's variables filled in, as Prometheus would receive it."""
    return expr.replace("$__rate_interval", "1m").replace("$channel", ".*").replace("$message_type", ".*")


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(harness_[a-z_]+)\b", expr)) | ({"up"} if re.search(r"\bup\{", expr) else set())


@needs_promtool
def test_the_alert_rules_load_and_pass_their_unit_tests():
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout
    test = subprocess.run([PROMTOOL, "test", "rules", str(OPS / "prometheus" / "alerts.test.yml")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert test.returncode == 0, test.stdout + test.stderr


@needs_promtool
def test_the_example_prometheus_config_is_valid(tmp_path):
    token = tmp_path / "admin-token"
    token.write_text(TOKEN + "\n")
    config = (OPS / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    assert "/etc/harness/admin-token" in config
    (tmp_path / "prometheus.yml").write_text(config.replace("/etc/harness/admin-token", str(token)))
    shutil.copy(RULES, tmp_path / "alerts.yml")
    check = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path):
    queries = [e for e in dashboard_expressions() if not e.startswith("label_values(")]
    recorded = [{"record": f"dashboard:query_{i}", "expr": concrete(e)} for i, e in enumerate(queries)]
    rules = {"groups": [{"name": "dashboard", "rules": recorded}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    check = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_dashboard_is_well_formed_for_grafana():
    board = dashboard()
    assert board["uid"] == "harness-proxy" and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "channel", "message_type"}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    titles = {p["title"] for p in board["panels"]}
    assert {"Error rate", "Latency p95 by message type", "Upstream connections", "Capture store"} <= titles


@pytest.fixture(scope="module")
def scraped(tmp_path_factory) -> set[str]:
    """Sample names on /metrics of a real proxy that carried traffic to its primary, then to its backup."""
    procs = Processes()
    folder = tmp_path_factory.mktemp("ops")
    try:
        primary, backup = start_mock(procs), start_mock(procs)
        config = folder / "proxy.yaml"
        delay = {"match": {"message_type": "ADT^A08"}, "action": {"type": "delay", "ms": 1}}
        upstreams = [f"127.0.0.1:{primary.port}", f"127.0.0.1:{backup.port}"]
        channel = {"protocol": "mllp", "listen": "127.0.0.1:0", "capture": "fast", "upstream": upstreams,
                   "faults": [delay]}  # fmt: skip
        store, admin_at = str(folder / "captures.db"), {"listen": "127.0.0.1:0"}
        config.write_text(yaml.safe_dump({"store": store, "admin": admin_at, "channels": {"adt": channel}}))
        proxy = Child(procs.harness("proxy", "--config", str(config), env={"HARNESS_ADMIN_TOKEN": TOKEN}))
        port = int(proxy.wait_for(r"channel adt listening on 127\.0\.0\.1:(\d+)").group(1))
        admin = int(proxy.wait_for(r"admin API listening on 127\.0\.0\.1:(\d+)").group(1))
        sender = Sender(port)
        assert b"MSA|AA" in sender.exchange(adt("OPS1"))
        sender.close()
        primary.stop(signal.SIGKILL)
        sender = Sender(port)
        assert b"MSA|AA" in sender.exchange(adt("OPS2", trigger="A08"))  # answered by the backup
        request = urllib.request.Request(f"http://127.0.0.1:{admin}/metrics")
        request.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        sender.close()
        families = list(text_string_to_metric_families(text))
        names = {s.name for family in families for s in family.samples}
        [backup_open] = [
            s for f in families for s in f.samples
            if s.name == "harness_upstream_connections" and s.labels["role"] == "backup"
        ]  # fmt: skip
        assert backup_open.value == 1 and backup_open.labels["upstream"] == f"127.0.0.1:{backup.port}"
        return names
    finally:
        procs.stop_all()


def test_every_metric_the_alert_rules_use_is_on_the_proxy(scraped):
    used = set().union(*(metric_names(e) for e in rule_expressions())) - NOT_OURS
    assert used, "no metric found in the rules"
    missing = {name for name in used if name not in scraped}
    assert not missing, f"alert rules use metrics the proxy does not export: {sorted(missing)}"


def test_every_metric_the_dashboard_uses_is_on_the_proxy(scraped):
    used = set().union(*(metric_names(e) for e in dashboard_expressions())) - NOT_OURS
    missing = {name for name in used if name not in scraped}
    assert not missing, f"the dashboard uses metrics the proxy does not export: {sorted(missing)}"
    assert {"harness_message_exchanges_total", "harness_message_latency_seconds_bucket", "harness_in_flight",
            "harness_upstream_connections", "harness_store_up"} <= used  # fmt: skip


def test_the_metric_name_pattern_finds_names_in_expressions():
    assert metric_names('sum(rate(harness_exchanges_total{outcome="ok"}[5m])) or up{job="x"}') == {
        "harness_exchanges_total",
        "up",
    }
