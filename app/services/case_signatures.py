"""Signatures posted with a case form (the pad's JSON) checked and stamped with the time."""

from __future__ import annotations

from app.domain.cases import Signature, SignatureRole
from app.domain.signature import STORAGE_TOLERANCE, SignatureError, parse_signature as _parse, simplify
from app.models._types import utcnow

__all__ = ["SignatureError", "parse_signature"]


def parse_signature(raw_json: str, role: SignatureRole) -> Signature:
    """Checked, then simplified to bound what is stored (shape and pressure kept)."""
    return simplify(_parse(raw_json, role, utcnow()), STORAGE_TOLERANCE)
