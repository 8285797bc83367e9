from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.domain.wareki import era_year, format_date_for_resident, format_seireki, format_wareki, parse_wareki


@pytest.mark.parametrize(
    ("day", "text"),
    [
        (date(1989, 1, 7), "昭和64年1月7日"),
        (date(1989, 1, 8), "平成元年1月8日"),
        (date(2019, 4, 30), "平成31年4月30日"),
        (date(2019, 5, 1), "令和元年5月1日"),
        (date(2026, 11, 21), "令和8年11月21日"),
        (date(1926, 12, 24), "大正15年12月24日"),
        (date(1926, 12, 25), "昭和元年12月25日"),
        (date(1912, 7, 29), "明治45年7月29日"),
        (date(1912, 7, 30), "大正元年7月30日"),
        (date(1868, 10, 23), "明治元年10月23日"),
        (date(1980, 2, 17), "昭和55年2月17日"),
    ],
)
def test_format_wareki(day: date, text: str) -> None:
    assert format_wareki(day) == text
    assert parse_wareki(text) == day


def test_era_year() -> None:
    assert era_year(date(1989, 1, 7)) == ("昭和", 64)
    assert era_year(date(1989, 1, 8)) == ("平成", 1)
    assert era_year(date(2019, 4, 30)) == ("平成", 31)
    assert era_year(date(2019, 5, 1)) == ("令和", 1)
    with pytest.raises(ValueError):
        era_year(date(1868, 10, 22))


def test_before_meiji_falls_back_to_seireki() -> None:
    assert format_wareki(date(1850, 1, 2)) == "1850年1月2日"


def test_parse_full_width_and_spaces() -> None:
    assert parse_wareki("令和８年１１月２１日") == date(2026, 11, 21)
    assert parse_wareki("　昭和５５年　２月１７日 ") == date(1980, 2, 17)
    assert parse_wareki("平成元年１月８日") == date(1989, 1, 8)
    assert parse_wareki("令和元年5月1日") == date(2019, 5, 1)


def test_parse_abbreviations_and_seireki() -> None:
    assert parse_wareki("S55.2.17") == date(1980, 2, 17)
    assert parse_wareki("昭55.2.17") == date(1980, 2, 17)
    assert parse_wareki("Ｈ１．１．８") == date(1989, 1, 8)
    assert parse_wareki("r8/11/21") == date(2026, 11, 21)
    assert parse_wareki("1985年3月4日") == date(1985, 3, 4)
    assert parse_wareki("1985-03-04") == date(1985, 3, 4)


def test_era_change_days_belong_to_both_eras() -> None:
    # Standard spec 1.1.8: these must be accepted (the era changed during the day).
    assert parse_wareki("明治45年7月30日") == date(1912, 7, 30)
    assert parse_wareki("大正15年12月25日") == date(1926, 12, 25)


@pytest.mark.parametrize(
    "text",
    [
        "昭和64年1月8日",  # that day is 平成元年
        "平成31年5月1日",  # that day is 令和元年
        "平成元年1月7日",  # before 平成 began
        "昭和6年2月29日",  # 1931 is a common year
        "大正15年頃",
        "昭和3年5月上旬",
        "年月日不詳",
        "令和0年1月1日",
        "",
        "慶応4年1月1日",
    ],
)
def test_parse_rejects_partial_or_impossible(text: str) -> None:
    assert parse_wareki(text) is None


def test_round_trip_every_day_around_era_changes() -> None:
    for start in (date(1912, 7, 1), date(1926, 12, 1), date(1989, 1, 1), date(2019, 4, 15)):
        for offset in range(60):
            day = start + timedelta(days=offset)
            assert parse_wareki(format_wareki(day)) == day


def test_format_date_for_resident() -> None:
    assert format_date_for_resident(date(1985, 3, 4), foreign=True) == "1985年3月4日"
    assert format_date_for_resident(date(1985, 3, 4), foreign=False) == "昭和60年3月4日"
    assert format_seireki(date(2000, 12, 1)) == "2000年12月1日"
