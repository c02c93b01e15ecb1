"""Where the data files the commands read live: specs/, fixtures/ and loadtests/.

The repository keeps them at its top level (the layout in docs/ARCHITECTURE.md); a built wheel carries
copies under ``harness/_data/`` (setup.py's build step puts them there), so an installed harness runs
every command from any directory. The installed copy wins; a checkout (or an editable install) has no
``_data`` and falls back to the repository's own folders.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

NAMES = ("specs", "fixtures", "loadtests")
"""The top-level folders that are installed with the package."""

_CHECKOUT = Path(__file__).resolve().parent.parent


def data_dir(name: str) -> Path:
    """The folder `name` (one of NAMES): the installed copy, else the checkout's."""
    if name not in NAMES:
        raise ValueError(f"{name!r} is not installed with harness (one of {', '.join(NAMES)})")
    installed = Path(str(resources.files("harness").joinpath("_data", name)))
    return installed if installed.is_dir() else _CHECKOUT / name
