"""Load runs against real children: `harness mock mllp|medins|fhir|soap` behind one `harness proxy`
(durable capture into a SQLite store), and `harness load` itself as a child process, as engineers run it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.load.runs import start_mock
from tests.ports import free_port, wait_for_port
from tests.processes import Processes


@dataclass
class Chain:
    folder: Path
    config: Path
    store: Path
    mocks: dict[str, int]
    channels: dict[str, int]
    """Proxy channel name -> listen port (adt, adt-ae, medins, fhir, soap)."""

    def address(self, channel: str) -> str:
        port = self.channels[channel]
        return f"127.0.0.1:{port}" if channel.startswith("adt") else f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    """Simulators behind one proxy: MLLP channel `adt` (answers AA), `adt-ae` (answers AE to ADT^A08),
    and HTTP channels medins, fhir and soap; captured durably."""
    folder = tmp_path_factory.mktemp("chain")
    procs = Processes()
    try:
        mocks = {
            "mllp": start_mock(procs, "mllp"),
            "mllp-ae": start_mock(procs, "mllp", "--answer-rule", "MSH-9.2=A08:AE"),
            **{kind: start_mock(procs, kind, "--quiet") for kind in ("medins", "fhir", "soap")},
        }
        channels = {name: free_port() for name in ("adt", "adt-ae", "medins", "fhir", "soap")}
        store = folder / "captures.db"
        body = {
            "adt": {"protocol": "mllp", "upstream": f"127.0.0.1:{mocks['mllp']}"},
            "adt-ae": {"protocol": "mllp", "upstream": f"127.0.0.1:{mocks['mllp-ae']}"},
            **{k: {"protocol": "http", "kind": k, "upstream": f"http://127.0.0.1:{mocks[k]}"}
               for k in ("medins", "fhir", "soap")},
        }  # fmt: skip
        for name, channel in body.items():
            channel.update(listen=f"127.0.0.1:{channels[name]}", capture="durable")
        config = folder / "proxy.yaml"
        config.write_text(yaml.safe_dump({"store": str(store), "admin": False, "channels": body}))
        log = open(folder / "proxy.log", "w")  # noqa: SIM115 - the child writes to it
        proxy = procs.harness("proxy", "--config", str(config), stdout=log)
        log.close()
        for port in channels.values():
            wait_for_port(port, proc=proxy, timeout=60)
        yield Chain(folder, config, store, mocks, channels)
    finally:
        procs.stop_all()
