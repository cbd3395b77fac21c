"""The account listing database: schema, migration, and what replication needs to merge replicas.

Why rows are never simply deleted: each account database has a replica on every primary device
of the account, and a replica can miss any write (its device was down, its file was aside).
Two replicas may each miss a *different* write, so no replica is "the best": the replicator
merges them row by row, as upstream's container replication does. For that every row carries
the timestamp of its last change (`object.updated_at`; a container's put/delete/meta
timestamps; the account's `meta_timestamp`), the newest version of a row wins, and a deletion
is a row too (`object.deleted = 1`, a container's `delete_timestamp` newer than its
`put_timestamp`): a tombstone, kept until `reclaim_age` so a replica that missed the delete
cannot bring the object back. Counts and bytes are derived from the rows, so a merge recomputes
them.

In-sync test: `account_stat.hash` is the XOR of the MD5 of every row's version key (upstream's
"chexor"), kept up to date by every write; equal hashes = same rows, whatever order the writes
came in. Schema version: `PRAGMA application_id` (v1 databases, written before tombstones
existed, are migrated when opened).
"""
from __future__ import annotations

import hashlib
import sqlite3
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS account_stat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    created_at TEXT NOT NULL, put_timestamp TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
    meta_timestamp TEXT NOT NULL DEFAULT '', hash TEXT NOT NULL DEFAULT '0');
