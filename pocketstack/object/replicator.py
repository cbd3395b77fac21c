"""The replicator: every item ends up on all of its partition's primary devices, as its newest version.

One pass (`replicate(storage)`, `pocketstack object replicate`) walks every device:

- **Objects** (`objects/<part>/<suffix>/<hash>/`): the newest of the `.data` / `.ts` files found on
  any device wins (timestamps order versions, so a tombstone newer than a `.data` wins and a deleted
  object is never resurrected by a replica that missed the DELETE). Each primary that lacks it gets
  a copy: read from a holder while its MD5 is checked against the stored ETag (a bad source is
  quarantined and the next one used), written to the device's `tmp/`, fsynced, renamed into
  place, the directory fsynced, older files removed: the same atomic commit as a PUT. The newest
  `.meta` (POST) newer than the winner is copied the same way. A copy on a device that is not a
  primary (a handoff, e.g. after a ring change) is removed once every primary has the winner.
  Tombstones older than `[object] reclaim_age` (default a week, as upstream) are removed.
- **Account databases** (`accounts/...`, the listings): each replica must exist and pass
  `quick_check`; a corrupt one is quarantined. Replicas whose row hashes differ are merged row
  by row (listingdb.py: the newest version of each object / container / account row wins,
  tombstones included, counts recomputed), so two replicas that each missed a different write
  both end up with both. A missing or quarantined replica gets a copy of the merged one with
  SQLite's online backup API (temp file + rename). Tombstone rows older than `reclaim_age` go.

`Background` runs it in a daemon thread every `[object] replicator_interval` seconds (0 turns it
off) and the auditor every `[object] auditor_interval` seconds. With `--workers N` every worker
process sets the service up; a lock file (`<state_dir>/object/replicator.lock`) keeps it to one
process at a time, and the one-shot commands take the same lock.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from pocketstack.object import auditor
from pocketstack.object import listingdb as ldb
from pocketstack.object import storage as st

log = logging.getLogger(__name__)

RECLAIM_AGE = 7 * 24 * 3600
SUFFIXES = (".data", ".ts")


@dataclass
class ReplicationStats:
    objects: int = 0
    copied: int = 0
    tombstones_copied: int = 0
    metas_copied: int = 0
    handoffs_removed: int = 0
    reclaimed: int = 0
    quarantined: int = 0
    databases: int = 0
    databases_restored: int = 0
    databases_merged: int = 0
    rows_merged: int = 0
    rows_reclaimed: int = 0
    errors: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@contextmanager
def exclusive(storage: st.Storage, wait: bool = True):
    """Hold the replicator lock; yields False (without holding it) when busy and `wait` is False."""
    storage.root.mkdir(parents=True, exist_ok=True)
    with open(storage.root / "replicator.lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _newest(d: Path) -> tuple[str | None, str | None]:
    """(newest .data/.ts file name, newest .meta file name) in one replica directory."""
    try:
        names = os.listdir(d)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    top = max((n for n in names if n.endswith(SUFFIXES)), key=lambda n: n.rsplit(".", 1)[0], default=None)
    meta = max((n for n in names if n.endswith(".meta")), default=None)
    return top, meta


def _ts(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _copy_file(src: Path, dest_dir: Path, name: str, check_md5: bool) -> None:
    """Copy `src` to `dest_dir/name` atomically (device tmp/ + fsync + rename + dir fsync); with
    `check_md5` the data must hash to the trailer's ETag (else ValueError, nothing written)."""
    meta = st.read_trailer(src) if check_md5 else None
    tmp_dir = dest_dir.parents[3] / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            left = meta["size"] if meta else -1
            while True:
                data = fin.read(st.READ_CHUNK)
                if not data:
                    break
                if meta is not None and left > 0:
                    md5.update(data[:left])
                    left -= min(left, len(data))
                fout.write(data)
            fout.flush()
            os.fsync(fout.fileno())
        if meta is not None and md5.hexdigest() != meta["etag"]:
            raise ValueError("checksum mismatch")
        dest_dir.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest_dir / name)
        st._fsync_dir(dest_dir)
    finally:
        tmp.unlink(missing_ok=True)


def _primary_dirs(storage: st.Storage, part: int, kind: str, suffix: str, digest: str) -> list[Path]:
    return [storage.devices / n["device"] / kind / str(part) / suffix / digest
            for n in storage.ring.get_part_nodes(part)]


def _in_sync(names: dict[str, list[str]], primary_devs: list[str], now: float, reclaim_age: float) -> bool:
    """The common case, decided from the directory listings alone: every primary (and nothing
    else) holds the same newest version and .meta, and it is not a tombstone due for reclaim."""
    if len(names) != len(primary_devs) or any(dev not in names for dev in primary_devs):
        return False
    tops = set()
    for listing in names.values():
        top = max((n for n in listing if n.endswith(SUFFIXES)), key=_ts, default=None)
        meta = max((n for n in listing if n.endswith(".meta")), default=None)
        tops.add((top, meta))
    if len(tops) != 1:
        return False
    top = next(iter(tops))[0]
    return top is not None and not (top.endswith(".ts") and now - float(_ts(top)) > reclaim_age)


