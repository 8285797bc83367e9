"""A small, safe condition language for the life-event rules (no eval, no Python objects).

Staff write conditions such as ::

    20 <= age_at_event < 60 and pension in ['dai1', 'unknown']
    insurance == 'kokuho' or answer.baby_insurance == 'kokuho'
    household.has_child_under(6) and not answer.uses_childcare

Grammar (precedence from loose to tight: or < and < not < comparison)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand (cmp_op operand)*          # chains: 20 <= age < 60
    cmp_op     := "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in"
    operand    := INT | STRING | "true" | "false" | list | name | call | "(" expr ")"
    list       := "[" literal ("," literal)* [","] "]"
    name       := IDENT | "answer" "." IDENT | "household" "." IDENT
    call       := "household" "." IDENT "(" literal ")"
    STRING     := '…' | "…"   (no escapes; Japanese text allowed inside)

Names come from a fixed vocabulary (`PERSON_VARS`, `HOUSEHOLD_VARS`, `HOUSEHOLD_FUNCS`) and the
event's questions (`answer.<question id>`). Everything is checked when the condition is compiled:
unknown names, person attributes in a household-level rule, comparisons between different
types, values an attribute cannot take (`insurance == 'kokuhoo'`), and/or/not over non-yes/no
values. Errors carry the position and a Japanese and an English message.

Evaluation uses three-valued logic: a fact that is unknown (no birth date, an unanswered
question) makes a comparison unknown (None); `and`/`or`/`not` follow Kleene's rules, so an
unknown result means "may apply — staff should check" rather than "does not apply".

A compiled condition also explains itself: for a condition that holds, `explain` lists the parts
that made it hold, in 日本語 / やさしい日本語 / English, with the person's actual values
(「転入の日の年齢が65歳以上（67歳）」).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from app.domain.age import (
    SchoolStage,
    end_of_fiscal_year_after_18th_birthday,
    school_grade,
    school_year_start_age,
)
from app.domain.lifeevents.model import Lang, Member, Text
from app.domain.registry import RELATIONSHIPS
from app.domain.wareki import format_wareki

__all__ = [
    "HOUSEHOLD_FUNCS",
    "HOUSEHOLD_VARS",
    "MAX_LENGTH",
    "PERSON_VARS",
    "AnswerSpec",
    "CompiledCondition",
    "ConditionError",
    "Env",
    "Func",
    "HouseholdFacts",
    "Scope",
    "Template",
    "VType",
    "Value",
    "Var",
    "compile_condition",
    "dump",
    "format_value",
    "parse",
    "person_facts",
    "placeholders",
    "render_placeholders",
]

Value = bool | int | str | date | None
MAX_LENGTH = 2000  # characters in one condition
_MAX_DEPTH = 40  # nesting of parentheses / not


class VType(StrEnum):
    BOOL = "bool"
    INT = "int"
    STR = "str"
    DATE = "date"


_TYPE_JA = {VType.BOOL: "はい/いいえ", VType.INT: "数", VType.STR: "文字列", VType.DATE: "日付"}
_TYPE_EN = {VType.BOOL: "yes/no", VType.INT: "number", VType.STR: "text", VType.DATE: "date"}


# -- errors ---------------------------------------------------------------------------------------
class ConditionError(ValueError):
    """A condition that cannot be read or checked. `position` is a 0-based offset into `source`."""

    def __init__(self, source: str, position: int, message_ja: str, message_en: str) -> None:
        self.source = source
        self.position = position
        self.message_ja = message_ja
        self.message_en = message_en
        super().__init__(str(self))

    @property
    def column(self) -> int:
        return self.position + 1

    def __str__(self) -> str:
        return (
            f"{self.column}文字目: {self.message_ja} / column {self.column}: {self.message_en}\n"
            f"  {self.source}\n  {' ' * _display_width(self.source[: self.position])}^"
        )


def _display_width(text: str) -> int:
    return sum(2 if ord(c) > 0x2E7F else 1 for c in text)


# -- vocabulary -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Var:
    """A name conditions may read. Labels may contain {event} (the event's name)."""

    name: str
    type: VType
    label: Text
    unit: Text | None = None
    values: tuple[tuple[str, Text], ...] = ()  # allowed string values and their labels
    true_text: Text | None = None  # bools: what "true" means, e.g. 「障害者手帳を持っている」
    false_text: Text | None = None
    fmt: Callable[[Value, Lang], str] | None = None

    def value_label(self, value: str) -> Text | None:
        return next((label for v, label in self.values if v == value), None)


@dataclass(frozen=True, slots=True)
class Func:
    """A household function with one literal argument; labels use {arg}."""

    name: str
    arg_type: VType
    result: VType
    label: Text
    impl: Callable[[HouseholdFacts, Any], Value]
    arg_values: tuple[tuple[str, Text], ...] = ()  # for string arguments: allowed values
    unit: Text | None = None
    true_text: Text | None = None
    false_text: Text | None = None


def _grade_fmt(value: Value, lang: Lang) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return _unknown(lang)
    if value == 0:
        return {"ja": "小・中学生の年齢ではない", "easy": "小学生・中学生の 年齢 では ない"}.get(
            lang, "not of compulsory-school age"
        )
    if value <= 6:
        return f"elementary school year {value}" if lang == "en" else f"小学{value}年生"
    return f"junior high school year {value - 6}" if lang == "en" else f"中学{value - 6}年生"


_YEARS = Text("歳", "さい", "")
_PEOPLE = Text("人", "人", "")

_INSURANCE_VALUES: tuple[tuple[str, Text], ...] = (
    ("kokuho", Text("国民健康保険", "国民健康保険（こくほ）", "National Health Insurance")),
    ("employer", Text("職場の健康保険", "会社などの 健康保険", "an employer's health insurance")),
    ("koki", Text("後期高齢者医療", "後期高齢者医療（75さい から）", "Late-stage Elderly Medical Care")),
    ("seikatsu_hogo", Text("生活保護", "生活保護", "public assistance (seikatsu hogo)")),
    ("unknown", Text("不明", "わからない", "unknown")),
)

PERSON_VARS: dict[str, Var] = {
    v.name: v
    for v in (
        Var("age", VType.INT, Text("今日の年齢", "きょうの 年齢", "age today"), _YEARS),
        Var(
            "age_at_event",
            VType.INT,
            Text("{event}の日の年齢", "その 日の 年齢", "age on the event date"),
            _YEARS,
        ),
        Var(
            "sex",
            VType.STR,
            Text("性別", "せいべつ", "sex"),
            values=(
                ("male", Text("男性", "男の人", "male")),
                ("female", Text("女性", "女の人", "female")),
                ("unknown", Text("不明", "わからない", "unknown")),
            ),
        ),
        Var(
            "relationship",
            VType.STR,
            Text("続柄", "世帯主との 関係", "relationship to the head of household"),
            values=tuple((r, Text(r)) for r in RELATIONSHIPS),
        ),
        Var(
            "is_applicant",
            VType.BOOL,
            Text("届出に来られた方か", "手続きに 来た 人か", "whether this is the applicant"),
            true_text=Text("届出に来られた方です", "手続きに 来た 人です", "is the applicant"),
            false_text=Text(
                "届出に来られた方以外の方です", "手続きに 来た 人では ありません", "is not the applicant"
            ),
        ),
        Var(
            "is_subject",
            VType.BOOL,
            Text("{event}の対象の方か", "手続きの 対象の 人か", "whether the event concerns this person"),
            true_text=Text("{event}の対象の方です", "手続きの 対象の 人です", "is concerned by the event"),
            false_text=Text(
                "{event}の対象以外の世帯員です",
                "手続きの 対象 ではない 家族です",
                "is another household member",
            ),
        ),
        Var(
            "is_head",
            VType.BOOL,
            Text("世帯主か", "世帯主か", "whether head of household"),
            true_text=Text("世帯主です", "世帯主です", "is the head of household"),
            false_text=Text("世帯主ではありません", "世帯主 では ありません", "is not the head of household"),
        ),
        Var(
            "insurance", VType.STR, Text("健康保険", "健康保険", "health insurance"), values=_INSURANCE_VALUES
        ),
        Var(
            "pension",
            VType.STR,
            Text("国民年金の種別", "年金の しゅるい", "National Pension category"),
            values=(
                (
                    "dai1",
                    Text(
                        "第1号被保険者", "第1号（自営業・学生など）", "Category 1 (self-employed, students …)"
                    ),
                ),
                ("dai2", Text("第2号被保険者", "第2号（会社員・公務員）", "Category 2 (employees)")),
                ("dai3", Text("第3号被保険者", "第3号（会社員の 配偶者）", "Category 3 (dependent spouse)")),
                ("none", Text("被保険者ではない", "入って いない", "not insured")),
                ("unknown", Text("不明", "わからない", "unknown")),
            ),
        ),
        Var(
            "has_disability_certificate",
            VType.BOOL,
            Text("障害者手帳", "障害者手帳", "disability certificate"),
            true_text=Text(
                "障害者手帳をお持ちです", "障害者手帳を 持って います", "holds a disability certificate"
            ),
            false_text=Text(
                "障害者手帳をお持ちではありません",
                "障害者手帳を 持って いません",
                "holds no disability certificate",
            ),
        ),
        Var(
            "has_care_certification",
            VType.BOOL,
            Text("要介護・要支援認定", "介護の 認定", "long-term care certification"),
            true_text=Text(
                "要介護・要支援の認定を受けています",
                "介護の 認定を 受けて います",
                "is certified for long-term care",
            ),
            false_text=Text(
                "要介護・要支援の認定を受けていません",
                "介護の 認定を 受けて いません",
                "is not certified for long-term care",
            ),
        ),
        Var(
            "is_foreign",
            VType.BOOL,
            Text("国籍", "国籍", "nationality"),
            true_text=Text("外国籍の方です", "外国の 国籍の 人です", "is a foreign resident"),
            false_text=Text("日本国籍の方です", "日本の 国籍の 人です", "is a Japanese national"),
        ),
        Var(
            "has_my_number_card",
            VType.BOOL,
            Text("マイナンバーカード", "マイナンバーカード", "My Number Card"),
            true_text=Text(
                "マイナンバーカードをお持ちです",
                "マイナンバーカードを 持って います",
                "holds a My Number Card",
            ),
            false_text=Text(
                "マイナンバーカードをお持ちではありません",
                "マイナンバーカードを 持って いません",
                "holds no My Number Card",
            ),
        ),
        Var(
            "has_sign_certificate",
            VType.BOOL,
            Text("署名用電子証明書", "署名用電子証明書", "signature certificate"),
            true_text=Text(
                "署名用電子証明書をお持ちです", "署名用電子証明書が あります", "holds a signature certificate"
            ),
            false_text=Text(
                "署名用電子証明書をお持ちではありません",
                "署名用電子証明書が ありません",
                "holds no signature certificate",
            ),
        ),
        Var(
            "has_seal_registration",
            VType.BOOL,
            Text("印鑑登録", "印鑑登録", "seal registration"),
            true_text=Text("印鑑登録をしています", "印鑑登録を して います", "has a registered seal"),
            false_text=Text("印鑑登録をしていません", "印鑑登録を して いません", "has no registered seal"),
        ),
        Var(
            "school_grade",
            VType.INT,
            Text("学年（年齢から）", "学年（年齢から）", "school year by age"),
            fmt=_grade_fmt,
        ),
        Var(
            "school_year_age",
            VType.INT,
            Text("学年の始め（4月1日）の年齢", "4月1日の 年齢", "age at the start of the school year"),
            _YEARS,
        ),
        Var(
            "is_preschool",
            VType.BOOL,
            Text("小学校入学前か", "小学校に 入る 前か", "whether below school age"),
            true_text=Text(
                "小学校入学前のお子さんです", "小学校に 入る 前の 子どもです", "is below school age"
            ),
            false_text=Text(
                "小学校入学前のお子さんではありません",
                "小学校に 入る 前の 子どもでは ありません",
                "is not below school age",
            ),
        ),
        Var(
            "is_child_for_allowance",
            VType.BOOL,
            Text("児童手当の対象年齢か", "児童手当の 年齢か", "whether of child-allowance age"),
            true_text=Text(
                "18歳になった後の最初の3月31日までのお子さんです（児童手当の対象年齢）",
                "18さいに なった あとの 最初の 3月31日 までの 子どもです",
                "is a child up to the first 31 March after turning 18 (child allowance age)",
            ),
            false_text=Text(
                "児童手当の対象年齢ではありません",
                "児童手当の 年齢 では ありません",
                "is past child allowance age",
            ),
        ),
    )
}


# -- facts ----------------------------------------------------------------------------------------
def person_facts(
    member: Member,
    *,
    event_date: date,
    today: date,
    applicant_id: str | None,
    subject_ids: frozenset[str],
) -> dict[str, Value]:
    """The values of every `PERSON_VARS` name for one member. Ages follow 年齢計算ニ関スル法律
    (app.domain.age); facts that depend on an unknown birth date are None (unknown)."""
    birth = member.birth_date
    age: int | None = None
    age_at_event: int | None = None
    grade: int | None = None
    year_age: int | None = None
    preschool: bool | None = None
    allowance: bool | None = None
    if birth is not None:
        if birth <= today:
            age = _age(birth, today)
        if birth <= event_date:
            age_at_event = _age(birth, event_date)
            found = school_grade(birth, event_date)
            if found is None:
                grade = 0
            else:
                grade = found.grade if found.stage is SchoolStage.ELEMENTARY else found.grade + 6
            year_age = school_year_start_age(birth, event_date) or 0
            preschool = year_age < 6
            allowance = event_date <= end_of_fiscal_year_after_18th_birthday(birth)
        else:  # not yet born on the event date
            grade, year_age, preschool, allowance = 0, 0, False, False
    return {
        "age": age,
        "age_at_event": age_at_event,
        "sex": member.sex.value,
        "relationship": member.relationship,
        "is_applicant": member.id == applicant_id,
        "is_subject": member.id in subject_ids,
        "is_head": member.relationship == "世帯主",
        "insurance": member.insurance.value,
        "pension": member.pension.value,
        "has_disability_certificate": member.has_disability_certificate,
        "has_care_certification": member.has_care_certification,
        "is_foreign": member.is_foreign,
        "has_my_number_card": member.has_my_number_card,
        "has_sign_certificate": member.has_sign_certificate,
        "has_seal_registration": member.has_seal_registration,
        "school_grade": grade,
        "school_year_age": year_age,
        "is_preschool": preschool,
        "is_child_for_allowance": allowance,
    }


def _age(birth: date, day: date) -> int:
    # Inlined app.domain.age.age_on (same rule: the age is reached the day before the birthday);
    # the engine calls this for every member on every evaluation.
    following = date.fromordinal(day.toordinal() + 1)
    years = following.year - birth.year
    if (following.month, following.day) < (birth.month, birth.day):
        years -= 1
    return years


def _any(values: Iterable[bool | None]) -> bool | None:
    unknown = False
    for v in values:
        if v is True:
            return True
        if v is None:
            unknown = True
    return None if unknown else False


def _count(values: Iterable[bool | None]) -> int | None:
    total = 0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def _lt(value: Value, limit: int) -> bool | None:
    return None if value is None else bool(value < limit)  # type: ignore[operator]


def _ge(value: Value, limit: int) -> bool | None:
    return None if value is None else bool(value >= limit)  # type: ignore[operator]


class HouseholdFacts:
    """Facts about the whole household, computed once per evaluation from the members' facts."""

    __slots__ = ("persons", "values")

    def __init__(self, persons: Sequence[Mapping[str, Value]]) -> None:
        self.persons = persons
        subjects = [p for p in persons if p["is_subject"]]
        self.values: dict[str, Value] = {
            "size": len(persons),
            "subject_count": len(subjects),
            "remaining_count": len(persons) - len(subjects),
            "head_is_subject": any(p["is_head"] for p in subjects),
            "applicant_is_subject": any(p["is_applicant"] for p in subjects),
            "has_child_for_allowance": _any(p["is_child_for_allowance"] for p in persons),  # type: ignore[misc]
            "has_school_child": _any(
                None if p["school_grade"] is None else bool(p["school_grade"]) for p in persons
            ),
            "has_preschool_child": _any(p["is_preschool"] for p in persons),  # type: ignore[misc]
        }


def _has_child_under(h: HouseholdFacts, n: int) -> Value:
    return _any(_lt(p["age_at_event"], n) for p in h.persons)


def _count_aged_at_least(h: HouseholdFacts, n: int) -> Value:
    return _count(_ge(p["age_at_event"], n) for p in h.persons)


def _count_under(h: HouseholdFacts, n: int) -> Value:
    return _count(_lt(p["age_at_event"], n) for p in h.persons)


def _remaining_aged_at_least(h: HouseholdFacts, n: int) -> Value:
    return _count(_ge(p["age_at_event"], n) for p in h.persons if not p["is_subject"])


def _has_insurance(h: HouseholdFacts, value: str) -> Value:
    return any(p["insurance"] == value for p in h.persons)


HOUSEHOLD_VARS: dict[str, Var] = {
    v.name: v
    for v in (
        Var("size", VType.INT, Text("世帯の人数", "家族の 人数", "household size"), _PEOPLE),
        Var(
            "subject_count",
            VType.INT,
            Text("{event}の対象の方の人数", "対象の 人の 人数", "people concerned"),
            _PEOPLE,
        ),
        Var(
            "remaining_count",
            VType.INT,
            Text("対象の方以外の世帯員の人数", "ほかの 家族の 人数", "other household members"),
            _PEOPLE,
        ),
        Var(
            "head_is_subject",
            VType.BOOL,
            Text("世帯主が対象か", "世帯主が 対象か", "whether the head is concerned"),
            true_text=Text(
                "世帯主が{event}の対象です", "世帯主が 対象です", "the head of household is concerned"
            ),
            false_text=Text(
                "世帯主は{event}の対象ではありません",
                "世帯主は 対象 では ありません",
                "the head of household is not concerned",
            ),
        ),
        Var(
            "applicant_is_subject",
            VType.BOOL,
            Text("届出人が対象か", "手続きに 来た 人が 対象か", "whether the applicant is concerned"),
            true_text=Text(
                "届出に来られた方が{event}の対象です",
                "手続きに 来た 人が 対象です",
                "the applicant is concerned",
            ),
            false_text=Text(
                "届出に来られた方は{event}の対象ではありません",
                "手続きに 来た 人は 対象 では ありません",
                "the applicant is not concerned",
            ),
        ),
        Var(
            "has_child_for_allowance",
            VType.BOOL,
            Text("児童手当の対象年齢の子ども", "児童手当の 年齢の 子ども", "child of child-allowance age"),
            true_text=Text(
                "18歳になった後の最初の3月31日までのお子さんがいます",
                "18さいに なった あとの 最初の 3月31日 までの 子どもが います",
                "there is a child up to the first 31 March after turning 18",
            ),
            false_text=Text(
                "児童手当の対象年齢のお子さんはいません",
                "児童手当の 年齢の 子どもは いません",
                "there is no child of child-allowance age",
            ),
        ),
        Var(
            "has_school_child",
            VType.BOOL,
            Text("小・中学生の年齢の子ども", "小学生・中学生の 子ども", "child of compulsory-school age"),
            true_text=Text(
                "小・中学生の年齢のお子さんがいます",
                "小学生・中学生の 子どもが います",
                "there is a child of compulsory-school age",
            ),
            false_text=Text(
                "小・中学生の年齢のお子さんはいません",
                "小学生・中学生の 子どもは いません",
                "there is no child of compulsory-school age",
            ),
        ),
        Var(
            "has_preschool_child",
            VType.BOOL,
            Text("小学校入学前の子ども", "小学校に 入る 前の 子ども", "child below school age"),
            true_text=Text(
                "小学校入学前のお子さんがいます",
                "小学校に 入る 前の 子どもが います",
                "there is a child below school age",
            ),
            false_text=Text(
                "小学校入学前のお子さんはいません",
                "小学校に 入る 前の 子どもは いません",
                "there is no child below school age",
            ),
        ),
    )
}

HOUSEHOLD_FUNCS: dict[str, Func] = {
    f.name: f
    for f in (
        Func(
            "has_child_under",
            VType.INT,
            VType.BOOL,
            Text("{arg}歳未満の世帯員", "{arg}さいより 下の 家族", "member under {arg}"),
            _has_child_under,
            true_text=Text(
                "{arg}歳未満の方が世帯にいます",
                "{arg}さいより 下の 人が 家族に います",
                "a member is under {arg}",
            ),
            false_text=Text(
                "{arg}歳未満の方は世帯にいません",
                "{arg}さいより 下の 人は 家族に いません",
                "no member is under {arg}",
            ),
        ),
        Func(
            "count_aged_at_least",
            VType.INT,
            VType.INT,
            Text("{arg}歳以上の世帯員の人数", "{arg}さい 以上の 家族の 人数", "members aged {arg} or over"),
            _count_aged_at_least,
            unit=_PEOPLE,
        ),
        Func(
            "count_under",
            VType.INT,
            VType.INT,
            Text("{arg}歳未満の世帯員の人数", "{arg}さいより 下の 家族の 人数", "members under {arg}"),
            _count_under,
            unit=_PEOPLE,
        ),
        Func(
            "remaining_aged_at_least",
            VType.INT,
            VType.INT,
            Text(
                "対象の方以外で{arg}歳以上の世帯員の人数",
                "対象 ではない {arg}さい 以上の 家族の 人数",
                "other members aged {arg} or over",
            ),
            _remaining_aged_at_least,
            unit=_PEOPLE,
        ),
        Func(
            "has_insurance",
            VType.STR,
            VType.BOOL,
            Text("{arg}の世帯員", "{arg}の 家族", "member in {arg}"),
            _has_insurance,
            arg_values=_INSURANCE_VALUES,
            true_text=Text("{arg}の方が世帯にいます", "{arg}の 人が 家族に います", "a member is in {arg}"),
            false_text=Text(
                "{arg}の方は世帯にいません", "{arg}の 人は 家族に いません", "no member is in {arg}"
            ),
        ),
    )
}


@dataclass(frozen=True, slots=True)
class AnswerSpec:
    """An answer conditions may read: `answer.<id>`, typed by its question's kind."""

    id: str
    type: VType
    text: Text  # the question
    values: tuple[tuple[str, Text], ...] = ()  # choice questions: option values and labels


@dataclass(frozen=True, slots=True)
class Scope:
    """What a condition may refer to: person attributes (person-level rules and household
    member filters) and the answers of the events it is used for."""

    person: bool
    answers: Mapping[str, AnswerSpec]


class Env:
    """The facts one evaluation reads."""

    __slots__ = ("answers", "household", "person")

    def __init__(
        self, person: Mapping[str, Value], answers: Mapping[str, Value], household: HouseholdFacts
    ) -> None:
        self.person = person
        self.answers = answers
        self.household = household


# -- formatting -----------------------------------------------------------------------------------
def _unknown(lang: Lang) -> str:
    return {"ja": "不明", "easy": "わからない"}.get(lang, "unknown")


def format_value(
    value: Value,
    lang: Lang,
    *,
    unit: Text | None = None,
    values: Sequence[tuple[str, Text]] = (),
    fmt: Any = None,
) -> str:
    """A value as residents read it: units, option labels, 和暦 dates."""
    if value is None:
        return _unknown(lang)
    if fmt is not None:
        return str(fmt(value, lang))
    if isinstance(value, bool):
        return (
            {"ja": "はい", "easy": "はい"}.get(lang, "yes")
            if value
            else {"ja": "いいえ", "easy": "いいえ"}.get(lang, "no")
        )
    if isinstance(value, int):
        # Units have no fallback: English numbers go bare rather than with 「歳」.
        suffix = "" if unit is None else unit.en if lang == "en" else unit.get(lang)
        return f"{value}{suffix}"
    if isinstance(value, date):
        return value.isoformat() if lang == "en" else format_wareki(value)
    label = next((t for v, t in values if v == value), None)
    text = label.get(lang) if label else value
    return f'"{text}"' if lang == "en" else f"「{text}」"


def _fill(text: str, **values: str) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


# -- tokens and syntax tree -----------------------------------------------------------------------
_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<num>[0-9]+)
  | (?P<str>'[^'\n]*'|"[^"\n]*")
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\.)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
_CMP_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num, str, name, op, kw, end
    text: str
    pos: int


