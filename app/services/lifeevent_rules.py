"""The life-event rules in force, and the versions staff save (管理 → 手続きルール).

The rules are YAML documents (file name → text, as in `app/domain/lifeevents/data/`). Each save
writes a whole new row of `life_event_rules` with the next version number; the highest version
is in force and older ones stay for history and roll-back. Until the first row exists (a fresh
database before `madoguchi db upgrade` seeded it) the bundled seed files are in force
(version None).

Reading is cheap: `current_rules` runs one small indexed query per call (the newest version and
its timestamp) and compiles a version only the first time this process sees it. So a save in
this process is in force for the next request, and a save in another web process too: there is
no time-based cache to wait out.

Saving checks everything first — YAML syntax, shapes, references, conditions — and raises
`RulesError` with every problem (file, line where known, item, Japanese message); nothing is
written then. The caller commits.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.domain.lifeevents import CatalogError, RuleSet, SchemaError, catalog_from_documents, compile_rules
from app.domain.lifeevents.loader import DATA_DIR, parse_yaml
from app.domain.lifeevents.locate import locate, syntax_error
from app.events import publish_on_commit
from app.models import LifeEventRules, StaffUser
from app.services import audit
from app.services.audit import Actor

__all__ = [
    "MAX_COMMENT",
    "MAX_DOCUMENT_CHARS",
    "DiffLine",
    "FileDiff",
    "RuleProblem",
    "RulesConflict",
    "RulesError",
    "VersionInfo",
    "check_documents",
    "current_documents",
    "current_rules",
    "current_version",
    "diff_documents",
    "history",
    "rollback",
    "save_version",
    "seed_documents",
    "seed_if_empty",
    "version_diff",
    "version_documents",
    "version_info",
]

MAX_DOCUMENT_CHARS = 500_000  # the largest seed file is about 60 000
MAX_DOCUMENTS = 40
MAX_COMMENT = 500
_CACHE_SIZE = 8  # compiled versions kept per process (each is a few hundred kB)
_DOCUMENT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,59}\.yaml")
_KIND_JA = {
    "catalog": "",
    "department": "担当課",
    "service": "業務",
    "form": "様式",
    "event": "ライフイベント",
    "question": "質問",
    "procedure": "手続き",
}

# -- problems -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One problem in the documents, located for the staff who edit them."""

    file: str
    line: int | None
    kind: str  # department, service, form, event, question, procedure, catalog
    item_id: str
    field: str
    message_ja: str
    message_en: str = ""

    @property
    def item_ja(self) -> str:
        """「手続き「kokuho_tennyu」の項目「conditions[0]」」, or "" for a whole-file problem."""
        kind = _KIND_JA.get(self.kind, self.kind)
        item = f"{kind}「{self.item_id}」" if self.item_id else ""
        field = f"項目「{self.field}」" if self.field else ""
        return "の".join(part for part in (item, field) if part)

    def __str__(self) -> str:
        where = self.file + (f" {self.line}行目" if self.line else "")
        item = f" {self.item_ja}" if self.item_ja else ""
        return f"{where}{item}: {self.message_ja}"


