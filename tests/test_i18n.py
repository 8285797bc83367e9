"""Every message in the code and templates has a Japanese translation."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from app import i18n

ROOT = Path(__file__).resolve().parent.parent
METHOD_MAP = [("app/**.py", "python"), ("templates/**.html", "jinja2")]
OPTIONS = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}


def _message_ids() -> set[str]:
    ids: set[str] = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        str(ROOT), METHOD_MAP, OPTIONS, keywords=KEYWORDS
    ):
        ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


def test_every_message_has_a_japanese_translation() -> None:
    with (i18n.LOCALE_DIR / "ja" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalog = read_po(handle, locale="ja")
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in catalog
        if m.id and (m.string if isinstance(m.string, str) else all(m.string))
    }
    missing = sorted(_message_ids() - translated)
    assert not missing, (
        "untranslated messages — run `uv run pybabel extract …` and `pybabel update` "
        f"(docs/development.md), then translate: {missing}"
    )


def test_language_is_picked_from_query_cookie_then_header() -> None:
    assert i18n.pick_language("en", "ja", "ja", "ja") == "en"
    assert i18n.pick_language(None, "en", "ja", "ja") == "en"
    assert i18n.pick_language(None, None, "en-US,en;q=0.9", "ja") == "en"
    assert i18n.pick_language("xx", None, "fr", "ja") == "ja"


def test_japanese_and_english_render() -> None:
    i18n.set_language("ja")
    assert i18n.gettext("Sign in") == "ログイン"
    i18n.set_language("en")
    assert i18n.gettext("Sign in") == "Sign in"
    i18n.set_language("ja")