def _tokenize(source: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            c = source[pos]
            if c in "'\"":
                raise ConditionError(source, pos, "文字列の終わりの引用符がありません", "unterminated string")
            if c == "=":
                raise ConditionError(
                    source,
                    pos,
                    "比べるときは「=」ではなく「==」と書いてください",
                    "use '==' to compare, not '='",
                )
            if c == "!":
                raise ConditionError(
                    source, pos, "「!」ではなく not と書いてください", "use 'not' instead of '!'"
                )
            if c in "&|":
                word = "and" if c == "&" else "or"
                raise ConditionError(
                    source, pos, f"「{c}」ではなく {word} と書いてください", f"use '{word}' instead of '{c}'"
                )
            if ord(c) > 0x7F:
                raise ConditionError(
                    source,
                    pos,
                    f"全角などの文字「{c}」は、引用符で囲んだ文字列の中でだけ使えます",
                    f"the character '{c}' is only allowed inside a quoted string",
                )
            raise ConditionError(source, pos, f"使えない文字「{c}」があります", f"unexpected character '{c}'")
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "name":
            if text.startswith("_"):
                raise ConditionError(
                    source,
                    pos,
                    f"「_」で始まる名前（{text}）は使えません",
                    f"names starting with '_' are not allowed ({text})",
                )
            if text in _KEYWORDS:
                kind = "kw"
        if kind != "ws":
            tokens.append(_Tok(kind, text, pos))
        pos = m.end()
    tokens.append(_Tok("end", "", len(source)))
    return tokens


@dataclass(frozen=True, slots=True)
class Lit:
    value: bool | int | str
    pos: int


@dataclass(frozen=True, slots=True)
class Ref:
    parts: tuple[str, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    parts: tuple[str, ...]
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class ListLit:
    items: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # "and" | "or"
    operands: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Compare:
    """`left op1 x op2 y …`: a chain, true when every link holds."""

    left: Node
    ops: tuple[tuple[str, Node], ...]
    pos: int


Node = Lit | Ref | Call | ListLit | Not | BoolOp | Compare


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.i = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def error(self, tok: _Tok, ja: str, en: str) -> ConditionError:
        return ConditionError(self.source, tok.pos, ja, en)

    def unexpected(self, tok: _Tok) -> ConditionError:
        if tok.kind == "end":
            return self.error(tok, "式が途中で終わっています", "the expression ends too early")
        return self.error(tok, f"ここに「{tok.text}」は書けません", f"unexpected '{tok.text}'")

    def expect(self, text: str) -> _Tok:
        tok = self.next()
        if tok.text != text or tok.kind not in ("op", "kw"):
            if tok.kind == "end":
                raise self.error(
                    tok,
                    f"「{text}」が必要です（式が途中で終わっています）",
                    f"expected '{text}' before the end",
                )
            raise self.error(
                tok, f"「{tok.text}」ではなく「{text}」が必要です", f"expected '{text}', found '{tok.text}'"
            )
        return tok

    def parse(self) -> Node:
        if not self.source.strip():
            raise ConditionError(self.source, 0, "条件が空です", "the condition is empty")
        node = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.unexpected(tok)
        return node

    def nest(self, tok: _Tok) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.error(tok, "入れ子が深すぎます", "nested too deeply")

    def or_expr(self) -> Node:
        first = self.peek()
        operands = [self.and_expr()]
        while self.peek().kind == "kw" and self.peek().text == "or":
            self.next()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands), first.pos)

    def and_expr(self) -> Node:
        first = self.peek()
        operands = [self.not_expr()]
        while self.peek().kind == "kw" and self.peek().text == "and":
            self.next()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands), first.pos)

    def not_expr(self) -> Node:
        tok = self.peek()
        if tok.kind == "kw" and tok.text == "not":
            self.next()
            self.nest(tok)
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand, tok.pos)
        return self.comparison()

    def cmp_op(self) -> str | None:
        tok = self.peek()
        if tok.kind == "op" and tok.text in _CMP_OPS:
            return tok.text
        if tok.kind == "kw" and tok.text == "in":
            return "in"
        if tok.kind == "kw" and tok.text == "not" and self.peek(1).kind == "kw" and self.peek(1).text == "in":
            return "not in"
        return None

    def comparison(self) -> Node:
        start = self.peek()
        left = self.operand()
        ops: list[tuple[str, Node]] = []
        while (op := self.cmp_op()) is not None:
            self.next()
            if op == "not in":
                self.next()
            ops.append((op, self.operand()))
        return Compare(left, tuple(ops), start.pos) if ops else left

    def operand(self) -> Node:
        tok = self.next()
        if tok.kind == "num":
            if len(tok.text) > 9:
                raise self.error(tok, "数が大きすぎます", "number too large")
            return Lit(int(tok.text), tok.pos)
        if tok.kind == "str":
            return Lit(tok.text[1:-1], tok.pos)
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return Lit(tok.text == "true", tok.pos)
        if tok.kind == "op" and tok.text == "(":
            self.nest(tok)
            inner = self.or_expr()
            self.depth -= 1
            self.expect(")")
            return inner
        if tok.kind == "op" and tok.text == "[":
            items: list[Node] = []
            while not (self.peek().kind == "op" and self.peek().text == "]"):
                items.append(self.operand())
                if self.peek().kind == "op" and self.peek().text == ",":
                    self.next()
                elif not (self.peek().kind == "op" and self.peek().text == "]"):
                    raise self.unexpected(self.peek())
            self.expect("]")
            return ListLit(tuple(items), tok.pos)
        if tok.kind == "name":
            parts = [tok.text]
            while self.peek().kind == "op" and self.peek().text == ".":
                self.next()
                part = self.next()
                if part.kind not in ("name", "kw"):
                    raise self.error(part, "「.」の後に名前が必要です", "expected a name after '.'")
                if part.text.startswith("_"):
                    raise self.error(
                        part, "「_」で始まる名前は使えません", "names starting with '_' are not allowed"
                    )
                parts.append(part.text)
            if self.peek().kind == "op" and self.peek().text == "(":
                open_tok = self.next()
                self.nest(open_tok)
                args: list[Node] = []
                while not (self.peek().kind == "op" and self.peek().text == ")"):
                    args.append(self.or_expr())
                    if self.peek().kind == "op" and self.peek().text == ",":
                        self.next()
                    elif not (self.peek().kind == "op" and self.peek().text == ")"):
                        raise self.unexpected(self.peek())
                self.depth -= 1
                self.expect(")")
                return Call(tuple(parts), tuple(args), tok.pos)
            return Ref(tuple(parts), tok.pos)
        raise self.unexpected(tok)


