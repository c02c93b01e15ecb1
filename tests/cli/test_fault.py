"""`harness fault` against a real admin API in a child process."""

import json
import subprocess

import pytest

from harness.cli.fault import rule_from_options
from tests.ports import free_port
from tests.processes import HARNESS, ROOT
from tests.proxy import admin_server

TOKEN = "cli-test-token-0123456789"


def harness(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    if token is not None:
        env["HARNESS_ADMIN_TOKEN"] = token
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


@pytest.fixture
def admin(processes) -> str:
    _, port = admin_server.start(processes, TOKEN)
    return f"http://127.0.0.1:{port}"


def test_add_list_remove_clear(admin, tmp_path):
    out = harness(
        "fault", "add", "lab", "--admin", admin, "--type", "nak", "--code", "AR", "--text", "ward closed",
        "--message-type", "ADT^A01", "--every-nth", "3", "--limit", "5", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    added = json.loads(out.stdout)
    assert added["channel"] == "lab" and added["id"] == "r1"
    assert added["action"] == {"type": "nak", "code": "AR", "text": "ward closed", "error_location": None}
    assert added["match"] == {"direction": "request", "message_type": "ADT^A01", "every_nth": 3}
    assert added["limit"] == 5

    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps([{"action": {"type": "delay", "ms": 200}}, {"action": {"type": "drop"}}]))
    out = harness("fault", "add", "lab", "--admin", admin, "--rule", f"@{rule_file}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "lab: added r2       delay ms=200 jitter_ms=0  [direction=request]  hits 0",
        "lab: added r3       drop  [direction=request]  hits 0",
    ]
    out = harness(
        "fault", "add", "adt", "--admin", admin, "--rule", '{"id": "x1", "action": {"type": "reset"}}'
    )
    assert out.returncode == 0, out.stderr

    out = harness("fault", "list", "--admin", admin, "--json")
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["channel"], r["id"]) for r in rows] == [
        ("adt", "x1"),
        ("lab", "r1"),
        ("lab", "r2"),
        ("lab", "r3"),
    ]
    text = harness("fault", "list", "lab", "--admin", admin).stdout
    assert "r1       nak code=AR text=ward closed" in text and "hits 0/5" in text

    out = harness("fault", "remove", "lab", "r2", "--admin", admin)
    assert out.returncode == 0 and "removed r2" in out.stdout
    out = harness("fault", "clear", "lab", "--admin", admin, "--json")
    assert json.loads(out.stdout) == {"channel": "lab", "removed": 2}
    assert harness("fault", "list", "lab", "--admin", admin).stdout.strip() == "lab: no fault rules"


def test_bad_rules_fail_before_sending_with_the_key(admin):
    out = harness("fault", "add", "lab", "--admin", admin, "--type", "nack")
    assert out.returncode == 2
    assert "action.type: unknown action type 'nack' for mllp; known types: delay, drop, nak" in out.stderr
    out = harness(
        "fault", "add", "lab", "--admin", admin, "--rule", '{"action": {"type": "delay", "ms": -1}}'
    )
    assert out.returncode == 2 and "action.ms: must be at least 0" in out.stderr
    out = harness("fault", "add", "lab", "--admin", admin, "--rule", "{nope")
    assert out.returncode == 2 and "--rule is not valid JSON" in out.stderr
    out = harness("fault", "add", "lab", "--admin", admin)
    assert out.returncode == 2 and "give the rule" in out.stderr
    out = harness(
        "fault", "add", "lab", "--admin", admin, "--rule", '{"action": {"type": "drop"}}', "--ms", "3"
    )
    assert out.returncode == 2 and "not both" in out.stderr


def test_unknown_channel_and_rule(admin):
    out = harness("fault", "add", "nope", "--admin", admin, "--type", "drop")
    assert out.returncode == 2 and "unknown channel 'nope'; channels: adt, lab" in out.stderr
    out = harness("fault", "remove", "adt", "r9", "--admin", admin)
    assert out.returncode == 2 and "no fault rule 'r9'" in out.stderr


def test_wrong_or_missing_token(admin, tmp_path):
    out = harness("fault", "list", "--admin", admin, token="wrong-but-long-enough")
    assert out.returncode == 2 and "refused the token (401)" in out.stderr
    out = harness("fault", "list", "--admin", admin, token=None)
    assert (
        out.returncode == 2 and "no admin token: set HARNESS_ADMIN_TOKEN or pass --token-file" in out.stderr
    )
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    out = harness("fault", "list", "adt", "--admin", admin, "--token-file", str(token_file), token=None)
    assert out.returncode == 2 and f"chmod 600 {token_file}" in out.stderr  # 0644: refused, like ssh
    token_file.chmod(0o600)
    out = harness("fault", "list", "adt", "--admin", admin, "--token-file", str(token_file), token=None)
    assert out.returncode == 0 and "adt: no fault rules" in out.stdout
    out = harness("fault", "list", "adt", "--admin", admin, token="short")
    assert out.returncode == 2 and "at least 16" in out.stderr


def test_unreachable_admin_api():
    port = free_port()
    out = harness("fault", "list", "--admin", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert out.returncode == 2
    assert f"cannot reach the admin API at http://127.0.0.1:{port}" in out.stderr


def test_rule_from_shorthand_options():
    rule = rule_from_options(
        {"type": "corrupt", "mode": "flip_byte", "action_seed": 4, "path": ["PID-3.1=re:^9", "PID-8=M"],
         "direction": "request", "probability": 0.5, "seed": 1, "ms": None, "id": "c1", "offset": 3.0}
    )  # fmt: skip
    assert rule == {
        "action": {"type": "corrupt", "mode": "flip_byte", "offset": 3, "seed": 4},
        "match": {
            "direction": "request",
            "probability": 0.5,
            "seed": 1,
            "paths": {"PID-3.1": "re:^9", "PID-8": "M"},
        },
        "id": "c1",
    }
    with pytest.raises(Exception, match="PATH=VALUE"):
        rule_from_options({"type": "drop", "path": ["PID-3.1"]})
    accept_only = rule_from_options({"type": "drop", "direction": "response", "reply": "accept"})
    assert accept_only["match"] == {"direction": "response", "reply": "accept"}


def test_help():
    out = subprocess.run(
        [*HARNESS, "fault", "add", "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0 and "--every-nth" in out.stdout
