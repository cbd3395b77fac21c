"""Object expiry: `X-Delete-At` / `X-Delete-After`, and the expirer that removes expired objects.

An object PUT or POST may carry `X-Delete-At` (epoch seconds) or `X-Delete-After` (seconds
from now, turned into `X-Delete-At`); values that are not integers or lie in the past are a
400 with upstream's text. The time is kept in the object's metadata (and answered as
`X-Delete-At`), and queued in `<state_dir>/object/expiring.db` (one SQLite table indexed by
time, as upstream's hidden `.expiring_objects` account).

An expired object is a 404 at once (GET/HEAD/POST/COPY), whether or not the expirer has run;
container and account reads first reap that container's (account's) due entries, so listings
and counts never show an expired object either. The background expirer (`start`, every
`[object] expirer_interval` seconds, default 30) reaps everything due. A queue entry whose
object was overwritten or had its time changed is dropped without deleting anything: the
object's own metadata decides (upstream's `X-If-Delete-At`).
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from pocketstack.common import events

log = logging.getLogger("pocketstack.object.expirer")
HEADER = "X-Delete-At"
MAX_DELETE_AT = 9999999999  # upstream's normalize_delete_at_timestamp ceiling

_SCHEMA = """
CREATE TABLE IF NOT EXISTS expiring (
    account TEXT NOT NULL, container TEXT NOT NULL, name TEXT NOT NULL, delete_at INTEGER NOT NULL,
    PRIMARY KEY (account, container, name, delete_at)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expiring_due ON expiring (delete_at);
CREATE INDEX IF NOT EXISTS expiring_container ON expiring (account, container, delete_at);
"""


def _error(text):
    from pocketstack.object.api import SwiftError

    return SwiftError(400, text)


def _storage():
    from pocketstack.object.service import get_storage

    return get_storage()


# ---------------------------------------------------------------------------- headers
def requested_delete_at(req, now: float | None = None) -> int | None:
    """The `X-Delete-At` a PUT/POST asks for (None: none); 400 for bad or past values."""
    now = time.time() if now is None else now
    after = req.headers.get("x-delete-after")
    if after is not None:
        try:
            seconds = int(after)
        except ValueError:
            raise _error("Non-integer X-Delete-After") from None
        if seconds < 0:
            raise _error("X-Delete-After in past")
        return min(int(now + seconds), MAX_DELETE_AT)
    at = req.headers.get("x-delete-at")
    if at is None:
        return None
    try:
        value = int(at)
    except ValueError:
        raise _error("Non-integer X-Delete-At") from None
    if value < now:
        raise _error("X-Delete-At in past")
    return min(value, MAX_DELETE_AT)


def delete_at_of(meta: dict) -> int | None:
    value = (meta.get("meta") or {}).get(HEADER)
    try:
        return int(value) if value else None
    except ValueError:
        return None


def is_expired(meta: dict, now: float | None = None) -> bool:
    at = delete_at_of(meta)
    return at is not None and at <= (time.time() if now is None else now)


# ---------------------------------------------------------------------------- queue
class Queue:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def add(self, account: str, container: str, name: str, delete_at: int) -> None:
        conn = self._conn()
        try:
            conn.execute("INSERT OR IGNORE INTO expiring VALUES (?, ?, ?, ?)", (account, container, name, delete_at))
        finally:
            conn.close()

    def due(self, now: float, account: str | None = None, container: str | None = None,
            limit: int = 1000) -> list[tuple]:
        sql, args = "SELECT account, container, name, delete_at FROM expiring WHERE delete_at <= ?", [int(now)]
        if account is not None:
            sql += " AND account = ?"
            args.append(account)
        if container is not None:
            sql += " AND container = ?"
            args.append(container)
        conn = self._conn()
        try:
            return conn.execute(sql + " ORDER BY delete_at LIMIT ?", (*args, limit)).fetchall()
        finally:
            conn.close()

    def remove(self, row: tuple) -> None:
        conn = self._conn()
        try:
            conn.execute("DELETE FROM expiring WHERE account = ? AND container = ? AND name = ? AND delete_at = ?",
                         row)
        finally:
            conn.close()


_queue: Queue | None = None
_queue_lock = threading.Lock()


def queue() -> Queue:
    global _queue
    store = _storage()
    path = store.root / "expiring.db"
    with _queue_lock:
        if _queue is None or _queue.path != path:
            _queue = Queue(path)
        return _queue


def schedule(account: str, container: str, name: str, delete_at: int | None) -> None:
    if delete_at:
        queue().add(account, container, name, delete_at)


def expire_one(account: str, container: str, name: str, delete_at: int | None = None) -> bool:
    """Delete the object if (still) expired; True when it was removed."""
    from pocketstack.object import storage as st

    store = _storage()
    try:
        meta, _ = store.head_object(account, container, name)
    except st.StorageError:
        return False
    at = delete_at_of(meta)
    if at is None or at > time.time() or (delete_at is not None and at != delete_at):
        return False
    try:
        store.delete_object(account, container, name)
    except st.StorageError:
        return False
    events.emit("object.object.expired", {"account": account, "container": container, "object": name,
                                          "delete_at": at})
    return True


def reap(account: str, container: str | None = None, now: float | None = None) -> int:
    """Remove the due objects of one account (or container) now; returns how many were deleted."""
    now = time.time() if now is None else now
    done = 0
    q = queue()
    for row in q.due(now, account, container):
        if expire_one(*row):
            done += 1
        q.remove(row)
    return done


def run_once(now: float | None = None) -> int:
    now = time.time() if now is None else now
    done = 0
    q = queue()
    while True:
        rows = q.due(now)
        if not rows:
            return done
        for row in rows:
            try:
                if expire_one(*row):
                    done += 1
            except Exception:  # one bad entry must not stop the others
                log.exception("expiring %s/%s/%s failed", *row[:3])
            q.remove(row)


_thread: threading.Thread | None = None


def start(interval: float) -> None:
    """The background expirer (one daemon thread per server process)."""
    global _thread
    if _thread is not None or interval <= 0:
        return

    def loop():
        while True:
            time.sleep(interval)
            try:
                run_once()
            except Exception:
                log.exception("object expirer pass failed")

    _thread = threading.Thread(target=loop, name="object-expirer", daemon=True)
    _thread.start()
