"""Event values, topics and who may see them.

Design notes: docs/architecture.md ("Events"), after Zulip's events system.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

from app.domain.permissions import Permission

# Topic pattern → the permission a browser needs to see it. None: never sent to browsers
# (device bridges get their commands on their own authenticated stream).
TOPIC_PERMISSIONS: Final[Mapping[str, Permission | None]] = MappingProxyType(
    {
        "staff": Permission.EVENTS_VIEW,
        "system": Permission.EVENTS_VIEW,
        "location:*": Permission.EVENTS_VIEW,
        "device:*": None,
    }
)

_TOPIC_SUFFIX = re.compile(r"[A-Za-z0-9_-]{1,48}")
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_.]{0,63}")
# Names the SSE layer uses itself ("reload", the row fragment) or that EventSource treats
# specially ("message", "error", "open"); a domain event with such a type would be mistaken for them.
RESERVED_EVENT_TYPES: Final = frozenset({"reload", "message", "error", "open"})


class EventError(ValueError):
    """An event that cannot be published: unknown topic, bad type, or a payload that is not JSON."""


def required_permission(topic: str) -> Permission | None:
    """The permission a browser needs to receive `topic`; None if browsers never receive it.

    Raises EventError for a topic that is not in TOPIC_PERMISSIONS (fail closed: a typo must
    not publish to nobody or to everybody).
    """
    if topic in TOPIC_PERMISSIONS and not topic.endswith(":*"):
        return TOPIC_PERMISSIONS[topic]
    prefix, colon, suffix = topic.partition(":")
    pattern = f"{prefix}:*"
    if colon and pattern in TOPIC_PERMISSIONS and _TOPIC_SUFFIX.fullmatch(suffix):
        return TOPIC_PERMISSIONS[pattern]
    raise EventError(f"unknown event topic {topic!r}; known: {', '.join(TOPIC_PERMISSIONS)}")


def check_topic(topic: str) -> str:
    required_permission(topic)
    return topic


def check_event_type(type: str) -> str:
    if not _EVENT_TYPE.fullmatch(type) or type in RESERVED_EVENT_TYPES:
        raise EventError(
            f"bad event type {type!r}: lower case letters, digits, '_' and '.', "
            f"at most 64, not one of {sorted(RESERVED_EVENT_TYPES)}"
        )
    return type


def location_topic(location_id: int) -> str:
    return f"location:{location_id}"


def device_topic(device_id: int) -> str:
    return f"device:{device_id}"


@dataclass(frozen=True, slots=True)
class TopicFilter:
    """Which topics one browser client may receive; call it with a topic.

    `exact` and `prefixes` are also exposed so a page can filter in SQL
    (`topic IN exact OR topic LIKE prefix%`).
    """

    exact: frozenset[str]
    prefixes: frozenset[str]
    _cache: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, topic: str) -> bool:
        allowed = self._cache.get(topic)
        if allowed is None:
            allowed = topic in self.exact or (
                topic.partition(":")[0] + ":" in self.prefixes and _is_known(topic)
            )
            if len(self._cache) < 4096:  # bounded: topics are few, but never trust that
                self._cache[topic] = allowed
        return allowed


def _is_known(topic: str) -> bool:
    try:
        required_permission(topic)
    except EventError:
        return False
    return True


def topics_for(permissions: Iterable[Permission]) -> TopicFilter:
    """The topics a user holding `permissions` may watch in a browser."""
    return _topics_for(frozenset(permissions))


@functools.lru_cache(maxsize=64)  # few distinct permission sets; clients share one filter (and its cache)
def _topics_for(held: frozenset[Permission]) -> TopicFilter:
    exact: set[str] = set()
    prefixes: set[str] = set()
    for pattern, needed in TOPIC_PERMISSIONS.items():
        if needed is None or needed not in held:
            continue
        if pattern.endswith(":*"):
            prefixes.add(pattern[:-1])
        else:
            exact.add(pattern)
    return TopicFilter(frozenset(exact), frozenset(prefixes))


@dataclass(frozen=True, slots=True)
class Event:
    """One published event. `id` is the EventRecord id: browsers resume from it (Last-Event-ID)."""

    id: int
    topic: str
    type: str
    data: dict[str, Any]
    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise EventError("Event.at must be timezone-aware (UTC)")

    @property
    def transient(self) -> bool:
        """Id 0: never stored, never replayed (see `send_transient`)."""
        return self.id == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "type": self.type,
            "data": self.data,
            "at": self.at.isoformat(),
        }

    def to_json(self) -> str:
        return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Event:
        try:
            event_id, topic, type_, data, at = raw["id"], raw["topic"], raw["type"], raw["data"], raw["at"]
        except KeyError as missing:
            raise EventError(f"event without {missing}") from None
        if not (
            isinstance(event_id, int)
            and isinstance(topic, str)
            and isinstance(type_, str)
            and isinstance(data, dict)
            and isinstance(at, str)
        ):
            raise EventError(f"malformed event: {raw!r:.200}")
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise EventError(f"bad event time {at!r}") from None
        return cls(id=event_id, topic=topic, type=type_, data=data, at=when)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        try:
            value = json.loads(raw)
        except ValueError:
            raise EventError(f"event is not JSON: {raw!r:.200}") from None
        if not isinstance(value, dict):
            raise EventError(f"event is not a JSON object: {raw!r:.200}")
        return cls.from_dict(value)


@dataclass(frozen=True, slots=True)
class Reload:
    """Tells a client it may have missed events and must reload its whole state.

    Always the last item of a client stream. `reason`: "too_old" (its Last-Event-ID is older
    than the replay buffer), "overflow" (it read too slowly), "gap" (the broker connection
    was lost, so events may have been missed).
    """

    reason: str


StreamItem = Event | Reload


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept (Japanese payloads stay readable and short)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def json_roundtrip(data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as it will look after the broker: catches unserialisable payloads at the call site."""
    try:
        value = json.loads(dumps(dict(data)))
    except (TypeError, ValueError) as error:
        raise EventError(f"event data is not JSON-serialisable: {error}") from error
    assert isinstance(value, dict)
    return value