CREATE TABLE IF NOT EXISTS container (
    name TEXT PRIMARY KEY, created_at TEXT NOT NULL, put_timestamp TEXT NOT NULL,
    object_count INTEGER NOT NULL DEFAULT 0, bytes_used INTEGER NOT NULL DEFAULT 0,
    metadata TEXT NOT NULL DEFAULT '{}', delete_timestamp TEXT NOT NULL DEFAULT '0',
    meta_timestamp TEXT NOT NULL DEFAULT '', deleted INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS object (
    container TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL, size INTEGER NOT NULL,
    content_type TEXT NOT NULL, etag TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL DEFAULT '', PRIMARY KEY (container, name)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS object_tombstone ON object (updated_at) WHERE deleted = 1;
"""
# Partial: only tombstones are in it, so a PUT pays nothing for it; reclaim finds them without a scan.
TOMBSTONE_INDEX = "CREATE INDEX IF NOT EXISTS object_tombstone ON object (updated_at) WHERE deleted = 1"
OBJECT_COLUMNS = "container, name, created_at, size, content_type, etag, deleted, updated_at"


# ---------------------------------------------------------------------------- opening
@contextmanager
def transaction(conn: sqlite3.Connection):
    """One write transaction (taking the write lock at once): committed, or rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def connect(path: Path, create: bool) -> sqlite3.Connection | None:
    """A connection to one replica (None when it does not exist and `create` is False),
    migrated to the current schema."""
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        if create:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent in the file: set once, at creation
            conn.executescript(SCHEMA)
            if conn.execute("PRAGMA application_id").fetchone()[0] == 0 and not _has_rows(conn):
                conn.execute(f"PRAGMA application_id = {SCHEMA_VERSION}")
        if conn.execute("PRAGMA application_id").fetchone()[0] != SCHEMA_VERSION:
            migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _has_rows(conn) -> bool:
    return conn.execute("SELECT 1 FROM account_stat").fetchone() is not None


def _columns(conn, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def migrate(conn: sqlite3.Connection) -> None:
    """v1 -> v2: tombstone and timestamp columns (existing rows are live, changed when created),
    then the row hash."""
    with transaction(conn):
        if conn.execute("PRAGMA application_id").fetchone()[0] == SCHEMA_VERSION:  # another process did it
            return
        adds = {"account_stat": [("meta_timestamp", "TEXT NOT NULL DEFAULT ''"), ("hash", "TEXT NOT NULL DEFAULT '0'")],
                "container": [("delete_timestamp", "TEXT NOT NULL DEFAULT '0'"),
                              ("meta_timestamp", "TEXT NOT NULL DEFAULT ''"), ("deleted", "INTEGER NOT NULL DEFAULT 0")],
                "object": [("deleted", "INTEGER NOT NULL DEFAULT 0"), ("updated_at", "TEXT NOT NULL DEFAULT ''")]}
        for table, columns in adds.items():
            have = _columns(conn, table)
            for name, decl in columns:
                if name not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
        conn.execute(TOMBSTONE_INDEX)
        conn.execute("UPDATE account_stat SET meta_timestamp = put_timestamp WHERE meta_timestamp = ''")
        conn.execute("UPDATE container SET meta_timestamp = put_timestamp WHERE meta_timestamp = ''")
        conn.execute("UPDATE object SET updated_at = created_at WHERE updated_at = ''")
        rehash(conn)
        conn.execute(f"PRAGMA application_id = {SCHEMA_VERSION}")


# ---------------------------------------------------------------------------- row hash
def object_key(container: str, name: str, updated_at: str) -> str:
    return f"o/{container}/{name}/{updated_at}"


def container_key(name: str, put_ts: str, delete_ts: str, meta_ts: str) -> str:
    return f"c/{name}/{put_ts}/{delete_ts}/{meta_ts}"


def account_key(meta_ts: str) -> str:
    return f"a/{meta_ts}"


def _md5_int(key: str) -> int:
    return int.from_bytes(hashlib.md5(key.encode("utf-8", "surrogatepass"), usedforsecurity=False).digest(), "big")


def xor(conn: sqlite3.Connection, *keys: str | None) -> None:
    """Account for rows that appeared or disappeared (a changed row: its old and new keys)."""
    value = 0
    for key in keys:
        if key is not None:
            value ^= _md5_int(key)
    if value:
        old = conn.execute("SELECT hash FROM account_stat").fetchone()
        if old is not None:
            conn.execute("UPDATE account_stat SET hash = ?", (f"{int(old[0], 16) ^ value:032x}",))


def rehash(conn: sqlite3.Connection) -> str:
    """Recompute `account_stat.hash` from every row."""
    value = 0
    row = conn.execute("SELECT meta_timestamp FROM account_stat").fetchone()
    if row is not None:
        value ^= _md5_int(account_key(row[0]))
    for r in conn.execute("SELECT name, put_timestamp, delete_timestamp, meta_timestamp FROM container"):
        value ^= _md5_int(container_key(*r))
    for r in conn.execute("SELECT container, name, updated_at FROM object"):
        value ^= _md5_int(object_key(*r))
    digest = f"{value:032x}"
    conn.execute("UPDATE account_stat SET hash = ?", (digest,))
    return digest


def digest(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT hash FROM account_stat").fetchone()
    return f"{int(row[0], 16):032x}" if row else None


def recount(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE container SET "
                 "object_count = (SELECT count(*) FROM object WHERE object.container = container.name "
                 "AND object.deleted = 0), "
                 "bytes_used = (SELECT coalesce(sum(size), 0) FROM object WHERE object.container = container.name "
                 "AND object.deleted = 0)")


# ---------------------------------------------------------------------------- merge and reclaim
def merge(conn: sqlite3.Connection, source: Path) -> int:
    """Bring every row of the replica at `source` that is newer than ours (or that we lack) into
    `conn`'s replica, in one transaction; counts and hash are recomputed. Returns rows taken."""
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    try:
        with transaction(conn):
            taken = _merge_account(conn) + _merge_containers(conn)
            before = conn.total_changes
            conn.execute(f"INSERT OR REPLACE INTO object ({OBJECT_COLUMNS}) SELECT "
                         f"{', '.join('s.' + c.strip() for c in OBJECT_COLUMNS.split(','))}"
                         " FROM src.object s LEFT JOIN main.object o ON o.container = s.container AND o.name = s.name"
                         " WHERE o.name IS NULL OR s.updated_at > o.updated_at")
            taken += conn.total_changes - before
            if taken:
                recount(conn)
                rehash(conn)
            version = max(conn.execute("PRAGMA main.user_version").fetchone()[0],
                          conn.execute("PRAGMA src.user_version").fetchone()[0])
            conn.execute(f"PRAGMA main.user_version = {version}")
    finally:
        conn.execute("DETACH DATABASE src")
    return taken


def _merge_account(conn) -> int:
    src = conn.execute("SELECT created_at, put_timestamp, metadata, meta_timestamp FROM src.account_stat").fetchone()
    mine = conn.execute("SELECT created_at, put_timestamp, metadata, meta_timestamp FROM main.account_stat").fetchone()
    if src is None:
        return 0
    if mine is None:
        conn.execute("INSERT INTO main.account_stat (id, created_at, put_timestamp, metadata, meta_timestamp) "
                     "VALUES (1, ?, ?, ?, ?)", src)
        return 1
    if src[3] > mine[3] or src[0] < mine[0] or src[1] > mine[1]:
        newer = src[3] > mine[3]
        conn.execute("UPDATE main.account_stat SET created_at = ?, put_timestamp = ?, metadata = ?, meta_timestamp = ?",
                     (min(src[0], mine[0]), max(src[1], mine[1]), src[2] if newer else mine[2],
                      src[3] if newer else mine[3]))
        return 1
    return 0


def _merge_containers(conn) -> int:
    cols = "name, created_at, put_timestamp, delete_timestamp, meta_timestamp, metadata"
    mine = {r[0]: r for r in conn.execute(f"SELECT {cols} FROM main.container")}
    taken = 0
    for row in conn.execute(f"SELECT {cols} FROM src.container").fetchall():
        name, created, put, delete, meta_ts, metadata = row
        old = mine.get(name)
        if old is not None:
            if (put, delete, meta_ts) == old[2:5] and created >= old[1]:
                continue
            rows = (old, row)
            put, delete = max(old[2], put), max(old[3], delete)
            newest_meta = max(rows, key=lambda r: r[4])
            meta_ts, metadata = newest_meta[4], newest_meta[5]
            # created_at: when the current incarnation (after the last delete) began
            alive = [r[1] for r in rows if r[1] > delete]
            created = min(alive) if alive else max(rows, key=lambda r: r[2])[1]
        conn.execute("INSERT OR REPLACE INTO main.container (name, created_at, put_timestamp, delete_timestamp, "
                     "meta_timestamp, metadata, deleted) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     (name, created, put, delete, meta_ts, metadata, 1 if delete > put else 0))
        taken += 1
    return taken


def reclaim(conn: sqlite3.Connection, cutoff: str) -> int:
    """Drop tombstones older than `cutoff` (objects; deleted containers with no rows left)."""
    with transaction(conn):
        gone = conn.execute("SELECT container, name, updated_at FROM object WHERE deleted = 1 AND updated_at < ?",
                            (cutoff,)).fetchall()
        conn.execute("DELETE FROM object WHERE deleted = 1 AND updated_at < ?", (cutoff,))
        dead = conn.execute("SELECT name, put_timestamp, delete_timestamp, meta_timestamp FROM container c "
                            "WHERE deleted = 1 AND delete_timestamp < ? AND NOT EXISTS "
                            "(SELECT 1 FROM object o WHERE o.container = c.name)", (cutoff,)).fetchall()
        for row in dead:
            conn.execute("DELETE FROM container WHERE name = ?", (row[0],))
        keys = [object_key(*r) for r in gone] + [container_key(*r) for r in dead]
        for i in range(0, len(keys), 500):
            xor(conn, *keys[i:i + 500])
    return len(keys)
