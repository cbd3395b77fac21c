"""The running cloud's shared objects (config, database, policy, events, tasks).

Set once by `pocketstack.server.build_runtime()`; services read it through `current()`.
It holds no request state, so many controller processes can run side by side.
"""
from __future__ import annotations

from dataclasses import dataclass

from pocketstack.common.config import Config
from pocketstack.common.db import Database
from pocketstack.common.events import EventBus
from pocketstack.common.policy import Enforcer
from pocketstack.common.tasks import TaskRunner


@dataclass
class Runtime:
    config: Config
    db: Database
    enforcer: Enforcer
    bus: EventBus
    tasks: TaskRunner


_current: Runtime | None = None


def set_current(rt: Runtime | None) -> None:
    global _current
    _current = rt


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("pocketstack runtime is not initialised")
    return _current
