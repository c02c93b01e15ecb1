"""An upstream for framing tests that reads requests with h11 (a parser nobody here wrote) and records
every request it sees, in order, per connection. Each answer names the request it answers, so a client
can tell whether a response is its own.

`GET /poison/...` is answered with an ambiguous response (Content-Length and Transfer-Encoding, a second
response hidden behind it), `GET /slow-big/N` with N bytes written as fast as the client takes them.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import h11

POISON = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 45\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned"
)


class RecordingUpstream:
    def __init__(self) -> None:
        self.seen: list[tuple[int, str, str, bytes]] = []
        """(connection number, method, target, body) for every request read, in order."""
        self.rejected: list[str] = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def targets(self) -> list[str]:
        with self.lock:
            return [target for _, _, target, _ in self.seen]

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        parser = h11.Connection(h11.SERVER)
        request: Any = None
        body = b""
        conn.settimeout(30)
        try:
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA:
                    data = conn.recv(65536)
                    parser.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request, body = event, b""
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    target = request.target.decode("latin-1")
                    with self.lock:
                        self.seen.append((number, request.method.decode(), target, body))
                    self._answer(conn, parser, target)
                    if parser.our_state is h11.MUST_CLOSE:
                        return
                    parser.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except h11.RemoteProtocolError as exc:
            with self.lock:
                self.rejected.append(str(exc))
        except OSError:
            pass
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, parser: h11.Connection, target: str) -> None:
        if target.startswith("/poison/"):
            conn.sendall(POISON)
            parser.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            parser.send(h11.EndOfMessage())
            return
        if target.startswith("/slow-big/"):
            size = int(target.rpartition("/")[2])
            head = h11.Response(status_code=200, headers=[("Content-Length", str(size))])
            conn.sendall(parser.send(head))
            chunk = b"x" * 65536
            sent = 0
            while sent < size:
                piece = chunk[: size - sent]
                parser.send(h11.Data(data=piece))
                conn.sendall(piece)
                sent += len(piece)
            parser.send(h11.EndOfMessage())
            return
        body = json.dumps({"answer_to": target}).encode()
        head = h11.Response(
            status_code=200,
            headers=[("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        conn.sendall(parser.send(head) + parser.send(h11.Data(data=body)) + parser.send(h11.EndOfMessage()))
