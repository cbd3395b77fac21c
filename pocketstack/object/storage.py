"""The object storage engine: object files and account databases on the ring's devices.

Layout, under `<state_dir>/object/devices/<device>/` (one directory per ring device):

    objects/<part>/<hash[-3:]>/<hash>/<timestamp>.data   object bytes + a JSON metadata trailer
    objects/<part>/<hash[-3:]>/<hash>/<timestamp>.meta   metadata set later by POST (JSON)
    objects/<part>/<hash[-3:]>/<hash>/<timestamp>.ts     tombstone (DELETE)
    accounts/<part>/<hash[-3:]>/<hash>/<hash>.db         the account database (SQLite)
    tmp/                                                 in-flight writes

Every object is placed on its partition's primary devices (`Ring.get_nodes`); a PUT streams the
body to one temporary file per replica, then fsyncs and renames each into place: the write
succeeds when a quorum of replicas (replicas // 2 + 1) is committed, and a crash mid-PUT leaves
only files under `tmp/`. The metadata lives in the same file as the data (a trailer), so one
rename commits both. Reads use the first primary whose file is readable and intact (its MD5
checked, see VERIFY_MAX); auditor.py finds rot nobody reads, replicator.py repairs replicas.

Listings: one SQLite database per *account* (why not one per container, as upstream?): it holds
the account's metadata, its containers (with their metadata and object/byte counts) and the
index of their objects (`PRIMARY KEY (container, name)`, a B-tree, so listings with
marker/prefix are index range scans, fast at millions of rows). Object counts and account
totals then change in the same transaction as the object row, with no asynchronous
container -> account updater to write yet. Each account database is replicated on the account
path's ring devices: every change is applied to every replica (quorum success), and reads use
the first healthy replica; replicator.py merges replicas that missed writes row by row and
restores missing or corrupt ones (rows, tombstones and the in-sync hash: listingdb.py).
Splitting the hot containers into their own databases is for later.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator

from pocketstack.object import listingdb as ldb
from pocketstack.object.ring import Ring, RingBuilder, hash_path

CHUNK = 1 << 16
READ_CHUNK = 1 << 20
# Reads check a replica's MD5 against its stored ETag before answering, so a corrupt replica is
# skipped and the next one used: every `head_object` for objects up to VERIFY_MAX bytes (read
# whole in one go), a whole-object GET up to GET_VERIFY_MAX; a bigger whole-object GET is checked
# while it streams (a mismatch quarantines the replica and cuts the response short).
SMALL_READ = 1 << 20
VERIFY_MAX = 1 << 20
GET_VERIFY_MAX = 64 << 20
log = logging.getLogger(__name__)
TRAILER = struct.Struct(">I8s")  # metadata length, magic
MAGIC = b"PSOBJv1\n"


class StorageError(Exception):
    """Not enough replicas could be written or read."""


class NotFoundError(StorageError):
    pass


class NotEmptyError(StorageError):
    pass


class EtagMismatch(StorageError):
    pass


class SourceCorrupt(StorageError):
    """The replica a copy was reading failed its checksum (it is quarantined now)."""


class CorruptObject(ValueError):
    """A replica's file failed its checks (truncated, foreign or wrong checksum)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path


def timestamp(t: float | None = None) -> str:
    """Swift's normalized timestamp: 16 characters, 5 decimals."""
    return "%016.05f" % (time.time() if t is None else t)


_ts_lock = threading.Lock()
_last_ts = [0.0]


def new_timestamp() -> str:
    """A strictly increasing timestamp in this process (two writes in one 10 µs still order)."""
    with _ts_lock:
        t = max(time.time(), _last_ts[0] + 0.00001)
        _last_ts[0] = t
        return timestamp(t)


