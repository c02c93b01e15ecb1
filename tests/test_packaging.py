"""A wheel built from this checkout, installed into a fresh venv, runs the commands from any directory.

The wheel is built without network (`--no-build-isolation`, setuptools and wheel come with the test
extras) from a copy of the files a release is built from, and installed with `--no-deps`; the fresh
venv finds the dependencies through a .pth line naming this venv's site-packages (a plain path: the
checkout's editable install is not carried over, which the first test checks). Each command runs
from an empty working directory, so nothing can come from the checkout.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.childproc import Child
from tests.processes import ROOT

RELEASE_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
RELEASE_DIRS = ("harness", "specs", "fixtures", "loadtests")


def _build_tools_missing() -> str | None:
    try:
        import setuptools
        import wheel  # noqa: F401
    except ImportError as exc:
        return f"cannot build a wheel offline: {exc.name} is not installed (pip install -e '.[test]')"
    if int(setuptools.__version__.split(".")[0]) < 68:
        return f"cannot build a wheel offline: setuptools {setuptools.__version__} < 68"
    return None


class Installed:
    def __init__(self, venv: Path, work: Path) -> None:
        self.venv = venv
        self.work = work
        self.python = venv / "bin" / "python"
        self.harness = venv / "bin" / "harness"
        self.env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        self.env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
        self.env["PYTHONUNBUFFERED"] = "1"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.harness), *args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def package_dir(self) -> Path:
        out = subprocess.run(
            [str(self.python), "-c", "import harness, pathlib; print(pathlib.Path(harness.__file__).parent)"],
            cwd=self.work, env=self.env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return Path(out.stdout.strip())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    reason = _build_tools_missing()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "_data", "*.egg-info")
    for name in RELEASE_FILES:
        shutil.copy2(ROOT / name, source / name)
    for name in RELEASE_DIRS:
        shutil.copytree(ROOT / name, source / name, ignore=skip)
    dist = tmp / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    build = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (wheel,) = dist.glob("harness-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()
    )  # fmt: skip
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "zz-test-dependencies.pth").write_text("".join(f"{p}\n" for p in ours), encoding="utf-8")
    install = subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    work = tmp / "work"
    work.mkdir()
    return Installed(venv, work)


def _files(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def test_the_wheel_carries_the_data_and_runs_from_the_install(installed: Installed) -> None:
    package = installed.package_dir()
    assert package.is_relative_to(installed.venv), f"harness imported from {package}, not the fresh venv"
    for name in (
        "specs/medins/envelope.yaml",
        "fixtures/hl7v2/adt_a01_admit.hl7",
        "loadtests/profiles/soak.yaml",
    ):
        assert (package / "_data" / name).is_file(), name
    assert not (package / "_data" / "harness").exists()


def test_mock_medins_answers_a_sign_in(installed: Installed) -> None:
    proc = subprocess.Popen(
        [str(installed.harness), "mock", "medins", "--listen", "127.0.0.1:0"],
        cwd=installed.work, env=installed.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    child = Child(proc)
    try:
        port = child.listening(timeout=60)
        body = (ROOT / "fixtures" / "medins" / "visit-01-9001.json").read_bytes()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(
                "POST", "/fsi/api/rsfComIfsService/callService", body, {"Content-Type": "application/json"}
            )
            resp = conn.getresponse()
            answer = json.loads(resp.read())
        finally:
            conn.close()
        assert resp.status == 200
        assert str(answer["infcode"]) == "0", answer
        assert answer["output"]["signinoutb"]["sign_no"]
    finally:
        child.stop()
    assert not any("Traceback" in line for line in child.lines), child.text()


def test_demo_writes_only_under_the_working_directory(installed: Installed) -> None:
    package = installed.package_dir()
    before = _files(package)
    done = installed.run("demo", "--out", "demo-out", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo OK" in done.stdout
    out = installed.work / "demo-out"
    assert "demo writes its files to demo-out/" in done.stdout
    assert (out / "demo-captures.db").is_file()
    assert list(out.glob("certify-medins-*.html")), sorted(p.name for p in out.iterdir())
    assert _files(package) == before, "the demo wrote into the installation"
    assert str(package) not in done.stdout  # paths are shown as the user can type them


def test_validate_with_a_profile_shipped_in_the_install(installed: Installed) -> None:
    message = installed.work / "admit.hl7"
    shutil.copy(ROOT / "fixtures" / "hl7v2" / "adt_a01_admit.hl7", message)
    plain = installed.run("validate", "admit.hl7")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    profiled = installed.run("validate", "admit.hl7", "--profile", "yunnan-his-adt", "--json")
    assert profiled.returncode in (0, 1), profiled.stdout + profiled.stderr
    assert "Traceback" not in profiled.stderr
    report = json.loads(profiled.stdout)
    assert report["run"]["profiles"][0]["name"] == "yunnan-his-adt", report["run"]
