"""The seed catalogue (app/domain/lifeevents/data/*.yaml): it loads, is large enough, every
reference resolves, it round-trips through plain dicts and YAML, and schema errors name the file,
the item and the field in Japanese and English."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from app.domain.lifeevents.engine import CatalogError, compile_rules
from app.domain.lifeevents.loader import (
    DATA_DIR,
    catalog_from_documents,
    export_yaml,
    load_catalog,
    parse_yaml,
    read_documents,
)
from app.domain.lifeevents.model import Catalog, Level, Member, Procedure, QuestionKind

SAGAE_FORMS = {
    "住民票等交付申請書",
    "税務証明交付申請書",
    "住民異動届",
    "国民健康保険 資格取得・喪失届",
    "個人番号カード暗証番号変更・再設定申請書／電子証明書暗証番号変更・再設定申請書",
    "署名用／利用者用電子証明書 新規発行・更新申請書",
    "個人番号カード券面記載事項変更届・電子証明書新規発行申請書",
    "在留期間更新に伴う有効期間変更申請書",
    "児童手当・特例給付 認定請求書",
    "児童手当 額改定認定請求書",
    "児童手当 受給事由消滅届",
    "子育て支援医療証交付申請書",
}


@cache
def catalog() -> Catalog:
    return load_catalog()


def test_seed_data_loads_with_enough_events_services_and_procedures() -> None:
    c = catalog()
    assert len(c.events) >= 8
    assert len(c.services) >= 15
    assert len(c.procedures) >= 60
    assert {"tennyu", "tenshutsu", "tenkyo", "setai_henko", "shussei", "shibou", "konin", "rikon"} <= {
        e.id for e in c.events
    }
    compile_rules(c)  # conditions, references and placeholders all check


def test_the_domain_services_are_present() -> None:
    services = {s.id for s in catalog().services}
    assert {
        "kokuho", "nenkin", "kaigo", "koki", "jido_teate", "kodomo_iryo", "gakko", "inkan", "inu",
        "mynumber", "jpki", "hoiku", "shogai", "hitorioya", "zei", "juki", "koseki",
    } <= services  # fmt: skip
    used = {p.service for p in catalog().procedures}
    assert services == used, "every service has procedures"


def test_every_event_has_touch_questions_and_procedures() -> None:
    c = catalog()
    kinds = set()
    for event in c.events:
        assert event.questions, event.id
        assert c.procedures_for(event.id), event.id
        kinds |= {q.kind for q in event.questions}
        for q in event.questions:
            assert q.text.easy and q.text.en, f"{event.id}.{q.id} needs やさしい日本語 and English"
            for option in q.options:
                assert option.label.easy and option.label.en, f"{event.id}.{q.id}.{option.value}"
    assert kinds == set(QuestionKind)


def test_moves_cover_the_procedures_domain_md_lists() -> None:
    c = catalog()

    def services_of(event_id: str) -> set[str]:
        return {p.service for p in c.procedures_for(event_id)}

    assert {"juki", "mynumber", "jpki", "kokuho", "nenkin", "kaigo", "koki", "jido_teate", "kodomo_iryo", "gakko",
            "inu", "hoiku", "shogai", "hitorioya", "zei"} <= services_of("tennyu")  # fmt: skip
    assert {
        "juki",
        "mynumber",
        "kokuho",
        "koki",
        "kaigo",
        "jido_teate",
        "gakko",
        "inkan",
        "inu",
        "zei",
    } <= services_of("tenshutsu")
    assert {"juki", "mynumber", "jpki", "kokuho", "kaigo", "gakko", "inu"} <= services_of("tenkyo")
    assert {"koseki", "jido_teate", "kodomo_iryo", "kokuho"} <= services_of("shussei")
    assert {"koseki", "juki", "kokuho", "koki", "kaigo", "nenkin", "inkan"} <= services_of("shibou")


def test_every_form_reference_exists_and_the_sagae_forms_are_printable() -> None:
    c = catalog()
    form_ids = {f.id for f in c.forms}
    for procedure in c.procedures:
        for form_id in procedure.forms:
            assert form_id in form_ids, (procedure.id, form_id)
    printable = {f.name.ja for f in c.forms if f.printable}
    assert printable >= SAGAE_FORMS
    assert {"手続き案内票", "申請内容票"} <= printable
    assert len(printable) == 14
    # The raw YAML, too: forms named by procedures are defined in the forms list.
    raw_forms = {
        f["id"] for doc in read_documents().values() if isinstance(doc, dict) for f in doc.get("forms", [])
    }
    raw_refs = {
        r
        for doc in read_documents().values()
        if isinstance(doc, dict)
        for p in doc.get("procedures", [])
        for r in p.get("forms", [])
    }
    assert raw_refs <= raw_forms


def test_uncertain_facts_are_flagged() -> None:
    flagged = [p for p in catalog().procedures if p.verify]
    assert len(flagged) >= 10
    for procedure in flagged:
        for note in procedure.verify:
            assert note.startswith("[要確認]"), procedure.id
    text = "".join(path.read_text(encoding="utf-8") for path in DATA_DIR.glob("*.yaml"))
    assert text.count("[要確認]") >= len(flagged)


def test_deadlines_the_law_sets() -> None:
    c = catalog()

    def proc(pid: str) -> Procedure:
        found = c.procedure(pid)
        assert found is not None
        return found

    for pid in ("tennyu_todoke", "tenkyo_todoke", "tenshutsu_todoke", "tennyu_kokuho"):
        deadline = proc(pid).deadline
        assert deadline is not None and deadline.days == 14 and not deadline.first_day_counts
    allowance = proc("tenshutsu_jido_teate").deadline
    assert allowance is not None and allowance.days == 15 and allowance.anchor == "day_after_event_date"
    dog = proc("tennyu_inu").deadline
    assert dog is not None and dog.days == 30
    assert proc("tennyu_todoke").level is Level.HOUSEHOLD
    assert proc("tennyu_kokuho").level is Level.PERSON


def test_round_trip_through_dicts_and_yaml() -> None:
    c = catalog()
    assert Catalog.from_dict(c.to_dict()) == c
    text = export_yaml(c)
    again = catalog_from_documents({"export.yaml": parse_yaml(text, "export.yaml")})
    assert again == c
    member = Member("1", "山田", None, "世帯主")
    assert Member.from_dict(member.to_dict()) == member


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


BASE = """
departments:
  - {id: shimin, name: 市民課}
