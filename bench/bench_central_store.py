"""The central store: durable capture through the proxy on PostgreSQL against SQLite, and inspection-style
queries over a large PostgreSQL store, every figure measured in this run on this machine.

1. Capture. `harness mock mllp` answers AA; N sender processes each keep one connection and send 1 KB
   ADT^A01 messages stop-and-wait through `harness proxy` with `capture: durable`, in interleaved rounds:
   the store a SQLite file (the baseline), then a PostgreSQL database on a server started here (fsync
   on, synchronous_commit on: what a durable commit means). Prints msg/s, p50/p99 and PG/SQLite ratios.
2. Inspection. Fills a PostgreSQL store with `--rows` synthetic exchanges over `--days` days (8
   channels, 3 proxies, 4 % NAK, 1 % timeouts, 300-byte requests), generated inside the server, then
   times the queries an inspection makes: the 30-minute urgent-fault window of one channel through
   `Store.count`/`Store.query`, and over the whole period (pushed down as SQL): volume per hour,
   success rate per channel and message type, latency percentiles, NAK top-N with an example id,
   silences (gaps between consecutive exchanges), a control-id lookup and a replay selection.

    .venv/bin/python bench/bench_central_store.py [--messages 2000] [--connections 4] [--rounds 3]
        [--rows 2000000] [--days 30] [--skip-capture] [--skip-inspect]

The server runs as the `postgres` user when this runs as root (Debian's postgresql package).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import processes
from bench_proxy import measure, stop
from processes import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.store import ExchangeFilter, Store  # noqa: E402
from tests.postgres import PostgresServer, bindir  # noqa: E402

HARNESS = [sys.executable, "-m", "harness"]
DAY = 86400


def start(args: list[str], port: int):
    import subprocess

    proc = subprocess.Popen(
        [*HARNESS, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    wait_for_port(port, proc)
    return proc


def config(folder: Path, name: str, port: int, upstream: int, store: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"store: {store}\ninstance: bench\nadmin: off\nchannels:\n  adt:\n"
        f"    listen: 127.0.0.1:{port}\n    upstream: 127.0.0.1:{upstream}\n    capture: durable\n"
    )
    return path


def capture(server: PostgresServer, folder: Path, args: argparse.Namespace) -> None:
    up_port = free_port()
    upstream = start(["mock", "mllp", "--listen", f"127.0.0.1:{up_port}"], up_port)
    results: dict[str, list[dict]] = {"sqlite": [], "postgresql": []}
    try:
        for r in range(args.rounds):
            for backend in ("sqlite", "postgresql"):
                store = str(folder / f"round{r}.db") if backend == "sqlite" else server.create_database()
                port = free_port()
                path = config(folder, f"{backend}{r}", port, up_port, store)
                proxy = start(["proxy", "--config", str(path)], port)
                try:
                    results[backend].append(
                        measure(port, args.connections, args.messages, 1024, watch=proxy.pid)
                    )
                finally:
                    stop(proxy)
                got = results[backend][-1]
                print(f"  round {r + 1} {backend:10} {got['msg_s']:7.0f} msg/s  p50 {got['p50_ms']:.2f} ms"
                      f"  p99 {got['p99_ms']:.2f} ms", flush=True)  # fmt: skip
    finally:
        processes.stop(upstream)
    print(f"\ndurable capture through the proxy, {args.connections} stop-and-wait senders, 1 KB ADT^A01, "
          f"median of {args.rounds} rounds:")  # fmt: skip
    med = {b: {k: statistics.median(x[k] for x in rs) for k in ("msg_s", "p50_ms", "p99_ms")}
           for b, rs in results.items()}  # fmt: skip
    for backend, m in med.items():
        print(f"  {backend:10} {m['msg_s']:7.0f} msg/s  p50 {m['p50_ms']:.2f} ms  p99 {m['p99_ms']:.2f} ms")
    print(f"  PostgreSQL / SQLite: throughput {med['postgresql']['msg_s'] / med['sqlite']['msg_s']:.2f}x, "
          f"p50 {med['postgresql']['p50_ms'] / med['sqlite']['p50_ms']:.2f}x", flush=True)  # fmt: skip


FILL = """
INSERT INTO exchanges (id, channel, protocol, kind, started_at, ended_at, latency_ms, client_addr,
    upstream_addr, request, response, outcome, ack_code, message_type, control_id, charset, meta, notes,
    proxy)
SELECT g,
    'ch' || (g %% 8),
    'mllp', 'hl7v2',
    %(start)s + (g - %(first)s) * %(step)s,
    %(start)s + (g - %(first)s) * %(step)s + lat / 1000.0,
    lat,
    '10.1.0.' || (g %% 50) || ':40000',
    '10.2.0.1:12575',
    convert_to('MSH|^~\\&|HIS|H1|HC|H2|20261125120000||' || mt || '|' || g || '|P|2.5' || chr(13) ||
        'PID|1||' || (100000 + g %% 900000) || '^^^H1^MR||ZHANG^SAN' || chr(13) || repeat('x', 180), 'UTF8'),
    convert_to('MSH|^~\\&|HC|H2|HIS|H1|||ACK|A' || g || '|P|2.5' || chr(13) || 'MSA|' || ack || '|' || g,
        'UTF8'),
    outcome, ack, mt, g::text, 'utf-8', '{}', '[]',
    'proxy-' || (g %% 3)
