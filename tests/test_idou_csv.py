"""住民異動届 CSV: the layout matches docs/integration/idou-csv.md, and the file is RFC 4180."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from app.domain.cases import (
    Address,
    CaseData,
    CaseMode,
    Person,
    Signature,
    SignatureRole,
    StrokePoint,
)
from app.integrations.idou_csv import (
    IDOU_COLUMNS,
    IDOU_EVENTS,
    IdouCsvError,
    IdouEncodingError,
    idou_event,
    idou_rows,
    write_idou_csv,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "integration" / "idou-csv.md"
HEADERS = [c.header for c in IDOU_COLUMNS]


def person(key: str, family: str, given: str, **kw: Any) -> Person:
    return Person(key=key, family_name=family, given_name=given, **kw)


def example_case() -> CaseData:
    """The example in the document: a couple moving in from another (fictional) city."""
    head = person(
        "new-1",
        "山形",
        "一郎",
        family_kana="ヤマガタ",
        given_kana="イチロウ",
        birth_date=date(1980, 2, 17),
        sex="1",
        relationship="世帯主",
        source="card",
    )
    wife = person(
        "new-2",
        "山形",
        "花子",
        family_kana="ヤマガタ",
        given_kana="ハナコ",
        birth_date=date(1982, 11, 3),
        sex="2",
        relationship="妻",
        source="typed",
    )
    signature = Signature(
        role=SignatureRole.RESIDENT,
        width=600,
        height=194,
        strokes=((StrokePoint(10, 10, 0, 0.5), StrokePoint(90, 30, 40, 0.6)),),
    )
    return CaseData(
        token="c7f3a9d2e1b04f65",
        number="転入-0003",
        event_id="tennyu",
        event_name="転入",
        event_date=date(2026, 3, 28),
        filed_on=date(2026, 4, 1),
        mode=CaseMode.KIOSK,
        applicant=head,
        members=(head, wife),
        new_address=Address("123-4567", "架空県みなと市港町二丁目3番4号", 'コーポ"さくら" 201,202号'),
        old_address=Address("765-4321", "空想県ひかり市中央一丁目5番6号"),
        new_head="山形　一郎",
        old_head="山形　一郎",
        applicant_relation="本人",
        phone="0123-45-6789",
        answers={"moved_from": "other_city"},
        signatures=(signature,),
        municipality="みなと市",
        location="本庁 1番窓口",
    )


def family_of_four(**case_kw: Any) -> CaseData:
    members = (
        person("1000017", "佐藤", "健", sex="1", relationship="世帯主", atena_number="1000017"),
        person("1000025", "佐藤", "美咲", sex="2", relationship="妻", atena_number="1000025"),
        person("1000033", "佐藤", "陽翔", sex="1", relationship="子", atena_number="1000033"),
        person("1000041", "佐藤", "結衣", sex="2", relationship="子", atena_number="1000041"),
    )
    values: dict[str, Any] = {
        "token": "tok-family",
        "number": "転居-0001",
        "event_id": "tenkyo",
        "event_name": "転居",
        "event_date": date(2026, 4, 5),
        "filed_on": date(2026, 4, 6),
        "mode": CaseMode.INTERVIEW,
        "applicant": members[0],
        "members": members,
        "new_address": Address("123-4501", "架空県みなと市汐見7番地"),
        "old_address": Address("123-4567", "架空県みなと市港町二丁目3番4号"),
        "clerk": "窓口 太郎",
    }
    values.update(case_kw)
    return CaseData(**values)


def write(cases: list[CaseData], **kw: Any) -> bytes:
    out = io.BytesIO()
    write_idou_csv(cases, out, **kw)
    return out.getvalue()


def read_csv(data: bytes, encoding: str = "utf-8-sig") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(encoding), newline="")))


# -- the document ---------------------------------------------------------------------------------
def _doc_section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"section {title!r} missing from {DOC}"
    return match.group(1)


def _table(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "no table"
    cells = [[cell.strip().replace("`", "") for cell in row.strip().strip("|").split("|")] for row in rows]
    assert set("".join(cells[1])) <= set("-: "), "second line of a table is its rule"
    return cells[2:]


def test_the_document_lists_exactly_the_columns() -> None:
    documented = _table(_doc_section("Columns"))
    expected = [
        [str(n), c.header, c.key, c.format, "yes" if c.required else "no", c.description]
        for n, c in enumerate(IDOU_COLUMNS, start=1)
    ]
    assert documented == expected


def test_the_document_lists_exactly_the_event_codes() -> None:
    documented = _table(_doc_section("異動事由 codes"))
    expected = [[e.code, e.event_id, e.answer, e.name, e.category] for e in IDOU_EVENTS]
    assert documented == expected


def test_the_document_example_is_what_the_code_writes() -> None:
    section = _doc_section("Example")
    match = re.search(r"```csv\n(.*?)```", section, re.S)
    assert match
    written = write([example_case()])
    assert written.startswith(b"\xef\xbb\xbf")
    assert written[3:].decode("utf-8") == match.group(1).replace("\n", "\r\n")


def test_columns_are_unique() -> None:
    assert len(set(HEADERS)) == len(HEADERS)
    assert len({c.key for c in IDOU_COLUMNS}) == len(IDOU_COLUMNS)
    assert len({e.code for e in IDOU_EVENTS}) == len(IDOU_EVENTS)
    for column in IDOU_COLUMNS:
        assert column.format in {"text", "date", "wareki", "code", "number", "digits", "postal"}


# -- rows -----------------------------------------------------------------------------------------
def test_rows_of_the_example() -> None:
    rows = idou_rows(example_case())
    assert len(rows) == 2
    head, wife = rows
    assert set(head) == {c.key for c in IDOU_COLUMNS}
    assert head["event_code"] == "11" and head["event_name"] == "転入"
    assert (head["event_date"], head["event_date_wareki"]) == ("2026-03-28", "令和8年3月28日")
    assert (head["filed_on"], head["filed_on_wareki"]) == ("2026-04-01", "令和8年4月1日")
    assert (head["birth_date"], head["birth_date_wareki"]) == ("1980-02-17", "昭和55年2月17日")
    assert [r["subject_no"] for r in rows] == ["1", "2"]
    assert (head["sex_code"], head["sex"], wife["sex_code"], wife["sex"]) == ("1", "男", "2", "女")
    assert (head["relationship"], wife["relationship"]) == ("世帯主", "妻")
    assert head["applicant_name"] == "山形　一郎" and head["applicant_kana"] == "ヤマガタ　イチロウ"
    assert head["resident_signed"] == "1" and head["mode_code"] == "1"
    assert head["resident_kind"] == "1"
    unsigned = replace(example_case(), signatures=(), mode=CaseMode.INTERVIEW)
    assert idou_rows(unsigned)[0]["resident_signed"] == "0"
    assert idou_rows(unsigned)[0]["mode_code"] == "2"


def test_family_of_four_gives_four_rows_and_non_subjects_are_left_out() -> None:
    case = family_of_four()
    data = write([case])
    table = read_csv(data)
    assert table[0] == HEADERS
    assert len(table) == 5
    assert all(len(row) == len(IDOU_COLUMNS) for row in table)
    col = HEADERS.index("宛名番号")
    assert [row[col] for row in table[1:]] == ["1000017", "1000025", "1000033", "1000041"]
    # The wife stays behind (a 世帯分離-like move of three): three rows, numbered 1, 2, 3.
    members = tuple(replace(m, subject=m.key != "1000025") for m in case.members)
    table = read_csv(write([replace(case, members=members)]))
    assert [row[col] for row in table[1:]] == ["1000017", "1000033", "1000041"]
    assert [row[HEADERS.index("異動者連番")] for row in table[1:]] == ["1", "2", "3"]


def test_several_cases_in_one_file() -> None:
    out = io.BytesIO()
    assert write_idou_csv([example_case(), family_of_four()], out) == 6
    table = read_csv(out.getvalue())
    assert [row[0] for row in table[1:]] == ["転入-0003"] * 2 + ["転居-0001"] * 4
    assert write_idou_csv([], io.BytesIO()) == 0


@pytest.mark.parametrize(
    ("event_id", "answers", "code", "name"),
    [
        ("tennyu", {}, "11", "転入"),
        ("tennyu", {"moved_from": "other_city"}, "11", "転入"),
        ("tennyu", {"moved_from": "abroad"}, "12", "国外転入"),
        ("shussei", {}, "13", "出生"),
        ("tenshutsu", {"destination": "domestic"}, "21", "転出"),
        ("tenshutsu", {"destination": "abroad"}, "22", "国外転出"),
        ("shibou", {}, "23", "死亡"),
        ("tenkyo", {}, "31", "転居"),
        ("setai_henko", {}, "32", "世帯変更"),
        ("setai_henko", {"change_kind": "split"}, "33", "世帯分離"),
        ("setai_henko", {"change_kind": "merge"}, "34", "世帯合併"),
        ("setai_henko", {"change_kind": "head_change"}, "35", "世帯主変更"),
        ("konin", {}, "36", "婚姻"),
        ("rikon", {}, "37", "離婚"),
    ],
)
def test_event_codes(event_id: str, answers: dict[str, str], code: str, name: str) -> None:
    case = replace(family_of_four(), event_id=event_id, answers=answers)
    assert (idou_event(case).code, idou_event(case).name) == (code, name)
    assert idou_rows(case)[0]["event_code"] == code


def test_events_that_are_not_idou_are_refused() -> None:
    case = replace(family_of_four(), event_id="ninshin", event_name="妊娠・出産")
    with pytest.raises(IdouCsvError) as caught:
        write([case])
    assert "転居-0001" in caught.value.message_ja and "妊娠・出産" in caught.value.message_ja


def test_a_case_without_subjects_or_required_values_is_refused() -> None:
    case = family_of_four()
    nobody = replace(case, members=tuple(replace(m, subject=False) for m in case.members))
    with pytest.raises(IdouCsvError) as caught:
        idou_rows(nobody)
    assert "異動者" in caught.value.message_ja and caught.value.case_number == "転居-0001"
    nameless = replace(case, members=(replace(case.members[0], family_name=""), *case.members[1:]))
    with pytest.raises(IdouCsvError) as caught:
        idou_rows(nameless)
    assert caught.value.field == "氏" and "1000017" in caught.value.message_ja
    odd_sex = replace(case, members=(replace(case.members[0], sex="9"),))
    with pytest.raises(IdouCsvError) as caught:
        idou_rows(odd_sex)
    assert caught.value.field == "性別コード"


def test_foreign_residents() -> None:
    case = family_of_four()
    foreign = replace(
        case.members[0],
        family_name="SMITH",
        given_name="JOHN",
        nationality="アメリカ合衆国",
        birth_date=date(1990, 5, 6),
    )
    row = idou_rows(replace(case, members=(foreign,)))[0]
    assert (row["resident_kind"], row["nationality"]) == ("2", "アメリカ合衆国")
    assert (row["birth_date"], row["birth_date_wareki"]) == ("1990-05-06", "")


# -- the file -------------------------------------------------------------------------------------
def test_quoting_of_commas_quotes_and_line_breaks() -> None:
    katagaki = 'メゾン"桜",2階\r\n201号\n（奥）'
    case = replace(family_of_four(), new_address=Address("123-4501", "架空県みなと市汐見7番地", katagaki))
    data = write([case])
    text = data[3:].decode("utf-8")
    assert '"メゾン""桜"",2階\r\n201号\n（奥）"' in text  # RFC 4180: quoted, quotes doubled
    table = read_csv(data)
    assert len(table) == 5  # line breaks inside the field do not start rows
    assert {row[HEADERS.index("新住所方書")] for row in table[1:]} == {katagaki}
    # Fields without special characters are not quoted.
    assert "\r\n転居-0001,tok-family,31,転居,2026-04-05," in text


def test_crlf_line_ends_and_bom() -> None:
    data = write([family_of_four()])
    assert data.startswith(b"\xef\xbb\xbf")
    body = data[3:]
    assert body.endswith(b"\r\n")
    assert body.count(b"\r\n") == 5 and body.count(b"\n") == 5  # no bare LF
    assert body.split(b"\r\n")[0].decode("utf-8") == ",".join(HEADERS)
    assert not write([family_of_four()], bom=False).startswith(b"\xef\xbb\xbf")


def test_cp932() -> None:
    case = family_of_four()
    # 髙 and 﨑 are NEC/IBM extensions: cp932 holds them (Shift_JIS proper does not).
    kept = replace(case, members=(replace(case.members[0], family_name="髙﨑"),))
    data = write([kept], encoding="cp932")
    assert not data.startswith(b"\xef\xbb\xbf")  # never a BOM in cp932
    assert b"\r\n" in data
    table = read_csv(data, "cp932")
    assert table[0] == HEADERS and table[1][HEADERS.index("氏")] == "髙﨑"
    assert write([kept], encoding="ms932") == data  # an alias of cp932


def test_cp932_refuses_what_it_cannot_hold_and_writes_nothing() -> None:
    case = family_of_four(new_address=Address("123-4501", "架空県みなと市汐見7番地", "𠮷野ハイツ"))
    members = (
        replace(case.members[0], family_name="𠮷田"),
        replace(case.members[1], given_name="葛\U000e0100子"),  # 葛 with a variation selector (IVS)
        *case.members[2:],
    )
    out = io.BytesIO()
    with pytest.raises(IdouEncodingError) as caught:
        write_idou_csv(
            [family_of_four(), replace(case, members=members, applicant=members[0], number="転居-0002")],
            out,
            encoding="cp932",
        )
    assert out.getvalue() == b""  # nothing written
    error = caught.value
    found = {(p.case_number, p.person_key, p.header, p.characters) for p in error.problems}
    assert found == {
        ("転居-0002", "1000017", "氏", "𠮷"),
        ("転居-0002", "", "届出人氏名", "𠮷"),
        ("転居-0002", "1000025", "名", "\U000e0100"),
        ("転居-0002", "", "新住所方書", "𠮷"),  # the case's address: once, not once per person
    }
    assert "転居-0002" in error.message_ja and "「氏」" in error.message_ja and "UTF-8" in error.message_ja
    # UTF-8 writes the same cases, names untouched.
    table = read_csv(write([replace(case, members=members)]))
    assert table[1][HEADERS.index("氏")] == "𠮷田"
    assert table[2][HEADERS.index("名")] == "葛\U000e0100子"


def test_names_are_not_normalised() -> None:
    # U+FA11 (﨑, a CJK compatibility ideograph) would become U+5D0E under NFC.
    case = family_of_four()
    compat = replace(case, members=(replace(case.members[0], family_name="\ufa11山", family_kana="ｻｷﾔﾏ"),))
    row = read_csv(write([compat]))[1]
    assert row[HEADERS.index("氏")] == "\ufa11山"
    assert row[HEADERS.index("氏（フリガナ）")] == "ｻｷﾔﾏ"


@pytest.mark.parametrize("encoding", ["shift_jis", "euc-jp", "latin-1", "no-such-codec"])
def test_other_encodings_are_refused(encoding: str) -> None:
    with pytest.raises(ValueError, match="utf-8 or cp932"):
        write([family_of_four()], encoding=encoding)
