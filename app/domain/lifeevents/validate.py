"""Checking a resident's answers before the rules run: impossible or out-of-window answers are
explained in 日本語 / やさしい日本語 / English, never just rejected.

- each answer must fit its question (yes/no, one of the options, a whole number in range, a
  date inside the question's windows — e.g. 転出の予定日 at most 14 days ahead);
- hidden questions (their `when` is false) are ignored, required visible ones must be answered;
- the event date must be inside the event's windows (no 転入 in the future, no birth tomorrow);
- the people the event is about (subjects) must exist and be as many as the event allows;
- members' birth dates must not be in the future or after the event date;
- the event's own data-driven checks (`checks:` in the YAML), e.g. 「亡くなった方ご本人は届出人に
  なれません」.

Errors (`Severity.ERROR`) stop the evaluation; warnings (a late 届出) are shown beside the results.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from app.domain.lifeevents.conditions import Env, HouseholdFacts, Value, render_placeholders
from app.domain.lifeevents.model import (
    AnswerValue,
    DateCheck,
    LifeEvent,
    Member,
    Question,
    QuestionKind,
    Severity,
    Text,
)
from app.domain.registry import RELATIONSHIPS
from app.domain.wareki import format_wareki, parse_wareki

if TYPE_CHECKING:
    from app.domain.lifeevents.engine import CompiledEvent

__all__ = [
    "Problem",
    "check_date",
    "coerce_answer",
    "has_errors",
    "validate",
    "validate_answer",
    "validate_event_date",
    "visible_questions",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One explained problem. `field`: "event_date", "answers.<id>", "subjects", "applicant",
    "members.<id>.birth_date" or "event" (a rule over several answers)."""

    field: str
    severity: Severity
    message: Text

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "severity": self.severity.value,
            "message": {
                "ja": self.message.ja,
                "easy": self.message.get("easy"),
                "en": self.message.get("en"),
            },
        }


def has_errors(problems: Sequence[Problem]) -> bool:
    return any(p.is_error for p in problems)


def _date_texts(d: date) -> dict[str, str]:
    wareki = format_wareki(d)
    return {"ja": f"{wareki}", "easy": wareki, "en": d.strftime("%d %B %Y").lstrip("0")}


_SLOT = re.compile(r"\{(limit|date|days)\}")


def _fill_dates(message: Text, *, value: date, limit: date, days: int) -> Text:
    value_t, limit_t = _date_texts(value), _date_texts(limit)

    def one(text: str, lang: str) -> str:
        slots = {"limit": limit_t[lang], "date": value_t[lang], "days": str(abs(days))}
        return _SLOT.sub(lambda m: slots[m.group(1)], text)

    return Text(one(message.ja, "ja"), one(message.get("easy"), "easy"), one(message.get("en"), "en"))


def check_date(checks: Sequence[DateCheck], value: date, today: date, field: str) -> list[Problem]:
    """The date windows a date breaks; each message names the boundary date."""
    problems: list[Problem] = []
    for check in checks:
        if check.not_before is not None:
            limit = today + timedelta(days=check.not_before)
            if value < limit:
                problems.append(
                    Problem(
                        field,
                        check.severity,
                        _fill_dates(check.message, value=value, limit=limit, days=check.not_before),
                    )
                )
        elif check.not_after is not None:
            limit = today + timedelta(days=check.not_after)
            if value > limit:
                problems.append(
                    Problem(
                        field,
                        check.severity,
                        _fill_dates(check.message, value=value, limit=limit, days=check.not_after),
                    )
                )
    return problems


def validate_event_date(event: LifeEvent, event_date: date | None, today: date) -> list[Problem]:
    if event_date is None:
        label = event.date_label
        return [
            Problem(
                "event_date",
                Severity.ERROR,
                Text(
                    f"{label.ja}を入れてください。",
                    f"{label.get('easy')}を 入れて ください。",
                    f"Please enter: {label.get('en')}.",
                ),
            )
        ]
    return check_date(event.date_checks, event_date, today, "event_date")


def _q(question: Question) -> dict[str, str]:
    return {"ja": question.text.ja, "easy": question.text.get("easy"), "en": question.text.get("en")}


