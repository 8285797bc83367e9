"""The life-event catalogue as typed data: events and their touch questions, departments, services,
forms and procedures (手続き案内), plus the household member facts the rules read.

Everything here is plain data that staff edit (seeded from YAML, later kept in the database), so
each class converts to and from plain dicts (`to_dict` / `from_dict`). `from_dict` checks the
shape of what it reads and raises `SchemaError` naming the item and the field in Japanese and
English; cross-references (a procedure's service, forms and events) and conditions are checked
by the loader once the whole catalogue is read.

Texts shown to residents carry three registers: 日本語 (`ja`), やさしい日本語 (`easy`) and English
(`en`); `easy` and `en` fall back to `ja` when missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, Literal, TypeVar

__all__ = [
    "AnswerValue",
    "Catalog",
    "Choice",
    "Condition",
    "DateCheck",
    "Deadline",
    "DeadlineAnchor",
    "DeadlineKind",
    "Department",
    "EventCheck",
    "ForWhom",
    "Form",
    "Insurance",
    "Lang",
    "Level",
    "LifeEvent",
    "Link",
    "Member",
    "PensionType",
    "PersonSex",
    "Procedure",
    "Question",
    "QuestionKind",
    "SchemaError",
    "Service",
    "Severity",
    "SubjectDefault",
    "SubjectRule",
    "Text",
]

Lang = Literal["ja", "easy", "en"]
AnswerValue = bool | int | str | date

_E = TypeVar("_E", bound=StrEnum)


# -- errors ---------------------------------------------------------------------------------------
_KIND_JA: dict[str, str] = {
    "catalog": "データ全体",
    "department": "担当課",
    "service": "業務",
    "form": "様式",
    "event": "ライフイベント",
    "question": "質問",
    "procedure": "手続き",
    "member": "世帯員",
}


class SchemaError(ValueError):
    """A catalogue item whose shape or references are wrong, named for the staff who edit it."""

    def __init__(
        self, kind: str, item_id: str, field_name: str, message_ja: str, message_en: str, file: str = ""
    ) -> None:
        self.kind = kind
        self.item_id = item_id
        self.field_name = field_name
        self.message_ja = message_ja
        self.message_en = message_en
        self.file = file
        super().__init__(str(self))

    def with_file(self, file: str) -> SchemaError:
        return SchemaError(self.kind, self.item_id, self.field_name, self.message_ja, self.message_en, file)

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        item = f"「{self.item_id}」" if self.item_id else ""
        field_part = f"の項目「{self.field_name}」" if self.field_name else ""
        ja = f"{_KIND_JA.get(self.kind, self.kind)}{item}{field_part}: {self.message_ja}"
        en_item = f" '{self.item_id}'" if self.item_id else ""
        en_field = f", field '{self.field_name}'" if self.field_name else ""
        en = f"{self.kind}{en_item}{en_field}: {self.message_en}"
        return f"{where}{ja} / {en}"


class _Fields:
    """Reads one mapping from YAML/JSON, remembering which keys were read so that unknown keys
    (typos such as `deadlin:`) are reported instead of silently ignored."""

    def __init__(self, data: object, kind: str, item_id: str = "", prefix: str = "") -> None:
        self.kind = kind
        self.item_id = item_id
        self.prefix = prefix
        if not isinstance(data, Mapping):
            raise self.error("", "キーと値の組（マッピング）で書いてください", "must be a mapping")
        self.data: Mapping[object, object] = data
        self.seen: set[str] = set()

    def error(self, key: str, ja: str, en: str) -> SchemaError:
        return SchemaError(self.kind, self.item_id, self.prefix + key, ja, en)

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> object:
        self.seen.add(key)
        return self.data.get(key)

    def string(self, key: str, *, required: bool = True, default: str = "") -> str:
        value = self.raw(key)
        if value is None or value == "":
            if required:
                raise self.error(key, "必須です", "is required")
            return default
        if isinstance(value, bool):
            raise self.error(
                key,
                "文字列を引用符で囲んでください（yes/no/on/off は真偽値として読まれます）",
                "quote the string (yes/no/on/off are read as booleans)",
            )
        if isinstance(value, int | float):
            return str(value)
        if not isinstance(value, str):
            raise self.error(key, "文字列で指定してください", "must be a string")
        return value

    def ident(self, key: str) -> str:
        value = self.string(key)
        if not _is_ident(value):
            raise self.error(
                key,
                f"「{value}」は使えません。半角の英小文字・数字・_ で書いてください",
                f"'{value}' is not allowed: use lower-case ASCII letters, digits and _",
            )
        return value

    def integer(self, key: str, *, default: int | None = None, minimum: int | None = None) -> int | None:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "整数で指定してください", "must be an integer")
        if minimum is not None and value < minimum:
            raise self.error(key, f"{minimum}以上にしてください", f"must be at least {minimum}")
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, "true か false で指定してください", "must be true or false")
        return value

    def enum(self, key: str, cls: type[_E], *, default: _E | None = None) -> _E:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise self.error(key, "必須です", "is required")
            return default
        allowed = [m.value for m in cls]
        if not isinstance(value, str) or value not in allowed:
            raise self.error(
                key,
                f"「{value}」は使えません。次のどれかにしてください: {', '.join(allowed)}",
                f"'{value}' is not one of: {', '.join(allowed)}",
            )
        return cls(value)

    def text(self, key: str) -> Text:
        value = self.raw(key)
        if value is None:
            raise self.error(key, "必須です", "is required")
        return Text.parse(value, self, key)

    def opt_text(self, key: str) -> Text | None:
        return None if self.raw(key) is None else self.text(key)

    def items(self, key: str) -> list[object]:
        value = self.raw(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, "リスト（- で始まる行）で書いてください", "must be a list")
        return value

    def texts(self, key: str) -> tuple[Text, ...]:
        return tuple(Text.parse(v, self, f"{key}[{i}]") for i, v in enumerate(self.items(key)))

    def strs(self, key: str) -> tuple[str, ...]:
        out: list[str] = []
        for i, v in enumerate(self.items(key)):
            if isinstance(v, bool) or not isinstance(v, str | int) or v == "":
                raise self.error(f"{key}[{i}]", "文字列で指定してください", "must be a string")
            out.append(str(v))
        return tuple(out)

    def sub(self, key: str, *, kind: str | None = None, item_id: str | None = None) -> _Fields:
        return _Fields(
            self.raw(key),
            kind or self.kind,
            self.item_id if item_id is None else item_id,
            f"{self.prefix}{key}.",
        )

    def done(self) -> None:
        unknown = [str(k) for k in self.data if str(k) not in self.seen]
        if unknown:
            names = ", ".join(sorted(unknown))
            raise self.error(
                unknown[0] if len(unknown) == 1 else "",
                f"知らない項目があります: {names}（綴りを確認してください）",
                f"unknown field(s): {names} (check the spelling)",
            )


def _is_ident(value: str) -> bool:
    return (
        bool(value)
        and value[0].isascii()
        and value[0].isalpha()
        and value[0].islower()
        and all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in value)
    )


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    """Leave defaults out of exported dicts so the YAML stays short for staff."""
    return {k: v for k, v in d.items() if v not in (None, "", (), [], {})}


# -- texts ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Text:
    """One message in 日本語, やさしい日本語 and English; missing registers fall back to 日本語."""

    ja: str
    easy: str = ""
    en: str = ""

    def get(self, lang: Lang = "ja") -> str:
        if lang == "easy":
            return self.easy or self.ja
        if lang == "en":
            return self.en or self.ja
        return self.ja

    def to_dict(self) -> dict[str, str] | str:
        if not self.easy and not self.en:
            return self.ja
        return _drop_empty({"ja": self.ja, "easy": self.easy, "en": self.en})

    @staticmethod
    def from_dict(data: object) -> Text:
        return Text.parse(data, None, "")

    @staticmethod
    def parse(data: object, fields: _Fields | None, key: str) -> Text:
        def err(ja: str, en: str) -> SchemaError:
            if fields is not None:
                return fields.error(key, ja, en)
            return SchemaError("text", "", key, ja, en)

        if isinstance(data, str):
            if not data.strip():
                raise err("空の文は使えません", "must not be empty")
            return Text(data)
        if isinstance(data, Mapping):
            unknown = sorted(str(k) for k in data if k not in ("ja", "easy", "en"))
            if unknown:
                raise err(
                    f"ja / easy / en 以外の項目があります: {', '.join(unknown)}",
                    f"only ja / easy / en are allowed, found: {', '.join(unknown)}",
                )
            ja, easy, en = data.get("ja"), data.get("easy", ""), data.get("en", "")
            if not isinstance(ja, str) or not ja.strip():
                raise err("日本語（ja）は必須です", "the Japanese text (ja) is required")
            if not isinstance(easy, str) or not isinstance(en, str):
                raise err("easy と en は文字列で書いてください", "easy and en must be strings")
            return Text(ja, easy, en)
        raise err("文字列か ja/easy/en の組で書いてください", "must be a string or a ja/easy/en mapping")


# -- vocabulary enums -----------------------------------------------------------------------------
class QuestionKind(StrEnum):
    YES_NO = "yes_no"
    CHOICE = "choice"
    DATE = "date"
    COUNT = "count"


class Severity(StrEnum):
    ERROR = "error"  # the answer is impossible or outside what this channel can take
    WARNING = "warning"  # possible, but staff should look (e.g. a late 届出)


class Level(StrEnum):
    HOUSEHOLD = "household"  # once per household (住民異動届, 児童手当 認定請求 …)
    PERSON = "person"  # once per member it applies to (国保 加入, 転入学 …)


class ForWhom(StrEnum):
    """Which members a person-level procedure (or a household procedure's member filter) looks at."""

    SUBJECTS = "subjects"  # the members the event is about (those moving, the deceased, the newborn …)
    OTHERS = "others"  # the rest of the household (e.g. the surviving spouse)
    EVERYONE = "everyone"


class DeadlineKind(StrEnum):
    WITHIN_DAYS = "within_days"  # a dated deadline, computed from the event date
    ASAP = "asap"  # 速やかに
    NONE = "none"  # no deadline (任意の手続き)


class DeadlineAnchor(StrEnum):
    EVENT_DATE = "event_date"  # 「転入した日から14日以内」 (初日不算入: day 1 is the day after)
    DAY_AFTER_EVENT_DATE = "day_after_event_date"  # 「転出予定日の翌日から15日以内」


class Insurance(StrEnum):
    """Public health insurance a person is in (what decides 国保 procedures)."""

    KOKUHO = "kokuho"  # 国民健康保険
    EMPLOYER = "employer"  # 職場の健康保険 (被保険者 or 被扶養者: 協会けんぽ, 健保組合, 共済 …)
    KOKI = "koki"  # 後期高齢者医療
    SEIKATSU_HOGO = "seikatsu_hogo"  # 生活保護 (医療扶助)
    UNKNOWN = "unknown"


class PensionType(StrEnum):
    """国民年金 被保険者の種別."""

    DAI1 = "dai1"  # 第1号 (自営業・学生・無職など; the municipality handles these)
    DAI2 = "dai2"  # 第2号 (会社員・公務員: 厚生年金)
    DAI3 = "dai3"  # 第3号 (第2号に扶養される配偶者)
    NONE = "none"  # not insured (under 20, 60 or over, …)
    UNKNOWN = "unknown"


class SubjectDefault(StrEnum):
    ALL = "all"
    APPLICANT = "applicant"
    NONE = "none"


class PersonSex(StrEnum):
    MALE = "male"
    FEMALE = "female"
    UNKNOWN = "unknown"


# -- organisation ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Department:
    """A counter that handles procedures (住民課, 保険年金課 …)."""

    id: str
    name: Text
    place: Text | None = None  # where to go, e.g. 「本庁舎1階 3番窓口」
    phone: str = ""
    order: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "id": self.id,
                "name": self.name.to_dict(),
                "place": self.place.to_dict() if self.place else None,
                "phone": self.phone,
                "order": self.order or None,
            }
        )

    @staticmethod
    def from_dict(data: object) -> Department:
        f = _Fields(data, "department")
        f.item_id = f.ident("id")
        out = Department(
            id=f.item_id,
            name=f.text("name"),
            place=f.opt_text("place"),
            phone=f.string("phone", required=False),
            order=f.integer("order", default=0) or 0,
        )
        f.done()
        return out