def parse(source: str) -> Node:
    """The syntax tree of a condition (no names checked yet). Raises ConditionError."""
    if len(source) > MAX_LENGTH:
        raise ConditionError(
            source[:80],
            0,
            f"条件が長すぎます（{MAX_LENGTH}文字まで）",
            f"condition longer than {MAX_LENGTH} characters",
        )
    return _Parser(source).parse()


def dump(node: Node) -> str:
    """A fully parenthesised rendering, to show (and test) how a condition was read."""
    if isinstance(node, Lit):
        if isinstance(node.value, bool):
            return "true" if node.value else "false"
        return repr(node.value) if isinstance(node.value, str) else str(node.value)
    if isinstance(node, Ref):
        return ".".join(node.parts)
    if isinstance(node, Call):
        return f"{'.'.join(node.parts)}({', '.join(dump(a) for a in node.args)})"
    if isinstance(node, ListLit):
        return f"[{', '.join(dump(i) for i in node.items)}]"
    if isinstance(node, Not):
        return f"(not {dump(node.operand)})"
    if isinstance(node, BoolOp):
        return "(" + f" {node.op} ".join(dump(o) for o in node.operands) + ")"
    chain = " ".join(f"{op} {dump(right)}" for op, right in node.ops)
    return f"({dump(node.left)} {chain})"