def validate_answer(question: Question, value: object, *, today: date) -> list[Problem]:
    """Whether `value` fits `question` (type, options, range, date windows)."""
    field = f"answers.{question.id}"
    q = _q(question)
    if question.kind is QuestionKind.YES_NO:
        if not isinstance(value, bool):
            return [
                Problem(
                    field,
                    Severity.ERROR,
                    Text(
                        f"「{q['ja']}」には「はい」か「いいえ」で答えてください。",
                        f"「{q['easy']}」には「はい」か「いいえ」で こたえて ください。",
                        f'Please answer "{q["en"]}" with yes or no.',
                    ),
                )
            ]
        return []
    if question.kind is QuestionKind.CHOICE:
        if not isinstance(value, str) or question.option(value) is None:
            labels_ja = "、".join(f"「{c.label.ja}」" for c in question.options)
            labels_easy = "、".join(f"「{c.label.get('easy')}」" for c in question.options)
            labels_en = ", ".join(f'"{c.label.get("en")}"' for c in question.options)
            return [
                Problem(
                    field,
                    Severity.ERROR,
                    Text(
                        f"「{q['ja']}」の答えは、次から選んでください: {labels_ja}",
                        f"「{q['easy']}」の こたえは、つぎから えらんで ください: {labels_easy}",
                        f'For "{q["en"]}", please choose one of: {labels_en}',
                    ),
                )
            ]
        return []
    if question.kind is QuestionKind.COUNT:
        low = 0 if question.min is None else question.min
        high = question.max
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high is not None and value > high)
        ):
            if high is None:
                rng = Text(f"{low}以上の数", f"{low}より 大きい 数", f"a whole number of at least {low}")
            else:
                rng = Text(
                    f"{low}から{high}までの数",
                    f"{low}から {high}までの 数",
                    f"a whole number from {low} to {high}",
                )
            return [
                Problem(
                    field,
                    Severity.ERROR,
                    Text(
                        f"「{q['ja']}」には{rng.ja}を入れてください。",
                        f"「{q['easy']}」には {rng.get('easy')}を 入れて ください。",
                        f'For "{q["en"]}", please enter {rng.get("en")}.',
                    ),
                )
            ]
        return []
    # date
    if not isinstance(value, date):
        return [
            Problem(
                field,
                Severity.ERROR,
                Text(
                    f"「{q['ja']}」には日付を入れてください。",
                    f"「{q['easy']}」には 日にちを 入れて ください。",
                    f'For "{q["en"]}", please enter a date.',
                ),
            )
        ]
    return check_date(question.date_checks, value, today, field)


_YES = frozenset({"yes", "true", "1", "on", "はい"})
_NO = frozenset({"no", "false", "0", "off", "いいえ"})


def coerce_answer(question: Question, raw: str | None) -> tuple[AnswerValue | None, list[Problem]]:
    """Turn a form field (always text) into the question's type: "yes"/"no", "3", "2025-04-01"
    (or 「令和7年4月1日」). Returns (None, []) for an empty field."""
    if raw is None or not raw.strip():
        return None, []
    text = raw.strip()
    value: AnswerValue | None = None
    if question.kind is QuestionKind.YES_NO:
        if text.lower() in _YES:
            value = True
        elif text.lower() in _NO:
            value = False
    elif question.kind is QuestionKind.COUNT:
        digits = text.translate(str.maketrans("０１２３４５６７８９－", "0123456789-"))
        if re.fullmatch(r"-?[0-9]{1,6}", digits):
            value = int(digits)
    elif question.kind is QuestionKind.DATE:
        try:
            value = date.fromisoformat(text)
        except ValueError:
            value = parse_wareki(text)
    elif question.option(text) is not None:
        value = text
    if value is None:
        # Report in the question's own terms ("please answer yes or no", "enter a date" …).
        return None, validate_answer(question, object(), today=date.min) or [
            Problem(
                f"answers.{question.id}",
                Severity.ERROR,
                Text("答えを読み取れませんでした。", en="Could not read the answer."),
            )
        ]
    return value, []


def visible_questions(
    event: CompiledEvent, answers: Mapping[str, Value], household: HouseholdFacts
) -> tuple[Question, ...]:
    """The questions to ask given the answers so far (a question whose `when` is false is hidden;
    an unknown `when` shows the question)."""
    env = Env({}, answers, household)
    shown: list[Question] = []
    for question in event.event.questions:
        when = event.question_when.get(question.id)
        if when is None or when.evaluate(env) is not False:
            shown.append(question)
    return tuple(shown)


def _member_label(member: Member) -> str:
    return member.name or member.relationship or member.id


