"""The proxies' log lines: a plain stderr logger and a rate limit for per-exchange failures."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any


def log_stderr(level: str, message: str, **fields: Any) -> None:
    """`level: message k=v ...` on stderr, flushed (the default when no logger is given)."""
    extra = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"{level}: {message}{' ' + extra if extra else ''}", file=sys.stderr, flush=True)


class FailureLog:
    """Logs a failed exchange, at most one line per outcome per second: garbage must not flood logs."""

    __slots__ = ("channel", "log", "_last")

    def __init__(self, channel: str, log: Callable[..., None]) -> None:
        self.channel = channel
        self.log = log
        self._last: dict[str, tuple[float, int]] = {}

    def __call__(self, ex: Any) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(ex.outcome, (0.0, 0))
        if now - last < 1.0:
            self._last[ex.outcome] = (last, suppressed + 1)
            return
        self._last[ex.outcome] = (now, 0)
        more = f" (+{suppressed} more since the last line)" if suppressed else ""
        self.log(
            "warning",
            f"channel {self.channel}: {ex.outcome}{more}",
            control_id=ex.control_id,
            client=ex.client_addr,
            error=ex.error or "",
        )
