"""Loading the life-event catalogue from YAML, and exporting it back.

The seed data lives in `data/*.yaml`; each file holds any of the sections `departments`,
`services`, `forms`, `events` and `procedures`, and the loader merges them. Every problem is
reported at once (`CatalogError`), each naming the file, the item and the field in Japanese and
English, e.g. ::

    procedures_moving.yaml: 手続き「kokuho_tennyu」の項目「conditions[0]」: 5文字目: …

Staff will edit the catalogue in the database later: `catalog_from_documents` takes already
parsed documents (plain dicts, e.g. rows turned into dicts), and `export_yaml` turns a catalogue
back into one YAML document that loads to an equal catalogue. YAML comments (such as the
[要確認] notes) do not survive an export; the `verify:` field of a procedure does.

This module reads files; everything else in the package is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from app.domain.lifeevents.engine import CatalogError, RuleSet, compile_rules
from app.domain.lifeevents.model import (
    Catalog,
    Department,
    Form,
    LifeEvent,
    Procedure,
    SchemaError,
    Service,
)

__all__ = [
    "DATA_DIR",
    "SECTIONS",
    "catalog_from_documents",
    "export_yaml",
    "load_catalog",
    "load_rules",
    "parse_yaml",
    "read_documents",
]

DATA_DIR = Path(__file__).with_name("data")
SECTIONS: dict[str, tuple[str, Any]] = {
    "departments": ("department", Department.from_dict),
    "services": ("service", Service.from_dict),
    "forms": ("form", Form.from_dict),
    "events": ("event", LifeEvent.from_dict),
    "procedures": ("procedure", Procedure.from_dict),
}
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def parse_yaml(text: str, name: str = "<text>") -> object:
    """One YAML document as plain data; a syntax error names the file and the line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"{mark.line + 1}行目 / line {mark.line + 1}: " if mark is not None else ""
        raise CatalogError(
            [
                SchemaError(
                    "catalog",
                    "",
                    "",
                    f"{line}YAML の書き方が正しくありません: {e}",
                    f"invalid YAML: {e}",
                    name,
                )
            ]
        ) from None


def read_documents(directory: Path = DATA_DIR) -> dict[str, object]:
    """Every `*.yaml` file of `directory`, parsed, by file name (sorted)."""
    return {
        path.name: parse_yaml(path.read_text(encoding="utf-8"), path.name)
        for path in sorted(directory.glob("*.yaml"))
    }


def catalog_from_documents(documents: Mapping[str, object]) -> Catalog:
    """Merge parsed documents into a catalogue and check it (shape, references, conditions).
    Raises CatalogError listing every problem with its file."""
    errors: list[SchemaError] = []
    parts: dict[str, list[Any]] = {section: [] for section in SECTIONS}
    origin: dict[tuple[str, str], str] = {}
    for name, document in documents.items():
        if document is None:
            continue
        if not isinstance(document, Mapping):
            errors.append(
                SchemaError(
                    "catalog",
                    "",
                    "",
                    "ファイルの一番上は departments / services / forms / events / procedures の組にしてください",
                    "the top level must map departments / services / forms / events / procedures",
                    name,
                )
            )
            continue
        for key, items in document.items():
            if key not in SECTIONS:
                errors.append(
                    SchemaError(
                        "catalog",
                        "",
                        str(key),
                        f"知らない区分「{key}」です。使える区分: {', '.join(SECTIONS)}",
                        f"unknown section '{key}'; sections: {', '.join(SECTIONS)}",
                        name,
                    )
                )
                continue
            kind, reader = SECTIONS[key]
            if not isinstance(items, list):
                errors.append(
                    SchemaError("catalog", "", str(key), "リストで書いてください", "must be a list", name)
                )
                continue
            for i, item in enumerate(items):
                try:
                    parsed = reader(item)
                except SchemaError as e:
                    if not e.item_id:
                        e = SchemaError(e.kind, f"#{i + 1}", e.field_name, e.message_ja, e.message_en)
                    errors.append(e.with_file(name))
                    continue
                parts[key].append(parsed)
                origin.setdefault((kind, parsed.id), name)
    catalog = Catalog(
        departments=tuple(parts["departments"]),
        services=tuple(parts["services"]),
        forms=tuple(parts["forms"]),
        events=tuple(parts["events"]),
        procedures=tuple(parts["procedures"]),
    )
    if not errors:
        try:
            compile_rules(catalog)
        except CatalogError as e:
            errors += [err.with_file(origin.get((err.kind, err.item_id), "")) for err in e.errors]
    if errors:
        raise CatalogError(errors)
    return catalog


def load_catalog(directory: Path = DATA_DIR) -> Catalog:
    return catalog_from_documents(read_documents(directory))


def load_rules(directory: Path = DATA_DIR) -> RuleSet:
    """Load, check and compile the catalogue in `directory` (the seed data by default)."""
    return compile_rules(load_catalog(directory))


def export_yaml(catalog: Catalog, sections: Iterable[str] = tuple(SECTIONS)) -> str:
    """The catalogue (or some of its sections) as one YAML document, loadable again."""
    data = catalog.to_dict()
    chosen = {key: data[key] for key in sections if data.get(key)}
    text: str = yaml.dump(chosen, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100)
    return text
