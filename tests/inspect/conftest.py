from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.inspect import synthetic


@pytest.fixture
def shanghai():
    """Local time is Asia/Shanghai for the test (business hours and hour buckets are local)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Shanghai"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    (folder / "sla.yaml").write_text(synthetic.SLA, encoding="utf-8")
    (folder / "proxy.yaml").write_text(synthetic.CONFIG, encoding="utf-8")
    return synthetic.build(folder / "captures.db")
