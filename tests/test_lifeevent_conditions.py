"""The life-event condition language: parsing, precedence, checking, errors with positions,
three-valued evaluation, explanations, and that no input can run code."""

from __future__ import annotations

import ast
import builtins
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from app.domain.lifeevents.conditions import (
    HOUSEHOLD_VARS,
    PERSON_VARS,
    AnswerSpec,
    ConditionError,
    Env,
    HouseholdFacts,
    Scope,
    VType,
    compile_condition,
    dump,
    parse,
    person_facts,
    render_placeholders,
)
from app.domain.lifeevents.model import Insurance, Member, PensionType, Text

EVENT = Text("転入", "ひっこし", "moving in")
ANSWERS = {
    "has_dog": AnswerSpec(
        "has_dog", VType.BOOL, Text("犬を飼っていますか？", "犬を かって いますか？", "Do you have a dog?")
    ),
    "dog_count": AnswerSpec("dog_count", VType.INT, Text("犬は何頭？", en="How many dogs?")),
    "destination": AnswerSpec(
        "destination",
        VType.STR,
        Text("どこへ？", en="Where to?"),
        (("domestic", Text("国内", en="In Japan")), ("abroad", Text("国外", en="Abroad"))),
    ),
}
PERSON = Scope(person=True, answers=ANSWERS)
HOUSEHOLD = Scope(person=False, answers=ANSWERS)


def env_for(member: Member, answers: dict[str, Any] | None = None, *, day: date = date(2025, 4, 10)) -> Env:
    facts = person_facts(
        member, event_date=day, today=day, applicant_id=member.id, subject_ids=frozenset({member.id})
    )
    return Env(facts, answers or {}, HouseholdFacts([facts]))


ADULT = Member("a", "山田", date(1993, 1, 15), "世帯主", insurance=Insurance.KOKUHO, pension=PensionType.DAI1)


# -- parsing and precedence -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("a or b and c", "(a or (b and c))"),
        ("a and b or c", "((a and b) or c)"),
        ("not a or b", "((not a) or b)"),
        ("not a and not b", "((not a) and (not b))"),
        ("not not a", "(not (not a))"),
        ("not age >= 20", "(not (age >= 20))"),  # not binds looser than comparisons
        ("(a or b) and c", "((a or b) and c)"),
        ("a or b or c", "(a or b or c)"),
        ("20 <= age < 60", "(20 <= age < 60)"),
        ("x not in ['a', 'b']", "(x not in ['a', 'b'])"),
        ("x in [1, 2,]", "(x in [1, 2])"),
        ("household.has_child_under(6)", "household.has_child_under(6)"),
        ("answer.has_dog == true", "(answer.has_dog == true)"),
        ('relationship == "世帯主"', "(relationship == '世帯主')"),
    ],
)
def test_precedence(source: str, tree: str) -> None:
    assert dump(parse(source)) == tree


def test_whitespace_and_newlines_are_free() -> None:
    assert dump(parse("age>=20\n  and\tis_foreign")) == "((age >= 20) and is_foreign)"


