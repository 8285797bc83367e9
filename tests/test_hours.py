"""Opening hours: the weekly table, dated exceptions, is_open / next_opening, and the messages."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from app.domain.hours import (
    JST,
    DateRule,
    HoursError,
    OpeningHours,
    Span,
    YearlyDay,
    format_exception_lines,
    is_open,
    next_opening,
    parse_exception_lines,
    parse_exceptions_json,
    parse_time,
    parse_weekly,
    parse_weekly_json,
    weekly_groups,
    weekly_json,
)

# The demo town's main office: weekdays 8:30–17:15, Thursdays until 19:30, closed 12/29–1/3.
DEMO = OpeningHours.from_json(
    {
        "mon": ["08:30", "17:15"],
        "tue": ["08:30", "17:15"],
        "wed": ["08:30", "17:15"],
        "thu": ["08:30", "19:30"],
        "fri": ["08:30", "17:15"],
    },
    [{"from": "12-29", "to": "01-03", "hours": None, "note": "年末年始"}],
)


def jst(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=JST)


# 2026-05-07 is a Thursday.
@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (jst(2026, 5, 7, 8, 29, 59), False),
        (jst(2026, 5, 7, 8, 30), True),
        (jst(2026, 5, 7, 19, 29, 59), True),  # Thursday evening opening
        (jst(2026, 5, 7, 19, 30), False),  # the closing minute is closed
        (jst(2026, 5, 8, 17, 14), True),
        (jst(2026, 5, 8, 18, 0), False),  # an ordinary Friday evening
        (jst(2026, 5, 9, 10, 0), False),  # Saturday
        (jst(2026, 12, 29, 10, 0), False),  # 年末年始, although a Tuesday
        (jst(2027, 1, 4, 10, 0), True),
    ],
)
def test_is_open(moment: datetime, expected: bool) -> None:
    assert is_open(DEMO, moment) is expected


def test_moments_in_other_zones_and_naive_moments_are_japan_time() -> None:
    assert is_open(DEMO, datetime(2026, 5, 7, 10, 0, tzinfo=UTC))  # 19:00 JST
    assert not is_open(DEMO, datetime(2026, 5, 7, 11, 0, tzinfo=UTC))  # 20:00 JST
    assert is_open(DEMO, datetime(2026, 5, 7, 19, 0))


def test_next_opening() -> None:
    assert next_opening(DEMO, jst(2026, 5, 7, 20, 0)) == jst(2026, 5, 8, 8, 30)
    assert next_opening(DEMO, jst(2026, 5, 9, 12, 0)) == jst(2026, 5, 11, 8, 30)  # Sat → Mon
    assert next_opening(DEMO, jst(2026, 5, 11, 7, 0)) == jst(2026, 5, 11, 8, 30)
    assert next_opening(DEMO, jst(2026, 5, 11, 8, 30)) == jst(2026, 5, 11, 8, 30)
    assert next_opening(DEMO, jst(2026, 5, 11, 9, 0)) == jst(2026, 5, 12, 8, 30)  # open: the next start
    assert next_opening(DEMO, jst(2026, 12, 28, 18, 0)) == jst(2027, 1, 4, 8, 30)  # over 年末年始
    assert next_opening(OpeningHours(), jst(2026, 5, 7, 10, 0)) is None


def test_dated_exceptions_beat_yearly_ones_and_yearly_ones_beat_the_week() -> None:
    hours = OpeningHours(
        DEMO.weekly,
        (
            *DEMO.exceptions,
            *parse_exception_lines(
                "2026/12/28 9:00-12:00 仕事納め\n2026/12/29 9:00-12:00 臨時窓口\n2026/5/9 9:00-12:00"
            ),
        ),
    )
    assert hours.hours_on(date(2026, 12, 28)) == Span(time(9), time(12))
    assert hours.hours_on(date(2026, 12, 29)) == Span(time(9), time(12))  # dated, inside 12/29–1/3
    assert hours.hours_on(date(2026, 12, 30)) is None
    assert hours.hours_on(date(2026, 5, 9)) == Span(time(9), time(12))  # 休日開庁 on a Saturday
    assert is_open(hours, jst(2026, 5, 9, 11, 59)) and not is_open(hours, jst(2026, 5, 9, 12, 0))


def test_yearly_ranges_run_over_the_year_end_and_february_29_only_in_leap_years() -> None:
    year_end = DateRule(YearlyDay(12, 29), YearlyDay(1, 3))
    assert [year_end.matches(date(2026, 12, d)) for d in (28, 29, 31)] == [False, True, True]
    assert [year_end.matches(date(2027, 1, d)) for d in (1, 3, 4)] == [True, True, False]
    leap = DateRule(YearlyDay(2, 29), YearlyDay(2, 29))
    assert leap.matches(date(2028, 2, 29)) and not leap.matches(date(2027, 3, 1))


def test_exception_lines_are_read_and_written_back() -> None:
    text = "１２／２９〜１／３ 年末年始\n\n# 祝日\n2026年5月6日 振替休日\n2026/5/9 9:00 - 12:00 休日開庁\n2026/12/28-1/4\n8/14 休み"
    rules = parse_exception_lines(text)
    assert [rule.to_json() for rule in rules] == [
        {"from": "12-29", "to": "01-03", "hours": None, "note": "年末年始"},
        {"from": "2026-05-06", "hours": None, "note": "振替休日"},
        {"from": "2026-05-09", "hours": ["09:00", "12:00"], "note": "休日開庁"},
        {"from": "2026-12-28", "to": "2027-01-04", "hours": None},  # the end takes the next year
        {"from": "08-14", "hours": None},
    ]
    written = format_exception_lines(rules)
    assert written.splitlines()[0] == "12/29-1/3 年末年始"
    assert parse_exception_lines(written) == rules
    assert parse_exceptions_json([rule.to_json() for rule in rules]) == rules


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("13/1", "「13/1」という日付はありません。"),
        ("2/30", "「2/30」という日付はありません。"),
        ("12/29-", "のような期間にしてください"),
        ("あした", "「あした」は日付ではありません。"),
        ("2026/5/9 9:00-8:00", "閉庁時刻（08:00）は開庁時刻（09:00）より後にしてください。"),
        ("2026/5/9 9時-12時", "「9:00-12:00」のように入力してください"),
        ("2026/5/9 25:00-26:00", "「25:00」は 00:00～23:59 の範囲にありません。"),
        ("1/1-2026/1/3", "期間の始めにも年を付けてください"),
        ("2026/1/1-2027/3/1", "期間は1年以内にしてください。"),
        ("2026/1/5 " + "あ" * 41, "メモは40文字以内にしてください（41文字）。"),
    ],
)
def test_wrong_exception_lines_say_which_line_and_why(line: str, message: str) -> None:
    with pytest.raises(HoursError) as raised:
        parse_exception_lines(f"12/29-1/3\n{line}")
    [problem] = raised.value.errors["hours_exceptions"]
    assert problem.startswith(f"2行目「{line}」：")
    assert message in problem


def test_every_wrong_line_is_reported() -> None:
    with pytest.raises(HoursError) as raised:
        parse_exception_lines("13/1\n12/29-1/3\n2/30")
    assert [m[:3] for m in raised.value.errors["hours_exceptions"]] == ["1行目", "3行目"]


def test_times() -> None:
    assert parse_time("8:30") == time(8, 30)
    assert parse_time("０８：３０") == time(8, 30)
    assert parse_time("23:59") == time(23, 59)
    assert parse_time("00:00") == time(0, 0)
    for text, message in [
        ("", "時刻を入力してください。"),
        ("24:00", "00:00～23:59 の範囲にありません"),
        ("12:60", "00:00～23:59 の範囲にありません"),
        ("8時半", "「8時半」は時刻ではありません。「08:30」のように 時:分 で入力してください。"),
        ("830", "は時刻ではありません"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_time(text)


def test_weekly_table_messages_name_the_day_and_the_field() -> None:
    with pytest.raises(HoursError) as raised:
        parse_weekly(
            {
                "mon": ("8:30", "17:15"),
                "tue": ("", ""),
                "wed": ("10:00", "09:00"),
                "thu": ("8:30", "7時"),
                "fri": ("08:30", "08:30"),
            }
        )
    errors = raised.value.errors
    assert set(errors) == {"hours.tue", "hours.wed", "hours.thu", "hours.fri"}
    assert errors["hours.tue"] == [
        "火曜日：開庁時刻と閉庁時刻を入力してください（閉庁日は「休み」にしてください）。"
    ]
    assert errors["hours.wed"] == ["水曜日：閉庁時刻（09:00）は開庁時刻（10:00）より後にしてください。"]
    assert errors["hours.thu"][0].startswith("木曜日の閉庁時刻：「7時」は時刻ではありません。")
    assert "金曜日" in errors["hours.fri"][0]


def test_weekly_table_is_normalized_and_missing_days_are_closed() -> None:
    weekly = parse_weekly({"mon": ("8:30", "17:15"), "sat": None})
    assert weekly_json(weekly) == {"mon": ["08:30", "17:15"]}
    assert weekly["sun"] is None
    assert parse_weekly_json(None) == dict.fromkeys(weekly)
    with pytest.raises(HoursError):
        parse_weekly_json({"mon": "08:30-17:15"})
    with pytest.raises(HoursError):
        parse_weekly_json({"someday": ["08:30", "17:15"]})


def test_weekly_groups_for_summaries() -> None:
    groups = weekly_groups(DEMO.weekly)
    assert [days for days, _ in groups] == [("mon", "tue", "wed"), ("thu",), ("fri",), ("sat", "sun")]
    assert str(groups[1][1]) == "08:30-19:30" and groups[3][1] is None


def test_configured_only_with_an_open_weekday() -> None:
    assert DEMO.configured
    assert not OpeningHours.from_json({}, [{"from": "12-29", "to": "01-03", "hours": None}]).configured
