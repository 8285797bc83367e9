"""The life-event rules in force: the newest saved version in `life_event_rules`, compiled once.

Staff edit the YAML documents (管理 → 手続きルール); each save is a new version. Until the first
save the seed data in `app/domain/lifeevents/data/` is in force (version None).
"""

from __future__ import annotations

import threading

from sqlmodel import Session, col, select

from app.domain.lifeevents import RuleSet, load_rules
from app.models import LifeEventRules

_lock = threading.Lock()
_compiled: dict[int | None, RuleSet] = {}


def _seed_rules() -> RuleSet:
    with _lock:
        rules = _compiled.get(None)
        if rules is None:
            rules = load_rules()
            _compiled[None] = rules
        return rules


def current_version(session: Session) -> int | None:
    version: int | None = session.exec(
        select(LifeEventRules.version).order_by(col(LifeEventRules.version).desc()).limit(1)
    ).first()
    return version


def current_rules(session: Session) -> tuple[int | None, RuleSet]:
    """(version, compiled rules) in force now."""
    version = current_version(session)
    if version is None:
        return None, _seed_rules()
    rules = _compiled.get(version)
    if rules is None:
        from app.domain.lifeevents import catalog_from_documents, compile_rules
        from app.domain.lifeevents.loader import parse_yaml

        row = session.exec(select(LifeEventRules).where(LifeEventRules.version == version)).one()
        documents = {name: parse_yaml(text, name) for name, text in row.documents.items()}
        rules = compile_rules(catalog_from_documents(documents))
        with _lock:
            _compiled[version] = rules
    return version, rules
