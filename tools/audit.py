"""`make audit`: bandit over the package and pip-audit over the installed dependencies, judged against
audit-exceptions.toml (one reason per accepted finding).

    python tools/audit.py            # both; exit 1 on an unjustified finding or a stale exception
    python tools/audit.py --bandit   # bandit only (offline; what the test suite runs)

pip-audit asks PyPI's JSON API about every installed distribution. Where PyPI cannot be reached the
audit fails with exit 2 and says so: an audit that could not look is not a clean audit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCEPTIONS = ROOT / "audit-exceptions.toml"
PYPI_PROBE = "https://pypi.org/pypi/pip/json"


def load_exceptions(path: Path = EXCEPTIONS) -> dict[str, list[dict]]:
    """The accepted findings; every entry must say why (a missing reason is itself an error)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = set(data) - {"bandit", "pip_audit"}
    if unknown:
        raise ValueError(f"{path.name}: unknown table(s) {', '.join(sorted(unknown))}")
    for table, needed in (("bandit", ("test",)), ("pip_audit", ("id", "package"))):
        for i, entry in enumerate(data.get(table, [])):
            for key in (*needed, "reason"):
                if not str(entry.get(key, "")).strip():
                    raise ValueError(f"{path.name}: [[{table}]] entry {i + 1} has no {key}")
    return {"bandit": data.get("bandit", []), "pip_audit": data.get("pip_audit", [])}


def run_bandit(target: str = "harness") -> list[dict]:
    """Every bandit finding over `target` (all tests, all severities), paths relative to the project."""
    done = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", target, "-f", "json", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"bandit did not run (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout)
    if report.get("errors"):
        raise RuntimeError(f"bandit could not read: {report['errors']}")
    return report["results"]


def judge_bandit(findings: list[dict], accepted: list[dict]) -> tuple[list[dict], list[dict]]:
    """(findings no entry covers, entries covering no finding)."""
    used: Counter[int] = Counter()
    unjustified = []
    for finding in findings:
        path = Path(finding["filename"]).as_posix()
        for i, entry in enumerate(accepted):
            if entry["test"] == finding["test_id"] and entry.get("path", path) == path:
                used[i] += 1
                break
        else:
            unjustified.append(finding)
    stale = [entry for i, entry in enumerate(accepted) if not used[i]]
    return unjustified, stale


def bandit_problems(exceptions: dict[str, list[dict]]) -> list[str]:
    findings = run_bandit()
    unjustified, stale = judge_bandit(findings, exceptions["bandit"])
    problems = [
        f"bandit {f['test_id']} ({f['issue_severity'].lower()}) {f['filename']}:{f['line_number']}: "
        f"{f['issue_text']}"
        for f in unjustified
    ]
    problems += [
        f"audit-exceptions.toml: bandit {e['test']}{' in ' + e['path'] if 'path' in e else ''} matches "
        "nothing any more; remove the entry"
        for e in stale
    ]
    print(f"bandit: {len(findings)} finding(s), {len(findings) - len(unjustified)} justified in "
          f"{EXCEPTIONS.name}, {len(unjustified)} not")  # fmt: skip
    return problems


def pypi_reachable(timeout: float = 10.0) -> str | None:
    """None when PyPI's JSON API answers, else why not."""
    try:
        with urllib.request.urlopen(PYPI_PROBE, timeout=timeout) as answer:  # noqa: S310 - a constant https URL
            answer.read(1)
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", None) or exc)
    return None


def pip_audit_problems(exceptions: dict[str, list[dict]]) -> list[str]:
    ignored = [entry["id"] for entry in exceptions["pip_audit"]]
    args = [sys.executable, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off", "-f", "json"]
    for vuln in ignored:
        args += ["--ignore-vuln", vuln]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = done.stderr.strip()[-2000:]
        raise RuntimeError(f"pip-audit did not run (exit {done.returncode}): {tail}") from None
    problems = []
    for dep in report.get("dependencies", []):
        for vuln in dep.get("vulns", []):
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            problems.append(f"pip-audit {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixed})")
    count = len(report.get("dependencies", []))
    print(f"pip-audit: {count} installed distribution(s) checked, {len(problems)} known vulnerabilit(ies)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandit", action="store_true", help="bandit only (no network)")
    args = parser.parse_args(argv)
    try:
        exceptions = load_exceptions()
        problems = bandit_problems(exceptions)
        if not args.bandit:
            why = pypi_reachable()
            if why is not None:
                print(
                    f"audit: cannot reach PyPI's JSON API ({PYPI_PROBE}: {why}); pip-audit needs it to look "
                    "up vulnerabilities, so the dependency audit did NOT run. Run `make audit` where "
                    "https://pypi.org is reachable.",
                    file=sys.stderr,
                )
                return 2
            problems += pip_audit_problems(exceptions)
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    if problems:
        print(f"audit: {len(problems)} problem(s); fix them or justify each in {EXCEPTIONS.name}")
        return 1
    print("audit: clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