# -- typed, compiled tree -------------------------------------------------------------------------
Fn = Callable[[Env], Any]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "==", "in": "not in", "not in": "in"}

_CMP_TEXT: dict[str, tuple[str, str, str]] = {  # ja, easy, en — {label} {v}
    ">=": ("{label}が{v}以上", "{label}が {v} 以上", "{label} is {v} or more"),
    ">": ("{label}が{v}を超える", "{label}が {v} より 上", "{label} is more than {v}"),
    "<": ("{label}が{v}未満", "{label}が {v} より 下", "{label} is under {v}"),
    "<=": ("{label}が{v}以下", "{label}が {v} 以下", "{label} is {v} or less"),
    "==": ("{label}が{v}", "{label}が {v}", "{label} is {v}"),
    "!=": ("{label}が{v}ではない", "{label}が {v} では ない", "{label} is not {v}"),
    "in": ("{label}が{v}のいずれか", "{label}が {v} の どれか", "{label} is one of {v}"),
    "not in": ("{label}が{v}のいずれでもない", "{label}が {v} の どれでも ない", "{label} is none of {v}"),
}
_LANGS: tuple[Lang, Lang, Lang] = ("ja", "easy", "en")


class _T:
    """A checked node: its type, its evaluator and how to explain it."""

    __slots__ = ("fn", "pos", "type")

    def __init__(self, type_: VType | None, fn: Fn, pos: int) -> None:
        self.type = type_
        self.fn = fn
        self.pos = pos


