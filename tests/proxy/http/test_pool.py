"""Which idle upstream connection a request gets, and which come back to the pool."""

from __future__ import annotations

from dataclasses import dataclass

from harness.proxy.config import Address
from harness.proxy.http.pool import UpstreamPool

MAIN = Address("127.0.0.1", 8001)
BACKUP = Address("127.0.0.1", 8002)


@dataclass(eq=False)
class Conn:
    address: Address
    connected: bool = True


def test_empty_pool_gives_nothing():
    assert UpstreamPool([MAIN, BACKUP], 4).take() is None


def test_main_upstream_first_then_backups_in_order():
    pool = UpstreamPool([MAIN, BACKUP], 4)
    b, m = Conn(BACKUP), Conn(MAIN)
    assert pool.put(b) and pool.put(m)
    assert pool.take() is m
    assert pool.take() is b
    assert pool.take() is None


def test_connections_closed_while_idle_are_skipped_and_dropped():
    pool = UpstreamPool([MAIN], 4)
    good, stale = Conn(MAIN), Conn(MAIN)
    pool.put(good)
    pool.put(stale)
    stale.connected = False
    assert pool.take() is good
    assert pool.idle[MAIN] == []


def test_put_refuses_closed_connections_and_a_full_pool():
    pool = UpstreamPool([MAIN], 2)
    assert not pool.put(Conn(MAIN, connected=False))
    assert pool.put(Conn(MAIN)) and pool.put(Conn(MAIN))
    assert not pool.put(Conn(MAIN))


def test_forget_removes_a_closed_connection():
    pool = UpstreamPool([MAIN], 2)
    conn = Conn(MAIN)
    pool.put(conn)
    pool.forget(conn)
    pool.forget(conn)  # twice is harmless
    pool.forget(Conn(BACKUP))  # never pooled
    assert pool.take() is None
