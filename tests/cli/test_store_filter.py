import pytest
import typer

from harness.cli._common import EXIT_USAGE
from harness.cli._store_filter import check_times, split_outcomes


def test_outcomes_repeated_or_comma_separated():
    assert split_outcomes(["nak, timeout", "ok", " ,"]) == ["nak", "timeout", "ok"]
    assert split_outcomes(None) == []


def test_times_absolute_relative_or_absent_pass():
    check_times("2026-11-24T10:00:00Z", "-2h")
    check_times(None, None)


def test_a_bad_time_is_a_usage_error_naming_the_option(capsys):
    with pytest.raises(typer.Exit) as caught:
        check_times(None, "yesterday-ish")
    assert caught.value.exit_code == EXIT_USAGE
    assert "--until" in capsys.readouterr().err
