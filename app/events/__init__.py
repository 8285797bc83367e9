"""Live events: publish after commit, fan out through a broker, replay from the last event id.

    from app.events import publish_on_commit
    publish_on_commit(session, "staff", "certificate.requested", {"request_id": 12})
    session.commit()  # the event goes out now, not before

The web process runs one `EventHub` (see app/web/events.py for the SSE endpoint).
"""

from app.events.broker import (
    DEFAULT_CHANNEL,
    Broker,
    MemoryBroker,
    RedisBroker,
    RedisSyncPublisher,
    make_broker,
)
from app.events.hub import CLIENT_QUEUE_SIZE, ClientStream, EventHub
from app.events.publish import (
    EventSink,
    get_event_sink,
    load_events,
    publish_on_commit,
    send_event_rollback_unsafe,
    send_transient,
    set_event_sink,
    sink_for_url,
)
from app.events.types import (
    TOPIC_PERMISSIONS,
    Event,
    EventError,
    Reload,
    StreamItem,
    TopicFilter,
    device_topic,
    location_topic,
    required_permission,
    topics_for,
)

__all__ = [
    "CLIENT_QUEUE_SIZE",
    "DEFAULT_CHANNEL",
    "TOPIC_PERMISSIONS",
    "Broker",
    "ClientStream",
    "Event",
    "EventError",
    "EventHub",
    "EventSink",
    "MemoryBroker",
    "RedisBroker",
    "RedisSyncPublisher",
    "Reload",
    "StreamItem",
    "TopicFilter",
    "device_topic",
    "get_event_sink",
    "load_events",
    "location_topic",
    "make_broker",
    "publish_on_commit",
    "required_permission",
    "send_event_rollback_unsafe",
    "set_event_sink",
    "send_transient",
    "sink_for_url",
    "topics_for",
]
