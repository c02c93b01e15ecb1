"""Replay fixtures; the helpers (ADT messages, a `harness mock mllp` child, capture stores made by a real
`harness proxy`) are in tests/replay/traffic.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def mock_log(tmp_path) -> Path:
    return tmp_path / "mock.log"
