"""Headless Chromium for the tests that check HTML reports as a browser renders them.

Needs Debian's `chromium` and `fonts-wqy-zenhei` (`make browser`); without Chromium the tests that use
`needs_chromium` are skipped with that reason, never passed silently.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import html as lxml_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium is not installed (Debian chromium and fonts-wqy-zenhei: `make browser`)",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    """Run headless Chromium once on url with its own empty profile under tmp_path."""
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=90,
    )


def rendered(tmp_path: Path, page: Path):
    """The DOM Chromium built for page (after its scripts ran), parsed with lxml."""
    proc = chromium(tmp_path, page.as_uri(), "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<html" in proc.stdout, proc.stderr[-2000:]
    return lxml_html.fromstring(proc.stdout)


def screenshot(tmp_path: Path, page: Path, name: str = "shot.png", size: str = "1400,1800") -> Path:
    """A PNG of page as Chromium draws it (look at it: tests only prove it was drawn)."""
    shot = tmp_path / name
    proc = chromium(tmp_path, page.as_uri(), f"--screenshot={shot}", f"--window-size={size}")
    assert proc.returncode == 0 and shot.exists(), proc.stderr
    return shot
