"""Life events at the kiosk: a family moving in, by touch only, from the event to the slip."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from sqlmodel import col, select
from starlette.testclient import TestClient

from app.db import Database
from app.demo.generator import generate_demo
from app.domain.cases import CaseStatus
from app.domain.registry import DeviceKind
from app.models import Device, LifeCase, LifeCaseProcedure, PrintJob
from app.services.certificates import today_jst
from tests.conftest import csrf_of

SIGNATURE = json.dumps(
    {
        "width": 500,
        "height": 200,
        "pointer_type": "touch",
        "strokes": [[[20, 40, 0, 0.5], [300, 120, 90, 0.6]]],
    }
)


def _kiosk(db: Database) -> str:
    generate_demo(db, residents=40, today=today_jst())
    with db.session() as session:
        device = session.exec(
            select(Device).where(Device.kind == DeviceKind.KIOSK).order_by(col(Device.code))
        ).first()
        assert device is not None
        return device.code


def _revision(text: str) -> str:
    found = re.search(r'name="revision" value="(\d+)"', text)
    assert found
    return found.group(1)


def test_family_moving_in_at_the_kiosk(client: TestClient, db: Database) -> None:
    code = _kiosk(db)
    csrf = csrf_of(client, f"/kiosk/{code}/life")
    assert "転入" in client.get(f"/kiosk/{code}/life").text
    begun = client.post(f"/kiosk/{code}/life/begin", data={"csrf_token": csrf, "event": "tennyu"})
    assert begun.status_code == 303 and begun.headers["location"].endswith("/life/card")
    assert 'id="without-card"' in client.get(f"/kiosk/{code}/life/card").text
    page = client.get(f"/kiosk/{code}/life/people")
    added = client.post(
        f"/kiosk/{code}/life/people",
        data={"csrf_token": csrf, "revision": _revision(page.text), "action": "add:子"},
    )
    assert added.headers["location"].endswith("/life/people")
    page = client.get(f"/kiosk/{code}/life/people")
    assert 'data-person="new-2"' in page.text
    # Next without birth dates: told, nothing lost.
    missing = client.post(
        f"/kiosk/{code}/life/people",
        data={
            "csrf_token": csrf,
            "revision": _revision(page.text),
            "action": "next",
            "p.new-1.sex": "1",
            "p.new-1.insurance": "kokuho",
        },
    )
    assert missing.status_code == 422 and "生年月日を入力してください" in missing.text
    assert 'value="kokuho" checked' in missing.text
    child_birth = (today_jst() - timedelta(days=365 * 7)).isoformat()
    ok = client.post(
        f"/kiosk/{code}/life/people",
        data={
            "csrf_token": csrf,
            "revision": _revision(missing.text),
            "action": "next",
            "p.new-1.birth_date": "1985-06-01",
            "p.new-2.birth_date": child_birth,
            "p.new-2.insurance": "kokuho",
        },
    )
    assert ok.headers["location"].endswith("/life/questions"), ok.text
    page = client.get(f"/kiosk/{code}/life/questions")
    assert "<ruby>" not in page.text
    client.cookies.set("madoguchi_furigana", "1", path="/kiosk/")
    with_furigana = client.get(f"/kiosk/{code}/life/questions")
    assert "<ruby>犬<rt>いぬ</rt></ruby>" in with_furigana.text
    assert 'aria-pressed="true"' in with_furigana.text
    future = (today_jst() + timedelta(days=2)).isoformat()
    wrong = client.post(
        f"/kiosk/{code}/life/questions",
        data={
            "csrf_token": csrf,
            "revision": _revision(page.text),
            "event_date": future,
            "q.moved_from": "abroad",
        },
    )
    assert wrong.status_code == 422
    assert "今日" in wrong.text and 'value="abroad" checked' in wrong.text
    right = client.post(
        f"/kiosk/{code}/life/questions",
        data={
            "csrf_token": csrf,
            "revision": _revision(wrong.text),
            "event_date": (today_jst() - timedelta(days=1)).isoformat(),
            "q.moved_from": "other_city",
            "q.tenshutsu_method": "card",
            "q.has_dog": "yes",
            "q.dog_count": "1",
            "q.has_moped": "no",
            "q.single_parent": "no",
            "q.pregnant": "no",
        },
    )
    assert right.headers["location"].endswith("/life/result"), right.text
    result = client.get(f"/kiosk/{code}/life/result")
    assert "犬" in result.text and "国民健康保険" in result.text
    unsigned = client.post(f"/kiosk/{code}/life/sign", data={"csrf_token": csrf, "signature.resident": ""})
    assert unsigned.status_code == 422 and "署名をしてください" in unsigned.text
    signed = client.post(
        f"/kiosk/{code}/life/sign", data={"csrf_token": csrf, "signature.resident": SIGNATURE}
    )
    assert signed.headers["location"].endswith("/life/done")
    again = client.post(
        f"/kiosk/{code}/life/sign", data={"csrf_token": csrf, "signature.resident": SIGNATURE}
    )
    assert again.headers["location"].endswith("/life/done")  # a double tap: one case
    done = client.get(f"/kiosk/{code}/life/done")
    assert "L-0001" in done.text
    with db.session() as session:
        case = session.exec(select(LifeCase)).one()
        assert case.status is CaseStatus.SUBMITTED
        rows = session.exec(select(LifeCaseProcedure).where(LifeCaseProcedure.case_id == case.id)).all()
        assert "tennyu_inu" in {r.procedure_id for r in rows}, [r.procedure_id for r in rows]
        slips = session.exec(select(PrintJob).where(PrintJob.source_type == "life_case")).all()
        assert len(slips) == 1
        assert slips[0].payload["receipt"]["qr"].endswith(f"/cases/scan/{case.token}")