@dataclass(frozen=True, slots=True)
class Service:
    """A line of business (国民健康保険, 児童手当 …) owned by one department."""

    id: str
    name: Text
    department: str
    core_system: bool = False  # its data goes to a core (基幹) system
    order: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "id": self.id,
                "name": self.name.to_dict(),
                "department": self.department,
                "core_system": self.core_system or None,
                "order": self.order or None,
            }
        )

    @staticmethod
    def from_dict(data: object) -> Service:
        f = _Fields(data, "service")
        f.item_id = f.ident("id")
        out = Service(
            id=f.item_id,
            name=f.text("name"),
            department=f.ident("department"),
            core_system=f.boolean("core_system", default=False),
            order=f.integer("order", default=0) or 0,
        )
        f.done()
        return out


@dataclass(frozen=True, slots=True)
class Form:
    """An application form. `printable` forms are laid out by Madoguchi and printed pre-filled
    (the 書かない窓口 forms); the others are the department's own paper or system forms."""

    id: str
    name: Text
    printable: bool = False
    note: Text | None = None

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "id": self.id,
                "name": self.name.to_dict(),
                "printable": self.printable or None,
                "note": self.note.to_dict() if self.note else None,
            }
        )

    @staticmethod
    def from_dict(data: object) -> Form:
        f = _Fields(data, "form")
        f.item_id = f.ident("id")
        out = Form(
            id=f.item_id,
            name=f.text("name"),
            printable=f.boolean("printable", default=False),
            note=f.opt_text("note"),
        )
        f.done()
        return out


