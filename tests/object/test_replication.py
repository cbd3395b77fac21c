"""Object Storage durability on a 3-replica cloud: quorum writes, reads around bad replicas, the
auditor's checksum check, the replicator (objects, tombstones, account listing databases), both
as the one-shot `pocketstack object replicate|audit` commands and as the background thread.

Replicas are damaged directly on disk (deleted files, flipped bytes, a device whose directories
are replaced by files), the way a failing disk would; every read goes through the real `swift` CLI.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import POCKETSTACK, Cloud

SWIFT = str(Path(sys.executable).parent / "swift")
BASE_CONFIG = {("pocketstack", "enabled_services"): "identity,object",
               ("object", "replicas"): "3", ("object", "devices"): "3"}


def start(tmp_path_factory, name, extra):
    c = Cloud(tmp_path_factory.mktemp(name), config={**BASE_CONFIG, **extra})
    c.start()
    return c


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    """No background replicator: the tests drive the one-shot commands."""
    c = start(tmp_path_factory, "repl", {("object", "replicator_interval"): "0"})
    yield c
    c.stop()


@pytest.fixture(scope="module")
def busy_cloud(tmp_path_factory):
    """The background thread replicates every second and audits every 2 s."""
    c = start(tmp_path_factory, "replbg", {("object", "replicator_interval"): "1",
                                           ("object", "auditor_interval"): "2"})
    yield c
    c.stop()


def swift(cloud, *args, cwd=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    res = subprocess.run([SWIFT, "--os-auth-url", cloud.auth_url, "--auth-version", "3", "--os-username", "admin",
                          "--os-password", cloud.admin_password, "--os-project-name", "admin",
                          "--os-user-domain-name", "Default", "--os-project-domain-name", "Default", *args],
                         capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"swift {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def storage_of(cloud):
    from pocketstack.common.config import Config
    from pocketstack.object.service import open_storage

    return open_storage(Config.load(cloud.state_dir))


def account_of(cloud) -> str:
    r = httpx.post(cloud.auth_url + "/auth/tokens", json={"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": "admin", "domain": {"id": "default"}, "password": cloud.admin_password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    return "AUTH_" + r.json()["token"]["project"]["id"]


def replica_files(cloud, container, obj, suffix=".data") -> list[Path | None]:
    """The newest `suffix` file of each primary replica, in the ring's (read) order."""
    out = []
    for d in storage_of(cloud).object_dirs(account_of(cloud), container, obj):
        files = sorted(d.glob(f"*{suffix}")) if d.exists() else []
        out.append(files[-1] if files else None)
    return out


def db_files(cloud) -> list[Path]:
    store = storage_of(cloud)
    return store._db_paths(account_of(cloud))


def flip_bytes(path: Path, offset: int = 10) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(4)
        fh.seek(offset)
        fh.write(bytes(x ^ 0xFF for x in b))


def run_cmd(cloud, action) -> dict:
    res = cloud.pocketstack("object", action, "--state-dir", str(cloud.state_dir))
    return json.loads(res.stdout.strip().splitlines()[-1])


def download(cloud, container, obj, tmp_path) -> bytes:
    out = tmp_path / f"dl-{uuid.uuid4().hex[:6]}"
    swift(cloud, "download", container, obj, "-o", str(out))
    return out.read_bytes()


def upload(cloud, container, name, data: bytes, tmp_path):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / name).write_bytes(data)
    swift(cloud, "upload", container, name, cwd=src)


