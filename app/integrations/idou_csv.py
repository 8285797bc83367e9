"""住民異動届 CSV for the core resident-record system (住民記録システム).

The 住民記録システム標準仕様書 (10.8 CSV取込) requires the core system to import CSV made from
住民異動届 data; it leaves the layout to the two sides ("任意の方法でCSV形式になったデータ").
This module is our side: one row per person who moves (異動者, `CaseData.subjects()`), the
columns in `IDOU_COLUMNS`, the 異動事由 codes in `IDOU_EVENTS`. docs/integration/idou-csv.md
documents both, and tests/test_idou_csv.py checks the document against these tuples.

File rules: RFC 4180 (comma, `"` quoting only where needed, `""` for a quote, CRLF line ends,
line breaks inside a quoted field kept as they are), a header row, UTF-8 with a BOM by default.
`encoding="cp932"` serves older core systems that read Shift_JIS: text cp932 cannot hold (e.g.
𠮷, or IVS variation selectors) is never dropped or replaced; `write_idou_csv` raises
`IdouEncodingError` naming every case, person and column concerned, and writes nothing.
Names and addresses are written exactly as stored: never normalised.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import IO

from app.domain.cases import CaseData, CaseMode, Person, SignatureRole
from app.domain.wareki import format_wareki

__all__ = [
    "IDOU_COLUMNS",
    "IDOU_EVENTS",
    "IdouColumn",
    "IdouCsvError",
    "IdouEncodingError",
    "IdouEvent",
    "UnencodableText",
    "idou_event",
    "idou_rows",
    "write_idou_csv",
]


@dataclass(frozen=True, slots=True)
class IdouColumn:
    header: str  # as written in the header row
    key: str  # the key in `idou_rows` dicts
    format: str  # text | date | wareki | code | number | digits | postal
    required: bool  # never empty; a case without it is refused
    description: str


@dataclass(frozen=True, slots=True)
class IdouEvent:
    """One 異動事由 code: a life event, optionally narrowed by one of the case's answers."""

    code: str
    event_id: str
    answer: str  # "question=value" when an answer picks this code, "" for the event's default
    name: str  # 異動事由 as the CSV writes it
    category: str  # the standard's classification (住民記録システム標準仕様書 1.2.2)


# Codes are ours (the standard's numeric code table was not available; see the doc): the first
# digit is the standard's kind of change, 1 記載 (someone added), 2 消除 (removed), 3 修正.
IDOU_EVENTS: tuple[IdouEvent, ...] = (
    IdouEvent("11", "tennyu", "", "転入", "記載: 国内転入"),
    IdouEvent("12", "tennyu", "moved_from=abroad", "国外転入", "記載: 国外転入等"),
    IdouEvent("13", "shussei", "", "出生", "記載: 出生"),
    IdouEvent("21", "tenshutsu", "", "転出", "消除: 国内転出"),
    IdouEvent("22", "tenshutsu", "destination=abroad", "国外転出", "消除: 国外転出"),
    IdouEvent("23", "shibou", "", "死亡", "消除: 死亡"),
    IdouEvent("31", "tenkyo", "", "転居", "修正: 転居"),
    IdouEvent("32", "setai_henko", "", "世帯変更", "修正: 世帯変更"),
    IdouEvent("33", "setai_henko", "change_kind=split", "世帯分離", "修正: 世帯分離"),
    IdouEvent("34", "setai_henko", "change_kind=merge", "世帯合併", "修正: 世帯合併"),
    IdouEvent("35", "setai_henko", "change_kind=head_change", "世帯主変更", "修正: 世帯主変更"),
    IdouEvent("36", "konin", "", "婚姻", "修正: 職権修正（戸籍の届出による）"),
    IdouEvent("37", "rikon", "", "離婚", "修正: 職権修正（戸籍の届出による）"),
)

