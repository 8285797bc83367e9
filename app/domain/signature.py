"""Signature input checks (placeholder until the full module lands; same public API)."""

from __future__ import annotations

import json
from datetime import datetime

from app.domain.cases import Signature, SignatureRole


class SignatureError(ValueError):
    def __init__(self, message_ja: str, message_en: str) -> None:
        super().__init__(message_ja)
        self.message_ja = message_ja
        self.message_en = message_en


def parse_signature(raw_json: str, role: SignatureRole, now: datetime) -> Signature:
    try:
        data = json.loads(raw_json) if raw_json else {}
        signature = Signature.from_dict({"role": role.value, **data, "signed_at": now.isoformat()})
    except (ValueError, KeyError, TypeError):
        raise SignatureError("署名をしてください。", "Please sign.") from None
    if not signature.strokes:
        raise SignatureError("署名をしてください。", "Please sign.")
    return signature
