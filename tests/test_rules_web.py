"""The procedure-rules screens: overview, check, save, dry run, conflict, history, roll-back."""

from __future__ import annotations

import html
import re

from sqlmodel import col, select
from starlette.testclient import TestClient

from app.db import Database
from app.models import AuditEntry, LifeEventRules
from app.services.lifeevent_rules import seed_documents, seed_if_empty
from tests.conftest import StaffAccounts, csrf_of, sign_in

MOVING = "procedures_moving.yaml"
EDIT_URL = f"/admin/rules/documents/{MOVING}"


def _seed(db: Database) -> None:
    with db.write_session() as session:
        seed_if_empty(session)
        session.commit()


def _textarea(page: str) -> str:
    match = re.search(r'<textarea id="text"[^>]*>(.*?)</textarea>', page, flags=re.DOTALL)
    assert match, "no textarea"
    return html.unescape(match.group(1))


def _renamed() -> str:
    text = seed_documents()[MOVING]
    return text.replace("{ja: 転入届（住民異動届）,", "{ja: 転入届（住民異動届・試験）,", 1)


def _post(client: TestClient, url: str, data: dict[str, str | list[str]]) -> object:
    return client.post(url, data={"csrf_token": csrf_of(client, "/admin/rules"), **data})


def _versions(db: Database) -> list[int]:
    with db.session() as session:
        return list(session.exec(select(LifeEventRules.version).order_by(col(LifeEventRules.version))).all())


