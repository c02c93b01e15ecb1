"""HTTP proxy tests' setup: simulators and the proxy as child processes, a stdlib echo upstream, the
medical-insurance visit from fixtures/medins."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.childproc import start_listening
from tests.ports import free_port, wait_for_port
from tests.processes import ROOT
from tests.proxy.proxy_process import start_proxy

MEDINS_PATH = "/fsi/api/rsfComIfsService/callService"
VISIT = sorted((ROOT / "fixtures" / "medins").glob("visit-*.json"))


def start_simulator(processes: Any, kind: str) -> int:
    """`harness mock KIND` on port 0; returns the port it printed (its later output is drained)."""
    return start_listening(processes, "mock", kind, "--listen", "127.0.0.1:0")[1]


def write_http_config(
    folder: Path, channels: dict[str, dict], *, store: Path | None = None, admin: Any = False
) -> tuple[Path, dict[str, int]]:
    """A config with the given HTTP channels (each gets a free listen port); returns (path, ports)."""
    ports: dict[str, int] = {}
    body: dict[str, dict] = {}
    for name, channel in channels.items():
        ports[name] = int(channel["listen"].rpartition(":")[2]) if "listen" in channel else free_port()
        body[name] = {"protocol": "http", "listen": f"127.0.0.1:{ports[name]}", **channel}
    data = {"store": str(store or folder / "captures.db"), "admin": admin, "channels": body}
    path = folder / "proxy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path, ports


def run_proxy(processes: Any, config: Path, ports: dict[str, int], env: dict | None = None) -> Any:
    proc = start_proxy(processes, config, next(iter(ports.values())), env=env)
    for port in ports.values():
        wait_for_port(port, proc=proc)
    return proc


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, str], bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        if own:
            conn.close()


def medins_visit(port: int, conn: http.client.HTTPConnection | None = None) -> list[dict]:
    """Send the fixture visit in order (placeholders filled from earlier answers); returns the answers."""
    values: dict[str, str] = {}
    answers = []
    for path in VISIT:
        if path.name.endswith("2208.json"):
            continue
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"\{\{(\w+)\}\}", lambda m: values.get(m.group(1), m.group(0)), text)
        status, _, body = request(
            port, "POST", MEDINS_PATH, text.encode("utf-8"), {"Content-Type": "application/json"}, conn
        )
        doc = json.loads(body)
        assert status == 200, (path.name, body)
        assert str(doc["infcode"]) == "0", (path.name, doc.get("err_msg"))
        out = doc.get("output") or {}
        if "signinoutb" in out:
            values["sign_no"] = out["signinoutb"]["sign_no"]
        if isinstance(out.get("data"), dict) and "mdtrt_id" in out["data"]:
            values["mdtrt_id"] = out["data"]["mdtrt_id"]
        if "setlinfo" in out:
            values["setl_id"] = out["setlinfo"]["setl_id"]
        answers.append(doc)
    return answers


class EchoUpstream:
    """A stdlib HTTP server in a thread: answers each request with the SHA-256 and length of its body,
    `GET /big/N` with N bytes, `GET /silent` never."""

    def __init__(self) -> None:
        outer = self
        self.requests: list[tuple[str, str, dict[str, str]]] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(("GET", self.path, dict(self.headers.items())))
                if self.path == "/silent":
                    threading.Event().wait(5)
                    return
                if self.path == "/die":  # half a response, then the connection drops
                    self.send_response(200)
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b"x" * 40)
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.path.startswith("/chunked/"):  # a chunked response of N chunks
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(int(self.path.rpartition("/")[2])):
                        piece = f"chunk {i};".encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                size = int(self.path.rpartition("/")[2]) if self.path.startswith("/big/") else 0
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                chunk = b"0123456789abcdef" * 4096
                sent = 0
                while sent < size:
                    piece = chunk[: size - sent]
                    self.wfile.write(piece)
                    sent += len(piece)

            def do_POST(self) -> None:
                outer.requests.append(("POST", self.path, dict(self.headers.items())))
                digest = hashlib.sha256()
                length = 0
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        data = self.rfile.read(size)
                        self.rfile.readline()
                        digest.update(data)
                        length += len(data)
                else:
                    remaining = int(self.headers.get("Content-Length", "0"))
                    while remaining:
                        data = self.rfile.read(min(remaining, 65536))
                        digest.update(data)
                        length += len(data)
                        remaining -= len(data)
                body = json.dumps({"sha256": digest.hexdigest(), "length": length}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