# -- errors with positions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "position", "fragment_ja"),
    [
        ("age = 20", 4, "=="),
        ("age >= ", 7, "途中で終わって"),
        ("age >= 20 and", 13, "途中で終わって"),
        ("(age > 3", 8, "「)」が必要"),
        ("age > 3)", 7, "「)」"),
        ("age >= 20 && is_foreign", 10, "and"),
        ("!is_foreign", 0, "not"),
        ("年齢 > 3", 0, "引用符"),
        ("relationship == '世帯主", 16, "引用符"),
        ("age >= 20 @", 10, "使えない文字"),
        ("", 0, "空"),
        ("age >= 20 is_foreign", 10, "is_foreign"),
        ("x in [1 2]", 8, "2"),
    ],
)
def test_syntax_errors_carry_positions(source: str, position: int, fragment_ja: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(source, PERSON)
    err = caught.value
    assert err.position == position
    assert err.column == position + 1
    assert fragment_ja in err.message_ja
    assert err.message_en  # both languages
    assert "^" in str(err)  # a caret under the position


@pytest.mark.parametrize(
    ("source", "position", "fragment_ja", "fragment_en"),
    [
        ("agee >= 20", 0, "agee", "unknown name"),
        ("insurance == 'kokuhoo'", 13, "kokuhoo", "not a value of 'insurance'"),
        ("age >= '20'", 7, "比べられません", "cannot compare"),
        ("insurance < 'kokuho'", 0, "大小", "only compares numbers"),
        ("age", 0, "はい/いいえ", "yes/no"),
        ("age and is_foreign", 0, "and", "yes/no"),
        ("answer.nope", 0, "nope", "no question"),
        ("answer.has_dog.x", 0, "answer", "answer.<question id>"),
        ("household.has_child_under", 0, "関数", "function"),
        ("household.size(3)", 0, "関数ではありません", "not a function"),
        ("household.has_child_under(6, 7)", 0, "一つだけ", "exactly one"),
        ("household.has_child_under(age)", 26, "そのまま", "literal"),
        ("household.has_insurance('kokuhoo')", 24, "kokuhoo", "not allowed"),
        ("household.has_child_under('6')", 26, "数", "number"),
        ("age in 3", 7, "リスト", "list"),
        ("insurance in []", 13, "空のリスト", "empty"),
        ("insurance in ['kokuho', 3]", 24, "比べられません", "cannot compare"),
        ("1 == 1", 0, "値どうし", "two values"),
        ("[1] == age", 0, "リスト", "list"),
        ("answer.destination == 'mars'", 22, "mars", "destination"),
        ("relationship == '祖母'", 16, "祖母", "relationship"),
    ],
)
def test_check_errors_carry_positions(source: str, position: int, fragment_ja: str, fragment_en: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(source, PERSON)
    assert caught.value.position == position
    assert fragment_ja in caught.value.message_ja
    assert fragment_en in caught.value.message_en


def test_person_attributes_are_refused_in_household_conditions() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("household.size >= 2 and age >= 20", HOUSEHOLD)
    assert caught.value.position == 24
    assert "個人" in caught.value.message_ja or "一人ひとり" in caught.value.message_ja
    compile_condition("household.size >= 2 and answer.has_dog", HOUSEHOLD)  # fine


def test_limits_on_length_and_nesting() -> None:
    with pytest.raises(ConditionError, match="長すぎ"):
        parse("is_foreign or " * 200 + "is_foreign")
    with pytest.raises(ConditionError, match="入れ子"):
        parse("(" * 100 + "is_foreign" + ")" * 100)
    with pytest.raises(ConditionError, match="入れ子"):
        parse("not " * 100 + "is_foreign")
    with pytest.raises(ConditionError, match="大きすぎ"):
        parse("age > 12345678901234567890")


# -- no code can run --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "__import__('os').system('touch /tmp/pwned')",
        "__import__",
        "age.__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "eval('1')",
        "exec('import os')",
        "open('/etc/passwd')",
        "lambda: 1",
        "[x for x in age]",
        "age if True else 1",
        "age; import os",
        "getattr(age, 'real')",
        "household.__dict__",
        "answer.__class__",
        "f'{age}'",
        "age ** 99999999",
        "age + 1 > 2",
    ],
)
def test_code_is_never_executed(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the condition language must never reach eval/exec/__import__")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "__import__", forbidden)
    with pytest.raises(ConditionError):
        compile_condition(source, PERSON)


def test_the_package_never_calls_eval_exec_or_compile() -> None:
    package = Path(__file__).resolve().parent.parent / "app" / "domain" / "lifeevents"
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__"}, (
                    f"{path.name}: {node.func.id}"
                )


def test_placeholders_cannot_reach_python_attributes() -> None:
    env = env_for(ADULT)
    text = Text("{name.__class__} {__class__} {age} {age.real} {unknown}")
    out = render_placeholders(text, env, EVENT, "山田")
    assert out.ja == "{name.__class__} {__class__} 32歳 {age.real} {unknown}"


# -- evaluation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("age >= 20", True),
        ("age >= 33", False),
        ("20 <= age < 60", True),
        ("60 <= age < 65", False),
        ("age == 32 and not is_foreign", True),
        ("insurance == 'kokuho'", True),
        ("insurance in ['employer', 'koki']", False),
        ("insurance not in ['employer', 'koki']", True),
        ("pension != 'dai2'", True),
        ("is_head and relationship == '世帯主'", True),
        ("is_applicant and is_subject", True),
        ("answer.has_dog", True),
        ("answer.has_dog == false", False),
        ("answer.has_dog != true", False),
        ("answer.dog_count >= 2", True),
        ("answer.destination == 'abroad'", False),
        ("household.size == 1", True),
        ("household.has_child_under(6)", False),
        ("household.count_aged_at_least(20) >= 1", True),
        ("household.has_insurance('kokuho')", True),
        ("not household.head_is_subject", False),
        ("school_grade == 0", True),
        ("is_child_for_allowance", False),
    ],
)
def test_evaluation(source: str, expected: bool) -> None:
    env = env_for(ADULT, {"has_dog": True, "dog_count": 2, "destination": "domestic"})
    assert compile_condition(source, PERSON).evaluate(env) is expected


