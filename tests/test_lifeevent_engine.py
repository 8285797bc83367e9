"""The life-event rules engine over the seed catalogue: age boundaries per 年齢計算ニ関スル法律,
realistic households for each event, deadlines, validation and "why this applies"."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from functools import cache
from typing import Any

import pytest

from app.domain.lifeevents.engine import Result, RuleSet, deadline_date, evaluate
from app.domain.lifeevents.loader import load_rules
from app.domain.lifeevents.model import (
    Deadline,
    DeadlineAnchor,
    DeadlineKind,
    Insurance,
    Member,
    PensionType,
    QuestionKind,
    Severity,
    Text,
)
from app.domain.lifeevents.validate import coerce_answer, validate_answer

TODAY = date(2025, 6, 10)
KOKUHO, EMPLOYER, KOKI = Insurance.KOKUHO, Insurance.EMPLOYER, Insurance.KOKI


@cache
def rules() -> RuleSet:
    return load_rules()


def run(
    event_id: str,
    members: Sequence[Member],
    answers: Mapping[str, Any] | None = None,
    *,
    event_date: date | None = None,
    today: date = TODAY,
    applicant: str | None = None,
    subjects: Sequence[str] | None = None,
) -> Result:
    return evaluate(
        rules().event(event_id),
        dict(answers or {}),
        members,
        applicant if applicant is not None else members[0].id,
        event_date or today,
        today,
        subject_ids=subjects,
    )


def ids_for(result: Result, member_id: str) -> set[str]:
    return {a.procedure.id for a in result.for_member(member_id)}


def household_ids(result: Result) -> set[str]:
    return {a.procedure.id for a in result.household}


def errors(result: Result) -> list[str]:
    return [p.message.ja for p in result.problems if p.severity is Severity.ERROR]


# Every touch question of 転入 answered "no"; questions hidden for a household are dropped.
TENNYU_NO = {
    "moved_from": "other_city",
    "tenshutsu_method": "certificate",
    "has_dog": False,
    "has_moped": False,
    "pregnant": False,
    "single_parent": False,
    "uses_childcare": False,
}


# -- age boundaries (年齢計算ニ関スル法律: an age is reached the day before the birthday) ------------
@pytest.mark.parametrize(
    ("birth", "day", "applies"),
    [
        (date(2005, 4, 1), date(2025, 3, 30), False),  # 19
        (date(2005, 4, 1), date(2025, 3, 31), True),  # reaches 20 on 3/31
        (date(2005, 4, 2), date(2025, 3, 31), False),
        (date(2005, 4, 2), date(2025, 4, 1), True),
        (date(1964, 2, 29), date(2024, 2, 27), True),  # 59
        (date(1964, 2, 29), date(2024, 2, 28), False),  # a 2/29 birth reaches 60 on 2/28
        (date(2004, 2, 29), date(2024, 2, 27), False),  # 19
        (date(2004, 2, 29), date(2024, 2, 28), True),  # reaches 20 on 2/28, leap year or not
    ],
)
def test_kokumin_nenkin_from_20_until_60(birth: date, day: date, applies: bool) -> None:
    person = Member("p", "本人", birth, "世帯主", insurance=KOKUHO, pension=PensionType.UNKNOWN)
    result = run("tennyu", [person], TENNYU_NO, event_date=day, today=day)
    assert ("tennyu_nenkin" in ids_for(result, "p")) is applies


@pytest.mark.parametrize(
    ("birth", "day", "kaigo"),
    [
        (date(1960, 4, 1), date(2025, 3, 30), False),
        (date(1960, 4, 1), date(2025, 3, 31), True),  # 65 on the day before the birthday
        (date(1960, 2, 29), date(2025, 2, 27), False),
        (date(1960, 2, 29), date(2025, 2, 28), True),  # 2/29 birth, common year
    ],
)
def test_kaigo_first_category_at_65(birth: date, day: date, kaigo: bool) -> None:
    person = Member("p", "本人", birth, "世帯主", insurance=KOKUHO)
    result = run("tennyu", [person], TENNYU_NO, event_date=day, today=day)
    assert ("tennyu_kaigo" in ids_for(result, "p")) is kaigo


@pytest.mark.parametrize(
    ("birth", "day", "koki"),
    [
        (date(1950, 4, 1), date(2025, 3, 30), False),
        (date(1950, 4, 1), date(2025, 3, 31), True),
        (date(1948, 2, 29), date(2023, 2, 27), False),
        (date(1948, 2, 29), date(2023, 2, 28), True),  # 75 on 2/28 in a common year
        (date(1952, 2, 29), date(2027, 2, 28), True),
    ],
)
def test_kouki_koureisha_at_75(birth: date, day: date, koki: bool) -> None:
    person = Member("p", "本人", birth, "世帯主", insurance=Insurance.UNKNOWN)
    ids = ids_for(run("tennyu", [person], TENNYU_NO, event_date=day, today=day), "p")
    assert ("tennyu_koki" in ids) is koki
    assert ("tennyu_kokuho" in ids) is not koki  # 国保 until 75, then 後期高齢


def test_kouki_koureisha_65_to_74_with_certified_disability() -> None:
    day = date(2025, 6, 1)
    certified = Member(
        "a", "認定済", date(1955, 1, 1), "世帯主", insurance=KOKI, has_disability_certificate=True
    )
    not_yet = Member("b", "未認定", date(1958, 1, 1), "妻", insurance=KOKUHO, has_disability_certificate=True)
    result = run("tennyu", [certified, not_yet], TENNYU_NO, event_date=day, today=day)
    assert "tennyu_koki" in ids_for(result, "a")
    assert "tennyu_kokuho" not in ids_for(result, "a")
    assert "tennyu_koki_shogai" in ids_for(result, "b")  # may apply for recognition
    assert {"tennyu_kokuho", "tennyu_kokuho_korei"} & ids_for(result, "b") == {"tennyu_kokuho"}


@pytest.mark.parametrize(
    ("birth", "day", "counts"),
    [
        (date(2006, 4, 1), date(2024, 3, 31), True),  # reaches 18 on 3/31: that very 3/31 is the end
        (date(2006, 4, 1), date(2024, 4, 1), False),
        (date(2006, 4, 2), date(2025, 3, 31), True),  # reaches 18 on 4/1 → the next 3/31
        (date(2006, 4, 2), date(2025, 4, 1), False),
    ],
)
def test_jido_teate_ends_on_the_31_march_after_18(birth: date, day: date, counts: bool) -> None:
    parent = Member("p", "親", date(1980, 5, 5), "世帯主", insurance=EMPLOYER, pension=PensionType.DAI2)
    child = Member("c", "子", birth, "子", insurance=EMPLOYER)
    result = run("tennyu", [parent, child], TENNYU_NO, event_date=day, today=day)
    allowance = [a for a in result.household if a.procedure.id == "tennyu_jido_teate"]
    assert bool(allowance) is counts
    if counts:
        assert allowance[0].member_ids == ("c",)


@pytest.mark.parametrize(
    ("birth", "school", "shugaku"),
    [
        (date(2018, 4, 1), True, False),  # a 4/1 birth belongs to the earlier school year: 小1
        (date(2018, 4, 2), False, True),  # one day later: still preschool, enters next April
        (date(2009, 4, 2), True, False),  # 中3
        (date(2009, 4, 1), False, False),  # finished junior high
    ],
)
def test_school_grades_by_birth_date(birth: date, school: bool, shugaku: bool) -> None:
    day = date(2024, 4, 1)
    parent = Member("p", "親", date(1985, 1, 1), "世帯主", insurance=EMPLOYER, pension=PensionType.DAI2)
    child = Member("c", "子", birth, "子", insurance=EMPLOYER)
    ids = ids_for(run("tennyu", [parent, child], TENNYU_NO, event_date=day, today=day), "c")
    assert ("tennyu_school" in ids) is school
    assert ("tennyu_shugaku" in ids) is shugaku


def test_seal_and_signature_certificate_from_15() -> None:
    day = date(2025, 3, 31)
    fifteen = Member("a", "15歳", date(2010, 4, 1), "子", has_my_number_card=True)  # reaches 15 today
    fourteen = Member("b", "14歳", date(2010, 4, 2), "子", has_my_number_card=True)
    parent = Member("p", "親", date(1980, 1, 1), "世帯主")
    answers = {"has_dog": False, "receives_child_allowance": True, "school_district_change": "same"}
    result = run("tenkyo", [parent, fifteen, fourteen], answers, event_date=day, today=day)
    assert result.ok, result.problems
    assert "tenkyo_sign_cert" in ids_for(result, "a")
    assert "tenkyo_sign_cert" not in ids_for(result, "b")
    assert "tenkyo_mynumber_card" in ids_for(result, "b")  # the card itself still changes


# -- realistic households --------------------------------------------------------------------------
def family_of_four() -> list[Member]:
    return [
        Member(
            "f",
            "山田 太郎",
            date(1988, 5, 3),
            "世帯主",
            insurance=EMPLOYER,
            pension=PensionType.DAI2,
            has_my_number_card=True,
        ),
        Member(
            "m",
            "山田 花子",
            date(1990, 8, 20),
            "妻",
            insurance=EMPLOYER,
            pension=PensionType.DAI3,
            has_my_number_card=True,
        ),
        Member("k7", "山田 一郎", date(2017, 9, 1), "子", insurance=EMPLOYER),  # 7: 小学2年生
        Member("k3", "山田 桜", date(2021, 12, 5), "子", insurance=EMPLOYER),  # 3
    ]


def test_tennyu_family_of_four() -> None:
    moved = date(2025, 6, 5)
    answers = TENNYU_NO | {"has_dog": True, "dog_count": 1, "uses_childcare": True, "single_parent": False}
    result = run("tennyu", family_of_four(), answers, event_date=moved)
    assert result.ok, result.problems
    assert {
        "tennyu_todoke",
        "tennyu_jido_teate",
        "tennyu_hoiku",
        "tennyu_inu",
        "tennyu_suido",
        "tennyu_gomi",
    } <= household_ids(result)
    assert [a.procedure.id for a in result.household].count("tennyu_todoke") == 1  # once per household
    for parent in ("f", "m"):
        ids = ids_for(result, parent)
        assert {"tennyu_mynumber_card", "tennyu_sign_cert"} <= ids
        assert not ids & {
            "tennyu_kokuho",
            "tennyu_nenkin",
            "tennyu_kaigo",
            "tennyu_koki",
        }  # employer plan, 第2/3号
    assert {"tennyu_school", "tennyu_kodomo_iryo"} <= ids_for(result, "k7")
    assert "tennyu_boshi" not in ids_for(result, "k7")
    assert {"tennyu_boshi", "tennyu_kodomo_iryo"} <= ids_for(result, "k3")
    assert "tennyu_school" not in ids_for(result, "k3")
    allowance = next(a for a in result.household if a.procedure.id == "tennyu_jido_teate")
    assert allowance.member_ids == ("k7", "k3")
    assert allowance.deadline == moved + timedelta(days=15)  # 翌日から15日以内
    todoke = next(a for a in result.household if a.procedure.id == "tennyu_todoke")
    assert todoke.deadline == date(2025, 6, 19)  # 14 days, 初日不算入
    assert todoke.days_left == 9
    dog = next(a for a in result.household if a.procedure.id == "tennyu_inu")
    assert dog.deadline == moved + timedelta(days=30)
    assert dog.why[0].ja == "犬を飼っている（1頭）と回答されました"
    school = next(a for a in result.for_member("k7") if a.procedure.id == "tennyu_school")
    assert "小学2年生" in school.why[0].ja
    assert {"idou_todoke", "jido_teate_nintei", "card_face_change", "kosodate_iryo"} <= set(result.forms())
    assert len(result.forms()) == len(set(result.forms()))


def test_tennyu_couple_aged_67() -> None:
    couple = [
        Member("h", "佐藤 一", date(1958, 1, 10), "世帯主", insurance=KOKUHO, pension=PensionType.NONE),
        Member("w", "佐藤 和子", date(1957, 11, 2), "妻", insurance=KOKUHO, pension=PensionType.NONE),
    ]
    result = run("tennyu", couple, TENNYU_NO)
    for member_id in ("h", "w"):
        ids = ids_for(result, member_id)
        assert {"tennyu_kokuho", "tennyu_kaigo"} <= ids
        assert not ids & {"tennyu_nenkin", "tennyu_koki", "tennyu_kokuho_korei", "tennyu_jido_teate"}
    kaigo = next(a for a in result.for_member("h") if a.procedure.id == "tennyu_kaigo")
    assert "67歳" in kaigo.why[0].ja
    assert "tennyu_jido_teate" not in household_ids(result)


def test_tennyu_person_aged_76() -> None:
    elder = Member("e", "鈴木 ハナ", date(1949, 3, 3), "世帯主", insurance=KOKI, has_care_certification=True)
    result = run("tennyu", [elder], TENNYU_NO)
    ids = ids_for(result, "e")
    assert {"tennyu_koki", "tennyu_kaigo", "tennyu_kaigo_nintei"} <= ids
    assert "tennyu_kokuho" not in ids
    koki = next(a for a in result.for_member("e") if a.procedure.id == "tennyu_koki")
    assert koki.why[0].ja.startswith("転入の日の年齢が75歳以上（76歳）")


def test_tenshutsu_deadlines_and_window() -> None:
    family = family_of_four()
    answers = {
        "destination": "domestic",
        "receives_child_allowance": True,
        "receives_child_support": False,
        "uses_childcare": True,
        "has_dog": False,
        "has_moped": False,
    }
    planned = TODAY + timedelta(days=10)
    result = run("tenshutsu", family, answers, event_date=planned)
    assert result.ok
    allowance = next(a for a in result.household if a.procedure.id == "tenshutsu_jido_teate")
    assert allowance.deadline == planned + timedelta(days=15)  # 転出予定日の翌日から15日以内
    card = next(a for a in result.for_member("f") if a.procedure.id == "tenshutsu_mynumber_card")
    assert card.deadline == planned + timedelta(days=30)
    assert {"tenshutsu_todoke", "tenshutsu_hoiku"} <= household_ids(result)
    assert "tenshutsu_school" in ids_for(result, "k7")

    too_far = run("tenshutsu", family, answers, event_date=TODAY + timedelta(days=15))
    assert not too_far.ok and not list(too_far.all())
    (message,) = errors(too_far)
    assert "14日前から" in message and "令和7年6月24日" in message  # names the last acceptable date
    edge = run("tenshutsu", family, answers, event_date=TODAY + timedelta(days=14))
    assert edge.ok
    too_late = run("tenshutsu", family, answers, event_date=TODAY - timedelta(days=15))
    assert any("14日を過ぎています" in m for m in errors(too_late))
    english = next(p for p in too_far.problems if p.field == "event_date").message.en
    assert "14 days" in english


def test_tennyu_in_the_future_is_impossible_and_late_is_a_warning() -> None:
    family = family_of_four()
    future = run("tennyu", family, TENNYU_NO, event_date=TODAY + timedelta(days=1))
    assert not future.ok
    assert "引っ越した後" in errors(future)[0]
    late = run("tennyu", family, TENNYU_NO, event_date=TODAY - timedelta(days=20))
    assert late.ok
    assert [p.severity for p in late.problems] == [Severity.WARNING]
    todoke = next(a for a in late.household if a.procedure.id == "tennyu_todoke")
    assert todoke.overdue and todoke.days_left == -6


def test_okuyami_household_head_dies() -> None:
    died = date(2025, 6, 1)
    household = [
        Member(
            "h",
            "田中 一男",
            date(1968, 7, 1),
            "世帯主",
            insurance=EMPLOYER,
            pension=PensionType.DAI2,
            has_my_number_card=True,
            has_seal_registration=True,
        ),
        Member("w", "田中 美和", date(1972, 3, 3), "妻", insurance=EMPLOYER, pension=PensionType.DAI3),
        Member("s", "田中 翔", date(2008, 10, 10), "子", insurance=EMPLOYER),  # 16
    ]
    answers = {
        "had_pension": False,
        "funeral_held": True,
        "funeral_date": date(2025, 6, 4),
        "deceased_employee": True,
        "receives_child_allowance_deceased": True,
        "owned_real_estate": True,
        "had_dog": False,
    }
    result = run("shibou", household, answers, event_date=died, applicant="w", subjects=["h"])
    assert result.ok, result.problems
    assert {
        "shibou_todoke",
        "shibou_setainushi",
        "shibou_izoku_nenkin",
        "shibou_jido_teate",
        "shibou_fudosan",
    } <= household_ids(result)
    head_change = next(a for a in result.household if a.procedure.id == "shibou_setainushi")
    assert head_change.deadline == died + timedelta(days=14)
    assert "15歳以上の方が2人以上" in head_change.why[-1].ja
    death = next(a for a in result.household if a.procedure.id == "shibou_todoke")
    assert death.deadline == died + timedelta(days=6)  # 7 days counting the first day (戸籍法43条)
    assert {"shibou_inkan", "shibou_mynumber"} <= ids_for(result, "h")
    assert "shibou_kokuho" not in ids_for(result, "h")  # was in an employer plan
    assert {"shibou_nenkin_dai3", "shibou_kokuho_family"} <= ids_for(result, "w")
    assert "shibou_kokuho_family" in ids_for(result, "s")
    assert "shibou_nenkin_dai3" not in ids_for(result, "s")  # 16: not in the pension yet
    allowance = next(a for a in result.household if a.procedure.id == "shibou_jido_teate")
    assert allowance.member_ids == ("s",)  # the surviving child, not the deceased


def test_okuyami_no_head_change_when_one_adult_remains() -> None:
    couple = [
        Member("h", "夫", date(1940, 1, 1), "世帯主", insurance=KOKI),
        Member("w", "妻", date(1942, 1, 1), "妻", insurance=KOKI),
    ]
    answers = {
        "had_pension": True,
        "funeral_held": True,
        "deceased_employee": False,
        "owned_real_estate": False,
        "had_dog": False,
    }
    result = run("shibou", couple, answers, event_date=date(2025, 6, 1), applicant="w", subjects=["h"])
    assert "shibou_setainushi" not in household_ids(result)
    assert {"shibou_koki", "shibou_sosaihi_koki", "shibou_kaigo", "shibou_nenkin"} <= ids_for(result, "h")
    assert not ids_for(result, "w")  # nothing for the survivor personally


def test_okuyami_impossible_answers_are_explained() -> None:
    couple = [Member("h", "夫", date(1940, 1, 1), "世帯主"), Member("w", "妻", date(1942, 1, 1), "妻")]
    answers = {
        "had_pension": False,
        "funeral_held": False,
        "deceased_employee": False,
        "owned_real_estate": False,
        "had_dog": False,
    }
    self_applicant = run("shibou", couple, answers, applicant="h", subjects=["h"])
    assert not self_applicant.ok
    assert "亡くなった方ご本人" in errors(self_applicant)[0]
    nobody = run("shibou", couple, answers, applicant="w", subjects=[])
    assert errors(nobody) == ["亡くなった方を選んでください。"]
    two = run("shibou", couple, answers, applicant="w", subjects=["h", "w"])
    assert any("1人まで" in m for m in errors(two))
    before_birth = run(
        "shibou",
        [Member("b", "子", date(2025, 6, 1), "子"), couple[1]],
        answers,
        event_date=date(2025, 5, 1),
        applicant="w",
        subjects=["b"],
    )
    assert any("生年月日" in m and "より後" in m for m in errors(before_birth))
    old_funeral = run(
        "shibou",
        couple,
        answers | {"funeral_held": True, "funeral_date": TODAY - timedelta(days=800)},
        applicant="w",
        subjects=["h"],
    )
    assert any("2年" in p.message.ja and p.severity is Severity.WARNING for p in old_funeral.problems)


def test_konin_surname_change_for_the_applicant() -> None:
    bride = Member(
        "b",
        "高橋 由美",
        date(1996, 4, 20),
        "世帯主",
        insurance=KOKUHO,
        pension=PensionType.DAI1,
        has_my_number_card=True,
        has_seal_registration=True,
    )
    answers = {
        "surname_change": "applicant",
        "living": "move_from_outside",
        "joins_employer_insurance": True,
        "receives_child_support": False,
    }
    result = run("konin", [bride], answers, event_date=TODAY)
    assert result.ok, result.problems
    ids = ids_for(result, "b")
    assert {
        "konin_mynumber_card",
        "konin_sign_cert",
        "konin_inkan",
        "konin_kokuho_leave",
        "konin_kokuho_name",
        "konin_nenkin",
    } <= ids
    assert {"konin_todoke", "konin_idou"} <= household_ids(result)
    card = next(a for a in result.for_member("b") if a.procedure.id == "konin_mynumber_card")
    assert [t.ja for t in card.why] == ["マイナンバーカードをお持ちです", "名字（氏）が変わる方です"]
    partner_changes = run("konin", [bride], answers | {"surname_change": "partner"}, event_date=TODAY)
    assert not {"konin_mynumber_card", "konin_inkan"} & ids_for(partner_changes, "b")
    future = run("konin", [bride], answers, event_date=TODAY + timedelta(days=3))
    assert "婚姻は婚姻届を出した日に成立" in errors(future)[0]


def test_rikon_custody_and_insurance() -> None:
    household = [
        Member(
            "m",
            "母",
            date(1990, 1, 1),
            "世帯主",
            insurance=EMPLOYER,
            pension=PensionType.DAI3,
            has_my_number_card=True,
        ),
        Member("c", "子", date(2019, 5, 5), "子", insurance=EMPLOYER),
    ]
    answers = {
        "surname_change": "applicant",
        "custody": True,
        "receives_child_allowance": False,
        "leaves_employer_insurance": True,
        "someone_moves": "none",
        "uses_childcare": True,
    }
    result = run("rikon", household, answers, subjects=["m"])
    assert result.ok, result.problems
    assert {
        "rikon_todoke",
        "rikon_jido_teate",
        "rikon_jido_fuyo",
        "rikon_hitorioya_iryo",
        "rikon_hoiku",
    } <= household_ids(result)
    assert "rikon_idou" not in household_ids(result)
    assert {"rikon_kokuho", "rikon_nenkin", "konin_mynumber_card"} <= ids_for(result, "m")
    assert {"rikon_kokuho", "rikon_kodomo_iryo"} <= ids_for(result, "c")  # the child leaves the plan too


def test_shussei_first_and_second_child() -> None:
    born = date(2025, 6, 2)
    parents = [
        Member("f", "父", date(1990, 1, 1), "世帯主", insurance=KOKUHO, pension=PensionType.DAI1),
        Member("m", "母", date(1992, 1, 1), "妻", insurance=KOKUHO, pension=PensionType.DAI1),
    ]
    baby = Member("b", "赤ちゃん", born, "子")
    answers = {
        "baby_count": 1,
        "baby_insurance": "kokuho",
        "receives_child_allowance": False,
        "single_parent": False,
    }
    result = run("shussei", [*parents, baby], answers, event_date=born, subjects=["b"])
    assert result.ok, result.problems
    assert {"shussei_todoke", "shussei_jido_teate_nintei", "shussei_ikuji_ichijikin"} <= household_ids(result)
    assert "shussei_jido_teate_gakukaitei" not in household_ids(result)
    assert {"shussei_kokuho", "shussei_kodomo_iryo", "shussei_boshi", "shussei_mynumber"} <= ids_for(
        result, "b"
    )
    assert not ids_for(result, "f")
    birth_notice = next(a for a in result.household if a.procedure.id == "shussei_todoke")
    assert birth_notice.deadline == born + timedelta(days=13)  # 14 days counting the day of birth
    claim = next(a for a in result.household if a.procedure.id == "shussei_jido_teate_nintei")
    assert claim.deadline == born + timedelta(days=15)
    second = run(
        "shussei",
        [*parents, baby],
        answers | {"receives_child_allowance": True},
        event_date=born,
        subjects=["b"],
    )
    assert "shussei_jido_teate_gakukaitei" in household_ids(second)
    twins = run("shussei", [*parents, baby], answers | {"baby_count": 2}, event_date=born, subjects=["b"])
    assert twins.ok and any("人数" in p.message.ja for p in twins.problems)
    tomorrow = run("shussei", [*parents, baby], answers, event_date=TODAY + timedelta(days=1), subjects=["b"])
    assert not tomorrow.ok


def test_setai_henko_impossible_combinations() -> None:
    household = [
        Member("a", "A", date(1960, 1, 1), "世帯主", insurance=KOKUHO),
        Member("b", "B", date(1990, 1, 1), "子", insurance=KOKUHO),
    ]
    head = run("setai_henko", household, {"change_kind": "head_change"}, subjects=["a", "b"])
    assert errors(head) == ["世帯主の変更では、新しい世帯主を1人だけ選んでください。"]
    split_all = run("setai_henko", household, {"change_kind": "split"}, subjects=["a", "b"])
    assert any("元の世帯に残る方" in m for m in errors(split_all))
    split = run("setai_henko", household, {"change_kind": "split"}, subjects=["b"])
    assert split.ok
    assert {"setai_todoke", "setai_kokuho"} <= household_ids(split)


def test_unknown_birth_date_is_listed_for_staff_to_check() -> None:
    person = Member("x", "生年月日不詳", None, "世帯主", insurance=Insurance.UNKNOWN)
    result = run("tennyu", [person], TENNYU_NO)
    uncertain = {a.procedure.id: a for a in result.for_member("x") if not a.certain}
    assert {"tennyu_kokuho", "tennyu_kaigo", "tennyu_koki"} <= set(uncertain)
    assert "生年月日が分からない" in uncertain["tennyu_kaigo"].why[-1].ja


def test_why_is_given_for_every_applicable_procedure_of_every_event() -> None:
    household = [
        Member(
            "h",
            "世帯主",
            date(1955, 5, 5),
            "世帯主",
            insurance=KOKUHO,
            pension=PensionType.UNKNOWN,
            has_my_number_card=True,
            has_seal_registration=True,
            has_disability_certificate=True,
            has_care_certification=True,
        ),
        Member(
            "w",
            "妻",
            date(1970, 5, 5),
            "妻",
            insurance=EMPLOYER,
            pension=PensionType.DAI3,
            has_my_number_card=True,
            is_foreign=True,
        ),
        Member("k", "子", date(2015, 5, 5), "子", insurance=EMPLOYER),
        Member("b", "乳児", date(2025, 5, 5), "子", insurance=EMPLOYER),
    ]
    seen: set[str] = set()
    for event_id, compiled in rules().events.items():
        answers: dict[str, Any] = {}
        for q in compiled.event.questions:
            if q.kind is QuestionKind.CHOICE:
                answers[q.id] = q.options[0].value
            else:
                answers[q.id] = {
                    QuestionKind.YES_NO: True,
                    QuestionKind.COUNT: q.min or 1,
                    QuestionKind.DATE: TODAY,
                }[q.kind]
        subjects = {
            "setai_henko": ["w"],
            "shibou": ["h"],
            "konin": ["h"],
            "rikon": ["h"],
            "ninshin": ["w"],
            "kaigo": ["h"],
            "shussei": ["b"],
        }.get(event_id)
        day = (
            date(2025, 12, 1)
            if event_id == "ninshin"
            else date(2025, 5, 5)
            if event_id == "shussei"
            else TODAY
        )
        applicant = "w" if event_id == "shibou" else "h"
        result = run(event_id, household, answers, event_date=day, applicant=applicant, subjects=subjects)
        assert result.ok, (event_id, [p.message.ja for p in result.problems])
        found = list(result.all())
        assert found, event_id
        for applicable in found:
            seen.add(applicable.procedure.id)
            assert applicable.why, applicable.procedure.id
            for text in applicable.why:
                for lang in ("ja", "easy", "en"):
                    rendered = text.get(lang)
                    assert rendered.strip(), (applicable.procedure.id, lang)
                    assert "{" not in rendered, (applicable.procedure.id, rendered)
        json.dumps(result.to_dict(), ensure_ascii=False)  # serialisable for sessions and the DB
    assert len(seen) >= 60


def test_everything_preview_covers_all_procedures() -> None:
    household = [Member("h", "A", date(1950, 1, 1), "世帯主", insurance=KOKUHO)]
    result = evaluate(rules().everything, {}, household, "h", TODAY, TODAY, check=False)
    assert result.ok
    assert len(rules().everything.procedures) == len(rules().catalog.procedures)


def test_deadline_rules() -> None:
    label = Text("x")
    fourteen = Deadline(DeadlineKind.WITHIN_DAYS, label, days=14)
    assert deadline_date(fourteen, date(2025, 4, 1)) == date(2025, 4, 15)
    fifteen = Deadline(
        DeadlineKind.WITHIN_DAYS,
        label,
        days=15,
        anchor=DeadlineAnchor.DAY_AFTER_EVENT_DATE,
        first_day_counts=True,
    )
    assert deadline_date(fifteen, date(2025, 4, 1)) == date(2025, 4, 16)
    assert deadline_date(Deadline(DeadlineKind.ASAP, label), date(2025, 4, 1)) is None

    def weekend(d: date) -> bool:
        return d.weekday() >= 5

    # 2025-04-19 is a Saturday: the deadline moves to Monday 4/21 (地方自治法4条の2④)
    assert deadline_date(fourteen, date(2025, 4, 5), weekend) == date(2025, 4, 21)
    fixed = Deadline(DeadlineKind.WITHIN_DAYS, label, days=14, roll_over_closed_days=False)
    assert deadline_date(fixed, date(2025, 4, 5), weekend) == date(2025, 4, 19)


def test_validate_and_coerce_answers() -> None:
    tenshutsu = rules().event("tenshutsu").event
    destination = tenshutsu.question("destination")
    assert destination is not None
    (problem,) = validate_answer(destination, "mars", today=TODAY)
    assert "国内のほかの市区町村" in problem.message.ja and "Abroad" in problem.message.en
    count = rules().event("tennyu").event.question("dog_count")
    assert count is not None
    assert (
        validate_answer(count, 0, today=TODAY)[0].message.ja
        == "「犬は何頭いますか？」には1から20までの数を入れてください。"
    )
    assert validate_answer(count, True, today=TODAY)  # a bool is not a count
    assert coerce_answer(count, "３") == (3, [])
    yes_no = tenshutsu.question("has_dog")
    assert yes_no is not None
    assert coerce_answer(yes_no, "yes") == (True, [])
    assert coerce_answer(yes_no, "いいえ") == (False, [])
    value, problems = coerce_answer(yes_no, "maybe")
    assert value is None and "はい" in problems[0].message.ja
    funeral = rules().event("shibou").event.question("funeral_date")
    assert funeral is not None
    assert coerce_answer(funeral, "令和7年6月4日") == (date(2025, 6, 4), [])
    assert coerce_answer(funeral, "2025-06-04") == (date(2025, 6, 4), [])


def test_hidden_questions_are_ignored_and_required_ones_asked() -> None:
    couple = [Member("h", "A", date(1950, 1, 1), "世帯主"), Member("w", "B", date(1952, 1, 1), "妻")]
    # uses_childcare is hidden without a preschool child: its answer is dropped, not an error
    result = run("tennyu", couple, TENNYU_NO | {"uses_childcare": True})
    assert result.ok and "uses_childcare" not in result.answers
    missing = run("tennyu", couple, {k: v for k, v in TENNYU_NO.items() if k != "has_dog"})
    assert errors(missing) == ["「犬を飼っていますか？」に答えてください。"]
    unknown = run("tennyu", couple, TENNYU_NO | {"favourite_colour": "blue"})
    assert unknown.ok and any(p.field == "answers.favourite_colour" for p in unknown.problems)


def test_member_from_a_registry_resident() -> None:
    from app.domain.registry import Sex
    from app.models.registry import Resident

    resident = Resident(
        atena_number="0000017",
        household_id=1,
        relationship="世帯主",
        family_name="山田",
        given_name="太郎",
        birth_date=date(1980, 1, 1),
        sex=Sex.MALE,
        nationality="",
        address="寒河江市",
        sign_cert_serial="ABC",
    )
    member = Member.from_resident(resident, insurance=KOKUHO)
    assert member.id == "0000017"
    assert member.name == "山田　太郎"
    assert member.sex == "male" and not member.is_foreign
    assert member.has_my_number_card and member.has_sign_certificate
    assert member.insurance is KOKUHO


def test_visible_questions_follow_answers_and_household() -> None:
    from app.domain.lifeevents.conditions import HouseholdFacts, person_facts
    from app.domain.lifeevents.validate import visible_questions

    event = rules().event("tennyu")
    adults = [Member("a", "A", date(1980, 1, 1), "世帯主")]
    facts = [
        person_facts(m, event_date=TODAY, today=TODAY, applicant_id="a", subject_ids=frozenset({"a"}))
        for m in adults
    ]
    shown = {
        q.id
        for q in visible_questions(event, {"moved_from": "abroad", "has_dog": False}, HouseholdFacts(facts))
    }
    assert "tenshutsu_method" not in shown  # only for moves within Japan
    assert "dog_count" not in shown
    assert "uses_childcare" not in shown and "single_parent" not in shown  # no children
    shown = {
        q.id
        for q in visible_questions(
            event, {"moved_from": "other_city", "has_dog": True}, HouseholdFacts(facts)
        )
    }
    assert {"tenshutsu_method", "dog_count"} <= shown


def test_coerce_choice_answers() -> None:
    destination = rules().event("tenshutsu").event.question("destination")
    assert destination is not None
    assert coerce_answer(destination, "abroad") == ("abroad", [])
    value, problems = coerce_answer(destination, "mars")
    assert value is None and "次から選んで" in problems[0].message.ja
    assert coerce_answer(destination, "  ") == (None, [])
