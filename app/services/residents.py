"""Staff look-ups of residents. Every look-up is audit-logged, with what was seen."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from app.domain.text import search_key
from app.models import Household, Resident, SealRegistration, TaxRecord
from app.services import audit
from app.services.audit import Actor

SEARCH_LIMIT = 50


def search(session: Session, actor: Actor, query: str, *, limit: int = SEARCH_LIMIT) -> list[Resident]:
    """Find residents by 宛名番号 (exact) or by name / kana (normalised prefix or infix match)."""
    query = query.strip()
    if not query:
        return []
    if query.isascii() and query.isdigit():
        statement = select(Resident).where(Resident.atena_number == query)
    else:
        key = search_key(query)
        if not key:
            return []
        statement = select(Resident).where(col(Resident.search_key).contains(key, autoescape=True))
    rows = list(session.exec(statement.order_by(col(Resident.id)).limit(limit)).all())
    audit.record(
        session,
        actor,
        "resident.search",
        target_type="resident",
        detail={"query": query[:100], "results": len(rows), "ids": [r.id for r in rows][:SEARCH_LIMIT]},
    )
    return rows


@dataclass(frozen=True)
class ResidentView:
    resident: Resident
    household: Household
    members: list[Resident]
    seal: SealRegistration | None
    tax_records: list[TaxRecord]


def view(session: Session, actor: Actor, resident_id: int) -> ResidentView | None:
    resident = session.get(Resident, resident_id)
    if resident is None:
        return None
    household = session.get(Household, resident.household_id)
    assert household is not None
    members = list(
        session.exec(
            select(Resident).where(Resident.household_id == household.id).order_by(col(Resident.id))
        ).all()
    )
    seal = session.exec(
        select(SealRegistration).where(
            SealRegistration.resident_id == resident_id, col(SealRegistration.active).is_(True)
        )
    ).first()
    taxes = list(
        session.exec(
            select(TaxRecord)
            .where(TaxRecord.resident_id == resident_id)
            .order_by(col(TaxRecord.fiscal_year).desc())
        ).all()
    )
    audit.record(
        session,
        actor,
        "resident.view",
        target_type="resident",
        target_id=resident_id,
        detail={"atena_number": resident.atena_number, "household_members": len(members)},
    )
    return ResidentView(resident, household, members, seal, taxes)
