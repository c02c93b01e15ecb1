"""The proxy is part of the harness package and stands without the CLI."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_proxy_does_not_load_the_cli():
    code = (
        "import sys, harness.proxy.server, harness.proxy.mllp.channel, harness.proxy.http.channel, "
        "harness.proxy.admin, harness.proxy.config; "
        "print(sorted(m for m in sys.modules if m.startswith(('harness.cli', 'typer'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_no_top_level_proxies_python_package_is_left():
    assert not (ROOT / "proxies" / "__init__.py").exists()
    assert not list((ROOT / "proxies").glob("*.py"))