class RulesError(ValueError):
    """Documents that cannot be saved; `problems` lists every one."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RulesConflict(RulesError):
    """Someone saved a newer version after the editor opened the one it was based on."""


def _problem(message_ja: str, message_en: str, file: str = "") -> RuleProblem:
    return RuleProblem(file, None, "catalog", "", "", message_ja, message_en)


# -- checking -------------------------------------------------------------------------------------


def _shape_problems(documents: Mapping[str, object]) -> list[RuleProblem]:
    problems: list[RuleProblem] = []
    if not documents:
        problems.append(_problem("ルールの文書が1つもありません。", "there are no documents"))
    if len(documents) > MAX_DOCUMENTS:
        problems.append(
            _problem(f"文書は{MAX_DOCUMENTS}個までです。", f"at most {MAX_DOCUMENTS} documents are allowed")
        )
    for name, text in documents.items():
        if not isinstance(name, str) or not _DOCUMENT_NAME.fullmatch(name):
            problems.append(
                _problem(
                    f"文書名「{name}」は使えません。半角英小文字・数字・_ と .yaml で付けてください。",
                    f"document name {name!r}: use lower-case letters, digits, _ and .yaml",
                    str(name),
                )
            )
        if not isinstance(text, str):
            problems.append(
                _problem("文書の中身が文字列ではありません。", "the text is not a string", str(name))
            )
        elif len(text) > MAX_DOCUMENT_CHARS:
            problems.append(
                _problem(
                    f"文書が長すぎます（{len(text):,}文字。{MAX_DOCUMENT_CHARS:,}文字まで）。",
                    f"the document is too long ({len(text)} characters; at most {MAX_DOCUMENT_CHARS})",
                    str(name),
                )
            )
        elif "\x00" in text:
            problems.append(
                _problem(
                    "文書に使えない制御文字（NUL）が含まれています。", "the text contains NUL", str(name)
                )
            )
    return problems


def _located(error: SchemaError, documents: Mapping[str, str]) -> RuleProblem:
    text = documents.get(error.file)
    line = locate(text, error.kind, error.item_id, error.field_name) if text is not None else None
    return RuleProblem(
        error.file, line, error.kind, error.item_id, error.field_name, error.message_ja, error.message_en
    )


def check_documents(documents: Mapping[str, str]) -> RuleSet:
    """Parse, check and compile the documents; raises RulesError listing every problem.

    YAML syntax errors are reported for every file first: while one file cannot be read, the
    references into it would only add noise, so the content check waits for them to be fixed.
    """
    problems = _shape_problems(documents)
    if problems:
        raise RulesError(problems)
    parsed: dict[str, object] = {}
    for name, text in sorted(documents.items()):
        found = syntax_error(text)
        if found is not None:
            line, column, what = found
            problems.append(
                RuleProblem(
                    name,
                    line,
                    "catalog",
                    "",
                    "",
                    f"YAML の書き方が正しくありません（{column}文字目付近: {what}）。字下げ（行頭の空白）、"
                    "「:」や「-」の後の空白、引用符・括弧の閉じ忘れを確かめてください。",
                    f"invalid YAML (near column {column}: {what})",
                )
            )
            continue
        try:
            parsed[name] = parse_yaml(text, name)
        except CatalogError as error:  # not expected after compose succeeded; report it anyway
            problems += [_located(e, documents) for e in error.errors]
    if problems:
        raise RulesError(problems)
    try:
        catalog = catalog_from_documents(parsed)
    except CatalogError as error:
        raise RulesError([_located(e, documents) for e in error.errors]) from None
    return compile_rules(catalog)


# -- reading --------------------------------------------------------------------------------------

_lock = threading.Lock()
_compiled: OrderedDict[tuple[str, int, datetime] | None, RuleSet] = OrderedDict()


def seed_documents() -> dict[str, str]:
    """The bundled seed files (`app/domain/lifeevents/data/*.yaml`) by name."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(DATA_DIR.glob("*.yaml"))}


def _cache_get(key: tuple[str, int, datetime] | None) -> RuleSet | None:
    with _lock:
        rules = _compiled.get(key)
        if rules is not None:
            _compiled.move_to_end(key)
        return rules


def _cache_put(key: tuple[str, int, datetime] | None, rules: RuleSet) -> None:
    with _lock:
        _compiled[key] = rules
        _compiled.move_to_end(key)
        while len(_compiled) > _CACHE_SIZE:
            oldest = next(iter(_compiled))
            if oldest is None:  # the seed rules stay: they are the fallback of every database
                _compiled.move_to_end(None)
                oldest = next(iter(_compiled))
            del _compiled[oldest]


def _key(session: Session, version: int, created_at: datetime) -> tuple[str, int, datetime]:
    # Versions are per database (tests and tools open several in one process); the timestamp
    # tells a re-created database's version 1 from the old one's.
    return str(session.get_bind().engine.url), version, created_at


