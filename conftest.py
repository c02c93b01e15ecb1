"""Project-wide pytest wiring.

The public sample corpus lives beside the project at ../shared/corpus; tests that read it
skip cleanly when it is absent (a user's clone has no ../shared). The certification plugin collects
spec folders as contract suites: `pytest specs/medins --target http://HOST:PORT` (harness/certify/plugin.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent
pytest_plugins = ["harness.certify.plugin"]

# Timing is not behaviour: on a busy machine one example can outlast hypothesis' default 200 ms
# deadline, or data generation trip the too_slow health check, with nothing wrong in the code.
settings.register_profile("harness", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("harness")
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared public corpus, or a skip when this clone has none."""
    if not CORPUS.is_dir():
        pytest.skip(f"public corpus not present at {CORPUS}")
    return CORPUS
