"""Idle keep-alive connections to a channel's upstreams, as plain bookkeeping (no sockets here).

Which connection a request gets: an idle one to the main upstream first, then to each backup in
the configured order; a connection found closed while idle is dropped on the way. One that comes
back after a complete response is kept only while it is open and its upstream has fewer than
`size` idle (the rest are closed by the caller).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class Pooled(Protocol):
    address: Any
    connected: bool


class UpstreamPool:
    __slots__ = ("addresses", "size", "idle")

    def __init__(self, addresses: Sequence[Any], size: int) -> None:
        self.addresses = tuple(addresses)
        self.size = size
        self.idle: dict[Any, list[Any]] = {}

    def take(self) -> Any:
        """An open idle connection (main upstream first, then backups in order), or None."""
        for address in self.addresses:
            idle = self.idle.get(address)
            while idle:
                conn = idle.pop()
                if conn.connected:
                    return conn
        return None

    def put(self, conn: Pooled) -> bool:
        """Keep `conn` for the next request; False: the caller closes it (closed, or pool full)."""
        idle = self.idle.setdefault(conn.address, [])
        if conn.connected and len(idle) < self.size:
            idle.append(conn)
            return True
        return False

    def forget(self, conn: Pooled) -> None:
        """`conn` closed: never hand it out."""
        idle = self.idle.get(conn.address)
        if idle and conn in idle:
            idle.remove(conn)