def validate(
    event: CompiledEvent,
    answers: Mapping[str, object],
    members: Sequence[Member],
    event_date: date | None,
    today: date,
    subject_ids: frozenset[str],
    household: HouseholdFacts,
) -> tuple[tuple[Problem, ...], dict[str, Value]]:
    """All problems with an event's input, and the answers to use (hidden questions dropped)."""
    ev = event.event
    problems: list[Problem] = []
    problems += validate_event_date(ev, event_date, today)

    # members
    seen: set[str] = set()
    for m in members:
        label = _member_label(m)
        if m.id in seen:
            problems.append(
                Problem(
                    f"members.{m.id}",
                    Severity.ERROR,
                    Text(
                        f"世帯員「{label}」が二重に入っています。",
                        f"「{label}」さんが 2回 入って います。",
                        f"{label} is listed twice.",
                    ),
                )
            )
        seen.add(m.id)
        if m.birth_date is not None and m.birth_date > today:
            problems.append(
                Problem(
                    f"members.{m.id}.birth_date",
                    Severity.ERROR,
                    Text(
                        f"{label}さんの生年月日（{format_wareki(m.birth_date)}）が今日より後になっています。",
                        f"{label}さんの 生まれた 日が きょうより あとに なって います。",
                        f"{label}'s date of birth ({m.birth_date.isoformat()}) is after today.",
                    ),
                )
            )
        if m.relationship and m.relationship not in RELATIONSHIPS and "の" not in m.relationship:
            problems.append(
                Problem(
                    f"members.{m.id}.relationship",
                    Severity.WARNING,
                    Text(
                        f"{label}さんの続柄「{m.relationship}」は住民票の標準の書き方ではありません（例: 世帯主、妻、子、子の子）。",
                        f"{label}さんの つづきがら「{m.relationship}」を 確認 して ください。",
                        f"{label}'s relationship '{m.relationship}' is not a standard 続柄 (e.g. 世帯主, 妻, 子, 子の子).",
                    ),
                )
            )

    # subjects
    rule = ev.subjects
    by_id = {m.id: m for m in members}
    unknown_subjects = sorted(subject_ids - by_id.keys())
    for sid in unknown_subjects:
        problems.append(
            Problem(
                "subjects",
                Severity.ERROR,
                Text(
                    f"世帯員にいない方（{sid}）が選ばれています。",
                    "家族に いない 人が えらばれて います。",
                    f"'{sid}' is not a household member.",
                ),
            )
        )
    count = len(subject_ids & by_id.keys())
    subject_label = rule.label
    if count < rule.min:
        problems.append(
            Problem(
                "subjects",
                Severity.ERROR,
                Text(
                    f"{subject_label.ja}を選んでください。",
                    f"{subject_label.get('easy')}を えらんで ください。",
                    f"Please choose: {subject_label.get('en')}.",
                ),
            )
        )
    if rule.max is not None and count > rule.max:
        problems.append(
            Problem(
                "subjects",
                Severity.ERROR,
                Text(
                    f"{subject_label.ja}は{rule.max}人までです（{count}人選ばれています）。",
                    f"{subject_label.get('easy')}は {rule.max}人 までです。",
                    f"{subject_label.get('en')}: at most {rule.max} (you chose {count}).",
                ),
            )
        )
    if event_date is not None:
        for sid in sorted(subject_ids & by_id.keys()):
            m = by_id[sid]
            if m.birth_date is None:
                continue
            name = _member_label(m)
            if m.birth_date > event_date:
                problems.append(
                    Problem(
                        f"members.{sid}.birth_date",
                        Severity.ERROR,
                        Text(
                            f"{name}さんの生年月日（{format_wareki(m.birth_date)}）が{ev.date_label.ja}（{format_wareki(event_date)}）より後です。",
                            f"{name}さんの 生まれた 日が {ev.date_label.get('easy')}より あとです。",
                            f"{name}'s date of birth ({m.birth_date.isoformat()}) is after the event date ({event_date.isoformat()}).",
                        ),
                    )
                )
            elif rule.born_on_event_date and m.birth_date != event_date:
                problems.append(
                    Problem(
                        f"members.{sid}.birth_date",
                        Severity.WARNING,
                        Text(
                            f"{name}さんの生年月日（{format_wareki(m.birth_date)}）と{ev.date_label.ja}（{format_wareki(event_date)}）が違います。",
                            f"{name}さんの 生まれた 日と {ev.date_label.get('easy')}が ちがいます。",
                            f"{name}'s date of birth differs from the event date.",
                        ),
                    )
                )

    # answers: known questions only, hidden ones dropped, visible required ones answered
    cleaned: dict[str, Value] = {}
    questions = {q.id: q for q in ev.questions}
    for key in answers:
        if key not in questions:
            problems.append(
                Problem(
                    f"answers.{key}",
                    Severity.WARNING,
                    Text(
                        f"この手続きにない質問（{key}）への答えは使いません。",
                        "この 手続きに ない 質問の こたえは つかいません。",
                        f"'{key}' is not a question of this event; the answer is ignored.",
                    ),
                )
            )
    env = Env({}, cleaned, household)
    for question in ev.questions:
        when = event.question_when.get(question.id)
        shown = True if when is None else when.evaluate(env)
        if shown is False:
            continue  # hidden: its answer (if any) is dropped
        value = answers.get(question.id)
        if value is None:
            # A question shown because its `when` is unknown (e.g. a birth date is missing) may
            # be left unanswered.
            if question.required and shown is True:
                q = _q(question)
                problems.append(
                    Problem(
                        f"answers.{question.id}",
                        Severity.ERROR,
                        Text(
                            f"「{q['ja']}」に答えてください。",
                            f"「{q['easy']}」に こたえて ください。",
                            f'Please answer "{q["en"]}".',
                        ),
                    )
                )
            continue
        found = validate_answer(question, value, today=today)
        problems += found
        if not any(p.is_error for p in found):
            cleaned[question.id] = value  # type: ignore[assignment]

    # the event's own rules over several answers and the household
    for check, compiled in event.checks:
        if compiled.evaluate(env) is True:
            problems.append(
                Problem("event", check.severity, render_placeholders(check.message, env, ev.name))
            )
    return tuple(problems), cleaned
