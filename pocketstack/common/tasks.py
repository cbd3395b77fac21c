"""The task runner for long operations (image copies, instance builds, backups).

`TaskRunner` is the interface; `ThreadTaskRunner` runs tasks in-process on a small
thread pool. A message-bus runner (RabbitMQ, remote compute/storage agents) implements
the same three methods, so service logic never knows where its tasks run.
"""
from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

log = logging.getLogger("pocketstack.tasks")


class TaskRunner:
    def submit(self, name: str, fn: Callable[..., Any], *args, **kwargs) -> str:
        raise NotImplementedError

    def wait(self, task_id: str, timeout: float | None = None) -> Any:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError


class ThreadTaskRunner(TaskRunner):
    def __init__(self, workers: int = 4):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task")
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, name, fn, *args, **kwargs):
        task_id = uuid.uuid4().hex

        def run():
            log.info("task %s (%s) started", name, task_id)
            try:
                result = fn(*args, **kwargs)
            except Exception:
                log.exception("task %s (%s) failed", name, task_id)
                raise
            log.info("task %s (%s) finished", name, task_id)
            return result

        with self._lock:
            self._futures[task_id] = self._pool.submit(run)
        return task_id

    def wait(self, task_id, timeout=None):
        with self._lock:
            fut = self._futures.get(task_id)
        if fut is None:
            raise KeyError(task_id)
        try:
            return fut.result(timeout=timeout)
        finally:
            with self._lock:
                self._futures.pop(task_id, None)

    def shutdown(self):
        self._pool.shutdown(wait=True, cancel_futures=False)