class _TLit(_T):
    __slots__ = ("value",)

    def __init__(self, value: Any, type_: VType | None, pos: int) -> None:
        super().__init__(type_, lambda env: value, pos)
        self.value = value


class _TList(_T):
    __slots__ = ("values",)

    def __init__(self, values: tuple[Any, ...], type_: VType | None, pos: int) -> None:
        super().__init__(type_, lambda env: values, pos)
        self.values = values


class _TRef(_T):
    """A person attribute, a household fact, an answer or a household function call."""

    __slots__ = ("_labels", "arg", "description", "label", "name", "scope_kind", "values_", "var")

    def __init__(
        self,
        scope_kind: str,
        name: str,
        type_: VType,
        fn: Fn,
        pos: int,
        *,
        label: Text,
        var: Var | None = None,
        values: tuple[tuple[str, Text], ...] = (),
        unit: Text | None = None,
        true_text: Text | None = None,
        false_text: Text | None = None,
        fmt: Any = None,
        arg: Any = None,
    ) -> None:
        super().__init__(type_, fn, pos)
        self.scope_kind = scope_kind
        self.name = name
        self.label = label
        self.var = var
        self.values_ = values
        self.arg = arg
        self.description = (unit, true_text, false_text, fmt)
        self._labels: dict[str, Text] = {}

    def label_for(self, event: Text) -> Text:
        """The label with {event} filled in (cached per event)."""
        found = self._labels.get(event.ja)
        if found is None:
            found = Text(
                _fill(self.label.ja, event=event.ja),
                _fill(self.label.get("easy"), event=event.get("easy")),
                _fill(self.label.get("en"), event=event.get("en")),
            )
            self._labels[event.ja] = found
        return found

    def fmt_value(self, value: Any, lang: Lang) -> str:
        unit, _, _, fmt = self.description
        return format_value(value, lang, unit=unit, values=self.values_, fmt=fmt)

    def bool_text(self, want: bool, ctx: _Ctx) -> Text:
        key = f"{want}:{ctx.event.ja}"
        found = self._labels.get(key)
        if found is None:
            _, true_text, false_text, _ = self.description
            chosen = true_text if want else false_text
            if chosen is None:
                answer = "はい" if want else "いいえ"
                chosen = Text(
                    f"{self.label.ja}: {answer}",
                    f"{self.label.get('easy')}: {answer}",
                    f"{self.label.get('en')}: {'yes' if want else 'no'}",
                )
            found = ctx.fill(chosen)
            self._labels[key] = found
        return found


class _TNot(_T):
    __slots__ = ("operand",)

    def __init__(self, operand: _T, pos: int) -> None:
        g = operand.fn

        def fn(env: Env) -> bool | None:
            v = g(env)
            return None if v is None else not v

        super().__init__(VType.BOOL, fn, pos)
        self.operand = operand


class _TBool(_T):
    __slots__ = ("op", "operands")

    def __init__(self, op: str, operands: list[_T], pos: int) -> None:
        fns = tuple(o.fn for o in operands)
        if op == "and":

            def fn(env: Env) -> bool | None:
                unknown = False
                for g in fns:
                    v = g(env)
                    if v is False:
                        return False
                    if v is None:
                        unknown = True
                return None if unknown else True

        else:

            def fn(env: Env) -> bool | None:
                unknown = False
                for g in fns:
                    v = g(env)
                    if v is True:
                        return True
                    if v is None:
                        unknown = True
                return None if unknown else False

        super().__init__(VType.BOOL, fn, pos)
        self.op = op
        self.operands = operands


class _TCmp(_T):
    __slots__ = ("left", "op", "prefixes", "right")

    def __init__(self, left: _T, op: str, right: _T, pos: int) -> None:
        lf, rf = left.fn, right.fn
        if op in ("in", "not in"):
            assert isinstance(right, _TList)
            members = frozenset(right.values)
            negate = op == "not in"

            def fn(env: Env) -> bool | None:
                v = lf(env)
                if v is None:
                    return None
                return (v in members) is not negate

        elif isinstance(right, _TLit):
            compare = _OPS[op]
            literal = right.value

            def fn(env: Env) -> bool | None:
                v = lf(env)
                return None if v is None else compare(v, literal)

        else:
            compare = _OPS[op]

            def fn(env: Env) -> bool | None:
                a = lf(env)
                b = rf(env)
                return None if a is None or b is None else compare(a, b)

        super().__init__(VType.BOOL, fn, pos)
        self.left = left
        self.op = op
        self.right = right
        self.prefixes: dict[tuple[str, str], tuple[str, str, str]] = {}


class _TBetween(_T):
    """`lo <= x < hi` and the like, explained as one range (「20歳以上60歳未満」)."""

    __slots__ = ("hi", "hi_op", "lo", "lo_op", "ref")

    def __init__(self, lo: Any, lo_op: str, ref: _TRef, hi_op: str, hi: Any, pos: int) -> None:
        lo_cmp, hi_cmp, g = _OPS[lo_op], _OPS[hi_op], ref.fn

        def fn(env: Env) -> bool | None:
            v = g(env)
            return None if v is None else (lo_cmp(lo, v) and hi_cmp(v, hi))

        super().__init__(VType.BOOL, fn, pos)
        self.lo, self.lo_op, self.ref, self.hi_op, self.hi = lo, lo_op, ref, hi_op, hi


class _Ctx:
    """What explanations need beside the facts: the event's name and the environment."""

    __slots__ = ("env", "event")

    def __init__(self, env: Env, event: Text) -> None:
        self.env = env
        self.event = event

    def fill(self, text: Text) -> Text:
        return Text(
            _fill(text.ja, event=self.event.ja),
            _fill(text.get("easy"), event=self.event.get("easy")),
            _fill(text.get("en"), event=self.event.get("en")),
        )