def _newest(session: Session) -> tuple[int, datetime] | None:
    row = session.exec(
        select(LifeEventRules.version, LifeEventRules.created_at)
        .order_by(col(LifeEventRules.version).desc())
        .limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def current_version(session: Session) -> int | None:
    newest = _newest(session)
    return newest[0] if newest else None


def _seed_rules() -> RuleSet:
    rules = _cache_get(None)
    if rules is None:
        rules = check_documents(seed_documents())
        _cache_put(None, rules)
    return rules


def current_rules(session: Session) -> tuple[int | None, RuleSet]:
    """(version, compiled rules) in force now: one small query, compiled once per version."""
    newest = _newest(session)
    if newest is None:
        return None, _seed_rules()
    version, created_at = newest
    key = _key(session, version, created_at)
    rules = _cache_get(key)
    if rules is None:
        documents = version_documents(session, version) or {}
        try:
            rules = check_documents(documents)
        except RulesError as error:
            # Saved versions were checked; this means the code changed under them.
            raise RuntimeError(f"life-event rules version {version} no longer compile:\n{error}") from None
        _cache_put(key, rules)
    return version, rules


def current_documents(session: Session) -> tuple[int | None, dict[str, str]]:
    """(version, documents) in force: what the editor starts from."""
    row = session.exec(select(LifeEventRules).order_by(col(LifeEventRules.version).desc()).limit(1)).first()
    if row is None:
        return None, seed_documents()
    return row.version, dict(row.documents)


def version_documents(session: Session, version: int) -> dict[str, str] | None:
    documents = session.exec(
        select(LifeEventRules.documents).where(LifeEventRules.version == version)
    ).first()
    return dict(documents) if documents is not None else None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    comment: str
    created_at: datetime
    created_by: int | None
    created_by_name: str  # "" for the system (the seed)


def _infos(session: Session, rows: Sequence[tuple[int, str, datetime, int | None]]) -> list[VersionInfo]:
    ids = {row[3] for row in rows if row[3] is not None}
    names: dict[int, str] = {}
    if ids:
        for user_id, name in session.exec(
            select(StaffUser.id, StaffUser.display_name).where(col(StaffUser.id).in_(ids))
        ).all():
            if user_id is not None:
                names[user_id] = name
    return [
        VersionInfo(version, comment or "", created_at, created_by, names.get(created_by or 0, ""))
        for version, comment, created_at, created_by in rows
    ]


_INFO_COLUMNS = (
    LifeEventRules.version,
    LifeEventRules.comment,
    LifeEventRules.created_at,
    col(LifeEventRules.created_by),
)


def history(session: Session, limit: int = 200) -> list[VersionInfo]:
    """Saved versions, newest first (without their documents)."""
    rows = session.exec(
        select(*_INFO_COLUMNS).order_by(col(LifeEventRules.version).desc()).limit(limit)
    ).all()
    return _infos(session, rows)


def version_info(session: Session, version: int) -> VersionInfo | None:
    rows = session.exec(select(*_INFO_COLUMNS).where(LifeEventRules.version == version)).all()
    found = _infos(session, rows)
    return found[0] if found else None


# -- differences ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: Literal["hunk", "add", "remove", "context"]
    text: str


@dataclass(frozen=True, slots=True)
class FileDiff:
    name: str
    status: Literal["added", "removed", "changed"]
    added: int
    removed: int
    lines: tuple[DiffLine, ...]


def diff_documents(before: Mapping[str, str], after: Mapping[str, str], context: int = 3) -> list[FileDiff]:
    """Unified differences per file (only files that differ), in file-name order."""
    out: list[FileDiff] = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        lines: list[DiffLine] = []
        added = removed = 0
        for raw in difflib.unified_diff(
            (old or "").splitlines(), (new or "").splitlines(), lineterm="", n=context
        ):
            if raw.startswith(("---", "+++")):
                continue
            if raw.startswith("@@"):
                lines.append(DiffLine("hunk", raw))
            elif raw.startswith("+"):
                added += 1
                lines.append(DiffLine("add", raw[1:]))
            elif raw.startswith("-"):
                removed += 1
                lines.append(DiffLine("remove", raw[1:]))
            else:
                lines.append(DiffLine("context", raw[1:]))
        status: Literal["added", "removed", "changed"] = (
            "added" if old is None else "removed" if new is None else "changed"
        )
        out.append(FileDiff(name, status, added, removed, tuple(lines)))
    return out


def _previous_documents(session: Session, version: int) -> dict[str, str]:
    """The documents before `version`: the version below it, or the seed files for the first."""
    previous = session.exec(
        select(LifeEventRules.documents)
        .where(col(LifeEventRules.version) < version)
        .order_by(col(LifeEventRules.version).desc())
        .limit(1)
    ).first()
    return dict(previous) if previous is not None else seed_documents()


def version_diff(session: Session, version: int) -> list[FileDiff] | None:
    """What `version` changed compared with the version before it (None: no such version)."""
    documents = version_documents(session, version)
    if documents is None:
        return None
    return diff_documents(_previous_documents(session, version), documents)


# -- writing --------------------------------------------------------------------------------------


def _staff_id(actor: Actor) -> int | None:
    return int(actor.id) if actor.type == "staff" and actor.id.isdigit() else None


def _insert(
    session: Session,
    actor: Actor,
    documents: Mapping[str, str],
    comment: str,
    *,
    base_version: int | None,
    action: str,
    detail: Mapping[str, object] | None = None,
) -> int:
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise RulesError(
            [_problem(f"コメントは{MAX_COMMENT}文字までです（いま{len(comment)}文字）。", "comment too long")]
        )
    rules = check_documents(documents)
    newest = session.exec(
        select(LifeEventRules).order_by(col(LifeEventRules.version).desc()).limit(1).with_for_update()
    ).first()
    in_force = newest.version if newest is not None else None
    if in_force != base_version:
        raise RulesConflict(
            [
                _problem(
                    f"この画面を開いた後に、ほかの職員がルールを保存しました（いまはバージョン{in_force}）。"
                    "入力した内容は消えていません。控えを取ってから画面を開き直し、最新の内容に"
                    "同じ変更をしてください。",
                    f"someone saved version {in_force} after this editor opened version {base_version}",
                )
            ]
        )
    before = dict(newest.documents) if newest is not None else seed_documents()
    changes = diff_documents(before, documents, context=0)
    if not changes:
        raise RulesError([_problem("変更がありません。保存するものはありません。", "nothing changed")])
    version = (in_force or 0) + 1
    row = LifeEventRules(
        version=version, documents=dict(documents), comment=comment, created_by=_staff_id(actor)
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # another process inserted the same version between our read and write
        raise RulesConflict(
            [
                _problem(
                    "ほかの職員が同時にルールを保存しました。画面を開き直してください。", "concurrent save"
                )
            ]
        ) from None
    files = {c.name: {"status": c.status, "added": c.added, "removed": c.removed} for c in changes}
    audit.record(
        session,
        actor,
        action,
        target_type="life_event_rules",
        target_id=version,
        detail={
            "version": version,
            "previous": in_force,
            "files": files,
            "comment": comment,
            **(detail or {}),
        },
    )
    publish_on_commit(
        session,
        "staff",
        "rules.saved",
        {"version": version, "files": sorted(files), "comment": comment[:200], "by": actor.name},
    )
    _cache_put(_key(session, version, row.created_at), rules)
    return version


def save_version(
    session: Session,
    actor: Actor,
    documents: Mapping[str, str],
    comment: str,
    *,
    base_version: int | None,
) -> int:
    """Check `documents` and save them as the next version; returns its number.

    `base_version`: the version the editor started from (None: the seed files); if another
    version was saved since, RulesConflict. Any problem in the documents, an over-long comment
    or a save that changes nothing raises RulesError and writes nothing. Audit-logged (which
    files changed, not their text); a `rules.saved` event goes out after the commit. The caller
    commits.
    """
    return _insert(session, actor, documents, comment, base_version=base_version, action="rules.save")


def rollback(session: Session, actor: Actor, version: int, comment: str, *, base_version: int | None) -> int:
    """Save a copy of the documents of `version` as the next version (checked like any save)."""
    documents = version_documents(session, version)
    if documents is None:
        raise RulesError([_problem(f"バージョン{version}はありません。", f"no version {version}")])
    note = f"バージョン{version}に戻す" + (f": {comment.strip()}" if comment.strip() else "")
    return _insert(
        session,
        actor,
        documents,
        note,
        base_version=base_version,
        action="rules.rollback",
        detail={"restored": version},
    )


def seed_if_empty(session: Session) -> int | None:
    """Write the bundled seed files as version 1 if no version exists; returns 1, or None if
    there was already a version. Called by `madoguchi db upgrade` and the demo data. The caller
    commits."""
    if _newest(session) is not None:
        return None
    documents = seed_documents()
    check_documents(documents)  # the bundled files are tested; fail loudly rather than seed junk
    row = LifeEventRules(version=1, documents=documents, comment="初期データ（同梱の YAML）", created_by=None)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None  # seeded concurrently by another process
    audit.record(
        session,
        Actor.system("rules-seed"),
        "rules.seed",
        target_type="life_event_rules",
        target_id=1,
        detail={"version": 1, "files": sorted(documents)},
    )
    return 1