def replicate_objects(storage: st.Storage, stats: ReplicationStats, reclaim_age: float, stop=None) -> None:
    seen: dict[tuple[int, str, str], dict[str, list[str]]] = {}
    for device in auditor.devices(storage):
        for part, d in auditor.hash_dirs(device, "objects"):
            try:
                names = os.listdir(d)
            except OSError:
                continue
            seen.setdefault((part, d.parent.name, d.name), {})[device.name] = names
    now = time.time()
    primaries_of: dict[int, list[str]] = {}
    for (part, suffix, digest), names in seen.items():
        if stop is not None and stop.is_set():
            return
        devs = primaries_of.get(part)
        if devs is None:
            devs = primaries_of[part] = [n["device"] for n in storage.ring.get_part_nodes(part)]
        if _in_sync(names, devs, now, reclaim_age):
            stats.objects += 1
            continue
        holders = [storage.devices / dev / "objects" / str(part) / suffix / digest for dev in names]
        try:
            _replicate_object(storage, stats, part, suffix, digest, holders, now, reclaim_age)
        except OSError as exc:
            stats.errors += 1
            log.warning("replicate: object %s: %s", digest, exc)


def _replicate_object(storage, stats, part, suffix, digest, holders, now, reclaim_age) -> None:
    stats.objects += 1
    primaries = _primary_dirs(storage, part, "objects", suffix, digest)
    dirs = list(dict.fromkeys(primaries + holders))
    state = {d: _newest(d) for d in dirs}
    candidates = sorted({top for top, _ in state.values() if top}, key=_ts, reverse=True)
    if not candidates:
        for d in dirs:  # nothing left (a reclaimed tombstone): drop the empty directories
            try:
                d.rmdir()
            except OSError:
                pass
        return
    # The newest version that has a readable source wins.
    winner = None
    for name in candidates:
        sources = [d for d in dirs if state[d][0] == name]
        if name.endswith(".ts"):
            winner = name
            break
        good = []
        for src in sources:
            try:
                st.read_trailer(src / name)
                good.append(src)
            except FileNotFoundError:
                continue
            except ValueError:
                if st.quarantine(src / name) is not None:
                    stats.quarantined += 1
        if good:
            winner = name
            break
    if winner is None:
        return
    if winner.endswith(".ts") and now - float(_ts(winner)) > reclaim_age:
        for d in dirs:
            for name in os.listdir(d) if d.exists() else ():
                if name.endswith((".data", ".meta", ".ts")) and _ts(name) <= _ts(winner):
                    (d / name).unlink(missing_ok=True)
        stats.reclaimed += 1
        return
    complete = True
    for d in primaries:
        if state[d][0] == winner:
            continue
        try:
            if winner.endswith(".ts"):
                d.mkdir(parents=True, exist_ok=True)
                st._atomic_write(d, winner, b"")
                stats.tombstones_copied += 1
            else:
                copied = False
                for src in [s for s in dirs if state[s][0] == winner and s != d]:
                    try:
                        _copy_file(src / winner, d, winner, check_md5=True)
                        copied = True
                        break
                    except FileNotFoundError:
                        continue
                    except ValueError:
                        if st.quarantine(src / winner) is not None:
                            stats.quarantined += 1
                        state[src] = (None, state[src][1])
                if not copied:
                    complete = False
                    continue
                stats.copied += 1
            st._cleanup(d, _ts(winner))
            state[d] = (winner, state[d][1] if state[d][1] and _ts(state[d][1]) > _ts(winner) else None)
        except OSError as exc:
            complete = False
            stats.errors += 1
            log.warning("replicate: cannot restore %s in %s: %s", winner, d, exc)
    # POSTed metadata newer than the winning .data.
    if winner.endswith(".data"):
        metas = sorted({m for _, m in state.values() if m and _ts(m) > _ts(winner)}, reverse=True)
        if metas:
            newest = metas[0]
            src = next(d for d in dirs if state[d][1] == newest)
            for d in primaries:
                if state[d][1] == newest or state[d][0] != winner:
                    continue
                try:
                    _copy_file(src / newest, d, newest, check_md5=False)
                    for old in os.listdir(d):
                        if old.endswith(".meta") and old != newest:
                            (d / old).unlink(missing_ok=True)
                    stats.metas_copied += 1
                except OSError as exc:
                    complete = False
                    log.warning("replicate: cannot copy %s to %s: %s", newest, d, exc)
    # Handoff copies go once every primary holds the winner.
    if complete:
        for d in holders:
            if d not in primaries:
                for name in os.listdir(d):
                    (d / name).unlink(missing_ok=True)
                try:
                    d.rmdir()
                except OSError:
                    pass
                stats.handoffs_removed += 1