def test_unknown_facts_make_unknown_results_kleene_style() -> None:
    nobody = Member("x", "不明", None)
    env = env_for(nobody)
    assert compile_condition("age >= 20", PERSON).evaluate(env) is None
    assert compile_condition("not age >= 20", PERSON).evaluate(env) is None
    assert compile_condition("age >= 20 or not is_foreign", PERSON).evaluate(env) is True
    assert compile_condition("age >= 20 and is_foreign", PERSON).evaluate(env) is False
    assert compile_condition("age >= 20 and not is_foreign", PERSON).evaluate(env) is None
    assert compile_condition("answer.has_dog", PERSON).evaluate(env) is None  # unanswered
    unknowns = compile_condition("age >= 20 and answer.has_dog", PERSON).unknowns(env, EVENT)
    assert [t.ja for t in unknowns] == ["生年月日", "「犬を飼っていますか？」への回答"]


# -- explanations ---------------------------------------------------------------------------------------
def explain(source: str, env: Env) -> list[Text]:
    compiled = compile_condition(source, PERSON)
    assert compiled.evaluate(env) is True
    return list(compiled.explain(env, EVENT))


def test_explanations_name_the_facts_and_values_in_three_registers() -> None:
    env = env_for(ADULT, {"has_dog": True, "dog_count": 2})
    (between,) = explain("20 <= age_at_event < 60", env)
    assert between.ja == "転入の日の年齢が20歳以上60歳未満（32歳）"
    assert between.easy == "その 日の 年齢が 20さい から 59さい まで（32さい）"
    assert between.en == "age on the event date is between 20 and 59 (32)"
    (kokuho,) = explain("insurance not in ['employer', 'koki']", env)
    assert kokuho.ja == "健康保険が「職場の健康保険」「後期高齢者医療」のいずれでもない（「国民健康保険」）"
    assert "National Health Insurance" in kokuho.en
    (dog,) = explain("answer.has_dog", env)
    assert dog.ja == "「犬を飼っていますか？」に「はい」と回答"
    assert dog.en == 'answered "yes" to "Do you have a dog?"'


def test_explanations_follow_the_branch_that_held() -> None:
    env = env_for(ADULT, {"has_dog": False})
    texts = explain("age >= 75 or (age >= 20 and not answer.has_dog)", env)
    assert [t.ja for t in texts] == [
        "今日の年齢が20歳以上（32歳）",
        "「犬を飼っていますか？」に「いいえ」と回答",
    ]
    (negated,) = explain("not (age >= 65)", env)
    assert negated.ja == "今日の年齢が65歳未満（32歳）"
    (demorgan_a, demorgan_b) = explain("not (is_foreign or has_my_number_card)", env)
    assert demorgan_a.ja == "日本国籍の方です"
    assert demorgan_b.ja == "マイナンバーカードをお持ちではありません"
    (flipped,) = explain("65 > age", env)  # literal on the left reads as "age < 65"
    assert flipped.ja == "今日の年齢が65歳未満（32歳）"


def test_household_function_explanations() -> None:
    child = Member("c", "子", date(2021, 5, 1), "子")
    day = date(2025, 4, 10)
    persons = [
        person_facts(m, event_date=day, today=day, applicant_id="a", subject_ids=frozenset({"a", "c"}))
        for m in (ADULT, child)
    ]
    env = Env(persons[0], {}, HouseholdFacts(persons))
    (under6,) = explain("household.has_child_under(6)", env)
    assert under6.ja == "6歳未満の方が世帯にいます"
    (count,) = explain("household.count_aged_at_least(15) >= 1", env)
    assert count.ja == "15歳以上の世帯員の人数が1人以上（1人）"
    (preschool,) = explain("household.has_preschool_child", env)
    assert preschool.en == "there is a child below school age"


def test_vocabulary_matches_the_facts_the_engine_computes() -> None:
    facts = person_facts(
        ADULT, event_date=date(2025, 4, 1), today=date(2025, 4, 1), applicant_id=None, subject_ids=frozenset()
    )
    assert set(facts) == set(PERSON_VARS)
    assert set(HouseholdFacts([facts]).values) == set(HOUSEHOLD_VARS)