def bootstrap_ring(root: Path, replicas: int = 3, devices: int = 3, part_power: int = 10) -> Path:
    """Build `object.builder` / `object.ring.gz` (devices d1..dN in zones 1..N) if there is none."""
    ring_path = root / "object.ring.gz"
    if ring_path.exists():
        return ring_path
    root.mkdir(parents=True, exist_ok=True)
    builder = RingBuilder(part_power, replicas, 1)
    for i in range(1, devices + 1):
        builder.add_dev({"region": 1, "zone": i, "ip": "127.0.0.1", "port": 6200, "device": f"d{i}",
                         "weight": 100})
    builder.rebalance(seed=1)
    builder.save(root / "object.builder")
    builder.write_ring(ring_path)
    return ring_path


class Storage:
    """The engine's whole interface: accounts, containers and objects."""

    def __init__(self, root: Path, ring: Ring):
        self.root = Path(root)
        self.devices = self.root / "devices"
        self.ring = ring

    # -- placement -----------------------------------------------------------
    def _replicas(self, account, container=None, obj=None) -> tuple[list[Path], str]:
        part, nodes = self.ring.get_nodes(account, container, obj)
        digest = hash_path(account, container, obj, prefix=self.ring.prefix, suffix=self.ring.suffix)
        kind = "objects" if obj else "accounts"
        return [self.devices / n["device"] / kind / str(part) / digest[-3:] / digest for n in nodes], digest

    def _quorum(self, n: int) -> int:
        return n // 2 + 1

    def object_dirs(self, account: str, container: str, obj: str) -> list[Path]:
        return self._replicas(account, container, obj)[0]

    # -- account databases ---------------------------------------------------
    def _connect(self, path: Path, create: bool) -> sqlite3.Connection | None:
        return ldb.connect(path, create)

    def _db_paths(self, account: str) -> list[Path]:
        dirs, digest = self._replicas(account)
        return [d / f"{digest}.db" for d in dirs]

    def _write(self, account: str, fn: Callable[[sqlite3.Connection], object], create: bool = True):
        """Apply `fn` in one transaction on every replica of the account database."""
        paths = self._db_paths(account)
        # A replica that is missing while others exist was lost (or quarantined): the replicator
        # restores it from a good one; recreating it empty here would serve incomplete listings.
        create = create and not any(p.exists() for p in paths)
        results, errors = [], []
        for path in paths:
            try:
                conn = self._connect(path, create)
                if conn is None:
                    continue
                try:
                    with ldb.transaction(conn):
                        if create and conn.execute("INSERT OR IGNORE INTO account_stat (id, created_at, put_timestamp) "
                                                   "VALUES (1, ?, ?)", (new_timestamp(),) * 2).rowcount:
                            ldb.xor(conn, ldb.account_key(""))
                        results.append(fn(conn))
                        # A write counter (for people looking at replicas; merges keep the highest).
                        version = conn.execute("PRAGMA user_version").fetchone()[0]
                        conn.execute(f"PRAGMA user_version = {version + 1}")
                finally:
                    conn.close()
            except (sqlite3.Error, OSError) as exc:
                errors.append(exc)
        if not results and not errors:
            raise NotFoundError(account)
        if len(results) < self._quorum(len(paths)):
            raise StorageError(f"account {account}: only {len(results)} of {len(paths)} replicas written: {errors}")
        return results[0]

    def _read(self, account: str, fn: Callable[[sqlite3.Connection], object]):
        """`fn` on the first healthy replica; NotFoundError when no replica has the account."""
        for path in self._db_paths(account):
            try:
                conn = self._connect(path, False)
                if conn is None:
                    continue
                try:
                    return fn(conn)
                finally:
                    conn.close()
            except (sqlite3.Error, OSError):
                continue
        raise NotFoundError(account)

    # -- accounts ------------------------------------------------------------
    def account_info(self, account: str) -> dict | None:
        def read(conn):
            row = conn.execute("SELECT created_at, put_timestamp, metadata FROM account_stat").fetchone()
            if row is None:
                return None
            count, objects, used = conn.execute(
                "SELECT count(*), coalesce(sum(object_count), 0), coalesce(sum(bytes_used), 0) FROM container "
                "WHERE deleted = 0").fetchone()
            return {"created_at": row[0], "put_timestamp": row[1], "metadata": json.loads(row[2]),
                    "container_count": count, "object_count": objects, "bytes_used": used}
        try:
            return self._read(account, read)
        except NotFoundError:
            return None

    def update_account_metadata(self, account: str, updates: dict[str, str]) -> None:
        """Set keys to values; an empty value removes the key."""
        def write(conn):
            raw, old_ts = conn.execute("SELECT metadata, meta_timestamp FROM account_stat").fetchone()
            meta = json.loads(raw)
            _merge(meta, updates)
            conn.execute("UPDATE account_stat SET metadata = ?, meta_timestamp = ?", (json.dumps(meta), ts))
            ldb.xor(conn, ldb.account_key(old_ts), ldb.account_key(ts))
        ts = new_timestamp()
        self._write(account, write)

    def list_containers(self, account: str, **opts) -> list[dict]:
        def read(conn):
            def fetch(marker, end_marker, prefix, reverse, limit):
                sql, args = _range_sql("name", marker, end_marker, prefix, reverse)
                rows = conn.execute("SELECT name, object_count, bytes_used, put_timestamp FROM container"
                                    f" WHERE deleted = 0 AND {sql} ORDER BY name {'DESC' if reverse else 'ASC'} LIMIT ?",
                                    (*args, limit)).fetchall()
                return [{"name": r[0], "count": r[1], "bytes": r[2], "last_modified": r[3]} for r in rows]
            return _listing(fetch, **opts)
        try:
            return self._read(account, read)
        except NotFoundError:
            return []

    # -- containers ----------------------------------------------------------
    def container_info(self, account: str, container: str) -> dict | None:
        def read(conn):
            row = conn.execute("SELECT created_at, put_timestamp, object_count, bytes_used, metadata "
                               "FROM container WHERE name = ? AND deleted = 0", (container,)).fetchone()
            if row is None:
                return None
            return {"created_at": row[0], "put_timestamp": row[1], "object_count": row[2],
                    "bytes_used": row[3], "metadata": json.loads(row[4])}
        try:
            return self._read(account, read)
        except NotFoundError:
            return None

    def create_container(self, account: str, container: str, metadata: dict[str, str]) -> bool:
        """Create (True) or update the metadata of (False) a container."""
        ts = new_timestamp()

        def write(conn):
            row = conn.execute("SELECT metadata, put_timestamp, delete_timestamp, meta_timestamp, deleted "
                               "FROM container WHERE name = ?", (container,)).fetchone()
            live = row is not None and not row[4]
            meta = json.loads(row[0]) if live else {}
            _merge(meta, metadata)
            if live:
                conn.execute("UPDATE container SET put_timestamp = ?, metadata = ?, meta_timestamp = ? WHERE name = ?",
                             (ts, json.dumps(meta), ts, container))
            else:  # new, or a deleted one (its tombstone) made anew
                conn.execute("INSERT OR REPLACE INTO container (name, created_at, put_timestamp, delete_timestamp, "
                             "meta_timestamp, metadata) VALUES (?, ?, ?, ?, ?, ?)",
                             (container, ts, ts, row[2] if row else "0", ts, json.dumps(meta)))
            ldb.xor(conn, ldb.container_key(container, *row[1:4]) if row else None,
                    ldb.container_key(container, ts, row[2] if row else "0", ts))
            return not live
        return self._write(account, write)

    def update_container_metadata(self, account: str, container: str, updates: dict[str, str]) -> None:
        ts = new_timestamp()

        def write(conn):
            row = conn.execute("SELECT metadata, put_timestamp, delete_timestamp, meta_timestamp FROM container "
                               "WHERE name = ? AND deleted = 0", (container,)).fetchone()
            if row is None:
                raise NotFoundError(container)
            meta = json.loads(row[0])
            _merge(meta, updates)
            conn.execute("UPDATE container SET metadata = ?, meta_timestamp = ? WHERE name = ?",
                         (json.dumps(meta), ts, container))
            ldb.xor(conn, ldb.container_key(container, *row[1:4]), ldb.container_key(container, row[1], row[2], ts))
        self._write(account, write, create=False)

    def delete_container(self, account: str, container: str) -> None:
        """Leaves a tombstone: the row, deleted, with its delete timestamp (replication merges rows)."""
        ts = new_timestamp()

        def write(conn):
            row = conn.execute("SELECT object_count, put_timestamp, delete_timestamp, meta_timestamp FROM container "
                               "WHERE name = ? AND deleted = 0", (container,)).fetchone()
            if row is None:
                raise NotFoundError(container)
            if row[0] or conn.execute("SELECT 1 FROM object WHERE container = ? AND deleted = 0 LIMIT 1",
                                      (container,)).fetchone():
                raise NotEmptyError(container)
            conn.execute("UPDATE container SET deleted = 1, delete_timestamp = ?, metadata = '{}', meta_timestamp = ?, "
                         "object_count = 0, bytes_used = 0 WHERE name = ?", (ts, ts, container))
            ldb.xor(conn, ldb.container_key(container, *row[1:4]), ldb.container_key(container, row[1], ts, ts))
        self._write(account, write, create=False)

    def list_objects(self, account: str, container: str, **opts) -> list[dict]:
        def read(conn):
            def fetch(marker, end_marker, prefix, reverse, limit):
                sql, args = _range_sql("name", marker, end_marker, prefix, reverse)
                rows = conn.execute("SELECT name, created_at, size, content_type, etag FROM object"
                                    f" WHERE container = ? AND deleted = 0 AND {sql} ORDER BY name {'DESC' if reverse else 'ASC'}"
                                    " LIMIT ?", (container, *args, limit)).fetchall()
                return [{"name": r[0], "last_modified": r[1], "bytes": r[2], "content_type": r[3], "hash": r[4]}
                        for r in rows]
            return _listing(fetch, **opts)
        return self._read(account, read)

    def _record_object(self, account: str, container: str, obj: str, row: dict | None, changed_at: str) -> None:
        """Put (row) or remove (None: a tombstone row) one object in its container's index at
        `changed_at`, keeping the counts and the row hash. An older change than the one the
        index holds (two processes racing) is not applied: the newest wins, as on the devices."""
        def write(conn):
            if conn.execute("SELECT 1 FROM container WHERE name = ? AND deleted = 0", (container,)).fetchone() is None:
                raise NotFoundError(container)
            old = conn.execute("SELECT size, deleted, updated_at FROM object WHERE container = ? AND name = ?",
                               (container, obj)).fetchone()
            if old is not None:
                if old[2] > changed_at:
                    return
                if not old[1]:
                    conn.execute("UPDATE container SET object_count = object_count - 1, bytes_used = bytes_used - ? "
                                 "WHERE name = ?", (old[0], container))
            if row is None:
                values = (container, obj, changed_at, 0, "", "", 1, changed_at)
            else:
                values = (container, obj, row["timestamp"], row["size"], row["content_type"], row["etag"], 0, changed_at)
                conn.execute("UPDATE container SET object_count = object_count + 1, bytes_used = bytes_used + ? "
                             "WHERE name = ?", (row["size"], container))
            conn.execute(f"INSERT OR REPLACE INTO object ({ldb.OBJECT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
            ldb.xor(conn, ldb.object_key(container, obj, old[2]) if old else None,
                    ldb.object_key(container, obj, changed_at))
        self._write(account, write, create=False)

    # -- objects -------------------------------------------------------------
    def put_object(self, account: str, container: str, obj: str, stream: Iterable[bytes], metadata: dict,
                   expected_etag: str | None = None, expected_length: int | None = None) -> dict:
        """Stream `stream` to every replica; `metadata` holds content_type and user `meta`.
        Returns the committed metadata (etag, size, timestamp, ...)."""
        dirs = self.object_dirs(account, container, obj)
        ts = new_timestamp()
        tmps, handles = [], []
        try:
            for d in dirs:
                tmpdir = d.parents[3] / "tmp"  # devices/<dev>/tmp
                try:
                    tmpdir.mkdir(parents=True, exist_ok=True)
                    path = tmpdir / f"{uuid.uuid4().hex}.tmp"
                    handles.append(open(path, "wb"))
                    tmps.append((path, d))
                except OSError:
                    continue
            if len(handles) < self._quorum(len(dirs)):
                raise StorageError("not enough devices to write the object")
            md5 = hashlib.md5(usedforsecurity=False)
            size = flushed = 0
            failed: set[int] = set()  # replicas whose device failed mid-write (ENOSPC, EIO, ...)
            for chunk in _checked_source(stream):
                md5.update(chunk)  # releases the GIL for pieces over 2 KiB
                size += len(chunk)
                for i, fh in enumerate(handles):
                    if i in failed:
                        continue
                    try:
                        fh.write(chunk)
                    except OSError:
                        failed.add(i)
                if size - flushed >= WRITEBACK_EVERY:
                    for i, fh in enumerate(handles):
                        if i not in failed:
                            start_writeback(fh, flushed, size - flushed)
                    flushed = size
                if len(handles) - len(failed) < self._quorum(len(dirs)):
                    raise StorageError("not enough devices to write the object")
            etag = md5.hexdigest()
            if expected_length is not None and size != expected_length:
                raise StorageError("the body is shorter than its Content-Length")
            if expected_etag is not None and expected_etag.strip('"').lower() != etag:
                raise EtagMismatch(etag)
            meta = {"name": f"/{account}/{container}/{obj}", "timestamp": ts, "etag": etag, "size": size,
                    "content_type": metadata.get("content_type") or "application/octet-stream",
                    "meta": metadata.get("meta", {})}
            trailer = json.dumps(meta).encode()
            committed: list[Path] = []
            for i, (fh, (path, d)) in enumerate(zip(handles, tmps)):
                if i in failed:
                    continue
                try:
                    fh.write(trailer + TRAILER.pack(len(trailer), MAGIC))
                    fh.flush()
                    os.fsync(fh.fileno())
                    fh.close()
                    d.mkdir(parents=True, exist_ok=True)
                    os.replace(path, d / f"{ts}.data")
                    _fsync_dir(d)
                    committed.append(d)
                except OSError:
                    continue
            if len(committed) < self._quorum(len(dirs)):
                # No quorum: take the new version back so the older one (if any) stays the object.
                for d in committed:
                    (d / f"{ts}.data").unlink(missing_ok=True)
                raise StorageError("the object could not be written to a quorum of devices")
            for d in committed:
                _cleanup(d, ts)
                try:  # these bytes were hashed as they were written: checked
                    _remember(_stat_key(os.stat(d / f"{ts}.data")))
                except OSError:
                    pass
        finally:
            for fh in handles:
                if not fh.closed:
                    fh.close()
            for path, _ in tmps:
                if path.exists():
                    path.unlink(missing_ok=True)
        # `listing_etag`: the ETag container listings show when it is not the MD5 (the S3 API's
        # multipart ETag of a completed upload).
        self._record_object(account, container, obj,
                            {**meta, "etag": metadata["listing_etag"]} if metadata.get("listing_etag") else meta, ts)
        return meta

    def _read_replica(self, d: Path, verify_max: int = VERIFY_MAX) -> tuple[dict, Path | None] | None:
        """(metadata, data file) of one replica directory, or None when it holds nothing."""
        try:
            names = sorted(os.listdir(d), reverse=True)
        except FileNotFoundError:
            return None
        meta_file = None
        for name in names:
            if name.endswith(".meta") and meta_file is None:
                meta_file = name
            elif name.endswith(".ts"):
                return {"deleted": True, "timestamp": name[:-3]}, None
            elif name.endswith(".data"):
                path = d / name
                try:
                    meta = read_trailer(path, verify_max=verify_max)
                except ValueError as exc:
                    raise CorruptObject(path, str(exc)) from None
                if meta_file and meta_file[:-5] > name[:-5]:
                    update = json.loads((d / meta_file).read_text())
                    meta = {**meta, **update}
                return meta, path
        return None

    def head_object(self, account: str, container: str, obj: str,
                    verify_max: int = VERIFY_MAX) -> tuple[dict, Path]:
        """Metadata and data file of the first healthy replica; NotFoundError when deleted/absent.
        Replicas of up to `verify_max` bytes must match their checksum (GET_VERIFY_MAX for a GET)."""
        for d in self.object_dirs(account, container, obj):
            try:
                found = self._read_replica(d, verify_max)
            except CorruptObject as exc:
                quarantine(exc.path)  # the replicator restores it from a good replica
                continue
            except (OSError, ValueError):
                continue  # unreadable replica: try the next one
            if found is None:
                continue
            meta, path = found
            if path is None:
                raise NotFoundError(obj)
            return meta, path
        raise NotFoundError(obj)

    def iter_object(self, path: Path, meta: dict, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes of one replica. A whole read of a replica this process has not checked yet
        (too big to be checked before the answer, or read for a copy or a whole answer to an
        ignored Range) is checked while it streams: on a mismatch the replica is quarantined and
        the stream is cut short, so neither a client nor a copy ever receives a complete wrong body."""
        size = meta["size"]
        end = size if end is None else end
        whole = start == 0 and end == size > 0
        md5 = hashlib.md5(usedforsecurity=False) if whole and not is_checked(path) else None
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start
            while left > 0:
                data = fh.read(min(READ_CHUNK, left))
                if not data:
                    break
                left -= len(data)
                if md5 is not None:
                    md5.update(data)
                    if left == 0:
                        if md5.hexdigest() != read_trailer(path)["etag"]:
                            quarantine(path)
                            raise CorruptObject(path, "checksum mismatch")
                        _remember(_stat_key(os.fstat(fh.fileno())))
                yield data

    def post_object(self, account: str, container: str, obj: str, updates: dict) -> dict:
        """Replace user metadata (and optionally content_type) with a `.meta` file on each replica."""
        meta, _ = self.head_object(account, container, obj)
        ts = new_timestamp()
        body = json.dumps(updates).encode()
        done = 0
        dirs = self.object_dirs(account, container, obj)
        for d in dirs:
            if not any(p.suffix == ".data" for p in d.glob("*.data")):
                continue
            try:
                _atomic_write(d, f"{ts}.meta", body)
                for old in d.glob("*.meta"):
                    if old.name != f"{ts}.meta":
                        old.unlink(missing_ok=True)
                done += 1
            except OSError:
                continue
        if done == 0:
            raise StorageError("the metadata could not be written")
        if "content_type" in updates:
            self._record_object(account, container, obj, {**meta, **updates}, ts)
        return {**meta, **updates}

    def delete_object(self, account: str, container: str, obj: str) -> None:
        self.head_object(account, container, obj)  # 404 when absent
        ts = new_timestamp()
        for d in self.object_dirs(account, container, obj):
            try:
                d.mkdir(parents=True, exist_ok=True)
                _atomic_write(d, f"{ts}.ts", b"")
                _cleanup(d, ts)
            except OSError:
                continue
        self._record_object(account, container, obj, None, ts)


# ---------------------------------------------------------------------------- helpers
# A PUT asks the kernel to start writing its bytes to disk every WRITEBACK_EVERY bytes
# (sync_file_range(SYNC_FILE_RANGE_WRITE): starts the I/O, does not wait), so the fsync that
# commits the object finds little left to write: the disk works while the body still arrives,
# instead of all of it after the last byte (upstream's object server does the same with
# periodic fdatasync, `mb_per_sync`). Linux only; elsewhere a no-op.
WRITEBACK_EVERY = 4 << 20
_SYNC_FILE_RANGE_WRITE = 2
try:
    import ctypes
    import ctypes.util

    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _sync_file_range = _libc.sync_file_range
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
except (OSError, AttributeError):  # not Linux / no such call
    _sync_file_range = None


def start_writeback(fh, offset: int, length: int) -> None:
    if _sync_file_range is None:
        return
    try:
        fh.flush()
        _sync_file_range(fh.fileno(), offset, length, _SYNC_FILE_RANGE_WRITE)
    except (OSError, ValueError):
        pass  # only a hint: the fsync at the end is what commits


# Replica files are immutable once renamed into place, so a read checks each one once per process:
# the files whose MD5 matched, keyed by their stat identity (an in-place write changes mtime/ctime
# and forces a new check). Rot that leaves no trace in stat is the auditor's to find (it never
# trusts this cache).
_VERIFIED: dict[tuple, None] = {}
_VERIFIED_MAX = 100_000


def _checked_source(stream: Iterable[bytes]) -> Iterator[bytes]:
    try:
        yield from stream
    except CorruptObject as exc:  # a copy's source replica (iter_object) went bad under it
        raise SourceCorrupt(str(exc)) from None


def _stat_key(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _remember(key: tuple) -> None:
    if len(_VERIFIED) >= _VERIFIED_MAX:
        try:
            del _VERIFIED[next(iter(_VERIFIED))]
        except (StopIteration, KeyError, RuntimeError):
            pass
    _VERIFIED[key] = None


def read_trailer(path: Path, verify_max: int = -1, trust_checked: bool = True) -> dict:
    """The metadata of one `.data` file; ValueError when the file is truncated or not ours, or
    (for data of at most `verify_max` bytes) when its MD5 is not its stored ETag. The trailer's
    `etag` is always the MD5 of the bytes: the read path, the auditor and the replicator check it.
    `trust_checked`: skip the MD5 of a file this process already checked, unchanged since."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        total, key = st.st_size, _stat_key(st)
        if trust_checked and key in _VERIFIED:
            verify_max = -1
        if total < TRAILER.size:
            raise ValueError("truncated object file")
        whole = fh.read() if total <= min(verify_max, SMALL_READ) + 65536 else None
        if whole is not None:
            if len(whole) != total:
                raise ValueError("object file changed while read")
            length, magic = TRAILER.unpack_from(whole, total - TRAILER.size)
        else:
            fh.seek(total - TRAILER.size)
            length, magic = TRAILER.unpack(fh.read(TRAILER.size))
        if magic != MAGIC or length > total - TRAILER.size:
            raise ValueError("not an object file")
        start = total - TRAILER.size - length
        if whole is not None:
            raw = whole[start:start + length]
        else:
            fh.seek(start)
            raw = fh.read(length)
        try:
            meta = json.loads(raw)
            size, etag = meta["size"], meta["etag"]
        except (ValueError, KeyError, TypeError):
            raise ValueError("unreadable object metadata") from None
        if size != start:
            raise ValueError("object file size does not match its metadata")
        if size <= verify_max:
            if whole is not None:
                digest = hashlib.md5(memoryview(whole)[:size], usedforsecurity=False).hexdigest()
            else:
                fh.seek(0)
                digest = _md5_of(fh, size)
            if digest != etag:
                _VERIFIED.pop(key, None)
                raise ValueError("checksum mismatch")
            _remember(key)
    return meta


def is_checked(path: Path) -> bool:
    """Whether this process already checked this file's MD5 (and it has not changed since)."""
    try:
        return _stat_key(os.stat(path)) in _VERIFIED
    except OSError:
        return False


def _md5_of(fh, size: int) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    left = size
    while left > 0:
        data = fh.read(min(READ_CHUNK, left))
        if not data:
            raise ValueError("truncated object file")
        md5.update(data)
        left -= len(data)
    return md5.hexdigest()


def verify_data(path: Path) -> dict:
    """Read a whole `.data` file: its metadata when the MD5 of the data is its stored ETag, else
    ValueError (the auditor's check: it reads every byte, whatever was checked before)."""
    return read_trailer(path, verify_max=1 << 62, trust_checked=False)


def quarantine(path: Path) -> Path | None:
    """Move a bad replica file (object `.data` or account `.db`, with its -wal/-shm) out of the
    way, to `<device>/quarantined/<objects|accounts>/<hash>/`, where the replicator no longer
    sees it and restores a good copy. Returns the new path (None when it was already gone)."""
    hash_dir = path.parent  # <device>/<kind>/<part>/<suffix>/<hash>
    kind, device = hash_dir.parents[2].name, hash_dir.parents[3]
    target = device / "quarantined" / kind / hash_dir.name
    try:
        target.mkdir(parents=True, exist_ok=True)
        dest = target / f"{path.name}.{uuid.uuid4().hex[:8]}"
        os.replace(path, dest)
    except FileNotFoundError:
        return None
    except OSError:
        return None
    for extra in ("-wal", "-shm"):
        side = path.with_name(path.name + extra)
        if side.exists():
            try:
                os.replace(side, dest.with_name(dest.name + extra))
            except OSError:
                side.unlink(missing_ok=True)
    log.warning("quarantined %s -> %s", path, dest)
    return dest


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(d: Path, name: str, data: bytes) -> None:
    tmp = d / f".{name}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, d / name)
    _fsync_dir(d)


def _cleanup(d: Path, ts: str) -> None:
    """Remove every file older than the one just committed at `ts`."""
    for p in d.iterdir():
        if p.suffix in (".data", ".meta", ".ts") and p.stem < ts:
            p.unlink(missing_ok=True)


def _merge(meta: dict, updates: dict) -> None:
    for key, value in updates.items():
        if value == "" or value is None:
            meta.pop(key, None)
        else:
            meta[key] = value


def _range_sql(col: str, marker, end_marker, prefix, reverse) -> tuple[str, list]:
    where, args = ["1=1"], []
    if marker:
        where.append(f"{col} {'<' if reverse else '>'} ?")
        args.append(marker)
    if end_marker:
        where.append(f"{col} {'>' if reverse else '<'} ?")
        args.append(end_marker)
    if prefix:
        where.append(f"{col} >= ?")
        args.append(prefix)
        # Every name that starts with `prefix` sorts below prefix + U+10FFFF.
        where.append(f"{col} < ?")
        args.append(prefix + "\U0010ffff")
    return " AND ".join(where), args


def _listing(fetch, *, limit: int, marker: str = "", end_marker: str = "", prefix: str = "",
             delimiter: str = "", reverse: bool = False) -> list[dict]:
    """Swift's listing semantics over an ordered `fetch(marker, end_marker, prefix, reverse, limit)`,
    including `delimiter` roll-ups into `{"subdir": ...}` entries."""
    if not delimiter:
        return fetch(marker, end_marker, prefix, reverse, limit)
    out: list[dict] = []
    orig_marker = marker
    while len(out) < limit:
        rows = fetch(marker, end_marker, prefix, reverse, limit - len(out))
        if not rows:
            break
        for row in rows:
            name = row["name"]
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                subdir = name[: cut + len(delimiter)]
                if subdir != orig_marker and (not out or out[-1].get("subdir") != subdir):
                    out.append({"subdir": subdir})
                # skip everything else under this subdir
                marker = subdir if reverse else subdir + "\U0010ffff"
                break
            out.append(row)
            marker = name
            if len(out) >= limit:
                break
    return out
