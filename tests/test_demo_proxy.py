"""`harness demo` with the proxy in the chain: faults through the admin API, a capture summary, cleanup."""

from __future__ import annotations

import re
import socket

from harness import demo
from harness.store import ExchangeFilter, Store


def test_demo_puts_the_proxy_in_front_and_summarises_the_capture(tmp_path):
    lines: list[str] = []
    run = demo.ProxyRun(reports=tmp_path)
    steps = [
        demo.StartMockMLLP(),
        demo.StartProxy(run),
        demo.AddFaults(run),
        demo.SendFixtures(),
        demo.StopChildren(),
        demo.CaptureSummary(run),
        demo.JudgeProxied(run),
    ]
    assert demo.run(echo=lines.append, steps=steps) == 0, "\n".join(lines)
    out = "\n".join(lines)
    assert re.search(r"EMR20240315140230007 +ADT\^A08 +AE ", out)  # the NAK fault
    assert "proxy: exit 0" in out and "outcome" in out and "fault" in out
    port = int(re.search(r"harness proxy listening on 127\.0\.0\.1:(\d+)", out).group(1))
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        still_open = True
    except OSError:
        still_open = False
    assert not still_open
    store = Store(run.store)
    try:
        outcomes = sorted(ex.outcome for ex in store.query(ExchangeFilter()))
    finally:
        store.close()
    assert outcomes.count("fault") == 1 and outcomes.count("ok") == len(outcomes) - 1
    assert list(tmp_path.glob("*token*")) == []
