"""Build step that installs specs/, fixtures/ and loadtests/ with the package (as harness/_data/).

The folders stay at the repository's top level; harness.datafiles finds the installed copy or, in a
checkout or an editable install, the repository's own. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
DATA = ("specs", "fixtures", "loadtests")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's folders
            return
        for name in DATA:
            source = HERE / name
            if not source.is_dir():  # an sdist made without them cannot run the simulators
                raise SystemExit(f"setup.py: {source} is missing; it is installed with the package")
            target = Path(self.build_lib) / "harness" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=SKIP)


setup(cmdclass={"build_py": BuildWithData})
