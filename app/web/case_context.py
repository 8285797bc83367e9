"""The template context of a draft case's page, shared by the kiosk steps and the interview."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.domain.cases import CaseMode
from app.domain.lifeevents import Insurance, Problem
from app.domain.registry import RELATIONSHIPS
from app.models import LifeCase
from app.services import case_input, cases


def case_page_context(
    session: Session, case: LifeCase, *, problems: dict[str, str] | None = None
) -> dict[str, Any]:
    """Answers, problems (per field, per question, general), procedures and people of `case`;
    `problems` adds what the last post found (fields it could not read)."""
    evaluation = cases.evaluate_case(session, case)
    data = cases.case_data(case)
    raw_fields = case.data.get("raw_fields", {})
    field_problems = case_input.check_people(data, raw_fields, CaseMode(case.mode)) | (problems or {})
    answer_problems: dict[str, list[Problem]] = {}
    general: list[Problem] = []
    for p in evaluation.problems:
        if p.field.startswith("answers."):
            answer_problems.setdefault(p.field.removeprefix("answers."), []).append(p)
        elif p.field == "event_date":
            answer_problems.setdefault("event_date", []).append(p)
        else:
            general.append(p)
    return {
        "case": case,
        "data": data,
        "event": evaluation.event,
        "questions": evaluation.questions,
        "answers": case.data.get("answers", {}),
        "raw_answers": case.data.get("raw_answers", {}),
        "raw_fields": raw_fields,
        "evaluation": evaluation,
        "result": evaluation.result,
        "field_problems": field_problems,
        "answer_problems": answer_problems,
        "general_problems": general,
        "facts": case.data.get("facts", {}),
        "insurances": [i.value for i in Insurance],
        "relationships": RELATIONSHIPS,
        "people": {p.key: p for p in data.members},
        "signatures": case.data.get("pending_signatures", {}),
    }
