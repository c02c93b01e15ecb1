"""The pytest route: `pytest specs/medins --target URL` runs a spec folder's contract suite as test items.

A spec folder with an `examples.yaml` (or an HL7 v2 profile named on the command line) is collected as
one node per operation or flow and one item per check that applies to it, so `-k` selects
(`-k "2207 and required"`) and pytest's own `--junitxml` writes one test case per check. The first item
that runs certifies the selected operations and checks in one go (the same engine as `harness certify`,
state built once); each item then passes, fails with its evidence, or is skipped with the reason it did
not run. `--store FILE` judges a capture instead (passive); without either, every item is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("certify", "contract suites from the specs (pytest specs/... --target URL)")
    group.addoption("--target", metavar="URL|HOST:PORT", help="the system under test (active certification)")
    group.addoption("--store", metavar="FILE", help="judge the exchanges captured in this store (passive)")
    group.addoption("--through", metavar="PROXY_CONFIG", help="send through this running harness proxy")
    group.addoption("--channel", help="the proxy channel to send through or read")
    group.addoption("--seed", type=int, help="seed of the generated cases")
    group.addoption("--examples", type=int, default=2, help="generated valid requests per operation")
    group.addoption(
        "--invalid-examples", type=int, default=1, help="generated invalid requests per constraint"
    )
    group.addoption("--waivers", metavar="FILE", help="certification waiver file")
    group.addoption(
        "--certify-report", metavar="DIR", help="also write the HTML, JSON and JUnit reports here"
    )
    group.addoption("--certify-timeout", type=float, default=30.0, help="seconds to wait for each answer")


def _certifiable(path: Path) -> bool:
    return (path / "examples.yaml").is_file() and (path / "examples.yaml").read_text(
        "utf-8"
    ).lstrip().startswith("meta:")


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _certifiable(path):
        return SpecDirectory.from_parent(parent, path=path)
    return None


class SpecDirectory(pytest.Directory):
    """A spec folder: one suite, or (HL7 v2) one suite per profile its examples cover."""

    def collect(self):
        from harness import spec
        from harness.spec import hl7v2

        try:
            family = spec.family_of(self.path)
        except spec.SpecError as exc:
            raise pytest.UsageError(f"{self.path}: {exc}") from None
        paths = hl7v2.certifiable(self.path) if family == "hl7v2" else [self.path]
        for path in paths:
            yield SpecSuite.from_parent(self, path=path, name=path.name)


class SpecSuite(pytest.Collector):
    """One interface: its operations and flows as nodes, their checks as items."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run_result = None
        self.error: str | None = None
        self.interface = None
        self.suite = None

    def collect(self):
        from harness import spec
        from harness.certify.certification import suite_for

        try:
            self.interface = spec.load(self.path)
        except spec.SpecError as exc:
            raise pytest.UsageError(f"{self.path}: {exc}") from None
        self.suite = suite_for(self.interface)
        for row in self.suite.rows():
            yield OperationNode.from_parent(self, name=row.id, row=row)

    def certify(self, items: list[CheckItem]) -> Any:
        """Run the certification of the selected items once; later items read the same run."""
        if self.run_result is not None or self.error is not None:
            return self.run_result
        config = self.config
        target, store = config.getoption("--target"), config.getoption("--store")
        if not target and not store:
            self.error = "needs --target URL|HOST:PORT (active) or --store FILE (passive)"
            return None
        from harness.certify import certification, passive, waivers
        from harness.certify.targets import TargetError, parse_target, reachable, through

        options = certification.Options(
            operations={i.row.id for i in items},
            checks={i.check for i in items},
            seed=config.getoption("--seed"),
            examples=config.getoption("--examples"),
            invalid_examples=config.getoption("--invalid-examples"),
            timeout=config.getoption("--certify-timeout"),
        )
        try:
            if config.getoption("--waivers"):
                options.waivers = waivers.load(config.getoption("--waivers"))
            if store:
                self.run_result = passive.certify(
                    self.interface, Path(store), options, channel=config.getoption("--channel")
                )
            else:
                via = config.getoption("--through")
                address = parse_target(target, self.interface.family)
                send_to = (
                    through(via, address, self.interface.family, config.getoption("--channel"))[0]
                    if via
                    else address
                )
                problem = reachable(send_to)
                if problem:
                    self.error = problem
                    return None
                self.run_result = certification.active(
                    self.interface, target, options, through_config=via, channel=config.getoption("--channel")
                )
        except (TargetError, waivers.WaiverError, ValueError) as exc:
            self.error = str(exc)
            return None
        folder = config.getoption("--certify-report")
        if folder:
            certification.write_reports(self.run_result, out=Path(folder))
        return self.run_result


class OperationNode(pytest.Collector):
    def __init__(self, *args: Any, row: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.row = row

    def collect(self):
        suite: SpecSuite = self.parent
        for check, reason in suite.suite.checks(self.row.id).items():
            yield CheckItem.from_parent(self, name=check, row=self.row, check=check, reason=reason)


class CheckFailed(AssertionError):
    pass


class CheckItem(pytest.Item):
    def __init__(self, *args: Any, row: Any, check: str, reason: str | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.row = row
        self.check = check
        self.reason = reason

    @property
    def suite(self) -> SpecSuite:
        return self.parent.parent

    def runtest(self) -> None:
        if self.reason:
            pytest.skip(f"does not run here: {self.reason}")
        selected = [i for i in self.session.items if isinstance(i, CheckItem) and i.suite is self.suite]
        run = self.suite.certify(selected)
        if run is None:
            pytest.skip(self.suite.error or "not certified")
        cell = run.cells.get((self.row.id, self.check))
        if cell is None:
            pytest.skip("not exercised (passive: the capture holds no such exchange)")
        if cell.status == "failed":
            raise CheckFailed(_explain(cell))
        if cell.status in ("not run", "waived"):
            pytest.skip(f"{cell.status}: {cell.reason}")

    def repr_failure(self, excinfo, style=None):  # noqa: ANN001 - pytest's signature
        if isinstance(excinfo.value, CheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.suite.path, None, f"{self.row.id} {self.check}"


def _explain(cell: Any) -> str:
    from harness.certify.cases import ALL_CHECKS

    what = ALL_CHECKS.get(cell.check, "")
    lines = [f"{cell.operation} {cell.check}: {what}: {cell.failures} of {cell.cases} failed"]
    for e in cell.evidence:
        lines += [
            f"- {e.title}",
            f"  spec: {e.constraint}" if e.constraint else "",
            f"  finding: {e.finding}",
            f"  reproduce: {e.reproduce}",
            "  request: " + e.request[:600].replace("\n", "\n    "),
            "  reply: " + e.reply[:600].replace("\n", "\n    "),
        ]
    return "\n".join(line for line in lines if line)
