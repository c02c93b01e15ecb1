"""Example templates: placeholders keep types or fill text, unknown ones are named, dates move by months."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from harness.spec.examples import MissingValue, Values, dig, fill, placeholders, shift_dates


def test_a_placeholder_alone_keeps_the_value_type_and_inside_text_fills_the_text():
    values = Values({"amount": 21.5, "uniq": "K3F2"}, now=datetime(2026, 1, 5, 9, 30))
    filled = fill({"a": "{{amount}}", "b": ["MZ{{uniq}}0001"], "c": "{{now:%Y%m%d}}", "d": 7}, values)
    assert filled == {"a": 21.5, "b": ["MZK3F20001"], "c": "20260105", "d": 7}


def test_an_unknown_placeholder_is_an_error_naming_it_and_the_known_ones():
    with pytest.raises(MissingValue, match=r"\{\{psn_no\}\} has no value \(known: sign_no\)"):
        fill({"x": "{{psn_no}}"}, Values({"sign_no": ""}))


def test_placeholders_lists_every_name_a_template_uses():
    assert placeholders({"a": ["{{x}}", {"b": "P{{y}}-{{x}}"}], "c": 1}) == {"x", "y"}


def test_dig_follows_keys_and_list_items_and_names_what_is_missing():
    answer = {"insuinfo": [{"insuplc_admdvs": "530100"}], "baseinfo": {"psn_no": "1"}}
    assert dig(answer, "insuinfo[0].insuplc_admdvs") == "530100"
    assert dig(answer, "baseinfo.psn_no") == "1"
    with pytest.raises(KeyError, match="no item 3"):
        dig(answer, "insuinfo[3].x")


def test_dates_move_by_whole_months_so_a_calendar_month_stays_one():
    template = {
        "begntime": "2026-01-05 09:30:00",
        "stmt_begndate": "2026-01-01",
        "stmt_enddate": "2026-01-31",
        "setlym": "202601",
        "brdy": "1985-03-07",  # more than a year away: a birth date, not moved
        "admdvs": "530102",  # six digits that are no month
    }
    moved = shift_dates(template, date(2026, 1, 5), date(2026, 11, 20))
    assert moved == {
        "begntime": "2026-11-05 09:30:00",
        "stmt_begndate": "2026-11-01",
        "stmt_enddate": "2026-11-30",  # clamped to November's last day
        "setlym": "202611",
        "brdy": "1985-03-07",
        "admdvs": "530102",
    }
    assert shift_dates(template, date(2026, 1, 5), date(2026, 1, 28)) is template
