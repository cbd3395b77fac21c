"""The event bus: every create, update and delete emits an event.

In-process publish/subscribe now (telemetry and the dashboard subscribe); every event
is also appended as one JSON line to `<state_dir>/logs/events.jsonl`, which tests and
operators can read. A RabbitMQ-backed bus can replace `EventBus` behind `publish`.
Events carry ids and names, never secrets.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path
from typing import Callable

from pocketstack.common.db import utcnow

log = logging.getLogger("pocketstack.events")

Subscriber = Callable[[dict], None]


class EventBus:
    def __init__(self, journal: Path | None = None):
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._lock = threading.Lock()
        self._journal = journal
        if journal:
            journal.parent.mkdir(parents=True, exist_ok=True)

    def subscribe(self, prefix: str, fn: Subscriber) -> None:
        """Call `fn(event)` for every event whose type starts with `prefix` ('' = all)."""
        with self._lock:
            self._subscribers.append((prefix, fn))

    def publish(self, event_type: str, payload: dict, *, context=None) -> dict:
        event = {
            "message_id": str(uuid.uuid4()),
            "event_type": event_type,
            "timestamp": utcnow().isoformat(),
            "payload": payload,
        }
        if context is not None:
            event["initiator"] = {
                "user_id": getattr(context, "user_id", None),
                "project_id": getattr(context, "project_id", None),
            }
        if self._journal:
            line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
            with self._lock, open(self._journal, "a", encoding="utf-8") as fh:
                fh.write(line)
        for prefix, fn in list(self._subscribers):
            if event_type.startswith(prefix):
                try:
                    fn(event)
                except Exception:  # a subscriber never breaks the API call
                    log.exception("event subscriber failed for %s", event_type)
        return event


_bus = EventBus()


def get_bus() -> EventBus:
    return _bus


def set_bus(bus: EventBus) -> None:
    global _bus
    _bus = bus


def emit(event_type: str, payload: dict, *, context=None) -> dict:
    return _bus.publish(event_type, payload, context=context)