FROM (
    SELECT g,
        CASE WHEN g %% 100 < 4 THEN 'nak' WHEN g %% 100 = 4 THEN 'timeout' ELSE 'ok' END AS outcome,
        CASE WHEN g %% 100 < 4 THEN 'AE' WHEN g %% 100 = 4 THEN NULL ELSE 'AA' END AS ack,
        (ARRAY['ADT^A01', 'ADT^A08', 'ORU^R01', 'ORM^O01', 'SIU^S12'])[1 + g %% 5] AS mt,
        CASE WHEN g %% 100 = 4 THEN 30000.0 ELSE 2 + (g * 7919 %% 1000) / 25.0 END AS lat
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
) AS s
"""

QUERIES = {
    "volume per hour per channel (whole period)": """
        SELECT channel, floor(started_at / 3600) AS hour, count(*) FROM exchanges
        WHERE started_at >= %(since)s GROUP BY 1, 2""",
    "success rate per channel and message type": """
        SELECT channel, message_type, count(*),
               avg(CASE WHEN outcome IN ('ok', 'no_ack_expected') THEN 1.0 ELSE 0.0 END)
        FROM exchanges WHERE started_at >= %(since)s GROUP BY 1, 2""",
    "latency p50/p95/p99 per channel": """
        SELECT channel, percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
        FROM exchanges WHERE started_at >= %(since)s AND latency_ms IS NOT NULL GROUP BY 1""",
    "NAK/error top 10 with an example id": """
        SELECT channel, message_type, ack_code, count(*), min(id) FROM exchanges
        WHERE started_at >= %(since)s AND outcome NOT IN ('ok', 'no_ack_expected')
        GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 10""",
    "silences: longest gaps per channel (one day)": """
        SELECT channel, max(gap) FROM (
            SELECT channel,
                   started_at - lag(started_at) OVER (PARTITION BY channel ORDER BY started_at) AS gap
            FROM exchanges WHERE started_at >= %(day_start)s AND started_at < %(day_end)s) AS g
        GROUP BY 1""",
    "one exchange by control id (MSH-10)": """
        SELECT id FROM exchanges WHERE control_id = %(control_id)s""",
}


def inspect(server: PostgresServer, args: argparse.Namespace) -> None:
    import psycopg

    url = server.create_database()
    rows, days = args.rows, args.days
    end = (int(time.time()) // DAY) * DAY
    start_t = end - days * DAY
    step = days * DAY / rows
    with Store(url) as store:
        store._ensure_days(store._ready(), {start_t // DAY + d for d in range(days + 1)})
    print(f"\nfilling {rows:,} exchanges over {days} days ...", flush=True)
    began = time.perf_counter()
    chunk = 500_000
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        for first in range(1, rows + 1, chunk):
            last = min(rows, first + chunk - 1)
            params = {"start": float(start_t) + (first - 1) * step, "first": first, "step": step,
                      "last": last}  # fmt: skip
            conn.execute(FILL, params)
            print(f"  {last:,} rows, {time.perf_counter() - began:.0f} s", flush=True)
        conn.execute(f"SELECT setval('exchanges_id_seq', {rows})")
        conn.execute("ANALYZE exchanges")
        (size,) = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits"
            " WHERE inhparent = 'exchanges'::regclass"
        ).fetchone()
    fill_s = time.perf_counter() - began
    print(f"filled in {fill_s:.0f} s ({rows / fill_s:,.0f} rows/s), {size} with indexes", flush=True)

    def timed(label: str, fn) -> None:
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        print(f"  {label:48} {min(times) * 1000:9.1f} ms  (best of {args.repeat}; {out})", flush=True)

    now = float(end)
    with Store(url, create=False) as store:
        parts = len(store.partitions())
        print(f"\ninspection queries over {rows:,} exchanges ({days} days, {parts} partitions):")
        window = ExchangeFilter(channel="ch3", since=now - 1800, until=now)
        timed("count, one channel, last 30 min (Store.count)", lambda: f"{store.count(window)} rows")
        timed("stream it without bodies (Store.query)",
              lambda: f"{sum(1 for _ in store.query(window, bodies=False))} rows")  # fmt: skip
        day = ExchangeFilter(since=now - DAY, until=now)
        timed("stream one day, all channels (Store.query)",
              lambda: f"{sum(1 for _ in store.query(day, bodies=False))} rows")  # fmt: skip
        select = ExchangeFilter(channel="ch5", message_type="ADT", since=now - 2 * 3600, replays=False)
        timed("replay selection: channel + ADT + 2 h, originals",
              lambda: f"{sum(1 for _ in store.query(select))} rows")  # fmt: skip
        conn = store._ready()
        params = {"since": float(start_t), "day_start": now - DAY, "day_end": now,
                  "control_id": str(rows // 2)}  # fmt: skip
        for label, sql in QUERIES.items():
            timed(label, lambda sql=sql: f"{len(conn.execute(sql, params).fetchall())} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="measured messages a round (all senders)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rows", type=int, default=2_000_000,
        help="exchanges in the inspection store (docs/PERFORMANCE.md records --rows 10000000)",
    )  # fmt: skip
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each query (the best counts)")
    parser.add_argument("--skip-capture", action="store_true")
    parser.add_argument("--skip-inspect", action="store_true")
    args = parser.parse_args()
    folder = bindir()
    if folder is None:  # skipped, not failed: `make bench` goes on with the other scripts
        print("skipped: no PostgreSQL server binaries; install Debian's postgresql package (make postgres)")
        return
    settings = {"shared_buffers": "512MB", "work_mem": "64MB", "max_wal_size": "4GB",
                "checkpoint_timeout": "15min"}  # fmt: skip
    server = PostgresServer(folder, fsync=True, settings=settings)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if not args.skip_capture:
                capture(server, Path(tmp), args)
        if not args.skip_inspect:
            inspect(server, args)
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