services:
  - {id: juki, name: 住民記録, department: shimin}
forms:
  - {id: idou_todoke, name: 住民異動届}
events:
  - id: tennyu
    name: 転入
    description: 引っ越してきたとき
    date_label: 引っ越した日
    subjects: {label: 引っ越してきた方, default: all}
    questions:
      - {id: has_dog, kind: yes_no, text: 犬を飼っていますか？}
"""


def load_errors(tmp_path: Path, procedures: str) -> str:
    write(tmp_path, "base.yaml", BASE)
    write(tmp_path, "procedures.yaml", procedures)
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    return str(caught.value)


def test_a_small_valid_catalogue_loads(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", BASE)
    write(
        tmp_path,
        "procedures.yaml",
        """
procedures:
  - id: tennyu_todoke
    service: juki
    title: 転入届
    events: [tennyu]
    level: household
    forms: [idou_todoke]
    conditions: [answer.has_dog or not answer.has_dog]
""",
    )
    assert len(load_catalog(tmp_path).procedures) == 1


def test_schema_errors_name_file_item_and_field(tmp_path: Path) -> None:
    message = load_errors(
        tmp_path,
        """
procedures:
  - id: tennyu_todoke
    service: juki
    title: 転入届
    events: [tennyu]
    level: household
    deadlin: {kind: within_days, days: 14, label: 14日以内}
""",
    )
    assert "procedures.yaml" in message
    assert "手続き「tennyu_todoke」" in message and "deadlin" in message
    assert "知らない項目" in message and "unknown field" in message


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("    level: floor\n", ["「level」", "floor", "household, person"]),
        ("    level: person\n    forms: [no_such_form]\n", ["「forms」", "no_such_form", "no form"]),
        ("    level: person\n    conditions: ['age >= ']\n", ["conditions[0]", "8文字目", "column 8"]),
        (
            "    level: household\n    conditions: ['age >= 20']\n",
            ["conditions[0]", "世帯単位", "household-level"],
        ),
        ('    level: person\n    conditions: ["answer.has_cat"]\n', ["has_cat", "no question"]),
        (
            "    level: person\n    deadline: {kind: within_days, label: x}\n",
            ["deadline.days", "within_days", "needs days"],
        ),
        (
            "    level: person\n    conditions: [{when: is_foreign, why: '{nam}さん'}]\n",
            ["conditions[0].why", "{nam}", "placeholder"],
        ),
        ("    level: person\n    title: {ja: 転入, english: x}\n", ["title", "english"]),
    ],
)
def test_specific_schema_errors(tmp_path: Path, body: str, fragments: list[str]) -> None:
    head = "procedures:\n  - id: p1\n    service: juki\n    events: [tennyu]\n"
    if "title:" not in body:
        head += "    title: 手続き\n"
    message = load_errors(tmp_path, head + body)
    assert "procedures.yaml" in message
    assert "p1" in message
    for fragment in fragments:
        assert fragment in message


def test_reference_errors_are_all_reported_at_once(tmp_path: Path) -> None:
    message = load_errors(
        tmp_path,
        """
procedures:
  - {id: a, service: nope, title: A, events: [tennyu], level: person}
  - {id: b, service: juki, title: B, events: [mars], level: person}
  - {id: b, service: juki, title: B2, events: [tennyu], level: person}
""",
    )
    assert "業務「nope」" in message and "no service 'nope'" in message
    assert "ライフイベント「mars」" in message
    assert "id が重複" in message and "duplicate id" in message


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", "procedures:\n  - {id: a, title: [unclosed\n")
    with pytest.raises(CatalogError) as caught:
        read_documents(tmp_path)
    assert "broken.yaml" in str(caught.value)
    assert "行目" in str(caught.value) and "line" in str(caught.value)


def test_yes_no_strings_must_be_quoted(tmp_path: Path) -> None:
    write(
        tmp_path,
        "base.yaml",
        BASE.replace(
            "- {id: has_dog, kind: yes_no, text: 犬を飼っていますか？}",
            "- id: q\n        kind: choice\n        text: どれ？\n        options:\n          - {value: yes, label: はい}\n          - {value: 'no', label: いいえ}",
        ),
    )
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert "引用符" in str(caught.value) and "options[0].value" in str(caught.value)
