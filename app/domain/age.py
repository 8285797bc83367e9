"""Ages as the law counts them (年齢計算ニ関スル法律), school years and 年度. Pure functions.

The law counts age from the day of birth (民法 §143 as applied by the Act), so a year is gained at
the *expiry of the day before the birthday*. Consequences, all relied on by procedures:

- "reaching" an age (…歳に達する日) is the day before the birthday: someone born 2000-04-01
  reaches 20 on 2000+20 = 2020-03-31, and is treated as 20 for the whole of that day;
- someone born on 29 February reaches each age on 28 February, in leap years and others alike;
- a child born on 1 April reaches 6 on 31 March and so starts school a year before a child born
  on 2 April: 4/1 births belong to the earlier school year (学年 = 4/2 … 4/1 births).

年度 (fiscal year) and the school year (学年) both run 1 April – 31 March.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

__all__ = [
    "SchoolGrade",
    "SchoolStage",
    "age_on",
    "end_of_fiscal_year_after_18th_birthday",
    "fiscal_year_of",
    "fiscal_year_start",
    "is_at_least",
    "reached_age_on",
    "school_entry_date",
    "school_grade",
    "school_year_start_age",
]

_ONE_DAY = timedelta(days=1)


def _anniversary(birth: date, year: int) -> date:
    """The birthday in `year`; 1 March for a 29 February birth in a common year."""
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 3, 1)


def age_on(birth: date, day: date) -> int:
    """Legal age (満年齢) on `day`, counting the day before a birthday as the day the age is reached.

    Raises ValueError for a day before the birth.
    """
    if day < birth:
        raise ValueError(f"{day.isoformat()} is before the birth date {birth.isoformat()}")
    # The age is gained at the end of the day before the birthday, so on `day` one is already
    # as old as an ordinary count would make one on the following day.
    following = day + _ONE_DAY
    years = following.year - birth.year
    if (following.month, following.day) < (birth.month, birth.day):
        years -= 1
    return years


def reached_age_on(birth: date, age: int) -> date:
    """The day one reaches `age` (…歳に達する日): the day before the birthday.

    For a 29 February birth that is 28 February in every year.
    """
    if age < 0:
        raise ValueError("age must not be negative")
    if age == 0:
        return birth
    return _anniversary(birth, birth.year + age) - _ONE_DAY


def is_at_least(birth: date, age: int, day: date) -> bool:
    """True when the person has reached `age` on `day` (False before the birth)."""
    return day >= reached_age_on(birth, age)


# -- 年度 ---------------------------------------------------------------------------------------
def fiscal_year_of(day: date) -> int:
    """年度 (Gregorian): the fiscal/school year that starts on 1 April."""
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_start(fiscal_year: int) -> date:
    return date(fiscal_year, 4, 1)


# -- school years -------------------------------------------------------------------------------
def school_year_start_age(birth: date, day: date) -> int | None:
    """The age at the start of the school year that contains `day` (学年始めの年齢).

    That is the age reached by the end of 31 March before it, so a child born on 1 April (who
    reaches each age on 31 March) counts one year older than a child born on 2 April of the same
    year. First graders are 6 by this count, third-year junior-high pupils 14. None when the
    person was not yet born by that 31 March.
    """
    before_start = fiscal_year_start(fiscal_year_of(day)) - _ONE_DAY
    if before_start < birth:
        return None
    return age_on(birth, before_start)


def school_entry_date(birth: date) -> date:
    """The 1 April a child starts elementary school (学校教育法 §17: the first start of a school
    year on or after the day after reaching 6)."""
    after_six = reached_age_on(birth, 6) + _ONE_DAY
    start = fiscal_year_start(after_six.year)
    return start if start >= after_six else fiscal_year_start(after_six.year + 1)


class SchoolStage(StrEnum):
    ELEMENTARY = "elementary"  # 小学校 (6 years)
    JUNIOR_HIGH = "junior_high"  # 中学校 (3 years)


@dataclass(frozen=True, slots=True)
class SchoolGrade:
    stage: SchoolStage
    grade: int  # 1-based within the stage

    @property
    def label_ja(self) -> str:
        return f"{'小学' if self.stage is SchoolStage.ELEMENTARY else '中学'}{self.grade}年生"


def school_grade(birth: date, day: date) -> SchoolGrade | None:
    """The compulsory-education grade a child of this birth date is in on `day` by age (学齢),
    or None before elementary school and after junior high. Actual placement can differ (e.g.
    就学猶予); this is the grade by age."""
    age = school_year_start_age(birth, day)
    if age is None or age < 6 or age > 14:
        return None
    if age <= 11:
        return SchoolGrade(SchoolStage.ELEMENTARY, age - 5)
    return SchoolGrade(SchoolStage.JUNIOR_HIGH, age - 11)


# -- 児童手当 -----------------------------------------------------------------------------------
def end_of_fiscal_year_after_18th_birthday(birth: date) -> date:
    """18歳に達する日以後の最初の3月31日: the last day a child counts for 児童手当.

    Born 2006-04-01 → reaches 18 on 2024-03-31 → 2024-03-31 itself; born 2006-04-02 → reaches 18
    on 2024-04-01 → 2025-03-31.
    """
    reached = reached_age_on(birth, 18)
    end = date(reached.year, 3, 31)
    return end if end >= reached else date(reached.year + 1, 3, 31)
