"""Translations from gettext catalogs (app/locale/<lang>/LC_MESSAGES/messages.po).

Message ids are English; the Japanese catalog is the primary UI language. Catalogs are read from
the .po files at start-up (no compiled .mo to go stale). The language of the current request lives
in a context variable that the web middleware sets.
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
# "easy" is やさしい日本語 (plain Japanese for residents who find ordinary Japanese hard); it falls
# back to the Japanese catalog for anything it does not translate.
LANGUAGES: tuple[str, ...] = ("ja", "easy", "en")
DEFAULT_LANGUAGE = "ja"

_current_language: ContextVar[str] = ContextVar("madoguchi_language", default=DEFAULT_LANGUAGE)


@cache
def translations(language: str) -> NullTranslations:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale="ja" if language == "easy" else language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    loaded = Translations(fp=buffer, domain=DOMAIN)
    if language == "easy":
        loaded.add_fallback(translations("ja"))
    return loaded


def set_language(language: str) -> None:
    _current_language.set(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def current_language() -> str:
    return _current_language.get()


def gettext(message: str) -> str:
    return translations(current_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language()).ngettext(singular, plural, n)


def pick_language(query: str | None, cookie: str | None, accept: str | None, default: str) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    if accept:
        for part in accept.split(","):
            code = part.split(";")[0].strip().lower()[:2]
            if code in ("ja", "en"):
                return code
    return default
