"""Free loopback ports for test listeners, and waiting until one accepts."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PICK = random.SystemRandom()  # not the seeded `random`: every test must not try the same ports


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody is bound to now, picked at random just below the kernel's ephemeral range.

    A port the OS hands out for port 0 comes from that range, as do the local ports of outgoing
    connections, so between this check and the child's bind another listener on port 0 or any
    connection (this suite's children, tests running in parallel) could take it; below the range only
    another explicit pick can, one in thousands. Prefer port 0 and the port the child prints."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = _ephemeral_low()
    for _ in range(100):
        port = _PICK.randrange(max(1024, low - 12000), low) if low > 2048 else 0
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port below {low} on {host}")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0, proc=None) -> None:
    """Block until something accepts on host:port, or fail (early if proc has exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}: {out}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