def _explain(node: _T, want: bool, ctx: _Ctx) -> list[Text]:
    """Why `node` evaluated to `want` (call only when it did)."""
    if isinstance(node, _TNot):
        return _explain(node.operand, not want, ctx)
    if isinstance(node, _TBool):
        # `and` true / `or` false: every operand counts; otherwise the first decisive one does.
        if (node.op == "and") == want:
            out: list[Text] = []
            for o in node.operands:
                out += _explain(o, want, ctx)
            return out
        for o in node.operands:
            if o.fn(ctx.env) is want:
                return _explain(o, want, ctx)
        return []
    if isinstance(node, _TRef):
        return [node.bool_text(want, ctx)]
    if isinstance(node, _TCmp):
        return [_describe_cmp(node, node.op if want else _NEGATE[node.op], ctx)]
    if isinstance(node, _TBetween):
        return [_describe_between(node, want, ctx)]
    if isinstance(node, _TLit):
        return []
    return []


def _describe_cmp(node: _TCmp, op: str, ctx: _Ctx) -> Text:
    left, right = node.left, node.right
    if not isinstance(left, _TRef):
        return Text(f"条件「{op}」が成り立っています", en=f"the comparison '{op}' holds")
    # The text before the actual value depends only on the operator and the event: cached.
    key = (op, ctx.event.ja)
    prefix = node.prefixes.get(key) if isinstance(right, _TLit | _TList) else None
    if prefix is None:
        parts: list[str] = []
        for lang in _LANGS:
            label = left.label_for(ctx.event).get(lang)
            if isinstance(right, _TList):
                sep = ", " if lang == "en" else ""
                v = sep.join(left.fmt_value(x, lang) for x in right.values)
            elif isinstance(right, _TLit):
                v = left.fmt_value(right.value, lang)
            else:
                assert isinstance(right, _TRef)
                other = right.fmt_value(right.fn(ctx.env), lang)
                v = f"{right.label_for(ctx.event).get(lang)}" + (
                    f" ({other})" if lang == "en" else f"（{other}）"
                )
            parts.append(_CMP_TEXT[op][_LANGS.index(lang)].format(label=label, v=v))
        prefix = (parts[0], parts[1], parts[2])
        if isinstance(right, _TLit | _TList):
            node.prefixes[key] = prefix
    if op == "==" and isinstance(right, _TLit):
        return Text(*prefix)
    actual = left.fn(ctx.env)
    return Text(
        f"{prefix[0]}（{left.fmt_value(actual, 'ja')}）",
        f"{prefix[1]}（{left.fmt_value(actual, 'easy')}）",
        f"{prefix[2]} ({left.fmt_value(actual, 'en')})",
    )


def _describe_between(node: _TBetween, want: bool, ctx: _Ctx) -> Text:
    ref = node.ref
    actual = ref.fn(ctx.env)
    # Inclusive bounds for the plain-language registers: 20 <= age < 60 → 「20さい から 59さい まで」.
    first = node.lo if node.lo_op == "<=" else node.lo + 1
    last = node.hi - 1 if node.hi_op == "<" else node.hi
    lo_ja = "以上" if node.lo_op == "<=" else "を超え"
    hi_ja = "未満" if node.hi_op == "<" else "以下"
    label = {lang: ref.label_for(ctx.event).get(lang) for lang in _LANGS}
    shown = {lang: ref.fmt_value(actual, lang) for lang in _LANGS}
    ja = f"{label['ja']}が{ref.fmt_value(node.lo, 'ja')}{lo_ja}{ref.fmt_value(node.hi, 'ja')}{hi_ja}"
    easy = f"{label['easy']}が {ref.fmt_value(first, 'easy')} から {ref.fmt_value(last, 'easy')} まで"
    en = f"{label['en']} is {'' if want else 'not '}between {first} and {last}"
    if not want:
        ja += "ではない"
        easy += " では ない"
    return Text(f"{ja}（{shown['ja']}）", f"{easy}（{shown['easy']}）", f"{en} ({shown['en']})")


_FROM_BIRTH_DATE = frozenset(
    {"age", "age_at_event", "school_grade", "school_year_age", "is_preschool", "is_child_for_allowance"}
)
_BIRTH_DATE = Text("生年月日", "生まれた 日", "date of birth")


def _unknown_refs(node: _T, env: Env, out: dict[str, Text]) -> None:
    if isinstance(node, _TRef):
        if node.fn(env) is None:
            if node.scope_kind == "answer":
                out[node.name] = node.label
            elif node.scope_kind == "person" and node.name in _FROM_BIRTH_DATE:
                out["birth_date"] = _BIRTH_DATE
            elif node.scope_kind == "household":
                out["birth_date"] = Text(
                    "世帯員の生年月日", "家族の 生まれた 日", "household members' dates of birth"
                )
            else:
                out[node.name] = node.label
        return
    if isinstance(node, _TNot):
        _unknown_refs(node.operand, env, out)
    elif isinstance(node, _TBool):
        for o in node.operands:
            _unknown_refs(o, env, out)
    elif isinstance(node, _TCmp):
        _unknown_refs(node.left, env, out)
        _unknown_refs(node.right, env, out)
    elif isinstance(node, _TBetween):
        _unknown_refs(node.ref, env, out)


def _refs(node: _T, out: list[_TRef]) -> None:
    if isinstance(node, _TRef):
        out.append(node)
    elif isinstance(node, _TNot):
        _refs(node.operand, out)
    elif isinstance(node, _TBool):
        for o in node.operands:
            _refs(o, out)
    elif isinstance(node, _TCmp):
        _refs(node.left, out)
        _refs(node.right, out)
    elif isinstance(node, _TBetween):
        _refs(node.ref, out)


