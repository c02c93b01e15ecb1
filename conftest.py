"""Project-wide pytest wiring.

The public sample corpus lives beside the project at ../shared/corpus; tests that read it
skip cleanly when it is absent (a user's clone has no ../shared).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared public corpus, or a skip when this clone has none."""
    if not CORPUS.is_dir():
        pytest.skip(f"public corpus not present at {CORPUS}")
    return CORPUS