# -- events and questions -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: Text

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "label": self.label.to_dict()}


@dataclass(frozen=True, slots=True)
class DateCheck:
    """A window for a date relative to today: `not_before` / `not_after` days from today (negative
    = in the past). Exactly one of the two is set. `message` may use {limit} (the boundary date),
    {date} (the answer) and {days}."""

    severity: Severity
    message: Text
    not_before: int | None = None
    not_after: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.not_before is not None:
            out["not_before"] = self.not_before
        if self.not_after is not None:
            out["not_after"] = self.not_after
        out["severity"] = self.severity.value
        out["message"] = self.message.to_dict()
        return out

    @staticmethod
    def parse(f: _Fields) -> DateCheck:
        not_before = f.integer("not_before")
        not_after = f.integer("not_after")
        if (not_before is None) == (not_after is None):
            raise f.error(
                "not_before",
                "not_before か not_after のどちらか一つを指定してください",
                "set exactly one of not_before / not_after",
            )
        out = DateCheck(
            severity=f.enum("severity", Severity, default=Severity.ERROR),
            message=f.text("message"),
            not_before=not_before,
            not_after=not_after,
        )
        f.done()
        return out


def _parse_date_checks(f: _Fields, key: str) -> tuple[DateCheck, ...]:
    return tuple(
        DateCheck.parse(_Fields(item, f.kind, f.item_id, f"{f.prefix}{key}[{i}]."))
        for i, item in enumerate(f.items(key))
    )


