"""hl7apy's MLLPServer as the proxy's upstream, in a process of its own; logs what it received and sent.

Run: python hl7apy_upstream.py PORT LOGFILE [FAIL_ON]. One JSON line per message: the control id, the
exact request text it received (hl7apy decodes UTF-8) and the exact ACK bytes it sent, so a test can
check what crossed the wire on the upstream side. With FAIL_ON, the handler raises for messages that
contain that text and hl7apy routes them to its ERR handler, which answers an AR with an empty MSA-2
(the reply of a receiver that could not make sense of the message). hl7apy's server handles one
message per connection, then closes, like several engines in the field. The ACK is built by the
project's ack module (hl7apy's own builder would take ~30 ms a message); framing and transport are
hl7apy's.
"""

from __future__ import annotations

import json
import sys
import threading

from hl7apy.mllp import AbstractErrorHandler, AbstractHandler, MLLPServer

from harness.hl7v2.ack import build_ack, reject_unparseable
from harness.hl7v2.meta import extract

_lock = threading.Lock()


def _logged(request: bytes, ack: bytes) -> str:
    with _lock:
        AckHandler.log.write(
            json.dumps(
                {
                    "control_id": extract(request).control_id,
                    "request": request.decode("utf-8"),
                    "ack": ack.decode("utf-8"),
                }
            )
            + "\n"
        )
        AckHandler.log.flush()
    return "\x0b" + ack.decode("utf-8") + "\x1c\r"


class AckHandler(AbstractHandler):
    log = None
    fail_on: str | None = None

    def reply(self) -> str:
        if AckHandler.fail_on and AckHandler.fail_on in self.incoming_message:
            raise ValueError(f"the application refuses messages with {AckHandler.fail_on!r}")
        request = self.incoming_message.encode("utf-8")
        return _logged(request, build_ack(request, "AA"))


class RejectHandler(AbstractErrorHandler):
    def reply(self) -> str:
        request = self.incoming_message.encode("utf-8")
        return _logged(request, reject_unparseable(request, str(self.exc)))


class AnyType(dict):
    def __missing__(self, key: str) -> tuple:
        return (AckHandler,)


def main() -> None:
    port, log_path = int(sys.argv[1]), sys.argv[2]
    AckHandler.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's life
    handlers = AnyType()
    if len(sys.argv) > 3:
        AckHandler.fail_on = sys.argv[3]
        handlers["ERR"] = (RejectHandler,)
    server = MLLPServer("127.0.0.1", port, handlers, timeout=10)
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
