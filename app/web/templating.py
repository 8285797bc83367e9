"""Jinja2 environment: one template serves a full page and its HTMX fragment (jinja2-fragments)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment
from jinja2_fragments.starlette import Jinja2Blocks
from starlette.requests import Request

from app import i18n

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"
JST = ZoneInfo("Asia/Tokyo")


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Show a stored UTC time in Japan time."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(JST).strftime(fmt)


def json_text(value: Any) -> str:
    """JSON with Japanese left readable (the template autoescapes it)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def iso_date(value: date | None) -> str:
    return value.isoformat() if value else ""


def ruby_html(text: str) -> Any:
    from app.web.furigana import ruby_html as ruby

    return ruby(text)


def wareki_date(value: date | None) -> str:
    """和暦 for people reading Japanese screens (令和8年11月21日)."""
    from app.domain.wareki import format_wareki

    return format_wareki(value) if value else ""


FURIGANA_COOKIE = "madoguchi_furigana"  # the kiosk's ふりがな switch (static/js/kiosk.js)
VOICE_COOKIE = "madoguchi_voice"  # the kiosk's 音声案内 switch (static/js/kiosk.js)


def _context(request: Request) -> dict[str, Any]:
    state = request.scope.get("state", {})
    return {
        "csrf_token": state.get("csrf_token", ""),
        "user": state.get("user"),
        "lang": i18n.current_language(),
        "languages": i18n.LANGUAGES,
        # The kiosk's start page ends a walk (and clears both cookies): both switches show off there.
        "furigana": request.cookies.get(FURIGANA_COOKIE) == "1" and not state.get("walk_reset"),
        "voice": request.cookies.get(VOICE_COOKIE) == "1" and not state.get("walk_reset"),
    }


def install_i18n(env: Environment) -> None:
    """`_()`, `gettext()` and `ngettext()` in templates, in the current request's language."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=i18n.gettext, ngettext=i18n.ngettext, newstyle=True
    )


def make_templates() -> Jinja2Blocks:
    templates = Jinja2Blocks(directory=str(TEMPLATE_DIR), context_processors=[_context])
    env = templates.env
    install_i18n(env)
    env.filters["local_time"] = local_time
    env.filters["iso_date"] = iso_date
    env.filters["json_text"] = json_text
    env.filters["wareki"] = wareki_date
    env.filters["ruby"] = ruby_html
    env.globals["static_version"] = "1"
    return templates