@dataclass(frozen=True, slots=True)
class Question:
    """A touch question. `when` (a condition over earlier answers and household facts) hides the
    question when false. Kinds: yes_no → bool, choice → one of `options`' values, date → date,
    count → int within [min, max]."""

    id: str
    kind: QuestionKind
    text: Text
    help: Text | None = None
    options: tuple[Choice, ...] = ()
    required: bool = True
    when: str = ""
    date_checks: tuple[DateCheck, ...] = ()
    min: int | None = None
    max: int | None = None

    def option(self, value: str) -> Choice | None:
        return next((c for c in self.options if c.value == value), None)

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "id": self.id,
                "kind": self.kind.value,
                "text": self.text.to_dict(),
                "help": self.help.to_dict() if self.help else None,
                "options": [c.to_dict() for c in self.options],
                "when": self.when,
                "date_checks": [c.to_dict() for c in self.date_checks],
                "min": self.min,
                "max": self.max,
            }
        ) | ({} if self.required else {"required": False})

    @staticmethod
    def parse(f: _Fields) -> Question:
        f.item_id = f.ident("id")
        kind = f.enum("kind", QuestionKind)
        options: list[Choice] = []
        for i, raw in enumerate(f.items("options")):
            of = _Fields(raw, "question", f.item_id, f"options[{i}].")
            options.append(Choice(value=of.ident("value"), label=of.text("label")))
            of.done()
        if kind is QuestionKind.CHOICE and len(options) < 2:
            raise f.error("options", "選択肢を2つ以上書いてください", "a choice needs at least two options")
        if kind is not QuestionKind.CHOICE and options:
            raise f.error(
                "options", "選択肢は choice の質問だけに書けます", "only choice questions take options"
            )
        if len({c.value for c in options}) != len(options):
            raise f.error("options", "選択肢の value が重複しています", "option values must be unique")
        date_checks = _parse_date_checks(f, "date_checks")
        if date_checks and kind is not QuestionKind.DATE:
            raise f.error(
                "date_checks",
                "date_checks は日付の質問だけに書けます",
                "only date questions take date_checks",
            )
        minimum = f.integer("min")
        maximum = f.integer("max")
        if (minimum is not None or maximum is not None) and kind is not QuestionKind.COUNT:
            raise f.error("min", "min / max は数の質問だけに書けます", "only count questions take min / max")
        if minimum is not None and maximum is not None and minimum > maximum:
            raise f.error("max", "max は min 以上にしてください", "max must not be below min")
        out = Question(
            id=f.item_id,
            kind=kind,
            text=f.text("text"),
            help=f.opt_text("help"),
            options=tuple(options),
            required=f.boolean("required", default=True),
            when=f.string("when", required=False),
            date_checks=date_checks,
            min=minimum,
            max=maximum,
        )
        f.done()
        return out

    @staticmethod
    def from_dict(data: object) -> Question:
        return Question.parse(_Fields(data, "question"))


