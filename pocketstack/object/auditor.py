"""The object auditor: every replica on every device is read whole and checked.

- an object `.data` file: its trailer must parse and its data must hash (MD5) to the ETag stored
  in the trailer (`storage.verify_data`);
- an account database: SQLite's `PRAGMA quick_check` must answer `ok`.

A replica that fails is moved to `<device>/quarantined/...` (`storage.quarantine`), where nothing
reads it any more; the replicator then copies a good replica back into its place. Reads also
check small objects before answering and whole large objects while streaming (see storage.py),
so the auditor is what finds rot in data nobody reads.

`audit(storage)` is one pass (`pocketstack object audit`); the replicator's background thread
calls it every `[object] auditor_interval` seconds, throttled to `[object]
auditor_bytes_per_second` so that it does not compete with clients.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from pocketstack.object import storage as st

log = logging.getLogger(__name__)


@dataclass
class AuditStats:
    objects: int = 0
    bytes: int = 0
    databases: int = 0
    quarantined: int = 0
    errors: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def hash_dirs(device: Path, kind: str) -> Iterator[tuple[int, Path]]:
    """(partition, hash directory) of every item of `kind` ("objects"/"accounts") on a device."""
    base = device / kind
    try:
        parts = os.listdir(base)
    except (FileNotFoundError, NotADirectoryError):
        return
    for part in parts:
        if not part.isdigit():
            continue
        try:
            suffixes = os.listdir(base / part)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for suffix in suffixes:
            try:
                hashes = os.listdir(base / part / suffix)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for h in hashes:
                yield int(part), base / part / suffix / h


def devices(storage: st.Storage) -> list[Path]:
    try:
        return sorted(p for p in storage.devices.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def db_healthy(path: Path) -> bool:
    """True when the SQLite file opens and passes `quick_check`."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            conn.execute("SELECT count(*) FROM account_stat").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return rows == [("ok",)]


def audit(storage: st.Storage, bytes_per_second: float = 0, stop=None) -> AuditStats:
    """One pass over every device; `bytes_per_second` > 0 throttles the reads."""
    stats = AuditStats()
    started = time.monotonic()
    for device in devices(storage):
        for _, d in hash_dirs(device, "objects"):
            if stop is not None and stop.is_set():
                break
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                if not name.endswith(".data"):
                    continue
                path = d / name
                try:
                    meta = st.verify_data(path)
                except FileNotFoundError:
                    continue  # replaced or cleaned up meanwhile
                except ValueError as exc:
                    log.warning("audit: %s failed its check (%s)", path, exc)
                    if st.quarantine(path) is not None:
                        stats.quarantined += 1
                    continue
                except OSError as exc:
                    log.warning("audit: cannot read %s: %s", path, exc)
                    stats.errors += 1
                    continue
                stats.objects += 1
                stats.bytes += meta["size"]
                if bytes_per_second > 0:
                    ahead = stats.bytes / bytes_per_second - (time.monotonic() - started)
                    if ahead > 0:
                        (stop.wait(ahead) if stop is not None else time.sleep(ahead))
        for _, d in hash_dirs(device, "accounts"):
            path = d / f"{d.name}.db"
            if not path.exists():
                continue
            stats.databases += 1
            if not db_healthy(path):
                if not path.exists():
                    continue
                log.warning("audit: account database %s failed quick_check", path)
                if st.quarantine(path) is not None:
                    stats.quarantined += 1
    stats.seconds = round(time.monotonic() - started, 3)
    return stats