IDOU_COLUMNS: tuple[IdouColumn, ...] = (
    IdouColumn("受付番号", "case_number", "text", True, "受付番号 shown to the resident, e.g. 転入-0003"),
    IdouColumn("案件ID", "case_token", "text", True, "the case's token (the QR code on the guidance sheet)"),
    IdouColumn("異動事由コード", "event_code", "code", True, "see the 異動事由 code table"),
    IdouColumn("異動事由", "event_name", "text", True, "the name of the code, e.g. 転入"),
    IdouColumn("異動日", "event_date", "date", False, "moved, born, died … on; empty when not known"),
    IdouColumn("異動日（和暦）", "event_date_wareki", "wareki", False, "the same date in 和暦"),
    IdouColumn("届出日", "filed_on", "date", True, "the day the notification was made"),
    IdouColumn("届出日（和暦）", "filed_on_wareki", "wareki", True, "the same date in 和暦"),
    IdouColumn("異動者連番", "subject_no", "number", True, "1, 2, 3 … per case, in household order"),
    IdouColumn(
        "個人キー", "person_key", "text", True, "the person's key in the case: 宛名番号 or new-1, new-2 …"
    ),
    IdouColumn("宛名番号", "atena_number", "digits", False, "empty for people not yet registered"),
    IdouColumn("住民票コード", "resident_code", "digits", False, "11 digits; empty when not known"),
    IdouColumn("住民種別", "resident_kind", "code", True, "1 日本人, 2 外国人 (nationality given)"),
    IdouColumn("氏", "family_name", "text", True, "as recorded, never normalised"),
    IdouColumn("名", "given_name", "text", False, "as recorded, never normalised"),
    IdouColumn("氏（フリガナ）", "family_kana", "text", False, "as recorded (katakana or hiragana)"),
    IdouColumn("名（フリガナ）", "given_kana", "text", False, "as recorded (katakana or hiragana)"),
    IdouColumn("生年月日", "birth_date", "date", False, "empty when not known"),
    IdouColumn(
        "生年月日（和暦）", "birth_date_wareki", "wareki", False, "empty for foreign residents (西暦 only)"
    ),
    IdouColumn("性別コード", "sex_code", "code", False, "1 男, 2 女; empty when not known"),
    IdouColumn("性別", "sex", "text", False, "男 or 女"),
    IdouColumn(
        "続柄", "relationship", "text", False, "世帯主との続柄 in the standard's words (世帯主, 妻, 子 …)"
    ),
    IdouColumn("国籍・地域", "nationality", "text", False, "empty for Japanese nationals"),
    IdouColumn("新住所郵便番号", "new_postal_code", "postal", False, "NNN-NNNN"),
    IdouColumn(
        "新住所", "new_address", "text", False, "from the prefecture; empty when nobody moves (死亡 …)"
    ),
    IdouColumn(
        "新住所方書", "new_katagaki", "text", False, "building and room; may hold commas, quotes, line breaks"
    ),
    IdouColumn("新世帯主氏名", "new_head", "text", False, ""),
    IdouColumn("旧住所郵便番号", "old_postal_code", "postal", False, "NNN-NNNN"),
    IdouColumn("旧住所", "old_address", "text", False, "the address before (転入: 従前の住所)"),
    IdouColumn("旧住所方書", "old_katagaki", "text", False, ""),
    IdouColumn("旧世帯主氏名", "old_head", "text", False, ""),
    IdouColumn("届出人氏名", "applicant_name", "text", True, "氏 and 名 with a full-width space between"),
    IdouColumn("届出人フリガナ", "applicant_kana", "text", False, ""),
    IdouColumn("届出人と異動者の関係", "applicant_relation", "text", False, "本人, 世帯主, 代理人 …"),
    IdouColumn("届出人電話番号", "phone", "text", False, ""),
    IdouColumn("届出人署名", "resident_signed", "code", True, "1 signed by hand on the tablet, 0 not"),
    IdouColumn(
        "受付方法", "mode_code", "code", True, "1 キオスク (the resident entered it), 2 窓口 (a clerk asked)"
    ),
    IdouColumn("受付場所", "location", "text", False, ""),
    IdouColumn("受付者", "clerk", "text", False, "the clerk's display name"),
)

# Columns that differ from one 異動者 to the next; the others belong to the case.
_PERSON_KEYS = frozenset(
    {
        "subject_no",
        "person_key",
        "atena_number",
        "resident_code",
        "resident_kind",
        "family_name",
        "given_name",
        "family_kana",
        "given_kana",
        "birth_date",
        "birth_date_wareki",
        "sex_code",
        "sex",
        "relationship",
        "nationality",
    }
)
_SEX = {"1": "男", "2": "女", "": ""}
_MODE = {CaseMode.KIOSK: "1", CaseMode.INTERVIEW: "2"}
_ENCODINGS = ("utf-8", "cp932")


