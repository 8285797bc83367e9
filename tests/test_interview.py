"""Interview mode: a clerk starts a case, types a family moving in, answers, signs and submits."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlmodel import select
from starlette.testclient import TestClient

from app.db import Database
from app.demo.generator import generate_demo
from app.domain.cases import CaseStatus
from app.models import AuditEntry, LifeCase
from app.services.certificates import today_jst
from tests.conftest import StaffAccounts, csrf_of, sign_in

SIGNATURE = json.dumps(
    {"width": 400, "height": 150, "pointer_type": "pen", "strokes": [[[10, 10, 0, 0.4], [200, 90, 80, 0.8]]]}
)


def _start(client: TestClient, db: Database) -> tuple[str, str]:
    generate_demo(db, residents=40, today=today_jst())
    sign_in(client, "clerk")
    csrf = csrf_of(client, "/staff/interview")
    response = client.post("/staff/interview", data={"csrf_token": csrf, "event": "tennyu", "resident": ""})
    assert response.status_code == 303
    token = response.headers["location"].rsplit("/", 1)[1]
    return token, csrf


def test_typed_family_is_kept_as_typed_and_problems_are_named(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    token, csrf = _start(client, db)
    page = client.get(f"/staff/interview/{token}")
    assert page.status_code == 200
    revision = re.search(r'name="revision" value="(\d+)"', page.text)
    assert revision
    saved = client.post(
        f"/staff/interview/{token}",
        data={
            "csrf_token": csrf,
            "revision": revision.group(1),
            "p.new-1.family_name": "転入",
            "p.new-1.given_name": "太郎",
            "p.new-1.family_kana": "Tennyu",  # not kana
            "p.new-1.birth_date": "昭和61年5月1日",
            "p.new-1.relationship": "世帯主",
            "new_address.postal_code": "99l-8501",  # a letter l, not a one
        },
        headers={"HX-Request": "true"},
    )
    assert saved.status_code == 200
    assert 'id="autosave"' in saved.text and "<html" not in saved.text
    assert "ふりがなは" in saved.text and "郵便番号は" in saved.text
    with db.session() as session:
        case = session.exec(select(LifeCase).where(LifeCase.token == token)).one()
        person = case.data["members"][0]
        assert person["family_kana"] == "Tennyu" and person["birth_date"] == "1986-05-01"
        assert case.data["new_address"]["postal_code"] == "99l-8501"  # kept as typed
    page = client.get(f"/staff/interview/{token}")
    assert 'value="Tennyu"' in page.text and 'value="99l-8501"' in page.text


def test_family_moving_in_submitted_with_signatures(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    token, csrf = _start(client, db)
    added = client.post(
        f"/staff/interview/{token}/people", data={"csrf_token": csrf, "action": "add", "revision": "0"}
    )
    assert added.status_code == 303
    with db.session() as session:
        revision = session.exec(select(LifeCase.revision).where(LifeCase.token == token)).one()
    moved = (today_jst() - timedelta(days=3)).isoformat()
    form = {
        "csrf_token": csrf,
        "revision": str(revision),
        "p.new-1.family_name": "転入",
        "p.new-1.given_name": "太郎",
        "p.new-1.family_kana": "てんにゅう",
        "p.new-1.given_kana": "たろう",
        "p.new-1.birth_date": "1986-05-01",
        "p.new-1.sex": "1",
        "p.new-1.relationship": "世帯主",
        "p.new-1.insurance": "kokuho",
        "p.new-2.family_name": "転入",
        "p.new-2.given_name": "一郎",
        "p.new-2.birth_date": (today_jst() - timedelta(days=365 * 8)).isoformat(),
        "p.new-2.sex": "1",
        "p.new-2.relationship": "子",
        "p.new-2.insurance": "kokuho",
        "new_address.postal_code": "9918501",
        "new_address.address": "山形県寒河江市中央一丁目9番45号",
        "old_address.address": "東京都千代田区千代田1-1",
        "phone": "０２３７-８６-２１１１",
        "event_date": moved,
        "q.moved_from": "other_city",
        "q.tenshutsu_method": "certificate",
        "q.has_dog": "no",
        "q.has_moped": "no",
        "q.single_parent": "no",
        "q.pregnant": "no",
        "signature.resident": SIGNATURE,
        "signature.clerk": SIGNATURE,
    }
    unconfirmed = client.post(f"/staff/interview/{token}/submit", data=form)
    assert unconfirmed.status_code == 422
    assert "確認欄にチェック" in unconfirmed.text
    with db.session() as session:
        revision = session.exec(select(LifeCase.revision).where(LifeCase.token == token)).one()
    unsigned = client.post(
        f"/staff/interview/{token}/submit",
        data=form | {"revision": str(revision), "confirmed": "on", "signature.resident": ""},
    )
    assert unsigned.status_code == 422 and "署名をしてください" in unsigned.text
    with db.session() as session:
        revision = session.exec(select(LifeCase.revision).where(LifeCase.token == token)).one()
    done = client.post(
        f"/staff/interview/{token}/submit", data=form | {"revision": str(revision), "confirmed": "on"}
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/staff/cases/{token}?submitted=1"
    with db.session() as session:
        case = session.exec(select(LifeCase).where(LifeCase.token == token)).one()
        assert case.status is CaseStatus.SUBMITTED
        assert case.data["new_address"]["postal_code"] == "991-8501"
        assert case.data["phone"] == "0237-86-2111"
        assert {s["role"] for s in case.data["signatures"]} == {"resident", "clerk"}
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "case.submit")).first()
    # A submitted case is no longer edited here.
    assert client.get(f"/staff/interview/{token}").headers["location"] == f"/staff/cases/{token}"


def test_idou_csv_export_of_the_day(client: TestClient, db: Database, staff_accounts: StaffAccounts) -> None:
    test_family_moving_in_submitted_with_signatures(client, db, staff_accounts)
    response = client.get("/staff/cases/idou.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    body = response.content.decode("utf-8-sig")
    lines = body.split("\r\n")
    assert len(lines) == 4 and lines[-1] == ""  # header, two people who moved in, final CRLF
    assert "転入" in lines[1] and "山形県寒河江市中央一丁目9番45号" in lines[1]
    sjis = client.get("/staff/cases/idou.csv?encoding=cp932")
    assert sjis.status_code == 200 and "転入".encode("cp932") in sjis.content
    assert client.get("/staff/cases/idou.csv?day=yesterday").status_code == 400
    with db.session() as session:
        assert len(session.exec(select(AuditEntry).where(AuditEntry.action == "case.idou_export")).all()) == 2


def test_forms_preview_and_print_from_the_case(
    client: TestClient, db: Database, staff_accounts: StaffAccounts
) -> None:
    from app.models import PrintJob

    test_family_moving_in_submitted_with_signatures(client, db, staff_accounts)
    with db.session() as session:
        case = session.exec(select(LifeCase)).one()
    page = client.get(f"/staff/cases/{case.token}")
    assert page.status_code == 200 and 'data-form="idou_todoke"' in page.text
    pdf = client.get(f"/staff/cases/{case.token}/forms.pdf?form=idou_todoke")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert client.get(f"/staff/cases/{case.token}/forms.pdf?form=shussei_todoke").status_code == 422
    csrf = csrf_of(client, f"/staff/cases/{case.token}")
    assert 'name="device"' in page.text
    printed = client.post(
        f"/staff/cases/{case.token}/forms/print",
        data={"csrf_token": csrf, "form": ["idou_todoke", "guide_sheet"]},
    )
    assert printed.status_code == 303, printed.text
    with db.session() as session:
        job = session.exec(select(PrintJob).where(PrintJob.source_type == "life_case_forms")).one()
        assert job.payload["case_id"] == case.id
        actions = [a.action for a in session.exec(select(AuditEntry)).all()]
        assert "case.forms_preview" in actions and "case.forms_print" in actions
