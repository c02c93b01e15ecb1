"""`harness store info|prune|copy`, and the reading commands on a PostgreSQL store (`--store URL` and
HARNESS_STORE), through the real CLI."""

from __future__ import annotations

import json
import time

from typer.testing import CliRunner

from harness.cli import app
from harness.exchange import Exchange
from harness.store import Store
from tests import messages

runner = CliRunner()
DAY = 86400


def adt(control_id: str) -> bytes:
    hosts = {"sender": ("HIS", "H1"), "receiver": ("HC", "H2")}
    return messages.adt(control_id, pid3=control_id, name="", evn=False, message_type="ADT^A01",
                        ts="20261125", **hosts)  # fmt: skip


def fill(target, days_ago=(1, 2, 40, 100)) -> None:
    now = time.time()
    with Store(target) as store:
        store.add_many([
            Exchange(channel="adt", started_at=now - d * DAY, request=adt(f"C{d}"), control_id=f"C{d}",
                     message_type="ADT^A01", response=b"MSA|AA\r", ack_code="AA", proxy="his-1")
            for d in days_ago
        ])  # fmt: skip


def test_reading_commands_take_a_postgresql_url_on_the_command_line_and_from_the_environment(pg_url):
    fill(pg_url)
    listed = runner.invoke(app, ["capture", "list", "--store", pg_url, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines() if line.startswith("{")]
    assert sorted(row["control_id"] for row in rows) == [
        "C1", "C100", "C2", "C40",
    ]  # fmt: skip
    shown = runner.invoke(app, ["capture", "show", "--unmasked", "1"], env={"HARNESS_STORE": pg_url})
    assert shown.exit_code == 0 and "C1" in shown.output, shown.output
    summary = runner.invoke(app, ["capture", "summary", "--json"], env={"HARNESS_STORE": pg_url})
    assert json.loads(summary.output)["exchanges"] == 4
    checked = runner.invoke(app, ["validate", "--unmasked", "--store", pg_url, "--json"])
    assert checked.exit_code == 1  # these short ADTs lack EVN: the findings come from the central store
    assert checked.output.count('"control_id": "C') == 4
    assert f'"selection": "{pg_url} (live traffic' in checked.output


def test_store_info_prune_and_its_dry_run(pg_url):
    fill(pg_url)
    info = runner.invoke(app, ["store", "info", "--store", pg_url, "--json"])
    assert info.exit_code == 0, info.output
    data = json.loads(info.output)
    assert (data["backend"], data["exchanges"], data["by_proxy"][0]["proxy"]) == ("postgresql", 4, "his-1")
    dry = runner.invoke(app, ["store", "prune", "--older-than", "30d", "-s", pg_url, "--dry-run", "--json"])
    assert json.loads(dry.output)["would_remove"] == 2
    done = runner.invoke(app, ["store", "prune", "--older-than", "30d", "--store", pg_url, "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["removed"] == 2 and len(result["partitions_dropped"]) == 2
    with Store(pg_url) as store:
        assert sorted(ex.control_id for ex in store.query()) == ["C1", "C2"]


def test_store_commands_refuse_bad_input_with_usage_errors(tmp_path, pg_url):
    future = runner.invoke(app, ["store", "prune", "--older-than", "+1d", "--store", pg_url])
    assert future.exit_code == 2 and "future" in future.output
    nonsense = runner.invoke(app, ["store", "prune", "--older-than", "a while", "--store", pg_url])
    assert nonsense.exit_code == 2 and "--older-than" in nonsense.output
    missing = runner.invoke(app, ["store", "info", "--store", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    password = runner.invoke(app, ["store", "info", "--store", "postgresql://u:pw@127.0.0.1/x"])
    assert password.exit_code == 2 and "PGPASSFILE" in password.output and ":pw@" not in password.output


def test_store_copy_both_ways_through_the_cli(tmp_path, pg_url):
    source = tmp_path / "proxy.db"
    fill(source)
    there = runner.invoke(app, ["store", "copy", "--from", f"sqlite:{source}", "--to", pg_url, "--json"])
    assert there.exit_code == 0, there.output
    assert json.loads(there.output)["copied"] == 4
    again = runner.invoke(app, ["store", "copy", "--from", f"sqlite:{source}", "--to", pg_url])
    assert again.exit_code == 0 and "4 were already there" in again.output
    back = runner.invoke(app, ["store", "copy", "--from", pg_url, "--to", str(tmp_path / "back.db")])
    assert back.exit_code == 0 and "copied 4 exchanges" in back.output, back.output
    with Store(source) as a, Store(tmp_path / "back.db") as b:
        assert list(a.query()) == list(b.query())