class IdouCsvError(ValueError):
    """A case that cannot be written; the messages say which case and which column."""

    def __init__(self, message_ja: str, message_en: str, *, case_number: str = "", field: str = "") -> None:
        super().__init__(message_en)
        self.message_ja = message_ja
        self.message_en = message_en
        self.case_number = case_number
        self.field = field


@dataclass(frozen=True, slots=True)
class UnencodableText:
    case_number: str
    case_token: str
    person_key: str  # "" for the case's own columns (addresses, 届出人 …)
    header: str  # the column (IdouColumn.header)
    characters: str  # the characters the encoding cannot hold, in order, each once


class IdouEncodingError(IdouCsvError):
    """Text that the chosen encoding cannot hold. Nothing was written."""

    def __init__(self, encoding: str, problems: tuple[UnencodableText, ...]) -> None:
        shown = problems[:10]
        lines_ja = [
            f"受付番号 {p.case_number}{f'（{p.person_key}）' if p.person_key else ''}の「{p.header}」: {p.characters}"
            for p in shown
        ]
        lines_en = [
            f"case {p.case_number}{f' ({p.person_key})' if p.person_key else ''} {p.header}: {p.characters}"
            for p in shown
        ]
        more = len(problems) - len(shown)
        if more:
            lines_ja.append(f"ほか {more} 件")
            lines_en.append(f"and {more} more")
        super().__init__(
            f"{encoding} (Shift_JIS) で書けない文字があるため、CSV を作りませんでした。"
            "UTF-8 で出力するか、基幹システムで直接入力してください。\n" + "\n".join(lines_ja),
            f"Some characters cannot be written in {encoding}; no CSV was made. Export in UTF-8 or "
            "enter these in the core system.\n" + "\n".join(lines_en),
            case_number=problems[0].case_number if problems else "",
            field=problems[0].header if problems else "",
        )
        self.encoding = encoding
        self.problems = problems


def _answer_matches(case: CaseData, answer: str) -> bool:
    question, _, value = answer.partition("=")
    return str(case.answers.get(question, "")) == value


def idou_event(case: CaseData) -> IdouEvent:
    """The 異動事由 code for a case: a code whose answer matches first, else the event's default."""
    candidates = [e for e in IDOU_EVENTS if e.event_id == case.event_id]
    for event in candidates:
        if event.answer and _answer_matches(case, event.answer):
            return event
    for event in candidates:
        if not event.answer:
            return event
    raise IdouCsvError(
        f"受付番号 {case.number} の「{case.event_name or case.event_id}」は住民異動届ではないため、"
        "CSV に出力できません。",
        f"Case {case.number} ({case.event_id}) is not a 住民異動届 event and has no 異動事由 code.",
        case_number=case.number,
        field="異動事由コード",
    )


def _iso(value: date | None) -> str:
    return value.isoformat() if value else ""


def _wareki(value: date | None) -> str:
    return format_wareki(value) if value else ""


def _person_row(case: CaseData, event: IdouEvent, number: int, person: Person) -> dict[str, str]:
    if person.sex not in _SEX:
        raise IdouCsvError(
            f"受付番号 {case.number}（{person.key}）の性別「{person.sex}」は 1（男）か 2（女）で入力してください。",
            f"Case {case.number} ({person.key}): sex {person.sex!r} must be 1, 2 or empty.",
            case_number=case.number,
            field="性別コード",
        )
    resident_signed = case.signature(SignatureRole.RESIDENT) is not None
    return {
        "case_number": case.number,
        "case_token": case.token,
        "event_code": event.code,
        "event_name": event.name,
        "event_date": _iso(case.event_date),
        "event_date_wareki": _wareki(case.event_date),
        "filed_on": _iso(case.filed_on),
        "filed_on_wareki": _wareki(case.filed_on),
        "subject_no": str(number),
        "person_key": person.key,
        "atena_number": person.atena_number,
        "resident_code": person.resident_code,
        "resident_kind": "2" if person.is_foreign else "1",
        "family_name": person.family_name,
        "given_name": person.given_name,
        "family_kana": person.family_kana,
        "given_kana": person.given_kana,
        "birth_date": _iso(person.birth_date),
        "birth_date_wareki": "" if person.is_foreign else _wareki(person.birth_date),
        "sex_code": person.sex,
        "sex": _SEX[person.sex],
        "relationship": person.relationship,
        "nationality": person.nationality,
        "new_postal_code": case.new_address.postal_code,
        "new_address": case.new_address.address,
        "new_katagaki": case.new_address.katagaki,
        "new_head": case.new_head,
        "old_postal_code": case.old_address.postal_code,
        "old_address": case.old_address.address,
        "old_katagaki": case.old_address.katagaki,
        "old_head": case.old_head,
        "applicant_name": case.applicant.name,
        "applicant_kana": case.applicant.kana,
        "applicant_relation": case.applicant_relation,
        "phone": case.phone,
        "resident_signed": "1" if resident_signed else "0",
        "mode_code": _MODE[case.mode],
        "location": case.location,
        "clerk": case.clerk,
    }