_MEMO_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A checked condition. `evaluate(env)` → True / False / None (unknown).

    Explanations are a pure function of the event and the values the condition reads, so they
    are memoised on those values (ages, answers, flags: a small domain, bounded in size)."""

    source: str
    evaluate: Callable[[Env], bool | None]
    root: _T
    answers_used: frozenset[str]
    person_used: frozenset[str]
    refs: tuple[Callable[[Env], Any], ...] = ()
    memo: dict[tuple[Any, ...], tuple[Text, ...]] = field(default_factory=dict, compare=False, repr=False)

    def explain(self, env: Env, event: Text) -> tuple[Text, ...]:
        """Why the condition holds for `env` (the parts that made it true, with actual values)."""
        key = (event.ja, *(ref(env) for ref in self.refs))
        found = self.memo.get(key)
        if found is None:
            found = tuple(_explain(self.root, True, _Ctx(env, event)))
            if len(self.memo) >= _MEMO_LIMIT:
                self.memo.clear()
            self.memo[key] = found
        return found

    def unknowns(self, env: Env, event: Text) -> tuple[Text, ...]:
        """The facts that were unknown, for a condition that evaluated to None."""
        found: dict[str, Text] = {}
        _unknown_refs(self.root, env, found)
        ctx = _Ctx(env, event)
        return tuple(ctx.fill(t) for t in found.values())


class _Checker:
    def __init__(self, source: str, scope: Scope) -> None:
        self.source = source
        self.scope = scope
        self.answers_used: set[str] = set()
        self.person_used: set[str] = set()

    def error(self, pos: int, ja: str, en: str) -> ConditionError:
        return ConditionError(self.source, pos, ja, en)

    def check(self, node: Node) -> _T:
        if isinstance(node, Lit):
            value = node.value
            type_ = (
                VType.BOOL if isinstance(value, bool) else VType.INT if isinstance(value, int) else VType.STR
            )
            return _TLit(value, type_, node.pos)
        if isinstance(node, ListLit):
            raise self.error(
                node.pos,
                "リスト [ … ] は in / not in の右側でだけ使えます",
                "a list [ … ] only goes right of in / not in",
            )
        if isinstance(node, Ref):
            return self.ref(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Not):
            operand = self.check(node.operand)
            self.need_bool(operand, "not")
            return _TNot(operand, node.pos)
        if isinstance(node, BoolOp):
            operands = [self.check(o) for o in node.operands]
            for o in operands:
                self.need_bool(o, node.op)
            return _TBool(node.op, operands, node.pos)
        return self.compare(node)

    def need_bool(self, node: _T, op: str) -> None:
        if node.type is not VType.BOOL:
            raise self.error(
                node.pos,
                f"{op} の前後には、はい/いいえになる式を書いてください（ここは{_TYPE_JA.get(node.type or VType.STR)}）",
                f"'{op}' needs yes/no operands (this is a {_TYPE_EN.get(node.type or VType.STR)})",
            )

    def known_names(self) -> str:
        names = sorted(PERSON_VARS) if self.scope.person else []
        names += [f"household.{n}" for n in sorted(HOUSEHOLD_VARS)]
        names += [f"household.{n}(…)" for n in sorted(HOUSEHOLD_FUNCS)]
        names += [f"answer.{n}" for n in sorted(self.scope.answers)]
        return ", ".join(names)

    def ref(self, node: Ref) -> _T:
        parts = node.parts
        head = parts[0]
        if head == "answer":
            if len(parts) != 2:
                raise self.error(
                    node.pos,
                    "answer の後には「.質問のid」を一つだけ書いてください",
                    "write answer.<question id>",
                )
            spec = self.scope.answers.get(parts[1])
            if spec is None:
                known = ", ".join(sorted(self.scope.answers)) or "（なし / none）"
                raise self.error(
                    node.pos,
                    f"質問「{parts[1]}」はこの手続きのイベントにありません。使える質問: {known}",
                    f"no question '{parts[1]}' in this procedure's events; questions: {known}",
                )
            self.answers_used.add(spec.id)
            key = spec.id
            label = Text(
                f"「{spec.text.ja}」への回答",
                f"「{spec.text.get('easy')}」の こたえ",
                f'the answer to "{spec.text.get("en")}"',
            )
            true_text: Text | None = None
            false_text: Text | None = None
            if spec.type is VType.BOOL:
                true_text = Text(
                    f"「{spec.text.ja}」に「はい」と回答",
                    f"「{spec.text.get('easy')}」に「はい」と こたえました",
                    f'answered "yes" to "{spec.text.get("en")}"',
                )
                false_text = Text(
                    f"「{spec.text.ja}」に「いいえ」と回答",
                    f"「{spec.text.get('easy')}」に「いいえ」と こたえました",
                    f'answered "no" to "{spec.text.get("en")}"',
                )
            return _TRef(
                "answer",
                key,
                spec.type,
                lambda env: env.answers.get(key),
                node.pos,
                label=label,
                values=spec.values,
                true_text=true_text,
                false_text=false_text,
            )
        if head == "household":
            if len(parts) != 2:
                raise self.error(
                    node.pos, "household の後には「.名前」を一つだけ書いてください", "write household.<name>"
                )
            name = parts[1]
            if name in HOUSEHOLD_FUNCS:
                raise self.error(
                    node.pos,
                    f"「household.{name}」は関数です。household.{name}(6) のように ( ) を付けてください",
                    f"household.{name} is a function: call it, e.g. household.{name}(6)",
                )
            var = HOUSEHOLD_VARS.get(name)
            if var is None:
                raise self.unknown(node.pos, f"household.{name}")
            return _TRef(
                "household",
                name,
                var.type,
                lambda env: env.household.values[name],
                node.pos,
                label=var.label,
                var=var,
                values=var.values,
                unit=var.unit,
                true_text=var.true_text,
                false_text=var.false_text,
                fmt=var.fmt,
            )
        if len(parts) != 1:
            raise self.unknown(node.pos, ".".join(parts))
        var = PERSON_VARS.get(head)
        if var is None:
            raise self.unknown(node.pos, head)
        if not self.scope.person:
            raise self.error(
                node.pos,
                f"「{head}」は一人ひとりの属性です。世帯単位の条件では使えません"
                "（個人単位 level: person にするか、members: に書いてください）",
                f"'{head}' is a person attribute and cannot be used in a household-level condition "
                "(use level: person, or the members: filter)",
            )
        self.person_used.add(head)
        return _TRef(
            "person",
            head,
            var.type,
            lambda env: env.person[head],
            node.pos,
            label=var.label,
            var=var,
            values=var.values,
            unit=var.unit,
            true_text=var.true_text,
            false_text=var.false_text,
            fmt=var.fmt,
        )

    def unknown(self, pos: int, name: str) -> ConditionError:
        return self.error(
            pos,
            f"「{name}」という名前はありません。使える名前: {self.known_names()}",
            f"unknown name '{name}'; known names: {self.known_names()}",
        )

    def call(self, node: Call) -> _T:
        parts = node.parts
        dotted = ".".join(parts)
        if len(parts) != 2 or parts[0] != "household" or parts[1] not in HOUSEHOLD_FUNCS:
            if len(parts) == 2 and parts[0] == "household" and parts[1] in HOUSEHOLD_VARS:
                raise self.error(
                    node.pos,
                    f"「{dotted}」は関数ではありません。( ) を外してください",
                    f"'{dotted}' is not a function",
                )
            raise self.error(
                node.pos,
                f"「{dotted}」という関数はありません。使える関数: "
                + ", ".join(f"household.{n}(…)" for n in sorted(HOUSEHOLD_FUNCS)),
                f"unknown function '{dotted}'; functions: "
                + ", ".join(f"household.{n}(…)" for n in sorted(HOUSEHOLD_FUNCS)),
            )
        func = HOUSEHOLD_FUNCS[parts[1]]
        if len(node.args) != 1:
            raise self.error(
                node.pos,
                f"「{dotted}」には引数を一つだけ書いてください",
                f"'{dotted}' takes exactly one argument",
            )
        arg_node = node.args[0]
        if not isinstance(arg_node, Lit) or isinstance(arg_node.value, bool):
            raise self.error(
                getattr(arg_node, "pos", node.pos),
                f"「{dotted}」の引数には数か文字列をそのまま書いてください",
                f"the argument of '{dotted}' must be a number or a string literal",
            )
        arg = arg_node.value
        arg_type = VType.INT if isinstance(arg, int) else VType.STR
        if arg_type is not func.arg_type:
            raise self.error(
                arg_node.pos,
                f"「{dotted}」の引数は{_TYPE_JA[func.arg_type]}です",
                f"the argument of '{dotted}' must be a {_TYPE_EN[func.arg_type]}",
            )
        arg_label: Text
        if func.arg_values:
            label = next((t for v, t in func.arg_values if v == arg), None)
            if label is None:
                allowed = ", ".join(v for v, _ in func.arg_values)
                raise self.error(
                    arg_node.pos,
                    f"「{arg}」は使えません。使える値: {allowed}",
                    f"'{arg}' is not allowed; values: {allowed}",
                )
            arg_label = label
        else:
            arg_label = Text(str(arg))

        def fill(t: Text | None) -> Text | None:
            if t is None:
                return None
            return Text(
                _fill(t.ja, arg=arg_label.ja),
                _fill(t.get("easy"), arg=arg_label.get("easy")),
                _fill(t.get("en"), arg=arg_label.get("en")),
            )

        impl = func.impl
        label_text = fill(func.label)
        assert label_text is not None
        return _TRef(
            "household",
            f"{func.name}({arg})",
            func.result,
            lambda env: impl(env.household, arg),
            node.pos,
            label=label_text,
            unit=func.unit,
            true_text=fill(func.true_text),
            false_text=fill(func.false_text),
            arg=arg,
        )

    def compare(self, node: Compare) -> _T:
        operands: list[tuple[str, Node]] = list(node.ops)
        if len(operands) == 2:
            between = self.between(node)
            if between is not None:
                return between
        links: list[_T] = []
        left_node = node.left
        left = self.check(left_node) if not isinstance(left_node, ListLit) else None
        for op, right_node in operands:
            links.append(self.link(left, left_node, op, right_node, node.pos))
            left_node = right_node
            left = self.check(right_node) if not isinstance(right_node, ListLit) else None
        return links[0] if len(links) == 1 else _TBool("and", links, node.pos)

    def between(self, node: Compare) -> _T | None:
        (op1, mid), (op2, right) = node.ops
        if not (
            isinstance(node.left, Lit)
            and isinstance(right, Lit)
            and isinstance(mid, Ref | Call)
            and op1 in ("<", "<=")
            and op2 in ("<", "<=")
        ):
            return None
        ref = self.check(mid)
        if not isinstance(ref, _TRef) or ref.type is not VType.INT:
            return None
        for lit in (node.left, right):
            if isinstance(lit.value, bool) or not isinstance(lit.value, int):
                raise self.mismatch(lit.pos, ref, VType.STR if isinstance(lit.value, str) else VType.BOOL)
        return _TBetween(node.left.value, op1, ref, op2, right.value, node.pos)

    def mismatch(self, pos: int, ref: _T, other: VType | None) -> ConditionError:
        a, b = ref.type or VType.STR, other or VType.STR
        return self.error(
            pos,
            f"{_TYPE_JA[a]}と{_TYPE_JA[b]}は比べられません",
            f"cannot compare a {_TYPE_EN[a]} with a {_TYPE_EN[b]}",
        )

    def link(self, left: _T | None, left_node: Node, op: str, right_node: Node, pos: int) -> _T:
        if left is None:
            raise self.error(
                left_node.pos,
                "リスト [ … ] は in / not in の右側でだけ使えます",
                "a list only goes right of in / not in",
            )
        if op in ("in", "not in"):
            if not isinstance(right_node, ListLit):
                raise self.error(
                    right_node.pos,
                    f"{op} の右側には [ 'a', 'b' ] のようなリストを書いてください",
                    f"the right of '{op}' must be a list such as ['a', 'b']",
                )
            if not right_node.items:
                raise self.error(right_node.pos, "空のリストは使えません", "the list is empty")
            values: list[Any] = []
            for item in right_node.items:
                if not isinstance(item, Lit):
                    raise self.error(
                        item.pos,
                        "リストには数か文字列をそのまま書いてください",
                        "list items must be literals",
                    )
                self.literal_fits(left, item)
                values.append(item.value)
            return _TCmp(left, op, _TList(tuple(values), left.type, right_node.pos), pos)
        right = self.check(right_node)
        if isinstance(left, _TLit) and isinstance(right, _TLit):
            raise self.error(
                left.pos,
                "値どうしを比べても意味がありません。名前を一つ使ってください",
                "compare a name, not two values",
            )
        if isinstance(left, _TLit):  # 65 <= age → age >= 65
            left, right, op = right, left, _FLIP[op]
            assert isinstance(right, _TLit)
        if isinstance(right, _TLit):
            self.literal_fits(left, Lit(right.value, right.pos))
        elif left.type is not right.type:
            raise self.mismatch(right.pos, left, right.type)
        if op not in ("==", "!=") and left.type not in (VType.INT, VType.DATE):
            raise self.error(
                pos,
                f"「{op}」などの大小の比較は数と日付にだけ使えます",
                f"'{op}' only compares numbers and dates",
            )
        if left.type is VType.BOOL and isinstance(right, _TLit):
            # `x == true` is `x`, `x != true` is `not x`: explained as the plain yes/no fact.
            positive = (op == "==") == bool(right.value)
            return left if positive else _TNot(left, pos)
        return _TCmp(left, op, right, pos)

    def literal_fits(self, ref: _T, lit: Lit) -> None:
        value = lit.value
        lit_type = (
            VType.BOOL if isinstance(value, bool) else VType.INT if isinstance(value, int) else VType.STR
        )
        if ref.type is VType.DATE:
            raise self.error(
                lit.pos,
                "日付は値と比べられません（日付どうしを比べてください）",
                "dates can only be compared with dates",
            )
        if lit_type is not ref.type:
            raise self.mismatch(lit.pos, ref, lit_type)
        if isinstance(ref, _TRef) and ref.values_ and isinstance(value, str):
            allowed = [v for v, _ in ref.values_]
            if value not in allowed:
                shown = ", ".join(allowed[:12]) + (" …" if len(allowed) > 12 else "")
                raise self.error(
                    lit.pos,
                    f"「{value}」は「{ref.name}」の値にありません。使える値: {shown}",
                    f"'{value}' is not a value of '{ref.name}'; values: {shown}",
                )


def compile_condition(source: str, scope: Scope) -> CompiledCondition:
    """Parse and check a condition against `scope`; raises ConditionError with the position."""
    tree = parse(source)
    checker = _Checker(source, scope)
    root = checker.check(tree)
    if root.type is not VType.BOOL:
        raise ConditionError(
            source,
            root.pos,
            "条件全体が、はい/いいえになる式にしてください（例: age >= 20）",
            "the whole condition must be yes/no (e.g. age >= 20)",
        )
    refs: list[_TRef] = []
    _refs(root, refs)
    return CompiledCondition(
        source=source,
        evaluate=root.fn,
        root=root,
        answers_used=frozenset(checker.answers_used),
        person_used=frozenset(checker.person_used),
        refs=tuple(r.fn for r in refs),
    )


# -- placeholders in staff-written texts ----------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)\}")


def placeholders(text: Text) -> set[str]:
    """The {names} a text uses."""
    found: set[str] = set()
    for lang in _LANGS:
        found.update(_PLACEHOLDER.findall(text.get(lang)))
    return found


def _placeholder_value(name: str, env: Env, event: Text, person_name: str, lang: Lang) -> str | None:
    if name == "event":
        return event.get(lang)
    if name == "name":
        return person_name
    if name.startswith("answer."):
        key = name.removeprefix("answer.")
        if key not in env.answers:
            return None
        return format_value(env.answers[key], lang)
    if name.startswith("household."):
        var = HOUSEHOLD_VARS.get(name.removeprefix("household."))
        if var is None:
            return None
        return format_value(
            env.household.values[var.name], lang, unit=var.unit, values=var.values, fmt=var.fmt
        )
    person_var = PERSON_VARS.get(name)
    if person_var is None or name not in env.person:
        return None
    return format_value(
        env.person[name], lang, unit=person_var.unit, values=person_var.values, fmt=person_var.fmt
    )


def render_placeholders(text: Text, env: Env, event: Text, person_name: str = "") -> Text:
    """Fill {event}, {name}, person attributes ({age_at_event} → 「67歳」), {answer.<id>} and
    {household.<name>} in a staff-written text. Only these names are looked up — never
    attributes of Python objects (no str.format)."""
    return Template(text).render(env, event, person_name)


class Template:
    """A staff-written text split once into literal parts and placeholders, for fast rendering."""

    __slots__ = ("parts",)

    def __init__(self, text: Text) -> None:
        self.parts: dict[Lang, tuple[tuple[str, str | None], ...]] = {}
        for lang in _LANGS:
            source = text.get(lang)
            pieces: list[tuple[str, str | None]] = []
            last = 0
            for m in _PLACEHOLDER.finditer(source):
                pieces.append((source[last : m.start()], m.group(1)))
                last = m.end()
            pieces.append((source[last:], None))
            self.parts[lang] = tuple(pieces)

    def render(self, env: Env, event: Text, person_name: str = "") -> Text:
        out: list[str] = []
        for lang in _LANGS:
            chunks: list[str] = []
            for literal, name in self.parts[lang]:
                chunks.append(literal)
                if name is not None:
                    value = _placeholder_value(name, env, event, person_name, lang)
                    chunks.append("{" + name + "}" if value is None else value)
            out.append("".join(chunks))
        return Text(*out)