def _backup(src: Path, dest: Path) -> None:
    """Copy database `src` onto `dest` with SQLite's backup API (consistent, transactional)."""
    source = sqlite3.connect(src, timeout=30)
    try:
        if dest.exists():
            target = sqlite3.connect(dest, timeout=30)
            try:
                source.backup(target)
            finally:
                target.close()
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            target = sqlite3.connect(tmp)
            try:
                source.backup(target)
                target.execute("PRAGMA journal_mode=WAL")
            finally:
                target.close()
            for extra in ("-wal", "-shm"):  # an orphan WAL must never be replayed onto the copy
                dest.with_name(dest.name + extra).unlink(missing_ok=True)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            st._fsync_dir(dest.parent)
        finally:
            for extra in ("", "-wal", "-shm", "-journal"):
                tmp.with_name(tmp.name + extra).unlink(missing_ok=True)
    finally:
        source.close()


def replicate_databases(storage: st.Storage, stats: ReplicationStats, reclaim_age: float = RECLAIM_AGE,
                        stop=None) -> None:
    seen: set[tuple[int, str, str]] = set()
    for device in auditor.devices(storage):
        for part, d in auditor.hash_dirs(device, "accounts"):
            seen.add((part, d.parent.name, d.name))
    cutoff = st.timestamp(time.time() - reclaim_age)
    for part, suffix, digest in sorted(seen):
        if stop is not None and stop.is_set():
            return
        stats.databases += 1
        paths = [d / f"{digest}.db" for d in _primary_dirs(storage, part, "accounts", suffix, digest)]
        try:
            _sync_database(paths, stats, cutoff)
        except (sqlite3.Error, OSError) as exc:
            stats.errors += 1
            log.warning("replicate: account database %s: %s", digest, exc)


def _digest(path: Path) -> str | None:
    conn = ldb.connect(path, False)  # migrates an old replica first
    try:
        return ldb.digest(conn)
    finally:
        conn.close()


def _merge(target: Path, source: Path) -> int:
    conn = ldb.connect(target, False)
    try:
        return ldb.merge(conn, source)
    finally:
        conn.close()


def _sync_database(paths: list[Path], stats: ReplicationStats, cutoff: str) -> None:
    """Merge the replicas of one account database row by row (newest row wins, tombstones
    included), restore missing/quarantined ones from the merged copy, reclaim old tombstones."""
    healthy = []
    for path in paths:
        if not path.exists():
            continue
        if not auditor.db_healthy(path):
            if path.exists() and st.quarantine(path) is not None:
                stats.quarantined += 1
            continue
        healthy.append(path)
    if not healthy:
        if any(p.parent.exists() for p in paths):
            log.error("replicate: account database %s has no healthy replica", paths[0].name)
        return
    digests = {path: _digest(path) for path in healthy}
    first = healthy[0]
    if len(set(digests.values())) > 1:
        # Everything into the first replica, then the first (now the union) into the others:
        # upserts of newer rows, so writes landing meanwhile are never undone.
        for other in healthy[1:]:
            stats.rows_merged += _merge(first, other)
        for other in healthy[1:]:
            stats.rows_merged += _merge(other, first)
            stats.databases_merged += 1
    for path in paths:
        if path not in digests:
            _backup(first, path)
            stats.databases_restored += 1
    for path in paths:
        conn = ldb.connect(path, False)
        if conn is None:
            continue
        try:
            stats.rows_reclaimed += ldb.reclaim(conn, cutoff)
        finally:
            conn.close()


def replicate(storage: st.Storage, reclaim_age: float = RECLAIM_AGE, stop=None) -> ReplicationStats:
    """One full pass over objects and account databases."""
    stats = ReplicationStats()
    started = time.monotonic()
    replicate_databases(storage, stats, reclaim_age, stop)
    replicate_objects(storage, stats, reclaim_age, stop)
    stats.seconds = round(time.monotonic() - started, 3)
    return stats


class Background:
    """The daemon thread: replicate every `interval` s, audit every `audit_interval` s."""

    def __init__(self, storage: st.Storage, interval: float, audit_interval: float,
                 audit_bytes_per_second: float = 0, reclaim_age: float = RECLAIM_AGE):
        self.storage = storage
        self.interval = interval
        self.audit_interval = audit_interval
        self.audit_bps = audit_bytes_per_second
        self.reclaim_age = reclaim_age
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="object-replicator", daemon=True)
        self.last_replication: ReplicationStats | None = None
        self.last_audit: auditor.AuditStats | None = None

    def start(self) -> "Background":
        self.thread.start()
        return self

    def _run(self) -> None:
        next_audit = time.monotonic() + (self.audit_interval if self.audit_interval > 0 else float("inf"))
        while not self.stop.wait(self.interval):
            try:
                with exclusive(self.storage, wait=False) as mine:
                    if not mine:
                        continue
                    if time.monotonic() >= next_audit:
                        self.last_audit = auditor.audit(self.storage, self.audit_bps, self.stop)
                        next_audit = time.monotonic() + self.audit_interval
                        if self.last_audit.quarantined:
                            log.warning("audit: %s", self.last_audit.as_dict())
                    self.last_replication = replicate(self.storage, self.reclaim_age, self.stop)
                    s = self.last_replication
                    if s.copied or s.tombstones_copied or s.databases_restored or s.databases_merged or \
                            s.quarantined or s.errors:
                        log.info("replication: %s", s.as_dict())
            except Exception:  # keep the thread alive whatever one pass hits
                log.exception("object replicator pass failed")