@dataclass(frozen=True, slots=True)
class SubjectRule:
    """Who the event is about (引っ越す人, 亡くなった方, 生まれたお子さん …) and how many of them.
    `default`: who the subjects are when the caller names nobody — everyone (moves), the
    applicant (marriage, pregnancy …) or nobody (the deceased must be chosen)."""

    label: Text
    min: int = 1
    max: int | None = None
    default: SubjectDefault = SubjectDefault.NONE
    born_on_event_date: bool = False  # 出生: the subjects' birth date is the event date

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "label": self.label.to_dict(),
                "min": self.min,
                "max": self.max,
                "default": None if self.default is SubjectDefault.NONE else self.default.value,
                "born_on_event_date": self.born_on_event_date or None,
            }
        ) | {"min": self.min}


@dataclass(frozen=True, slots=True)
class EventCheck:
    """A data-driven plausibility rule: when `when` holds, the answers are reported with `message`."""

    when: str
    severity: Severity
    message: Text

    def to_dict(self) -> dict[str, Any]:
        return {"when": self.when, "severity": self.severity.value, "message": self.message.to_dict()}


@dataclass(frozen=True, slots=True)
class LifeEvent:
    id: str
    name: Text
    description: Text
    date_label: Text  # what the event date is (「引っ越した日」「転出の予定日」「亡くなった日」…)
    subjects: SubjectRule
    date_checks: tuple[DateCheck, ...] = ()
    questions: tuple[Question, ...] = ()
    checks: tuple[EventCheck, ...] = ()
    order: int = 0

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "id": self.id,
                "name": self.name.to_dict(),
                "description": self.description.to_dict(),
                "date_label": self.date_label.to_dict(),
                "subjects": self.subjects.to_dict(),
                "date_checks": [c.to_dict() for c in self.date_checks],
                "questions": [q.to_dict() for q in self.questions],
                "checks": [c.to_dict() for c in self.checks],
                "order": self.order or None,
            }
        )

    @staticmethod
    def from_dict(data: object) -> LifeEvent:
        f = _Fields(data, "event")
        f.item_id = f.ident("id")
        sf = f.sub("subjects")
        subjects = SubjectRule(
            label=sf.text("label"),
            min=sf.integer("min", default=1, minimum=0) or 0,
            max=sf.integer("max", minimum=1),
            default=sf.enum("default", SubjectDefault, default=SubjectDefault.NONE),
            born_on_event_date=sf.boolean("born_on_event_date", default=False),
        )
        sf.done()
        if subjects.max is not None and subjects.max < subjects.min:
            raise f.error("subjects.max", "max は min 以上にしてください", "max must not be below min")
        questions = tuple(
            Question.parse(_Fields(q, "question", f"{f.item_id}.questions[{i}]"))
            for i, q in enumerate(f.items("questions"))
        )
        seen: set[str] = set()
        for q in questions:
            if q.id in seen:
                raise f.error(
                    "questions", f"質問の id「{q.id}」が重複しています", f"duplicate question id '{q.id}'"
                )
            seen.add(q.id)
        checks: list[EventCheck] = []
        for i, raw in enumerate(f.items("checks")):
            cf = _Fields(raw, "event", f.item_id, f"checks[{i}].")
            checks.append(
                EventCheck(
                    when=cf.string("when"),
                    severity=cf.enum("severity", Severity, default=Severity.ERROR),
                    message=cf.text("message"),
                )
            )
            cf.done()
        out = LifeEvent(
            id=f.item_id,
            name=f.text("name"),
            description=f.text("description"),
            date_label=f.text("date_label"),
            subjects=subjects,
            date_checks=_parse_date_checks(f, "date_checks"),
            questions=questions,
            checks=tuple(checks),
            order=f.integer("order", default=0) or 0,
        )
        f.done()
        return out


