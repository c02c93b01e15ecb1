"""`WriterProcess`: the store's write connection in a child process, so the proxy keeps its GIL."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from harness.store.backend import Store, StoreError
from harness.store.location import StoreLocation, parse_location


class WriterProcess:
    """A child process that owns the store's write connection; `write(rows)` commits one batch there.

    Framing on its stdin/stdout: a 4-byte big-endian length, then a pickled request — ("write", rows,
    dedupe), ("probe",) or ("ping",) — one way and its answer (ids or exceptions, sent after COMMIT
    returned; or the probe's problem) the other. Pickle is safe here: both ends are this module, over a
    private pipe. The child opens the store (and with `quick_check` reads every page) before it answers the
    first frame, so a store that cannot be opened fails here, in the constructor, with the child's
    message. It exits when its stdin closes (this process ended or `close()`), after committing what it
    had read; it ignores SIGINT and SIGTERM so a Ctrl-C or a process-group TERM cannot cut it off before
    the parent's final flush. When it dies anyway (kill -9, the OOM killer), `broken` says so and
    `CaptureWriter` starts a new one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | StoreLocation,
        synchronous: str,
        *,
        quick_check: bool = False,
        encryption: Any = None,
    ) -> None:
        import subprocess
        import sys

        root = Path(__file__).resolve().parent.parent.parent
        location = parse_location(path)
        self.path: Path | str = location.path.resolve() if location.path is not None else str(location.url)
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from harness.store import _serve_writer; _serve_writer()",
             str(self.path), synchronous, "quick_check" if quick_check else "-",
             encryption.to_text() if encryption is not None else "-"],
            cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )  # fmt: skip
        self._answers = io.BufferedReader(self._proc.stdout, 1 << 16)
        """One read takes an answer's length and body at once (a small durable commit's answer)."""
        self.broken: BaseException | None = None
        try:
            ready = self._receive()
        except (OSError, EOFError, ValueError) as exc:
            ready = StoreError(f"capture writer process for {self.path} did not start: {exc}")
        if isinstance(ready, BaseException):
            self.close()
            raise ready if isinstance(ready, StoreError) else StoreError(str(ready))

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self.broken is None and self._proc.poll() is None

    def write(self, rows: list[tuple | BaseException], dedupe: bool = False) -> list[int | BaseException]:
        if self.broken is None:
            try:
                results = self._ask(("write", rows, dedupe))
                if isinstance(results, list) and len(results) == len(rows):
                    return results
                self.broken = StoreError(f"capture writer process for {self.path}: unexpected answer")
            except (OSError, EOFError, ValueError) as exc:
                self.broken = StoreError(f"capture writer process for {self.path} is gone: {exc}")
        return [self.broken] * len(rows)

    def probe(self) -> str | None:
        """None when the store takes a small durable write now, else what stops it."""
        if self.broken is not None:
            return str(self.broken)
        try:
            return self._ask(("probe",))
        except (OSError, EOFError, ValueError) as exc:
            self.broken = StoreError(f"capture writer process for {self.path} is gone: {exc}")
            return str(self.broken)

    def ping(self) -> str | None:
        """None when nothing is known to be wrong with the store (a database server still answering)."""
        if self.broken is not None:
            return str(self.broken)
        try:
            return self._ask(("ping",))
        except (OSError, EOFError, ValueError) as exc:
            self.broken = StoreError(f"capture writer process for {self.path} is gone: {exc}")
            return str(self.broken)

    def _ask(self, request: tuple) -> Any:
        import pickle

        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        self._proc.stdin.write(len(data).to_bytes(4, "big") + data)
        return self._receive()

    def _receive(self) -> Any:
        import pickle

        head = self._read(4)
        return pickle.loads(self._read(int.from_bytes(head, "big")))

    def _read(self, size: int) -> bytes:
        data = self._answers.read(size)  # short only at the end of the pipe
        if len(data) < size:
            code = self._proc.poll()
            raise EOFError(f"the process ended (exit {code})" if code is not None else "pipe closed")
        return data

    def close(self, timeout: float = 30.0) -> None:
        """Close its stdin (it commits what it read and exits) and wait for it."""
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except Exception:  # noqa: BLE001 - a child that hangs is killed rather than left behind
            self._proc.kill()
            self._proc.wait()
        self._answers.close()


def _serve_writer() -> None:
    """The child's side of `WriterProcess` (argv: store path, synchronous, quick_check or -, where the
    key comes from (`crypto.KeySource`, never the key) or -)."""
    import pickle
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    inp, out = sys.stdin.buffer, sys.stdout.buffer

    def send(value: Any) -> None:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - an exception that does not pickle goes as its text
            value = [v if isinstance(v, int) else StoreError(str(v)) for v in value]
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(4, "big") + data)
        out.flush()

    def read(size: int) -> bytes | None:
        parts = []
        while size:
            chunk = inp.read(size)
            if not chunk:
                return None
            parts.append(chunk)
            size -= len(chunk)
        return b"".join(parts)

    try:
        from harness.store.crypto import Keyring, KeySource

        source = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
        keys = Keyring.from_sources([KeySource.from_text(source)]) if source else None
        store = Store(sys.argv[1], synchronous=sys.argv[2], keys=keys, **writing(parse_location(sys.argv[1])))
        ready_to_seal(store)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        send(StoreError(str(exc)))
        return
    if sys.argv[3:4] == ["quick_check"]:
        problem = store.check()
        if problem:
            store.close()
            send(StoreError(store.damaged(problem)))
            return
    send("ready")
    with store:
        while (head := read(4)) is not None:
            body = read(int.from_bytes(head, "big"))
            if body is None:
                return
            request = pickle.loads(body)
            if request[0] == "probe":
                send(store.probe())
            elif request[0] == "ping":
                send(store.ping())
            else:
                send(store.commit_rows(request[1], dedupe=request[2]))


def ready_to_seal(store: Store) -> None:
    """A writer fails at start, not at its first batch, when the store is encrypted and its key is not
    held (a new store given a key is marked encrypted here); a database not reachable yet is checked
    at the first write."""
    from harness.store.backend import StoreUnavailable

    try:
        store.sealing_key()
    except StoreUnavailable:
        pass
    except StoreError:
        store.close()
        raise


def writing(location: StoreLocation) -> dict[str, Any]:
    """How a capture writer opens its store: a database server that is down at start leaves it
    disconnected (the writer reports the store down and reconnects) instead of failing."""
    return {"lazy": True} if location.remote else {}
