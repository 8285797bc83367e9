"""Ages per 年齢計算ニ関スル法律, school years and the 児童手当 end date."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from app.domain.age import (
    SchoolGrade,
    SchoolStage,
    age_on,
    end_of_fiscal_year_after_18th_birthday,
    fiscal_year_of,
    fiscal_year_start,
    is_at_least,
    reached_age_on,
    school_entry_date,
    school_grade,
    school_year_start_age,
)


# -- age_on ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("birth", "day", "age"),
    [
        (date(2000, 4, 1), date(2000, 4, 1), 0),  # the day of birth
        (date(2000, 4, 1), date(2001, 3, 30), 0),
        (date(2000, 4, 1), date(2001, 3, 31), 1),  # the day before the birthday: already 1
        (date(2000, 4, 1), date(2020, 3, 30), 19),
        (date(2000, 4, 1), date(2020, 3, 31), 20),  # born 4/1 reaches 20 on 3/31
        (date(2000, 4, 1), date(2020, 4, 1), 20),
        (date(2000, 4, 2), date(2020, 3, 31), 19),
        (date(2000, 4, 2), date(2020, 4, 1), 20),  # born 4/2 reaches 20 on 4/1
        (date(1990, 1, 1), date(2024, 12, 30), 34),
        (date(1990, 1, 1), date(2024, 12, 31), 35),  # year boundary: reached on 12/31
        (date(1990, 1, 1), date(2025, 1, 1), 35),
        (date(1960, 1, 2), date(2025, 1, 1), 65),  # 介護保険 第1号: 65 on the day before
    ],
)
def test_age_is_gained_at_the_end_of_the_day_before_the_birthday(birth: date, day: date, age: int) -> None:
    assert age_on(birth, day) == age


@pytest.mark.parametrize(
    ("day", "age"),
    [
        (date(2001, 2, 27), 0),
        (date(2001, 2, 28), 1),  # common year: reached on 2/28
        (date(2001, 3, 1), 1),
        (date(2003, 2, 27), 2),
        (date(2003, 2, 28), 3),
        (date(2004, 2, 27), 3),
        (date(2004, 2, 28), 4),  # leap year: also reached on 2/28 (the day before 2/29)
        (date(2004, 2, 29), 4),
        (date(2100, 2, 28), 100),  # 2100 is not a leap year
    ],
)
def test_leap_day_births_gain_a_year_at_the_end_of_28_february(day: date, age: int) -> None:
    assert age_on(date(2000, 2, 29), day) == age


def test_age_before_birth_is_an_error() -> None:
    with pytest.raises(ValueError):
        age_on(date(2000, 1, 2), date(2000, 1, 1))


@pytest.mark.parametrize(
    ("birth", "age", "reached"),
    [
        (date(2000, 4, 1), 20, date(2020, 3, 31)),
        (date(2000, 4, 2), 20, date(2020, 4, 1)),
        (date(2000, 1, 1), 1, date(2000, 12, 31)),
        (date(2000, 2, 29), 1, date(2001, 2, 28)),
        (date(2000, 2, 29), 4, date(2004, 2, 28)),
        (date(2000, 3, 1), 1, date(2001, 2, 28)),
        (date(2003, 3, 1), 1, date(2004, 2, 29)),  # the day before 3/1 in a leap year
        (date(2000, 5, 5), 0, date(2000, 5, 5)),
    ],
)
def test_reached_age_on(birth: date, age: int, reached: date) -> None:
    assert reached_age_on(birth, age) == reached
    assert age_on(birth, reached) == age
    if age:
        assert age_on(birth, reached - timedelta(days=1)) == age - 1


def test_reached_age_rejects_negative_ages() -> None:
    with pytest.raises(ValueError):
        reached_age_on(date(2000, 1, 1), -1)


def test_is_at_least() -> None:
    birth = date(2010, 4, 2)
    assert not is_at_least(birth, 15, date(2025, 3, 31))
    assert is_at_least(birth, 15, date(2025, 4, 1))
    assert is_at_least(birth, 0, birth)
    assert not is_at_least(birth, 0, birth - timedelta(days=1))


# -- 年度 and school years ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("day", "year"),
    [
        (date(2025, 3, 31), 2024),
        (date(2025, 4, 1), 2025),
        (date(2025, 12, 31), 2025),
        (date(2026, 1, 1), 2025),
    ],
)
def test_fiscal_year(day: date, year: int) -> None:
    assert fiscal_year_of(day) == year
    assert fiscal_year_start(year) <= day


@pytest.mark.parametrize(
    ("birth", "entry"),
    [
        (date(2018, 4, 1), date(2024, 4, 1)),  # 4/1 births join the earlier school year
        (date(2018, 4, 2), date(2025, 4, 1)),
        (date(2018, 3, 31), date(2024, 4, 1)),
        (date(2019, 1, 15), date(2025, 4, 1)),
        (date(2016, 2, 29), date(2022, 4, 1)),
    ],
)
def test_school_entry_date(birth: date, entry: date) -> None:
    assert school_entry_date(birth) == entry
    assert school_grade(birth, entry) == SchoolGrade(SchoolStage.ELEMENTARY, 1)
    assert school_grade(birth, entry - timedelta(days=1)) is None


def test_april_first_and_second_births_are_a_school_year_apart() -> None:
    day = date(2025, 6, 1)
    assert school_year_start_age(date(2018, 4, 1), day) == 7
    assert school_year_start_age(date(2018, 4, 2), day) == 6
    assert school_grade(date(2018, 4, 1), day) == SchoolGrade(SchoolStage.ELEMENTARY, 2)
    assert school_grade(date(2018, 4, 2), day) == SchoolGrade(SchoolStage.ELEMENTARY, 1)
    # The whole school year shares one count, from April to March.
    assert school_year_start_age(date(2018, 4, 2), date(2026, 3, 31)) == 6
    assert school_year_start_age(date(2018, 4, 2), date(2026, 4, 1)) == 7


@pytest.mark.parametrize(
    ("birth", "grade"),
    [
        (date(2019, 4, 2), None),  # still in kindergarten in 2025年度
        (date(2019, 4, 1), SchoolGrade(SchoolStage.ELEMENTARY, 1)),
        (date(2014, 4, 2), SchoolGrade(SchoolStage.ELEMENTARY, 5)),
        (date(2013, 4, 2), SchoolGrade(SchoolStage.ELEMENTARY, 6)),
        (date(2013, 4, 1), SchoolGrade(SchoolStage.JUNIOR_HIGH, 1)),
        (date(2010, 4, 2), SchoolGrade(SchoolStage.JUNIOR_HIGH, 3)),
        (date(2010, 4, 1), None),  # finished junior high
    ],
)
def test_school_grade_in_fiscal_2025(birth: date, grade: SchoolGrade | None) -> None:
    assert school_grade(birth, date(2025, 10, 1)) == grade


def test_school_grade_labels_and_unborn() -> None:
    assert SchoolGrade(SchoolStage.ELEMENTARY, 3).label_ja == "小学3年生"
    assert SchoolGrade(SchoolStage.JUNIOR_HIGH, 2).label_ja == "中学2年生"
    # Born after the school year began: no age at its start.
    assert school_year_start_age(date(2025, 5, 1), date(2025, 6, 1)) is None
    assert school_grade(date(2025, 5, 1), date(2025, 6, 1)) is None


# -- 児童手当 --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("birth", "end"),
    [
        (date(2006, 4, 1), date(2024, 3, 31)),  # reaches 18 on 3/31 itself
        (date(2006, 4, 2), date(2025, 3, 31)),  # reaches 18 on 4/1 → the next 3/31
        (date(2006, 3, 31), date(2024, 3, 31)),
        (date(2007, 1, 1), date(2025, 3, 31)),
        (date(2008, 2, 29), date(2026, 3, 31)),
        (date(2006, 12, 31), date(2025, 3, 31)),
    ],
)
def test_child_allowance_ends_on_the_31_march_after_the_18th_birthday(birth: date, end: date) -> None:
    assert end_of_fiscal_year_after_18th_birthday(birth) == end
    assert end >= reached_age_on(birth, 18)
    assert end - reached_age_on(birth, 18) < timedelta(days=366)
