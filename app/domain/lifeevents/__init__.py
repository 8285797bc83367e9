"""Life events without writing (ライフイベント・手続き案内): the rules engine.

A resident (or staff beside them) picks a life event — 転入, 転出, 転居, 世帯変更, 出生, おくやみ,
婚姻, 離婚, 妊娠, 介護 … — answers a few touch questions, and gets, for the household and for
each member, the procedures that apply: department, forms, deadline as a date, what to bring,
and why each one applies.

- `model`: the catalogue as typed, serialisable data (events, questions, departments,
  services, forms, procedures) and `Member`, the facts the rules read about a person;
- `conditions`: the small, safe condition language procedures are written in;
- `validate`: answer checks with explanations in 日本語 / やさしい日本語 / English;
- `engine`: `compile_rules(catalog)` once, then `evaluate(...)` per household;
- `loader`: the YAML seed data in `data/`, loading with named errors, and export.

    rules = load_rules()
    result = evaluate(rules.event("tennyu"), answers, members, applicant_id, event_date, today)

The procedures, their conditions and texts are data that staff edit; nothing about a particular
procedure is in the code.
"""

from __future__ import annotations

from app.domain.lifeevents.conditions import ConditionError, compile_condition
from app.domain.lifeevents.engine import (
    Applicable,
    CatalogError,
    CompiledEvent,
    MemberProcedures,
    Result,
    RuleSet,
    compile_rules,
    deadline_date,
    evaluate,
)
from app.domain.lifeevents.loader import catalog_from_documents, export_yaml, load_catalog, load_rules
from app.domain.lifeevents.model import (
    Catalog,
    Insurance,
    LifeEvent,
    Member,
    PensionType,
    PersonSex,
    Procedure,
    Question,
    SchemaError,
    Text,
)
from app.domain.lifeevents.validate import Problem, coerce_answer, validate_answer, visible_questions

__all__ = [
    "Applicable",
    "Catalog",
    "CatalogError",
    "CompiledEvent",
    "ConditionError",
    "Insurance",
    "LifeEvent",
    "Member",
    "MemberProcedures",
    "PensionType",
    "PersonSex",
    "Problem",
    "Procedure",
    "Question",
    "Result",
    "RuleSet",
    "SchemaError",
    "Text",
    "catalog_from_documents",
    "coerce_answer",
    "compile_condition",
    "compile_rules",
    "deadline_date",
    "evaluate",
    "export_yaml",
    "load_catalog",
    "load_rules",
    "validate_answer",
    "visible_questions",
]
