"""Saved versions of the life-event rules: check, save, refuse, roll back, pick up elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import col, select

from app.db import Database
from app.domain.lifeevents.locate import locate, syntax_error
from app.models import AuditEntry, EventRecord, GroupPermission, LifeEventRules, StaffGroup
from app.services.audit import Actor
from app.services.lifeevent_rules import (
    RulesConflict,
    RulesError,
    check_documents,
    current_documents,
    current_rules,
    diff_documents,
    history,
    rollback,
    save_version,
    seed_documents,
    seed_if_empty,
    version_diff,
    version_documents,
)
from tests.conftest import StaffAccounts

MOVING = "procedures_moving.yaml"
OLD_TITLE = "{ja: 転入届（住民異動届）,"
NEW_TITLE = "{ja: 転入届（住民異動届・改）,"


def _admin(staff_accounts: StaffAccounts) -> Actor:
    return Actor(type="staff", id=str(staff_accounts.ids["admin"]), name="テスト admin (admin)")


def _edited(documents: dict[str, str], name: str, old: str, new: str) -> dict[str, str]:
    assert old in documents[name], f"{old!r} is not in {name}"
    return {**documents, name: documents[name].replace(old, new, 1)}


def _seed(db: Database) -> None:
    with db.write_session() as session:
        assert seed_if_empty(session) == 1
        session.commit()


def _save(db: Database, actor: Actor, documents: dict[str, str], base: int | None, comment: str = "") -> int:
    with db.write_session() as session:
        version = save_version(session, actor, documents, comment, base_version=base)
        session.commit()
        return version


def _title(db: Database, procedure_id: str) -> str:
    with db.session() as session:
        _, rules = current_rules(session)
    procedure = rules.catalog.procedure(procedure_id)
    assert procedure is not None
    return procedure.title.ja


def _versions(db: Database) -> list[int]:
    with db.session() as session:
        return list(session.exec(select(LifeEventRules.version).order_by(col(LifeEventRules.version))).all())


def _actions(db: Database, prefix: str = "rules.") -> list[AuditEntry]:
    with db.session() as session:
        entries = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()
    return [e for e in entries if e.action.startswith(prefix)]


# -- seeding and reading --------------------------------------------------------------------------


def test_without_any_version_the_seed_files_are_in_force(db: Database) -> None:
    with db.session() as session:
        version, rules = current_rules(session)
        in_force, documents = current_documents(session)
    assert version is None and in_force is None
    assert documents == seed_documents()
    assert rules.catalog.procedure("tennyu_todoke") is not None


def test_seed_if_empty_writes_version_1_once_and_logs_it(db: Database) -> None:
    _seed(db)
    with db.write_session() as session:
        assert seed_if_empty(session) is None
        session.commit()
    assert _versions(db) == [1]
    with db.session() as session:
        assert version_documents(session, 1) == seed_documents()
        assert current_rules(session)[0] == 1
    [entry] = _actions(db)
    assert entry.action == "rules.seed" and entry.actor_type == "system"


# -- saving ---------------------------------------------------------------------------------------


def test_a_valid_save_is_in_force_at_once_logged_and_announced(
    db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    assert _title(db, "tennyu_todoke") == "転入届（住民異動届）"
    documents = _edited(seed_documents(), MOVING, OLD_TITLE, NEW_TITLE)
    version = _save(db, _admin(staff_accounts), documents, base=1, comment="名称を変更")
    assert version == 2
    assert _title(db, "tennyu_todoke") == "転入届（住民異動届・改）"
    with db.session() as session:
        row = session.exec(select(LifeEventRules).where(LifeEventRules.version == 2)).one()
        events = session.exec(select(EventRecord).where(EventRecord.type == "rules.saved")).all()
    assert row.created_by == staff_accounts.ids["admin"] and row.comment == "名称を変更"
    entry = _actions(db)[-1]
    assert entry.action == "rules.save" and entry.target_id == "2"
    assert entry.actor_id == str(staff_accounts.ids["admin"])
    assert entry.detail["files"] == {MOVING: {"status": "changed", "added": 1, "removed": 1}}
    assert entry.detail["comment"] == "名称を変更" and entry.detail["previous"] == 1
    assert "転入届（住民異動届・改）" not in str(entry.detail)  # which files, not their text
    [event] = events
    assert event.topic == "staff" and event.data["version"] == 2 and event.data["files"] == [MOVING]


def test_the_first_save_without_a_seeded_version_is_version_1(
    db: Database, staff_accounts: StaffAccounts
) -> None:
    documents = _edited(seed_documents(), MOVING, OLD_TITLE, NEW_TITLE)
    assert _save(db, _admin(staff_accounts), documents, base=None) == 1
    assert _title(db, "tennyu_todoke") == "転入届（住民異動届・改）"


def test_a_yaml_syntax_error_is_reported_with_its_line_and_nothing_is_saved(
    db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    documents = seed_documents()
    lines = documents["forms.yaml"].split("\n")
    broken_line = next(i for i, line in enumerate(lines) if "id: idou_todoke" in line)
    lines[broken_line] = lines[broken_line].rstrip("}")  # an unclosed {
    broken = {**documents, "forms.yaml": "\n".join(lines)}
    broken = _edited(broken, "events.yaml", "  - id: tennyu\n", "  - id: tennyu\n   bad: indent\n")
    with pytest.raises(RulesError) as caught:
        _save(db, _admin(staff_accounts), broken, base=1)
    problems = {p.file: p for p in caught.value.problems}
    assert set(problems) == {"forms.yaml", "events.yaml"}
    forms = problems["forms.yaml"]
    assert forms.line is not None and broken_line + 1 <= forms.line <= broken_line + 2
    assert "YAML の書き方が正しくありません" in forms.message_ja
    events_line = next(i for i, line in enumerate(broken["events.yaml"].split("\n")) if "bad: indent" in line)
    assert problems["events.yaml"].line == events_line + 1
    assert _versions(db) == [1]
    assert [e.action for e in _actions(db)] == ["rules.seed"]


def test_every_content_problem_is_reported_with_file_line_and_item(
    db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    documents = _edited(
        seed_documents(),
        "organisation.yaml",
        "department: shimin, core_system: true}",
        "department: nosuch, core_system: true}",
    )
    documents = _edited(documents, MOVING, "conditions: [is_foreign]", "conditions: [is_foreign and]")
    documents = _edited(
        documents, MOVING, "conditions: [has_my_number_card]", "conditions: [age_at_evnt >= 15]"
    )
    with pytest.raises(RulesError) as caught:
        _save(db, _admin(staff_accounts), documents, base=1)
    found = {(p.file, p.kind, p.item_id, p.field): p for p in caught.value.problems}
    department = found[("organisation.yaml", "service", "juki", "department")]
    assert "担当課「nosuch」がありません" in department.message_ja
    assert department.line == _line_of(documents["organisation.yaml"], "department: nosuch")
    unfinished = found[(MOVING, "procedure", "tennyu_zairyu", "conditions[0]")]
    assert unfinished.line == _line_of(documents[MOVING], "conditions: [is_foreign and]")
    assert "途中で終わって" in unfinished.message_ja
    unknown = found[(MOVING, "procedure", "tennyu_mynumber_card", "conditions[0]")]
    assert "age_at_evnt" in unknown.message_ja
    assert "手続き「tennyu_mynumber_card」の項目「conditions[0]」" in str(unknown)
    assert _versions(db) == [1]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.split("\n"), start=1) if needle in line)


def test_a_save_based_on_an_older_version_is_refused(db: Database, staff_accounts: StaffAccounts) -> None:
    _seed(db)
    admin = _admin(staff_accounts)
    _save(db, admin, _edited(seed_documents(), MOVING, OLD_TITLE, NEW_TITLE), base=1)
    other = _edited(seed_documents(), "forms.yaml", "住民票等交付申請書", "住民票等交付申請書（改）")
    with pytest.raises(RulesConflict) as caught:
        _save(db, admin, other, base=1)
    assert "ほかの職員がルールを保存しました" in caught.value.problems[0].message_ja
    with pytest.raises(RulesConflict):
        _save(db, admin, other, base=None)
    assert _versions(db) == [1, 2]


def test_a_save_that_changes_nothing_or_has_a_long_comment_is_refused(
    db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    with pytest.raises(RulesError, match="変更がありません"):
        _save(db, _admin(staff_accounts), seed_documents(), base=1)
    with pytest.raises(RulesError, match="コメントは500文字まで"):
        _save(
            db, _admin(staff_accounts), _edited(seed_documents(), MOVING, OLD_TITLE, NEW_TITLE), 1, "長" * 501
        )
    assert _versions(db) == [1]


def test_document_names_and_sizes_are_checked() -> None:
    with pytest.raises(RulesError) as caught:
        check_documents({"../etc.yaml": "departments: []\n", "big.yaml": "#" * 600_000})
    messages = " ".join(p.message_ja for p in caught.value.problems)
    assert "文書名「../etc.yaml」は使えません" in messages and "文書が長すぎます" in messages
    with pytest.raises(RulesError, match="1つもありません"):
        check_documents({})


# -- history and roll-back ------------------------------------------------------------------------


def test_rollback_saves_a_copy_of_an_old_version(db: Database, staff_accounts: StaffAccounts) -> None:
    _seed(db)
    admin = _admin(staff_accounts)
    _save(db, admin, _edited(seed_documents(), MOVING, OLD_TITLE, NEW_TITLE), base=1, comment="名称変更")
    with db.write_session() as session:
        restored = rollback(session, admin, 1, "誤りのため", base_version=2)
        session.commit()
    assert restored == 3
    assert _title(db, "tennyu_todoke") == "転入届（住民異動届）"
    with db.session() as session:
        assert version_documents(session, 3) == version_documents(session, 1)
        versions = history(session)
        diff = version_diff(session, 3)
    assert [v.version for v in versions] == [3, 2, 1]
    assert versions[0].comment == "バージョン1に戻す: 誤りのため"
    assert versions[0].created_by_name == "テスト admin" and versions[2].created_by_name == ""
    assert diff is not None and [f.name for f in diff] == [MOVING]
    kinds = {line.kind: line.text for line in diff[0].lines if line.kind in ("add", "remove")}
    assert "転入届（住民異動届・改）" in kinds["remove"] and "転入届（住民異動届）" in kinds["add"]
    entry = _actions(db)[-1]
    assert entry.action == "rules.rollback" and entry.detail["restored"] == 1
    with db.write_session() as session, pytest.raises(RulesConflict):
        rollback(session, admin, 1, "", base_version=2)  # version 3 is in force now


def test_rolling_back_to_the_version_in_force_changes_nothing(
    db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    with db.write_session() as session, pytest.raises(RulesError, match="変更がありません"):
        rollback(session, _admin(staff_accounts), 1, "", base_version=1)


def test_diff_documents_lists_added_removed_and_changed_files() -> None:
    diff = diff_documents({"a.yaml": "x\ny\n", "b.yaml": "b\n"}, {"a.yaml": "x\nz\n", "c.yaml": "c\n"})
    assert [(f.name, f.status, f.added, f.removed) for f in diff] == [
        ("a.yaml", "changed", 1, 1),
        ("b.yaml", "removed", 0, 1),
        ("c.yaml", "added", 1, 0),
    ]
    assert [line.kind for line in diff[0].lines] == ["hunk", "context", "remove", "add"]


# -- other processes ------------------------------------------------------------------------------


def test_current_rules_picks_up_a_version_saved_through_another_engine(
    db: Database, staff_accounts: StaffAccounts
) -> None:
    """A second web process (its own engine and cache) sees a save on its next request."""
    _seed(db)
    assert _title(db, "tennyu_todoke") == "転入届（住民異動届）"  # compiled and cached here
    other = Database(db.url)
    try:
        _save(other, _admin(staff_accounts), _edited(seed_documents(), MOVING, OLD_TITLE, NEW_TITLE), 1)
    finally:
        other.dispose()
    with db.session() as session:
        version, rules = current_rules(session)
        again = current_rules(session)[1]
    assert version == 2
    procedure = rules.catalog.procedure("tennyu_todoke")
    assert procedure is not None and procedure.title.ja == "転入届（住民異動届・改）"
    assert again is rules  # compiled once per version


# -- locating problems in the text ----------------------------------------------------------------


def test_locate_finds_items_fields_and_questions() -> None:
    text = (
        "events:\n"
        "  - id: tennyu\n"
        "    questions:\n"
        "      - id: has_dog\n"
        "        when: answer.x\n"
        "procedures:\n"
        "  - id: p1\n"
        "    conditions:\n"
        "      - is_foreign\n"
        "      - when: age >= 15\n"
        "        why: x\n"
    )
    assert locate(text, "procedure", "p1") == 7
    assert locate(text, "procedure", "p1", "conditions[1].why") == 11
    assert locate(text, "procedure", "p1", "conditions[0]") == 9
    assert locate(text, "procedure", "p1", "deadline.days") == 7  # as deep as it exists
    assert locate(text, "event", "tennyu", "questions.has_dog.when") == 5
    assert locate(text, "question", "has_dog", "when") == 5
    assert locate(text, "question", "tennyu.questions[0]") == 4
    assert locate(text, "procedure", "#1") == 7
    assert locate(text, "procedure", "nosuch") is None
    assert locate("a: [", "procedure", "p1") is None
    assert syntax_error("a: [\n") is not None and syntax_error(text) is None


# -- installation ---------------------------------------------------------------------------------


def test_db_upgrade_seeds_the_rules_and_gives_admins_the_new_permission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    url = f"sqlite:///{tmp_path / 'madoguchi.db'}"
    monkeypatch.setenv("MADOGUCHI_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("MADOGUCHI_DATABASE_URL", url)
    assert main(["db", "upgrade"]) == 0
    assert "saved as version 1" in capsys.readouterr().out
    db = Database(url)
    try:
        assert _versions(db) == [1]
        # An installation from before this release: the admin group lacks rules.manage.
        with db.write_session() as session:
            admin = session.exec(select(StaffGroup).where(StaffGroup.name == "admin")).one()
            row = session.exec(
                select(GroupPermission).where(
                    GroupPermission.group_id == admin.id, GroupPermission.permission == "rules.manage"
                )
            ).one()
            session.delete(row)
            session.commit()
        assert main(["db", "upgrade"]) == 0
        assert "saved as version 1" not in capsys.readouterr().out
        with db.session() as session:
            held = session.exec(
                select(GroupPermission.permission).where(GroupPermission.group_id == admin.id)
            ).all()
        assert "rules.manage" in held
        assert _versions(db) == [1]
    finally:
        db.dispose()


def test_demo_data_seeds_the_rules(sqlite_db: Database) -> None:
    from app.demo.generator import generate_demo

    generate_demo(sqlite_db, residents=5, seed=1)
    assert _versions(sqlite_db) == [1]