# -- procedures -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Deadline:
    """When a procedure is due. For `within_days`, day 1 is the day after the anchor unless
    `first_day_counts` (民法140条 初日不算入): 「転入した日から14日以内」 = event date + 14 days;
    「転出予定日の翌日から15日以内」 = anchor day_after_event_date, first_day_counts → event + 15.
    `roll_over_closed_days`: a deadline on a day the office is closed moves to the next open day
    (地方自治法4条の2④)."""

    kind: DeadlineKind
    label: Text
    days: int = 0
    anchor: DeadlineAnchor = DeadlineAnchor.EVENT_DATE
    first_day_counts: bool = False
    roll_over_closed_days: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value, "label": self.label.to_dict()}
        if self.kind is DeadlineKind.WITHIN_DAYS:
            out["days"] = self.days
            if self.anchor is not DeadlineAnchor.EVENT_DATE:
                out["anchor"] = self.anchor.value
            if self.first_day_counts:
                out["first_day_counts"] = True
            if not self.roll_over_closed_days:
                out["roll_over_closed_days"] = False
        return out

    @staticmethod
    def parse(f: _Fields) -> Deadline:
        kind = f.enum("kind", DeadlineKind)
        days = f.integer("days", minimum=1)
        if kind is DeadlineKind.WITHIN_DAYS and days is None:
            raise f.error("days", "within_days には days（日数）が必要です", "within_days needs days")
        if kind is not DeadlineKind.WITHIN_DAYS and days is not None:
            raise f.error("days", "days は within_days のときだけ書けます", "days only goes with within_days")
        out = Deadline(
            kind=kind,
            label=f.text("label"),
            days=days or 0,
            anchor=f.enum("anchor", DeadlineAnchor, default=DeadlineAnchor.EVENT_DATE),
            first_day_counts=f.boolean("first_day_counts", default=False),
            roll_over_closed_days=f.boolean("roll_over_closed_days", default=True),
        )
        f.done()
        return out


@dataclass(frozen=True, slots=True)
class Condition:
    """One requirement of a procedure: `when` in the condition language; `why`, if given, is the
    staff-written explanation shown when it holds (placeholders such as {age_at_event}, {name},
    {answer.dog_count}); otherwise the explanation is generated from the expression."""

    when: str
    why: Text | None = None

    def to_dict(self) -> dict[str, Any] | str:
        if self.why is None:
            return self.when
        return {"when": self.when, "why": self.why.to_dict()}


@dataclass(frozen=True, slots=True)
class Link:
    title: Text
    url: str

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title.to_dict(), "url": self.url}