# ---------------------------------------------------------------------------- reads + repair (CLI)
@pytest.mark.parametrize("size", [3000, 3 << 20])
def test_missing_and_corrupt_replicas_are_never_served_and_get_repaired(cloud, tmp_path, size):
    c, name = f"rep-{uuid.uuid4().hex[:6]}", "blob.bin"
    data = os.urandom(size)
    upload(cloud, c, name, data, tmp_path)
    files = replica_files(cloud, c, name)
    assert all(files) and len({f.parent.parents[3].name for f in files}) == 3  # three devices
    original = files[0].read_bytes()
    assert all(f.read_bytes() == original for f in files)

    # The replica reads try first is gone, the second one has rotten bytes (same length).
    files[0].unlink()
    flip_bytes(files[1], offset=size // 2)
    for _ in range(3):
        assert download(cloud, c, name, tmp_path) == data
    assert swift(cloud, "stat", c, name).returncode == 0

    # The read path already moved the corrupt replica aside; the audit finds nothing more.
    stats = run_cmd(cloud, "audit")
    assert stats["quarantined"] == 0 and stats["objects"] >= 1
    quarantined = list(files[1].parents[4].glob(f"quarantined/objects/{files[1].parent.name}/*"))
    assert len(quarantined) == 1

    stats = run_cmd(cloud, "replicate")
    assert stats["copied"] >= 2, stats
    now = replica_files(cloud, c, name)
    assert all(now) and all(f.read_bytes() == original for f in now)  # byte-identical, metadata included
    assert download(cloud, c, name, tmp_path) == data
    assert run_cmd(cloud, "replicate")["copied"] == 0  # converged


def test_auditor_quarantines_rot_nobody_read(cloud, tmp_path):
    c, name = f"aud-{uuid.uuid4().hex[:6]}", "quiet.txt"
    data = b"quiet data " * 500
    upload(cloud, c, name, data, tmp_path)
    files = replica_files(cloud, c, name)
    original = files[2].read_bytes()
    flip_bytes(files[2], offset=100)
    stats = run_cmd(cloud, "audit")
    assert stats["quarantined"] == 1, stats
    assert not files[2].exists()
    run_cmd(cloud, "replicate")
    assert all(f.read_bytes() == original for f in replica_files(cloud, c, name))
    assert run_cmd(cloud, "audit")["quarantined"] == 0


def test_post_metadata_is_replicated(cloud, tmp_path):
    c, name = f"meta-{uuid.uuid4().hex[:6]}", "m.txt"
    upload(cloud, c, name, b"metadata", tmp_path)
    swift(cloud, "post", c, name, "-H", "X-Object-Meta-Color: blue")
    metas = replica_files(cloud, c, name, ".meta")
    assert all(metas)
    metas[1].unlink()
    run_cmd(cloud, "replicate")
    now = replica_files(cloud, c, name, ".meta")
    assert all(now) and len({m.read_bytes() for m in now}) == 1
    assert "Color: blue" in swift(cloud, "stat", c, name).stdout


def test_tombstones_keep_deleted_objects_deleted(cloud, tmp_path):
    c, name = f"ts-{uuid.uuid4().hex[:6]}", "gone.txt"
    upload(cloud, c, name, b"soon deleted", tmp_path)
    files = replica_files(cloud, c, name)
    stale = files[0].read_bytes()
    swift(cloud, "delete", c, name)
    # One replica "missed" the DELETE: its tombstone is gone and the old data is back.
    tombs = replica_files(cloud, c, name, ".ts")
    assert all(tombs)
    tombs[0].unlink()
    files[0].write_bytes(stale)
    stats = run_cmd(cloud, "replicate")
    assert stats["tombstones_copied"] == 1, stats
    assert all(replica_files(cloud, c, name, ".ts"))
    assert not any(replica_files(cloud, c, name, ".data"))
    assert swift(cloud, "download", c, name, "-o", "-", check=False).returncode != 0
    assert name not in swift(cloud, "list", c).stdout.split()


def test_old_tombstones_are_reclaimed(cloud, tmp_path):
    c, name = f"rc-{uuid.uuid4().hex[:6]}", "old.txt"
    upload(cloud, c, name, b"short-lived", tmp_path)
    dirs = storage_of(cloud).object_dirs(account_of(cloud), c, name)
    swift(cloud, "delete", c, name)
    assert all(replica_files(cloud, c, name, ".ts"))
    cloud.pocketstack("config", "set", "--state-dir", str(cloud.state_dir), "object", "reclaim_age", "0")
    try:
        stats = run_cmd(cloud, "replicate")
    finally:
        cloud.pocketstack("config", "set", "--state-dir", str(cloud.state_dir), "object", "reclaim_age", "604800")
    assert stats["reclaimed"] >= 1, stats
    run_cmd(cloud, "replicate")
    assert not any(d.exists() for d in dirs)
    assert swift(cloud, "stat", c, name, check=False).returncode != 0


def test_account_databases_are_restored(cloud, tmp_path):
    c = f"db-{uuid.uuid4().hex[:6]}"
    for i in range(5):
        upload(cloud, c, f"o{i}", b"x" * i, tmp_path)
    dbs = db_files(cloud)
    assert all(p.exists() for p in dbs)
    # One replica lost, one corrupt (its header overwritten).
    dbs[0].unlink()
    for extra in ("-wal", "-shm"):
        dbs[0].with_name(dbs[0].name + extra).unlink(missing_ok=True)
    with open(dbs[1], "r+b") as fh:
        fh.write(b"\x00garbage, not sqlite\x00" * 4)
    # Listings keep working from the one good replica (writes would miss their quorum until repaired).
    assert swift(cloud, "list", c).stdout.split() == [f"o{i}" for i in range(5)]
    stats = run_cmd(cloud, "replicate")
    assert stats["databases_restored"] == 2 and stats["quarantined"] == 1, stats
    import sqlite3

    for p in dbs:
        conn = sqlite3.connect(p)
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM object WHERE container = ? ORDER BY name", (c,))]
            assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        assert names == [f"o{i}" for i in range(5)]
    upload(cloud, c, "after", b"after the repair", tmp_path)
    assert "after" in swift(cloud, "list", c).stdout.split()
    assert len({_versions(p) for p in dbs}) == 1  # every replica took the write


def _versions(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


# ---------------------------------------------------------------------------- quorum
def _break_device(store, dev: str) -> list[tuple[Path, Path]]:
    """Make a device unwritable the way a root process notices: its directories become files."""
    moved = []
    for sub in ("tmp", "objects"):
        path = store.devices / dev / sub
        aside = path.with_name(sub + ".aside")
        if path.exists():
            path.rename(aside)
        path.write_bytes(b"")
        moved.append((path, aside))
    return moved


def _repair_device(moved) -> None:
    for path, aside in moved:
        path.unlink()
        if aside.exists():
            aside.rename(path)


def test_writes_need_a_quorum(cloud, tmp_path):
    store = storage_of(cloud)
    c, name = f"q-{uuid.uuid4().hex[:6]}", "q.txt"
    swift(cloud, "post", c)
    devs = [d.parents[3].name for d in store.object_dirs(account_of(cloud), c, name)]

    moved = _break_device(store, devs[0])  # one of three down: still a quorum
    try:
        upload(cloud, c, name, b"two of three", tmp_path)
        assert download(cloud, c, name, tmp_path) == b"two of three"
    finally:
        _repair_device(moved)
    assert run_cmd(cloud, "replicate")["copied"] >= 1
    assert all(replica_files(cloud, c, name))

    moved = _break_device(store, devs[0]) + _break_device(store, devs[1])  # two of three down
    try:
        r = httpx.put(f"{cloud.url}/object/v1/{account_of(cloud)}/{c}/{name}", content=b"one of three",
                      headers={"X-Auth-Token": cloud.token()})
        assert r.status_code == 503, r.text
    finally:
        _repair_device(moved)
    # Nothing half-written: the old version is still the object, on every replica.
    assert download(cloud, c, name, tmp_path) == b"two of three"
    assert {f.read_bytes()[:12] for f in replica_files(cloud, c, name)} == {b"two of three"}
    raw = httpx.get(f"{cloud.url}/object/v1/{account_of(cloud)}/{c}?format=json",
                    headers={"X-Auth-Token": cloud.token()}).json()
    assert [o["bytes"] for o in raw if o["name"] == name] == [12]


def test_503_body_is_swifts(cloud, tmp_path):
    store = storage_of(cloud)
    c, name = f"q503-{uuid.uuid4().hex[:6]}", "x"
    swift(cloud, "post", c)
    devs = [d.parents[3].name for d in store.object_dirs(account_of(cloud), c, name)]
    moved = _break_device(store, devs[1]) + _break_device(store, devs[2])
    try:
        r = httpx.put(f"{cloud.url}/object/v1/{account_of(cloud)}/{c}/{name}", content=b"data",
                      headers={"X-Auth-Token": cloud.token()})
    finally:
        _repair_device(moved)
    assert r.status_code == 503
    assert r.text.startswith("<html><h1>Service Unavailable</h1>")
    r = httpx.get(f"{cloud.url}/object/v1/{account_of(cloud)}/{c}/{name}", headers={"X-Auth-Token": cloud.token()})
    assert r.status_code == 404


def test_listing_writes_need_a_quorum_too(cloud, tmp_path):
    c = f"qdb-{uuid.uuid4().hex[:6]}"
    swift(cloud, "post", c)
    dbs = db_files(cloud)
    for p in dbs[:2]:  # two of the three listing replicas unreadable
        with open(p, "r+b") as fh:
            fh.write(b"\x00not a database\x00" * 8)
    try:
        url = f"{cloud.url}/object/v1/{account_of(cloud)}/{c}"
        r = httpx.post(url, headers={"X-Auth-Token": cloud.token(), "X-Container-Meta-Color": "red"})
        assert r.status_code == 503 and r.text.startswith("<html><h1>Service Unavailable</h1>"), r.text
    finally:
        run_cmd(cloud, "replicate")  # quarantines both, restores them from the healthy one
    assert all(p.exists() for p in dbs)
    r = httpx.post(url, headers={"X-Auth-Token": cloud.token(), "X-Container-Meta-Color": "blue"})
    assert r.status_code == 204
    assert "Color: blue" in swift(cloud, "stat", c).stdout


# ---------------------------------------------------------------------------- background thread
def test_background_replicator_repairs_while_clients_read(busy_cloud, tmp_path):
    cloud = busy_cloud
    c = f"bg-{uuid.uuid4().hex[:6]}"
    payloads = {"small.bin": os.urandom(5000), "big.bin": os.urandom(2 << 20)}
    for name, data in payloads.items():
        upload(cloud, c, name, data, tmp_path)
    originals = {name: replica_files(cloud, c, name)[0].read_bytes() for name in payloads}
    for name in payloads:
        files = replica_files(cloud, c, name)
        files[1].unlink()
        flip_bytes(files[2], offset=len(payloads[name]) // 3)  # found by the auditor, or by a read
    dbs = db_files(cloud)
    dbs[2].unlink()

    deadline = time.monotonic() + 30
    while True:
        for name, data in payloads.items():
            assert download(cloud, c, name, tmp_path) == data  # never bad data meanwhile
        healthy = all(
            all(f is not None and f.read_bytes() == originals[name] for f in replica_files(cloud, c, name))
            for name in payloads) and all(p.exists() for p in dbs)
        if healthy:
            break
        assert time.monotonic() < deadline, "replicas were not repaired within 30 s"
        time.sleep(0.5)
    assert sorted(swift(cloud, "list", c).stdout.split()) == sorted(payloads)


def test_object_command_usage(cloud, tmp_path):
    res = subprocess.run([POCKETSTACK, "object"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "replicate" in res.stdout + res.stderr
    res = subprocess.run([POCKETSTACK, "object", "audit", "--state-dir", str(tmp_path / "none")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "no object storage" in res.stderr
    assert not (tmp_path / "none" / "object").exists()


# ---------------------------------------------------------------------------- listing databases: merges
class _Aside:
    """One listing replica out of the way (file and WAL renamed) while writes go on: that
    replica misses them, the way a device that was down does."""

    def __init__(self, db: Path):
        self.files = [db.with_name(db.name + extra) for extra in ("", "-wal", "-shm")]

    def __enter__(self):
        for f in self.files:
            if f.exists():
                f.rename(f.with_name(f.name + ".aside"))

    def __exit__(self, *exc):
        for f in self.files:
            aside = f.with_name(f.name + ".aside")
            if aside.exists():
                aside.rename(f)


def _replica_state(db: Path, containers) -> dict:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        out = {"hash": conn.execute("SELECT hash FROM account_stat").fetchone()[0]}
        for c in containers:
            row = conn.execute("SELECT object_count, bytes_used, deleted FROM container WHERE name = ?", (c,)).fetchone()
            live = conn.execute("SELECT name, size FROM object WHERE container = ? AND deleted = 0 ORDER BY name",
                                (c,)).fetchall()
            out[c] = (row, live)
        return out
    finally:
        conn.close()


def test_listing_replicas_that_missed_different_writes_are_merged(cloud, tmp_path):
    tag = uuid.uuid4().hex[:6]
    c, c2, dead = f"mrg-{tag}", f"mrg2-{tag}", f"mrgdead-{tag}"
    upload(cloud, c, "keep", b"keep", tmp_path)
    upload(cloud, c, "gone", b"gone!", tmp_path)
    swift(cloud, "post", dead)
    dbs = db_files(cloud)
    with _Aside(dbs[0]):  # replica 0 misses X
        upload(cloud, c, "X", b"x" * 10, tmp_path)
    with _Aside(dbs[1]):  # replica 1 misses Y and a whole new container
        upload(cloud, c, "Y", b"y" * 20, tmp_path)
        upload(cloud, c2, "z", b"z" * 3, tmp_path)
    with _Aside(dbs[2]):  # replica 2 misses a DELETE, a container DELETE and an overwrite
        swift(cloud, "delete", c, "gone")
        swift(cloud, "delete", dead)
        upload(cloud, c, "keep", b"kept, longer", tmp_path)
    swift(cloud, "post", c, "-H", "X-Container-Meta-Color: green")  # on all three
    names = [_replica_state(db, [c, c2, dead]) for db in dbs]
    assert len({repr(n[c][1]) for n in names}) == 3, names  # three different listings
    assert len({n["hash"] for n in names}) == 3

    stats = run_cmd(cloud, "replicate")
    assert stats["databases_merged"] >= 2 and stats["rows_merged"] >= 6, stats
    want = {c: (3, 12 + 10 + 20, 0), c2: (1, 3, 0)}
    after = [_replica_state(db, [c, c2, dead]) for db in dbs]
    for state in after:
        assert state[c] == (want[c], [("X", 10), ("Y", 20), ("keep", 12)]), state
        assert state[c2] == (want[c2], [("z", 3)]), state
        assert state[dead][0][2] == 1 and state[dead][1] == []  # the container stays deleted
    assert len({state["hash"] for state in after}) == 1
    assert run_cmd(cloud, "replicate")["databases_merged"] == 0  # converged

    # Every replica answers the same: read each one alone (the others aside).
    for i, db in enumerate(dbs):
        others = [_Aside(d) for j, d in enumerate(dbs) if j != i]
        for o in others:
            o.__enter__()
        try:
            assert swift(cloud, "list", c).stdout.split() == ["X", "Y", "keep"]
            stat = swift(cloud, "stat", c).stdout
            assert "Objects: 3" in stat and "Bytes: 42" in stat and "Color: green" in stat
            assert dead not in swift(cloud, "list").stdout.split()
        finally:
            for o in others:
                o.__exit__()
    assert download(cloud, c, "keep", tmp_path) == b"kept, longer"
    assert swift(cloud, "download", c, "gone", "-o", "-", check=False).returncode != 0


def test_old_listing_databases_are_migrated(cloud, tmp_path):
    """A v1 database (no tombstone columns) on every replica: opened, migrated, listed, merged."""
    import sqlite3

    from pocketstack.object import listingdb, storage as st

    store = storage_of(cloud)
    account = f"AUTH_v1{uuid.uuid4().hex[:8]}"
    v1 = """CREATE TABLE account_stat (id INTEGER PRIMARY KEY CHECK (id = 1), created_at TEXT NOT NULL,
                put_timestamp TEXT NOT NULL, metadata TEXT NOT NULL DEFAULT '{}');
            CREATE TABLE container (name TEXT PRIMARY KEY, created_at TEXT NOT NULL, put_timestamp TEXT NOT NULL,
                object_count INTEGER NOT NULL DEFAULT 0, bytes_used INTEGER NOT NULL DEFAULT 0,
                metadata TEXT NOT NULL DEFAULT '{}') WITHOUT ROWID;
            CREATE TABLE object (container TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL,
                size INTEGER NOT NULL, content_type TEXT NOT NULL, etag TEXT NOT NULL,
                PRIMARY KEY (container, name)) WITHOUT ROWID;"""
    paths = store._db_paths(account)
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        conn.executescript(v1)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("INSERT INTO account_stat VALUES (1, '0000001700000.00000', '0000001700000.00000', '{}')")
        names = ["a", "b"] if i != 1 else ["a"]  # replica 1 lagged behind before the upgrade
        conn.execute("INSERT INTO container VALUES ('c', '0000001700000.00000', '0000001700000.00000', ?, ?, '{}')",
                     (len(names), 3 * len(names)))
        for n, name in enumerate(names):
            conn.execute("INSERT INTO object VALUES ('c', ?, ?, 3, 'text/plain', 'e')",
                         (name, f"00000017000{n + 1:02d}.00000"))
        conn.commit()
        conn.close()
    assert [o["name"] for o in store.list_objects(account, "c", limit=100)] == ["a", "b"]
    store._record_object(account, "c", "a", None, st.new_timestamp())  # a delete after the upgrade
    for path in paths:
        conn = listingdb.connect(path, False)
        try:
            assert conn.execute("PRAGMA application_id").fetchone()[0] == listingdb.SCHEMA_VERSION
            assert listingdb.digest(conn) == listingdb.rehash(conn)  # the kept hash is the rows' hash
        finally:
            conn.close()
    stats = run_cmd(cloud, "replicate")
    assert stats["databases_merged"] >= 2, stats
    for path in paths:
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("SELECT name, deleted FROM object ORDER BY name").fetchall() == [("a", 1), ("b", 0)]
            assert conn.execute("SELECT object_count, bytes_used FROM container").fetchone() == (1, 3)
        finally:
            conn.close()
    assert store.account_info(account)["object_count"] == 1


def test_copies_never_spread_a_corrupt_replica(cloud, tmp_path):
    """A 2 MiB object (bigger than what HEAD checks whole) whose first replica rotted: a COPY
    reads the source while checking it, quarantines the bad replica and copies a good one."""
    c, name = f"cp-{uuid.uuid4().hex[:6]}", "src.bin"
    data = os.urandom(2 << 20)
    upload(cloud, c, name, data, tmp_path)
    files = replica_files(cloud, c, name)
    flip_bytes(files[0], offset=len(data) - 100)
    swift(cloud, "copy", "-d", f"/{c}/copy.bin", c, name)
    assert download(cloud, c, "copy.bin", tmp_path) == data
    assert not files[0].exists()  # moved to quarantine by the read that found it
    assert download(cloud, c, name, tmp_path) == data
