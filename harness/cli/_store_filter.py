"""Checks of the store-selection options (--since/--until, --outcome) shared by `capture` and `validate`."""

from __future__ import annotations

from harness.cli._common import fail_usage


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