@dataclass(frozen=True, slots=True)
class Procedure:
    """A procedure (手続き) that an event may call for. Household-level procedures are listed once
    per household; with a `members` condition they apply when at least one member (among
    `for_whom`) satisfies it, and list those members. Person-level procedures are evaluated for
    every member among `for_whom`."""

    id: str
    service: str
    title: Text
    events: tuple[str, ...]
    level: Level
    description: Text | None = None
    for_whom: ForWhom = ForWhom.SUBJECTS
    conditions: tuple[Condition, ...] = ()
    members: str = ""  # household level only: which members it is for
    members_why: Text | None = None
    forms: tuple[str, ...] = ()
    deadline: Deadline | None = None
    bring: tuple[Text, ...] = ()
    notes: tuple[Text, ...] = ()
    links: tuple[Link, ...] = ()
    department: str = ""  # empty: the service's department
    optional: bool = False  # 希望する方のみ (e.g. 印鑑登録)
    verify: tuple[str, ...] = ()  # [要確認] facts inferred rather than confirmed; shown to staff
    order: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _drop_empty(
            {
                "id": self.id,
                "service": self.service,
                "department": self.department,
                "title": self.title.to_dict(),
                "description": self.description.to_dict() if self.description else None,
                "events": list(self.events),
                "level": self.level.value,
                "for_whom": None if self.for_whom is ForWhom.SUBJECTS else self.for_whom.value,
                "optional": self.optional or None,
                "conditions": [c.to_dict() for c in self.conditions],
                "members": self.members,
                "members_why": self.members_why.to_dict() if self.members_why else None,
                "forms": list(self.forms),
                "deadline": self.deadline.to_dict() if self.deadline else None,
                "bring": [t.to_dict() for t in self.bring],
                "notes": [t.to_dict() for t in self.notes],
                "links": [link.to_dict() for link in self.links],
                "verify": list(self.verify),
                "order": self.order or None,
            }
        )

    @staticmethod
    def from_dict(data: object) -> Procedure:
        f = _Fields(data, "procedure")
        f.item_id = f.ident("id")
        level = f.enum("level", Level)
        conditions: list[Condition] = []
        for i, raw in enumerate(f.items("conditions")):
            if isinstance(raw, str):
                if not raw.strip():
                    raise f.error(f"conditions[{i}]", "空の条件は書けません", "empty condition")
                conditions.append(Condition(raw))
                continue
            cf = _Fields(raw, "procedure", f.item_id, f"conditions[{i}].")
            conditions.append(Condition(when=cf.string("when"), why=cf.opt_text("why")))
            cf.done()
        links: list[Link] = []
        for i, raw in enumerate(f.items("links")):
            lf = _Fields(raw, "procedure", f.item_id, f"links[{i}].")
            url = lf.string("url")
            if not url.startswith(("https://", "http://", "/")):
                raise lf.error("url", "https:// か / で始まる URL にしてください", "use an https:// or / URL")
            links.append(Link(title=lf.text("title"), url=url))
            lf.done()
        members = f.string("members", required=False)
        if members and level is not Level.HOUSEHOLD:
            raise f.error(
                "members",
                "members は世帯単位（household）の手続きだけに書けます。個人単位は conditions に書いてください",
                "members only goes with level household; person-level procedures use conditions",
            )
        events = f.strs("events")
        if not events:
            raise f.error("events", "対象のライフイベントを1つ以上書いてください", "list at least one event")
        deadline = Deadline.parse(f.sub("deadline")) if f.has("deadline") else None
        f.seen.add("deadline")
        out = Procedure(
            id=f.item_id,
            service=f.ident("service"),
            title=f.text("title"),
            events=events,
            level=level,
            description=f.opt_text("description"),
            for_whom=f.enum("for_whom", ForWhom, default=ForWhom.SUBJECTS),
            conditions=tuple(conditions),
            members=members,
            members_why=f.opt_text("members_why"),
            forms=f.strs("forms"),
            deadline=deadline,
            bring=f.texts("bring"),
            notes=f.texts("notes"),
            links=tuple(links),
            department=f.string("department", required=False),
            optional=f.boolean("optional", default=False),
            verify=f.strs("verify"),
            order=f.integer("order", default=0) or 0,
        )
        f.done()
        return out


# -- household members (input to the rules) -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Member:
    """What the rules know about one household member, from the registry (住民記録) or entered at
    the counter (e.g. a family moving in). `id` is any stable string (宛名番号, a row id …)."""

    id: str
    name: str = ""
    birth_date: date | None = None
    relationship: str = ""  # 続柄 (standard values: 世帯主, 妻, 子 …)
    sex: PersonSex = PersonSex.UNKNOWN
    insurance: Insurance = Insurance.UNKNOWN
    pension: PensionType = PensionType.UNKNOWN
    has_disability_certificate: bool = False  # 障害者手帳 (身体・療育・精神)
    has_care_certification: bool = False  # 要介護・要支援認定
    is_foreign: bool = False
    has_my_number_card: bool = False
    has_sign_certificate: bool = False  # 署名用電子証明書
    has_seal_registration: bool = False  # 印鑑登録

    @staticmethod
    def from_resident(resident: Any, **overrides: Any) -> Member:
        """From an `app.models.Resident` (or anything with the same attributes). Facts the
        registry does not hold (insurance, pension, certificates …) come as `overrides`."""
        sex_code = str(getattr(resident, "sex", ""))
        sex = {"1": PersonSex.MALE, "2": PersonSex.FEMALE}.get(sex_code, PersonSex.UNKNOWN)
        auth = bool(getattr(resident, "auth_cert_serial", ""))
        sign = bool(getattr(resident, "sign_cert_serial", ""))
        name = getattr(resident, "full_name", "") or ""
        values: dict[str, Any] = {
            "id": str(getattr(resident, "atena_number", "") or getattr(resident, "id", "")),
            "name": name,
            "birth_date": getattr(resident, "birth_date", None),
            "relationship": getattr(resident, "relationship", "") or "",
            "sex": sex,
            "is_foreign": bool(getattr(resident, "nationality", "")),
            "has_my_number_card": auth or sign,
            "has_sign_certificate": sign,
        }
        values.update(overrides)
        return Member(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
            "relationship": self.relationship,
            "sex": self.sex.value,
            "insurance": self.insurance.value,
            "pension": self.pension.value,
            "has_disability_certificate": self.has_disability_certificate,
            "has_care_certification": self.has_care_certification,
            "is_foreign": self.is_foreign,
            "has_my_number_card": self.has_my_number_card,
            "has_sign_certificate": self.has_sign_certificate,
            "has_seal_registration": self.has_seal_registration,
        }

    @staticmethod
    def from_dict(data: object) -> Member:
        f = _Fields(data, "member")
        f.item_id = f.string("id")
        birth_raw = f.raw("birth_date")
        birth: date | None
        if birth_raw is None or birth_raw == "":
            birth = None
        elif isinstance(birth_raw, date):
            birth = birth_raw
        elif isinstance(birth_raw, str):
            try:
                birth = date.fromisoformat(birth_raw)
            except ValueError:
                raise f.error(
                    "birth_date", "日付は 2000-04-01 の形で書いてください", "use YYYY-MM-DD"
                ) from None
        else:
            raise f.error("birth_date", "日付は 2000-04-01 の形で書いてください", "use YYYY-MM-DD")
        out = Member(
            id=f.item_id,
            name=f.string("name", required=False),
            birth_date=birth,
            relationship=f.string("relationship", required=False),
            sex=f.enum("sex", PersonSex, default=PersonSex.UNKNOWN),
            insurance=f.enum("insurance", Insurance, default=Insurance.UNKNOWN),
            pension=f.enum("pension", PensionType, default=PensionType.UNKNOWN),
            has_disability_certificate=f.boolean("has_disability_certificate", default=False),
            has_care_certification=f.boolean("has_care_certification", default=False),
            is_foreign=f.boolean("is_foreign", default=False),
            has_my_number_card=f.boolean("has_my_number_card", default=False),
            has_sign_certificate=f.boolean("has_sign_certificate", default=False),
            has_seal_registration=f.boolean("has_seal_registration", default=False),
        )
        f.done()
        return out


