"""Locust (gevent's monkey-patching) and Twisted never share a process: each side imports only its own."""

import subprocess
import sys

from tests.processes import ROOT


def imports_of(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_locust_side_never_imports_twisted():
    out = imports_of(
        "import sys, harness.load.locustfile\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))"
    )
    assert out == "[]"


def test_harness_load_itself_never_imports_locust_or_gevent():
    out = imports_of(
        "import sys\nimport harness.cli\n"
        "import harness.load.profile, harness.load.run, harness.load.results, harness.load.report\n"
        "import harness.load.merge, harness.load.capture_shape, harness.cli.load\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
    )
    assert out == "[]"
