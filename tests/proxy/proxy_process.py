"""Running `harness proxy` in tests: a config on disk, the child process, a blocking MLLP sender."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from harness.mllp import Frame, MLLPDecoder
from tests import messages
from tests.ports import free_port, wait_for_port
from tests.processes import ROOT

HL7APY_UPSTREAM = Path(__file__).with_name("hl7apy_upstream.py")


def adt(control_id: str, *, size: int = 0, trigger: str = "A01") -> bytes:
    """An inpatient ADT message with the given control id, padded with an NTE to about `size` bytes."""
    return messages.adt(
        control_id,
        trigger=trigger,
        name="ZHANG^SAN^^^^^L",
        patient="||19800101|M|||KUNMING RD 1^^KUNMING^YN^650000",
        visit="I|W1^101^1||||D001^LI^SI",
        size=size,
    )


def write_config(
    tmp_path: Path,
    *,
    upstream: Any,
    store: Path | None = None,
    admin: Any = "off",
    encryption: dict | None = None,
    **channel: Any,
) -> tuple[Path, int]:
    """A one-channel config (`adt`) listening on a free loopback port; returns (path, port).
    `encryption`: the store's `encryption:` settings (key_file, algorithm)."""
    port = free_port()
    body = {"protocol": "mllp", "listen": f"127.0.0.1:{port}", "upstream": upstream, **channel}
    target = str(store or tmp_path / "captures.db")
    data: dict[str, Any] = {
        "store": {"path": target, "encryption": encryption} if encryption else target,
        "channels": {"adt": body},
    }
    data["admin"] = False if admin == "off" else admin
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, port


def store_key(tmp_path: Path, algorithm: str | None) -> tuple[dict | None, Path | None]:
    """The store's `encryption:` settings for `write_config` and the key file, kept apart from the
    store in a folder of its own; (None, None) for a store in clear."""
    if algorithm is None:
        return None, None
    from harness.store import crypto

    (tmp_path / "keys").mkdir()
    key = tmp_path / "keys" / "store.key"
    crypto.new_key_file(key, algorithm)
    return {"key_file": str(key), "algorithm": algorithm}, key


def start_proxy(processes: Any, config: Path, port: int, *args: str, env: dict | None = None) -> Any:
    """The proxy with its output in proxy.log beside the config (a pipe nobody reads could fill up)."""
    out = open(config.with_name("proxy.log"), "a")  # noqa: SIM115 - the child writes to it
    proc = processes.harness("proxy", "--config", str(config), *args, env=env, stdout=out)
    out.close()
    wait_for_port(port, proc=proc)
    return proc


def start_tls_mllp_proxy(processes: Any, folder: Path, upstream: int) -> tuple[Path, Path]:
    """A proxy whose MLLP channel `adt` listens with TLS (a certificate from a throwaway CA, written into
    `folder`) and forwards to `upstream` in clear; its config and the CA's certificate."""
    from tests.tls_material import TestCA

    ca = TestCA(folder)
    cert, key = ca.issue("proxy")
    port = free_port()
    channel = {
        "protocol": "mllp", "listen": f"127.0.0.1:{port}", "upstream": f"127.0.0.1:{upstream}",
        "tls": {"cert": str(cert), "key": str(key)},
    }  # fmt: skip
    config = folder / "proxy.yaml"
    config.write_text(
        yaml.safe_dump({"store": str(folder / "captures.db"), "admin": False, "channels": {"adt": channel}})
    )
    start_proxy(processes, config, port)
    return config, ca.path


def proxy_log(config: Path) -> str:
    return config.with_name("proxy.log").read_text()


def start_hl7apy_upstream(processes: Any, port: int, log: Path, fail_on: str | None = None) -> Any:
    """hl7apy's MLLPServer; with `fail_on`, messages holding that text get an AR without MSA-2."""
    args = [str(port), str(log)] + ([fail_on] if fail_on else [])
    proc = processes.start([sys.executable, str(HL7APY_UPSTREAM), *args], cwd=ROOT)
    wait_for_port(port, proc=proc)
    return proc


class Sender:
    """A blocking MLLP sender: one connection, send a message, read the next frame."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.decoder = MLLPDecoder()
        self.frames: list[bytes] = []

    def connect(self) -> None:
        self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = MLLPDecoder()
        self.frames = []

    def send(self, payload: bytes) -> None:
        if self.sock is None:
            self.connect()
        self.sock.sendall(b"\x0b" + payload + b"\x1c\r")

    def receive(self, timeout: float | None = None) -> bytes | None:
        """The next reply frame; None when the proxy closed the connection."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                self.close()
                return None
            self.frames += [e.payload for e in self.decoder.feed(data) if isinstance(e, Frame)]
        return self.frames.pop(0)

    def exchange(self, payload: bytes, timeout: float | None = None) -> bytes | None:
        self.send(payload)
        return self.receive(timeout)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