# -- the catalogue --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything the rules engine needs, as edited by staff."""

    departments: tuple[Department, ...] = ()
    services: tuple[Service, ...] = ()
    forms: tuple[Form, ...] = ()
    events: tuple[LifeEvent, ...] = ()
    procedures: tuple[Procedure, ...] = ()
    _index: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    def _lookup(self, section: str, items: Sequence[Any]) -> dict[str, Any]:
        index = self._index.get(section)
        if index is None:
            index = {item.id: item for item in items}
            self._index[section] = index
        return index

    def department(self, department_id: str) -> Department | None:
        found: Department | None = self._lookup("departments", self.departments).get(department_id)
        return found

    def service(self, service_id: str) -> Service | None:
        found: Service | None = self._lookup("services", self.services).get(service_id)
        return found

    def form(self, form_id: str) -> Form | None:
        found: Form | None = self._lookup("forms", self.forms).get(form_id)
        return found

    def event(self, event_id: str) -> LifeEvent | None:
        found: LifeEvent | None = self._lookup("events", self.events).get(event_id)
        return found

    def procedure(self, procedure_id: str) -> Procedure | None:
        found: Procedure | None = self._lookup("procedures", self.procedures).get(procedure_id)
        return found

    def department_of(self, procedure: Procedure) -> Department | None:
        if procedure.department:
            return self.department(procedure.department)
        service = self.service(procedure.service)
        return self.department(service.department) if service else None

    def procedures_for(self, event_id: str) -> tuple[Procedure, ...]:
        return tuple(p for p in self.procedures if event_id in p.events)

    def to_dict(self) -> dict[str, list[Any]]:
        return {
            "departments": [d.to_dict() for d in self.departments],
            "services": [s.to_dict() for s in self.services],
            "forms": [f.to_dict() for f in self.forms],
            "events": [e.to_dict() for e in self.events],
            "procedures": [p.to_dict() for p in self.procedures],
        }

    @staticmethod
    def from_dict(data: object) -> Catalog:
        """Read a whole catalogue; raises the first SchemaError (the loader collects them all)."""
        f = _Fields(data, "catalog")
        out = Catalog(
            departments=tuple(Department.from_dict(x) for x in f.items("departments")),
            services=tuple(Service.from_dict(x) for x in f.items("services")),
            forms=tuple(Form.from_dict(x) for x in f.items("forms")),
            events=tuple(LifeEvent.from_dict(x) for x in f.items("events")),
            procedures=tuple(Procedure.from_dict(x) for x in f.items("procedures")),
        )
        f.done()
        return out
