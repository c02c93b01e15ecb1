"""Fitting table columns to a terminal: shrink what can give, never drop, cut with an ellipsis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from harness.table_fit import Column, cut, fit

COLUMNS = [Column("id", 7, 7), Column("time", 23, 14), Column("type", 13, 7), Column("fault", 20, 5)]


def test_wide_enough_keeps_the_preferred_widths() -> None:
    assert fit(COLUMNS, 200) == [7, 23, 13, 20]
    assert fit(COLUMNS, 63 + 6) == [7, 23, 13, 20]  # exactly: widths plus two cells between columns


def test_narrow_shrinks_in_proportion_to_what_each_can_give_and_never_below_the_minimum() -> None:
    widths = fit(COLUMNS, 50)
    assert sum(widths) + 6 == 50
    assert widths[0] == 7  # a column whose minimum is its width is never cut
    assert all(w >= c.minimum for w, c in zip(widths, COLUMNS, strict=True))
    assert widths[3] < 20 and widths[1] < 23 and widths[2] < 13


def test_narrower_than_every_minimum_gives_the_minimums() -> None:
    assert fit(COLUMNS, 20) == [7, 14, 7, 5]


@given(st.integers(min_value=0, max_value=300))
def test_fit_is_as_wide_as_allowed_and_no_wider(total: int) -> None:
    widths = fit(COLUMNS, total)
    gaps = 2 * (len(COLUMNS) - 1)
    used = sum(widths) + gaps
    floor = sum(c.minimum for c in COLUMNS) + gaps
    ceiling = sum(c.width for c in COLUMNS) + gaps
    assert used == max(floor, min(total, ceiling))
    assert all(c.minimum <= w <= c.width for w, c in zip(widths, COLUMNS, strict=True))


def test_cut_marks_what_it_cuts_and_counts_wide_characters_as_two_cells() -> None:
    assert cut("ADT^A01", 13) == ("ADT^A01", False)
    assert cut("upstream_down", 7) == ("upstre…", True)
    text, was_cut = cut("门诊挂号结算", 7)
    assert was_cut and text == "门诊挂…" and cell_len(text) == 7
    text, was_cut = cut("门诊挂号结算", 6)  # a wide character that would be split is left out
    assert was_cut and text == "门诊…" and cell_len(text) <= 6
    assert cut("abc", 1) == ("…", True)
