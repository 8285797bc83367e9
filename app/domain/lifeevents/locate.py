"""Where in a YAML document a catalogue problem is: the line of the item (and field) it names.

`SchemaError` names the item kind, its id and the field ("procedure", "kokuho_tennyu",
"conditions[0]"); staff editing the text need the line. `locate` composes the YAML (node tree
with positions, no objects built) and walks to the item, then as far down the field path as
it exists. Pure: it reads only the text it is given.
"""

from __future__ import annotations

import re

import yaml  # type: ignore[import-untyped]

__all__ = ["locate", "syntax_error"]

_SECTION = {
    "department": "departments",
    "service": "services",
    "form": "forms",
    "event": "events",
    "procedure": "procedures",
}
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_QUESTION_AT = re.compile(r"^([^.]+)\.questions\[(\d+)\]$")


def syntax_error(text: str) -> tuple[int, int, str] | None:
    """(line, column, what) of the first YAML syntax error in `text` (1-based), or None."""
    try:
        yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        what = str(getattr(error, "problem", None) or error).split("\n")[0]
        if mark is None:
            return 1, 1, what
        return int(mark.line) + 1, int(mark.column) + 1, what
    return None


def _line(node: object) -> int:
    return int(node.start_mark.line) + 1  # type: ignore[attr-defined]


def _get(node: object, key: str | int) -> tuple[object, object] | None:
    """(key node or item node, value node) for one step of a path; None when it is not there."""
    if isinstance(key, int):
        if isinstance(node, yaml.SequenceNode) and 0 <= key < len(node.value):
            item = node.value[key]
            return item, item
        return None
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return key_node, value_node
        return None
    if isinstance(node, yaml.SequenceNode):  # "questions.moved_from": the item with that id
        for item in node.value:
            if _id_of(item) == key:
                return item, item
    return None


def _id_of(node: object) -> str | None:
    found = _get(node, "id") if isinstance(node, yaml.MappingNode) else None
    if found is None or not isinstance(found[1], yaml.ScalarNode):
        return None
    value: str = found[1].value
    return value


def _walk(node: object, path: str) -> int:
    """The line of the deepest step of `path` (e.g. "conditions[0].why") that exists."""
    line = _line(node)
    for name, index in _STEP.findall(path):
        found = _get(node, int(index) if index else name)
        if found is None:
            break
        key_node, node = found
        line = _line(key_node)
    return line


def _item(root: object, section: str, item_id: str) -> object | None:
    found = _get(root, section)
    if found is None or not isinstance(found[1], yaml.SequenceNode):
        return None
    items = found[1].value
    if item_id.startswith("#") and item_id[1:].isdigit():
        index = int(item_id[1:]) - 1
        return items[index] if 0 <= index < len(items) else None
    return next((item for item in items if _id_of(item) == item_id), None)


def _question(root: object, item_id: str) -> object | None:
    at = _QUESTION_AT.match(item_id)
    if at:
        event = _item(root, "events", at.group(1))
        found = _get(event, "questions") if event is not None else None
        questions = found[1] if found else None
        index = int(at.group(2))
        if isinstance(questions, yaml.SequenceNode) and index < len(questions.value):
            node: object = questions.value[index]
            return node
        return None
    events = _get(root, "events")
    if events is None or not isinstance(events[1], yaml.SequenceNode):
        return None
    for event in events[1].value:
        found = _get(event, "questions")
        if found is not None:
            hit = _get(found[1], item_id)
            if hit is not None:
                return hit[1]
    return None


def locate(text: str, kind: str, item_id: str, field_name: str = "") -> int | None:
    """The 1-based line in `text` of the item `kind`/`item_id` and, as deep as it exists, its
    `field_name`; None when the text does not parse or holds no such item."""
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    if root is None:
        return None
    if kind == "catalog":
        found = _get(root, field_name) if field_name else None
        return _line(found[0]) if found else None
    if kind == "question":
        node = _question(root, item_id)
    elif kind in _SECTION and item_id:
        node = _item(root, _SECTION[kind], item_id)
    else:
        return None
    if node is None:
        return None
    return _walk(node, field_name) if field_name else _line(node)
