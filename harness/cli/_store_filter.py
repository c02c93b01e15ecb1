"""Store options shared by `capture`, `validate` and the reports: --since/--until, --outcome, --runs
(live traffic unless replay runs are asked for), and turning store read errors into exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.cli._common import fail_usage
from harness.terminal_text import visible


def check_times(since: str | None, until: str | None) -> None:
    """Fail with a usage error naming the option when --since or --until is not a time."""
    from harness.store import parse_time

    for name, value in (("--since", since), ("--until", until)):
        if value is not None:
            try:
                parse_time(value)
            except ValueError as exc:
                raise fail_usage(f"{name}: {exc}") from None


def split_outcomes(outcomes: list[str] | None) -> list[str]:
    """--outcome values, repeated or comma-separated, as one list."""
    return [o.strip() for item in outcomes or [] for o in item.split(",") if o.strip()]


RUNS_HELP = (
    "Which traffic: live traffic only by default (no replay run's exchanges); 'all' adds every replay "
    "run, 'N' or 'N,M' adds those replay runs."
)


def parse_runs(value: str | None) -> str | list[int] | None:
    """--runs: None (live traffic only), 'all', or the replay run ids to add to live traffic."""
    if value is None or value.strip().lower() == "live":
        return None
    if value.strip().lower() == "all":
        return "all"
    ids: list[int] = []
    for item in value.split(","):
        item = item.strip()
        if not item.isdigit() or len(item) > 18:
            raise fail_usage(f"--runs {value!r}: expected all, or run ids such as 3 or 3,5")
        ids.append(int(item))
    return ids


def traffic_filter(runs: str | list[int] | None, run: int | None = None) -> dict:
    """ExchangeFilter fields for --runs (and --run N, which names its run and so includes it)."""
    if run is not None or runs == "all":
        return {"replays": None}
    return {"replays": False, "plus_runs": runs or None}


def scope_text(runs: str | list[int] | None, run: int | None = None) -> str:
    """What the output covers, said in the output."""
    if run is not None:
        return f"run {run} only"
    if runs == "all":
        return "all traffic, replay runs included"
    if runs:
        return f"live traffic + replay run{'s' if len(runs) > 1 else ''} {', '.join(map(str, runs))}"
    return "live traffic only; --runs all adds replay runs"


@contextmanager
def store_errors(path: Path) -> Iterator[None]:
    """Any way a store file can fail to be read becomes exit 2 with what and where, never a traceback:
    a schema version that lies, a zeroed or corrupt page, a file that is not SQLite, a locked store."""
    import sqlite3

    from harness.store import StoreError

    try:
        yield
    except (StoreError, ValueError) as exc:
        raise fail_usage(visible(exc)) from None
    except sqlite3.Error as exc:
        raise fail_usage(f"capture store {path} cannot be read: {exc} (a damaged or foreign file?)") from None
    except OverflowError as exc:
        raise fail_usage(f"capture store {path}: {exc}") from None