def test_admin_sees_the_overview_with_documents_and_a_filtered_procedure_table(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    sign_in(client, "admin")
    page = client.get("/admin/rules")
    assert page.status_code == 200
    assert "バージョン1" in page.text and "初期データ（同梱の YAML）" in page.text
    assert f'href="/admin/rules/documents/{MOVING}"' in page.text
    assert 'id="procedure-tennyu_todoke"' in page.text and 'id="procedure-shibou_todoke"' in page.text
    filtered = client.get("/admin/rules", params={"event": "tennyu", "department": "shimin"})
    assert 'id="procedure-tennyu_todoke"' in filtered.text
    assert 'id="procedure-shibou_todoke"' not in filtered.text  # another event
    assert 'id="procedure-tennyu_kokuho"' not in filtered.text  # another department
    assert "is_foreign" in filtered.text  # condition text


def test_check_reports_problems_with_lines_and_keeps_the_text(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    sign_in(client, "admin")
    text = _renamed().replace("conditions: [is_foreign]", "conditions: [is_foreign and]", 1)
    line = next(i for i, ln in enumerate(text.split("\n"), start=1) if "is_foreign and" in ln)
    response = _post(
        client, EDIT_URL, {"text": text, "comment": "試験", "base_version": "1", "action": "check"}
    )
    assert response.status_code == 422
    assert "問題が1件見つかりました" in response.text
    assert f'data-line="{line}">{line}行目</a>' in response.text
    assert "手続き「tennyu_zairyu」の項目「conditions[0]」" in response.text
    assert _textarea(response.text) == text
    assert 'value="試験"' in response.text
    good = _post(client, EDIT_URL, {"text": _renamed(), "base_version": "1", "action": "check"})
    assert good.status_code == 200 and 'id="checked"' in good.text
    assert _versions(db) == [1]


def test_browser_line_endings_do_not_count_as_changes(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    sign_in(client, "admin")
    crlf = seed_documents()[MOVING].replace("\n", "\r\n")
    response = _post(client, EDIT_URL, {"text": crlf, "base_version": "1", "action": "save"})
    assert response.status_code == 422 and "変更がありません" in response.text


def test_admin_saves_and_the_new_name_is_in_the_procedure_table(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    sign_in(client, "admin")
    page = client.get(EDIT_URL)
    assert page.status_code == 200 and _textarea(page.text) == seed_documents()[MOVING]
    assert 'name="base_version" value="1"' in page.text
    response = _post(
        client, EDIT_URL, {"text": _renamed(), "comment": "名称変更", "base_version": "1", "action": "save"}
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"{EDIT_URL}?saved=2")
    saved = client.get(response.headers["location"])
    assert "バージョン2として保存しました" in saved.text
    assert _textarea(saved.text) == _renamed()
    assert "転入届（住民異動届・試験）" in client.get("/admin/rules").text
    with db.session() as session:
        entry = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc())).first()
    assert (
        entry is not None
        and entry.action == "rules.save"
        and entry.actor_id == str(staff_accounts.ids["admin"])
    )
    # A clerk reads the same table, without the editing screens.
    client.cookies.clear()
    sign_in(client, "clerk")
    table = client.get("/staff/procedures", params={"event": "tennyu"})
    assert table.status_code == 200 and "転入届（住民異動届・試験）" in table.text
    assert "バージョン2" in table.text


def test_a_colleagues_save_in_between_is_refused_and_the_text_kept(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    sign_in(client, "admin")
    other = seed_documents()["forms.yaml"].replace("住民票等交付申請書", "住民票等交付申請書（改）", 1)
    assert _post(
        client, "/admin/rules/documents/forms.yaml", {"text": other, "base_version": "1", "action": "save"}
    )
    assert _versions(db) == [1, 2]
    response = _post(
        client, EDIT_URL, {"text": _renamed(), "comment": "私の変更", "base_version": "1", "action": "save"}
    )
    assert response.status_code == 409
    assert "ほかの職員がルールを保存しました" in response.text and "forms.yaml" in response.text
    assert "その変更は残ります" in response.text
    assert _textarea(response.text) == _renamed() and 'value="私の変更"' in response.text
    assert 'name="base_version" value="2"' in response.text  # a second press saves knowingly
    assert _versions(db) == [1, 2]
    again = _post(client, EDIT_URL, {"text": _renamed(), "base_version": "2", "action": "save"})
    assert again.status_code == 303 and _versions(db) == [1, 2, 3]


def test_dry_run_uses_the_unsaved_text(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    sign_in(client, "admin")
    data: dict[str, str | list[str]] = {
        "text": _renamed(),
        "base_version": "1",
        "action": "dryrun",
        "dry_event": "tennyu",
        "dry_household": "family",
        "dry_date": "",
        "dry_subjects": ["s1", "s2", "s3", "s4"],
        "answer_moved_from": "other_city",
        "answer_has_dog": "no",
    }
    response = _post(client, EDIT_URL, data)
    assert response.status_code == 200
    result = response.text[response.text.index('id="dry-run-result"') :]
    assert "転入届（住民異動届・試験）" in result  # the edited, unsaved name
    assert 'data-procedure="tennyu_todoke"' in result
    assert 'data-procedure="tennyu_school"' in result  # the 8-year-old changes school
    assert 'data-procedure="tennyu_jido_teate"' in result  # children under 18
    assert 'data-procedure="tennyu_zairyu"' not in result  # nobody in the family is foreign
    assert _versions(db) == [1]
    foreign = _post(client, EDIT_URL, {**data, "dry_household": "single_foreign", "dry_subjects": ["s1"]})
    assert 'data-procedure="tennyu_zairyu"' in foreign.text
    broken = _post(client, EDIT_URL, {**data, "text": "procedures: [\n"})
    assert broken.status_code == 422 and "試算できません" in broken.text


def test_history_diff_and_rollback(client: TestClient, db: Database, staff_accounts: StaffAccounts) -> None:
    _seed(db)
    sign_in(client, "admin")
    _post(
        client, EDIT_URL, {"text": _renamed(), "comment": "名称変更", "base_version": "1", "action": "save"}
    )
    history = client.get("/admin/rules/history")
    assert history.status_code == 200 and "名称変更" in history.text and "テスト admin" in history.text
    version = client.get("/admin/rules/versions/2")
    assert version.status_code == 200
    assert '<div class="add">' in version.text and '<div class="remove">' in version.text
    assert "転入届（住民異動届・試験）" in version.text
    assert (
        'action="/admin/rules/versions/2/rollback"' not in version.text
    )  # in force: nothing to roll back to
    first = client.get("/admin/rules/versions/1")
    assert 'action="/admin/rules/versions/1/rollback"' in first.text and "data-confirm=" in first.text
    no_csrf = client.post("/admin/rules/versions/1/rollback", data={"base_version": "2"})
    assert no_csrf.status_code == 403 and _versions(db) == [1, 2]
    stale = _post(client, "/admin/rules/versions/1/rollback", {"base_version": "1", "comment": ""})
    assert stale.status_code == 409 and _versions(db) == [1, 2]
    response = _post(client, "/admin/rules/versions/1/rollback", {"base_version": "2", "comment": "戻す"})
    assert response.status_code == 303 and response.headers["location"].endswith("?restored=3")
    assert "バージョン3として保存し" in client.get(response.headers["location"]).text
    assert "転入届（住民異動届・試験）" not in client.get("/admin/rules").text
    assert client.get("/admin/rules/versions/99").status_code == 404
    assert client.get("/admin/rules/documents/nosuch.yaml").status_code == 404


def test_clerk_may_not_edit_the_rules(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    _seed(db)
    sign_in(client, "clerk")
    assert client.get("/admin/rules").status_code == 403
    assert client.get(EDIT_URL).status_code == 403
    response = _post(client, EDIT_URL, {"text": _renamed(), "base_version": "1", "action": "save"})
    assert response.status_code == 403 and _versions(db) == [1]
    client.cookies.clear()
    assert client.get("/admin/rules").status_code == 303  # anonymous: to the sign-in page
