"""The PostgreSQL store's own behaviour on a real server: partitions, a server that goes away or turns
read-only (the writer reports the store down, reconnects by itself with a backoff, buffers nothing
beyond its queue), a database that cannot be reached at start, URLs with passwords, foreign tables."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from harness.exchange import Exchange
from harness.store import CaptureWriter, Store, StoreError, StoreUnavailable, parse_location
from tests.ports import free_port


@pytest.fixture(scope="module")
def own_server():
    """A server of this module's own: these tests stop it and make it read-only."""
    from tests.postgres import start_server

    server = start_server()
    try:
        yield server
    finally:
        server.cleanup()


def until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def ex(control_id: str) -> Exchange:
    return Exchange(channel="adt", request=b"MSH|" + control_id.encode(), control_id=control_id)


@pytest.mark.parametrize("process", [False, True])
def test_a_server_restart_marks_the_store_down_and_the_writer_recovers_by_itself(own_server, process):
    url = own_server.create_database()
    health = []
    results: dict[str, object] = {}
    done = threading.Event()

    def keep(cid):
        def callback(result):
            results[cid] = result
            done.set()

        return callback

    with CaptureWriter(url, "durable", process=process, check_interval_s=0.05, on_health=health.append) as w:
        w.submit(ex("before"), keep("before"))
        assert w.flush(30) and isinstance(results["before"], int)
        own_server.stop()
        until(lambda: not w.health.ok)  # noticed while idle, before any message is lost to it
        assert "cannot" in w.health.reason or "lost" in w.health.reason or "terminat" in w.health.reason
        w.submit(ex("during"), keep("during"))
        assert w.flush(30)
        assert isinstance(results["during"], StoreError)  # refused, never reported as stored
        own_server.start()
        until(lambda: w.health.ok)  # the probe reconnects (backoff at most 5 s)
        w.submit(ex("after"), keep("after"))
        assert w.flush(30) and isinstance(results["after"], int)
    assert [h.ok for h in health] == [False, True]
    with Store(url) as store:
        assert [e.control_id for e in store.query()] == ["before", "after"]


def test_a_read_only_database_marks_the_store_down_until_it_takes_writes_again(own_server):
    url = own_server.create_database()
    with CaptureWriter(url, "durable", check_interval_s=0.05) as w:
        own_server.read_only(True)
        try:
            until(lambda: not w.health.ok)
            assert "read-only" in w.health.reason
            results = []
            w.submit(ex("refused"), results.append)
            assert w.flush(30) and isinstance(results[0], StoreUnavailable)
        finally:
            own_server.read_only(False)
        until(lambda: w.health.ok)
        w.submit(ex("stored"), results.append)
        assert w.flush(30) and isinstance(results[1], int)


def test_a_database_unreachable_at_start_leaves_the_writer_down_not_dead(tmp_path):
    url = f"postgresql://harness@127.0.0.1:{free_port()}/nowhere"
    started = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect"):
        Store(url)  # a reading command says so at once
    with CaptureWriter(url, "durable", check_interval_s=0.05) as writer:
        assert not writer.health.ok and "cannot connect" in writer.health.reason
        results = []
        writer.submit(ex("1"), results.append)
        assert writer.flush(30) and isinstance(results[0], StoreUnavailable)
    assert time.monotonic() - started < 20


def test_what_the_server_refuses_at_start_is_an_error_not_an_outage(pg_server):
    with pytest.raises(StoreError, match="does not exist"):
        CaptureWriter(pg_server.url("no_such_database"), "durable")


def test_a_password_in_the_url_is_refused_and_never_echoed():
    with pytest.raises(StoreError, match="PGPASSFILE") as err:
        parse_location("postgresql://harness:s3cret@db.example/captures")
    assert "s3cret" not in str(err.value)
    with pytest.raises(StoreError, match="two slashes"):
        parse_location("postgresql:/db")  # what a Path makes of a URL
    assert parse_location("sqlite:///var/lib/harness/c.db").path.as_posix() == "/var/lib/harness/c.db"
    assert parse_location("postgres://harness@db/captures?sslmode=verify-full").remote


def test_a_database_with_tables_of_its_own_is_not_taken_over(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE exchanges (id int)")
    with pytest.raises(StoreError, match="not one"):
        Store(pg_url)
    with pytest.raises(StoreError, match="holds no capture store"):
        Store(pg_url.replace(pg_url.rsplit("/", 1)[1], "postgres"), create=False)


def test_rows_land_in_day_partitions_created_as_needed(pg_url):
    day = 86400
    with Store(pg_url) as store:
        days = (19852, 19853)  # since 1970: 2024-05-09 and -10 (UTC)
        store.add_many([Exchange(channel="adt", started_at=d * day + 5.0, request=b"x") for d in days])
        names = store.partitions()
        assert "exchanges_20240509" in names and "exchanges_20240510" in names
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute(
                "SELECT tableoid::regclass::text, count(*) FROM exchanges GROUP BY 1 ORDER BY 1"
            )
            assert rows.fetchall() == [("exchanges_20240509", 1), ("exchanges_20240510", 1)]


def test_several_writers_racing_for_a_new_day_share_its_partition(pg_url):
    stamp = 20100 * 86400 + 1.0
    errors = []

    def write(n):
        with CaptureWriter(pg_url, "durable") as writer:
            for i in range(20):
                writer.submit(Exchange(channel=f"w{n}", started_at=stamp + i, request=b"r"),
                              lambda r: errors.append(r) if not isinstance(r, int) else None)
            writer.flush(30)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with Store(pg_url) as store:
        assert store.count() == 80


def test_the_password_comes_from_the_password_file_never_the_url(own_server, tmp_path, monkeypatch):
    own_server.require_password("clerk", "w0rd-from-pgpass")
    url = f"postgresql://clerk@127.0.0.1:{own_server.port}/clerk"
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(StoreError, match="password") as refused:
        CaptureWriter(url, "durable")  # refused by the server: an error at start, not an outage
    assert not isinstance(refused.value, StoreUnavailable)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{own_server.port}:clerk:clerk:w0rd-from-pgpass\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    with CaptureWriter(url, "durable", process=True) as writer:  # the child process finds it too
        results = []
        writer.submit(ex("1"), results.append)
        assert writer.flush(30) and isinstance(results[0], int)
    with Store(url) as store:
        assert store.count() == 1