def idou_rows(case: CaseData) -> list[dict[str, str]]:
    """One dict per 異動者 (keys: `IdouColumn.key`, values: the text written to the CSV).

    Raises `IdouCsvError` for a case that is not a 住民異動届 event, has no 異動者, or lacks a
    required column.
    """
    event = idou_event(case)
    subjects = case.subjects()
    if not subjects:
        raise IdouCsvError(
            f"受付番号 {case.number} には異動者がいません。異動する方を選んでください。",
            f"Case {case.number} has no person who moves (異動者).",
            case_number=case.number,
            field="異動者連番",
        )
    rows = [_person_row(case, event, n, person) for n, person in enumerate(subjects, start=1)]
    for row in rows:
        for column in IDOU_COLUMNS:
            if column.required and not row[column.key]:
                raise IdouCsvError(
                    f"受付番号 {case.number}（{row['person_key']}）の「{column.header}」が空です。",
                    f"Case {case.number} ({row['person_key']}): {column.key} is required.",
                    case_number=case.number,
                    field=column.header,
                )
    return rows


def _encoder_check(encoding: str) -> Callable[[str], str]:
    """A function giving the characters of a text that `encoding` cannot hold."""

    def unencodable(text: str) -> str:
        try:
            text.encode(encoding)
            return ""
        except UnicodeEncodeError:
            bad: dict[str, None] = {}
            for ch in text:
                try:
                    ch.encode(encoding)
                except UnicodeEncodeError:
                    bad.setdefault(ch, None)
            return "".join(bad)

    return unencodable


def write_idou_csv(
    cases: Iterable[CaseData], out: IO[bytes], *, encoding: str = "utf-8", bom: bool = True
) -> int:
    """Write the header and one row per 異動者 of every case to `out`; return the rows written.

    `encoding` is "utf-8" (default; a BOM first when `bom`) or "cp932" (Shift_JIS as Windows
    writes it; never a BOM). Everything is checked before the first byte is written: a case
    that cannot be exported (`IdouCsvError`) or text cp932 cannot hold (`IdouEncodingError`,
    listing every case, person and column) leaves `out` untouched.
    """
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}; use utf-8 or cp932") from None
    if codec not in _ENCODINGS:
        raise ValueError(
            f"encoding {encoding!r} is not supported; use utf-8 or cp932 (Shift_JIS with extensions)"
        )

    rows: list[dict[str, str]] = []
    for case in cases:
        rows.extend(idou_rows(case))

    if codec != "utf-8":
        unencodable = _encoder_check(codec)
        # A case's own columns (addresses, 届出人 …) repeat on every row: report them once.
        found: dict[UnencodableText, None] = {}
        for row in rows:
            for column in IDOU_COLUMNS:
                bad = unencodable(row[column.key])
                if bad:
                    person = row["person_key"] if column.key in _PERSON_KEYS else ""
                    found.setdefault(
                        UnencodableText(row["case_number"], row["case_token"], person, column.header, bad)
                    )
        if found:
            raise IdouEncodingError(codec, tuple(found))

    text = io.StringIO(newline="")
    writer = csv.writer(text, dialect="excel", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([column.header for column in IDOU_COLUMNS])
    for row in rows:
        writer.writerow([row[column.key] for column in IDOU_COLUMNS])
    data = text.getvalue().encode(codec)
    if codec == "utf-8" and bom:
        data = codecs.BOM_UTF8 + data
    out.write(data)
    return len(rows)
