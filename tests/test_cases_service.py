"""Life-event cases: drafts, evaluation, submission, department check-offs (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pytest
from sqlmodel import Session, col, select

from app.db import Database
from app.demo.generator import generate_demo
from app.domain.cases import (
    Address,
    CaseMode,
    CaseStatus,
    Person,
    ProcedureStatus,
    Signature,
    SignatureRole,
    StrokePoint,
)
from app.models import AuditEntry, EventRecord, LifeCase, LifeCaseProcedure, Location, StaffUser
from app.services import cases
from app.services.certificates import today_jst


@contextmanager
def tx(db: Database) -> Iterator[Session]:
    with db.write_session() as session:
        yield session
        session.commit()


SIGNED = Signature(
    role=SignatureRole.RESIDENT,
    width=400,
    height=150,
    strokes=((StrokePoint(10, 10, 0, 0.5), StrokePoint(120, 80, 40, 0.7)),),
)


def _family(today: date) -> tuple[Person, list[Person]]:
    father = Person(
        key="new-1",
        family_name="転入",
        given_name="太郎",
        family_kana="てんにゅう",
        given_kana="たろう",
        birth_date=date(1986, 5, 1),
        sex="1",
        relationship="世帯主",
        source="card",
    )
    return father, [
        father,
        Person(
            key="new-2",
            family_name="転入",
            given_name="花子",
            birth_date=date(1988, 7, 7),
            sex="2",
            relationship="妻",
        ),
        Person(
            key="new-3",
            family_name="転入",
            given_name="一郎",
            birth_date=today.replace(year=today.year - 8),
            sex="1",
            relationship="子",
        ),
        Person(
            key="new-4",
            family_name="転入",
            given_name="桜",
            birth_date=today - timedelta(days=200),
            sex="2",
            relationship="子",
        ),
    ]


@pytest.fixture
def town(db: Database) -> Database:
    generate_demo(db, residents=60, today=today_jst())
    return db


def _start(db: Database) -> str:
    today = today_jst()
    applicant, members = _family(today)
    with tx(db) as session:
        location = session.exec(select(Location).order_by(col(Location.id))).first()
        assert location is not None
        case = cases.start(
            session,
            event_id="tennyu",
            mode=CaseMode.KIOSK,
            location=location,
            applicant=applicant,
            members=members,
            old_address=Address("100-0001", "東京都千代田区千代田1-1"),
            facts={"new-1": {"insurance": "kokuho"}, "new-2": {"insurance": "kokuho"}},
        )
        return case.token


def test_draft_answers_are_kept_even_when_wrong_and_stale_pages_are_refused(town: Database) -> None:
    token = _start(town)
    with tx(town) as session:
        case = cases.by_token(session, token)
        assert case is not None and case.status is CaseStatus.DRAFT
        problems = cases.save_answers(
            session, case, {"moved_from": "other_city", "has_dog": "maybe"}, revision=case.revision
        )
        assert [p.field for p in problems] == ["answers.has_dog"]
        assert case.data["answers"] == {"moved_from": "other_city"}
        assert case.data["raw_answers"] == {"has_dog": "maybe"}
        old = case.revision - 1
        with pytest.raises(cases.CaseError) as stale:
            cases.save_answers(session, case, {"has_dog": "no"}, revision=old)
        assert stale.value.code == "stale"


def test_future_move_in_date_is_explained(town: Database) -> None:
    token = _start(town)
    with tx(town) as session:
        case = cases.by_token(session, token)
        assert case is not None
        tomorrow = (today_jst() + timedelta(days=1)).isoformat()
        cases.save_answers(session, case, {}, revision=case.revision, event_date=tomorrow)
        evaluation = cases.evaluate_case(session, case)
        assert not evaluation.ok
        assert any(p.field == "event_date" and "今日" in p.message.ja for p in evaluation.problems)


def _answer_all(db: Database, token: str) -> None:
    with tx(db) as session:
        case = cases.by_token(session, token)
        assert case is not None
        cases.save_answers(
            session,
            case,
            {
                "moved_from": "other_city",
                "tenshutsu_method": "certificate",
                "has_dog": "no",
                "has_moped": "no",
                "uses_childcare": "yes",
                "single_parent": "no",
                "pregnant": "no",
            },
            revision=case.revision,
            event_date=(today_jst() - timedelta(days=2)).isoformat(),
        )


def test_submit_snapshots_procedures_numbers_and_tells_departments(town: Database) -> None:
    token = _start(town)
    _answer_all(town, token)
    with tx(town) as session:
        case = cases.by_token(session, token)
        assert case is not None
        evaluation = cases.evaluate_case(session, case)
        assert evaluation.ok, [p.message.ja for p in evaluation.problems]
        with pytest.raises(cases.CaseError) as unsigned:
            cases.submit(session, case, revision=case.revision, signatures=[])
        assert unsigned.value.code == "signature"
        cases.submit(session, case, revision=case.revision, signatures=[SIGNED])
        case_id = case.id
    with town.session() as session:
        case = session.get(LifeCase, case_id)
        assert case is not None and case.status is CaseStatus.SUBMITTED
        assert case.reception_number == 1
        rows = cases.procedures_of(session, case)
        ids = {r.procedure_id for r in rows}
        departments = {r.department_id for r in rows}
        assert len(rows) >= 5 and len(departments) >= 3
        data = cases.case_data(case, rows)
        assert data.number == "L-0001"
        assert data.signature(SignatureRole.RESIDENT) is not None
        # The baby and the 8-year-old bring child procedures; the adults 国保 (they said kokuho).
        assert any("kokuho" in i for i in ids), ids
        assert any("jido" in i or "child" in i for i in ids), ids
        event = session.exec(select(EventRecord).where(EventRecord.type == "case.submitted")).one()
        assert event.data["departments"] == sorted(departments)
        assert "転入" not in str(event.data)  # no personal data in events
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "case.submit")).one()


def test_departments_tick_off_until_done(town: Database) -> None:
    token = _start(town)
    _answer_all(town, token)
    with tx(town) as session:
        case = cases.by_token(session, token)
        assert case is not None
        cases.submit(session, case, revision=case.revision, signatures=[SIGNED])
    with tx(town) as session:
        staff = session.exec(select(StaffUser)).first()
        case = cases.by_token(session, token)
        assert staff is not None and case is not None
        rows = cases.procedures_of(session, case)
        department = rows[0].department_id
        listed = cases.list_cases(session, department_id=department)
        assert [s.case.token for s in listed] == [token]
        for row in rows[:-1]:
            cases.set_procedure_status(session, case, row.position, ProcedureStatus.DONE, staff=staff)
        assert case.status is CaseStatus.SUBMITTED
        cases.set_procedure_status(session, case, rows[-1].position, ProcedureStatus.NOT_NEEDED, staff=staff)
        assert case.status is CaseStatus.DONE
        cases.set_procedure_status(session, case, rows[0].position, ProcedureStatus.PENDING, staff=staff)
        assert case.status is CaseStatus.SUBMITTED
    with town.session() as session:
        progress = session.exec(select(EventRecord).where(EventRecord.type == "case.progress")).all()
        assert len(progress) == len(rows) + 1
        assert progress[-2].data["done"] == progress[-2].data["total"]
        done = session.exec(
            select(LifeCaseProcedure).where(LifeCaseProcedure.status == ProcedureStatus.DONE)
        ).all()
        assert all(r.done_by == staff.id for r in done)
