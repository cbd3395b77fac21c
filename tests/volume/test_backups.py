"""Volume backups through the real clients: `openstack volume backup ...`, openstacksdk,
python-cinderclient and raw HTTP.

Two clouds: one with `identity,image,volume` (the `posix` driver: chunks under
`<state_dir>/backup`) and one with the object service too (the `swift` driver, the default
there: chunks in `AUTH_<project>/volumebackups`). Restores are compared byte for byte
with the volume data they were made from; incrementals store only changed chunks.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import time

import pytest

from pocketstack.volume.backup_drivers.base import CHUNK_SIZE, BackupDriver, BackupDriverError
from tests.conftest import Cloud
from tests.volume.test_volumes import Api, project_user

CHUNK = CHUNK_SIZE


@pytest.fixture(scope="module")
def bcloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("backup"), config={("pocketstack", "enabled_services"): "identity,image,volume"})
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def scloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("backup-swift"),
              config={("pocketstack", "enabled_services"): "identity,image,volume,object",
                      ("object", "replicator_interval"): "0"})
    c.start()
    yield c
    c.stop()


def vol_path(cloud, volume_id: str):
    return cloud.state_dir / "volume" / "file" / f"volume-{volume_id}"


def write_at(cloud, volume_id: str, offset: int, data: bytes) -> None:
    """What a guest writing to the attached disk would do."""
    with open(vol_path(cloud, volume_id), "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def digest(cloud, volume_id: str) -> str:
    """SHA-256 of the volume's content, block by block; all-zero blocks (holes or written
    zeros alike) hash as zeros without reading holes, so comparing 1 GiB volumes is cheap
    and still exact."""
    h = hashlib.sha256()
    block = 1 << 20
    with open(vol_path(cloud, volume_id), "rb") as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        h.update(str(size).encode())
        for start in range(0, size, block):
            try:
                data_at = os.lseek(fd, start, os.SEEK_DATA)
            except OSError:
                data_at = size
            if data_at >= start + block:
                h.update(b"Z")
                continue
            fh.seek(start)
            data = fh.read(block)
            h.update(b"Z" if data.count(0) == len(data) else hashlib.sha256(data).digest())
    return h.hexdigest()


def wait_api(api, path: str, key: str, status: str, timeout: float = 60, version=None) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        body = api("GET", path, version=version).json()[key]
        if body["status"] == status:
            return body
        assert not body["status"].startswith("error"), body
        time.sleep(0.2)
    raise AssertionError(f"{path} not {status}: {body['status']}")


def new_volume(api, name: str, size: int = 1) -> str:
    vol = api("POST", "/volumes", {"volume": {"size": size, "name": name}}).json()["volume"]
    wait_api(api, f"/volumes/{vol['id']}", "volume", "available")
    return vol["id"]


def test_full_incremental_restore_byte_identical_cli(bcloud):
    api = Api(bcloud)
    vol = bcloud.os_json("volume", "create", "--size", "1", "data")
    wait_api(api, f"/volumes/{vol['id']}", "volume", "available")
    first = os.urandom(3 * CHUNK + 12345)
    write_at(bcloud, vol["id"], 0, first)
    write_at(bcloud, vol["id"], 600 << 20, b"tail-marker" * 1000)
    original = digest(bcloud, vol["id"])

    full = bcloud.os_json("volume", "backup", "create", "--name", "full", vol["id"])
    wait_api(api, f"/backups/{full['id']}", "backup", "available")
    shown = bcloud.os_json("volume", "backup", "show", full["id"])
    assert shown["size"] == 1 and shown["is_incremental"] is False and shown["container"] == "volumebackups"
    assert shown["object_count"] == 5  # 4 data chunks at the start + 1 at 600 MiB; zeros are not stored
    wait_api(api, f"/volumes/{vol['id']}", "volume", "available")

    write_at(bcloud, vol["id"], CHUNK + 7, b"changed!")  # one chunk changes
    changed = digest(bcloud, vol["id"])
    inc = bcloud.os_json("volume", "backup", "create", "--incremental", "--name", "inc", vol["id"])
    shown = wait_api(api, f"/backups/{inc['id']}", "backup", "available")
    assert shown["is_incremental"] is True and shown["object_count"] == 1
    assert bcloud.os_json("volume", "backup", "show", "full")["has_dependent_backups"] is True
    listed = {b["Name"] for b in bcloud.os_json("volume", "backup", "list")}
    assert listed == {"full", "inc"}

    # restore the incremental into a new volume (named by the CLI): the changed data
    out = bcloud.os_json("volume", "backup", "restore", "inc", "restored-inc")
    assert out["id"] == inc["id"] and out["volume_name"] == "restored-inc"
    wait_api(api, f"/volumes/{out['volume_id']}", "volume", "available")
    assert digest(bcloud, out["volume_id"]) == changed
    # restore the full backup over that volume (existing, --force): the original data
    bcloud.os_json("volume", "backup", "restore", "--force", "full", out["volume_id"])
    wait_api(api, f"/volumes/{out['volume_id']}", "volume", "available")
    assert digest(bcloud, out["volume_id"]) == original
    assert bcloud.os_json("volume", "backup", "show", "full")["status"] == "available"

    # the parent cannot go while an incremental depends on it
    err = bcloud.openstack_fails("volume", "backup", "delete", "full")
    assert "Incremental backups exist for this backup" in err
    bcloud.openstack("volume", "backup", "delete", "inc")
    wait_gone_api(api, f"/backups/{inc['id']}")
    bcloud.openstack("volume", "backup", "delete", "full")
    wait_gone_api(api, f"/backups/{full['id']}")
    assert list((bcloud.state_dir / "backup" / "volumebackups").iterdir()) == []
    bcloud.openstack("volume", "delete", vol["id"], out["volume_id"])


def test_restore_detects_corrupt_chunks(bcloud):
    api = Api(bcloud)
    vid = new_volume(api, "rot")
    write_at(bcloud, vid, 0, os.urandom(1000))
    b = api("POST", "/backups", {"backup": {"volume_id": vid}}).json()["backup"]
    wait_api(api, f"/backups/{b['id']}", "backup", "available")
    chunk = bcloud.state_dir / "backup" / "volumebackups" / f"backup-{b['id']}" / "chunk-00000000"
    chunk.write_bytes(b"x" + chunk.read_bytes()[1:])
    r = api("POST", f"/backups/{b['id']}/restore", {"restore": {"volume_id": vid}})
    assert r.status_code == 202
    end = time.monotonic() + 30
    while api("GET", f"/volumes/{vid}").json()["volume"]["status"] != "error_restoring":
        assert time.monotonic() < end
        time.sleep(0.2)
    assert api("GET", f"/backups/{b['id']}").json()["backup"]["status"] == "available"
    assert api("DELETE", f"/backups/{b['id']}").status_code == 202
    assert api("DELETE", f"/volumes/{vid}").status_code == 202


def test_backup_api_states_errors_and_microversions(bcloud):
    api = Api(bcloud)
    vid = new_volume(api, "api-vol")
    cases = [
        ({"backup": {}}, 400), ({"nothing": {}}, 400), ({"backup": {"volume_id": "nope"}}, 404),
        ({"backup": {"volume_id": vid, "incremental": True}}, 400),  # no parent yet
        ({"backup": {"volume_id": vid, "bogus": 1}}, 400),
        ({"backup": {"volume_id": vid, "metadata": {"a": "b"}}}, 400),  # metadata from 3.43
        ({"backup": {"volume_id": vid, "snapshot_id": "nope"}}, 404),
    ]
    for body, status in cases:
        r = api("POST", "/backups", body)
        assert r.status_code == status, (body, r.text)
        fault = next(iter(r.json()))
        assert r.json()[fault]["code"] == status
    assert "No backups available to do an incremental backup" in api(
        "POST", "/backups", {"backup": {"volume_id": vid, "incremental": True}}).text
    # an in-use volume needs force
    server = "0d3b4a63-4c5e-4a0e-9d5b-8b3f6b1f0c11"
    assert api("POST", f"/volumes/{vid}/action", {"os-reserve": None}).status_code == 202
    assert api("POST", f"/volumes/{vid}/action", {"os-attach": {"instance_uuid": server,
                                                                 "mountpoint": "/dev/vdb"}}).status_code == 202
    r = api("POST", "/backups", {"backup": {"volume_id": vid}})
    assert r.status_code == 400 and "force" in r.json()["badRequest"]["message"]
    r = api("POST", "/backups", {"backup": {"volume_id": vid, "force": True, "name": "hot",
                                            "metadata": {"k": "v"}}}, version="3.43")
    assert r.status_code == 202, r.text
    body = r.json()["backup"]
    assert set(body) == {"id", "name", "links", "metadata"} and body["metadata"] == {"k": "v"}
    hot = wait_api(api, f"/backups/{body['id']}", "backup", "available", version="3.56")
    assert hot["metadata"] == {"k": "v"} and hot["user_id"] and hot["os-backup-project-attr:project_id"]
    attached = api("GET", f"/volumes/{vid}").json()["volume"]
    assert attached["status"] == "in-use"
    att_id = attached["attachments"][0]["attachment_id"]
    assert api("POST", f"/volumes/{vid}/action", {"os-detach": {"attachment_id": att_id}}).status_code == 202
    # from a snapshot
    snap = api("POST", "/snapshots", {"snapshot": {"volume_id": vid}}).json()["snapshot"]
    wait_api(api, f"/snapshots/{snap['id']}", "snapshot", "available")
    r = api("POST", "/backups", {"backup": {"volume_id": vid, "snapshot_id": snap["id"], "name": "fromsnap"}})
    fromsnap = wait_api(api, f"/backups/{r.json()['backup']['id']}", "backup", "available")
    assert fromsnap["snapshot_id"] == snap["id"]
    assert api("GET", f"/snapshots/{snap['id']}").json()["snapshot"]["status"] == "available"
    # update (3.9), metadata (3.43)
    assert api("PUT", f"/backups/{fromsnap['id']}", {"backup": {"name": "x"}}).status_code == 404
    r = api("PUT", f"/backups/{fromsnap['id']}", {"backup": {"name": "renamed", "description": "d"}}, version="3.9")
    assert r.status_code == 200 and r.json()["backup"]["name"] == "renamed"
    assert api("PUT", f"/backups/{fromsnap['id']}", {"backup": {"size": 3}}, version="3.9").status_code == 400
    # list: filters, sort, pagination, count (3.45)
    names = [b["name"] for b in api("GET", "/backups?sort=name:asc").json()["backups"]]
    assert names == sorted(names) and {"hot", "renamed"} <= set(names)
    page = api("GET", "/backups/detail?limit=1").json()
    assert len(page["backups"]) == 1 and page["backups_links"][0]["rel"] == "next"
    assert api("GET", "/backups?name=hot").json()["backups"][0]["id"] == hot["id"]
    counted = api("GET", "/backups?with_count=true", version="3.45").json()
    assert counted["count"] == len(counted["backups"]) >= 2
    assert api("GET", "/backups?marker=nope").status_code == 404
    # restore refusals
    small = new_volume(api, "small")
    assert api("POST", f"/backups/{hot['id']}/restore", {"restore": {"volume_id": "nope"}}).status_code == 404
    api("POST", f"/volumes/{small}/action", {"os-reset_status": {"status": "error"}})
    r = api("POST", f"/backups/{hot['id']}/restore", {"restore": {"volume_id": small}})
    assert r.status_code == 400 and "available" in r.text
    # admin actions
    r = api("POST", f"/backups/{hot['id']}/action", {"os-reset_status": {"status": "error"}})
    assert r.status_code == 202 and api("GET", f"/backups/{hot['id']}").json()["backup"]["status"] == "error"
    assert api("POST", f"/backups/{hot['id']}/restore", {"restore": {}}).status_code == 400
    assert api("POST", f"/backups/{hot['id']}/action", {"os-reset_status": {"status": "bogus"}}).status_code == 400
    assert api("POST", f"/backups/{hot['id']}/action", {"os-force_delete": {}}).status_code == 202
    wait_gone_api(api, f"/backups/{hot['id']}")
    for ident in (fromsnap["id"],):
        assert api("DELETE", f"/backups/{ident}").status_code == 202
        wait_gone_api(api, f"/backups/{ident}")
    api("DELETE", f"/snapshots/{snap['id']}")
    wait_gone_api(api, f"/snapshots/{snap['id']}")
    api("DELETE", f"/volumes/{vid}")
    api("DELETE", f"/volumes/{small}?force=true", version="3.23")


def wait_gone_api(api, path: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while api("GET", path).status_code != 404:
        assert time.monotonic() < end, path
        time.sleep(0.2)


def test_isolation_policy_and_quotas(bcloud):
    user, pw = project_user(bcloud, "bk-a")
    other, opw = project_user(bcloud, "bk-b")
    reader, rpw = project_user(bcloud, "bk-a", role="reader")
    a, b, r = Api(bcloud, user, pw, "bk-a"), Api(bcloud, other, opw, "bk-b"), Api(bcloud, reader, rpw, "bk-a")
    project = bcloud.os_json("project", "show", "bk-a")["id"]
    vid = new_volume(a, "mine")
    bk = a("POST", "/backups", {"backup": {"volume_id": vid, "name": "mine"}}).json()["backup"]
    shown = wait_api(a, f"/backups/{bk['id']}", "backup", "available", version="3.18")
    assert "os-backup-project-attr:project_id" not in shown  # admin-only attribute
    assert b("GET", f"/backups/{bk['id']}").status_code == 404
    assert b("DELETE", f"/backups/{bk['id']}").status_code == 404
    assert b("POST", f"/backups/{bk['id']}/restore", {"restore": {}}).status_code == 404
    assert b("GET", "/backups?all_tenants=1").json()["backups"] == []
    assert r("GET", f"/backups/{bk['id']}").status_code == 200
    assert r("POST", "/backups", {"backup": {"volume_id": vid}}).status_code == 403
    assert r("DELETE", f"/backups/{bk['id']}").status_code == 403
    assert a("POST", f"/backups/{bk['id']}/action", {"os-reset_status": {"status": "error"}}).status_code == 403
    assert a("GET", f"/backups/{bk['id']}/export_record").status_code == 403
    admin = Api(bcloud)
    assert bk["id"] in [x["id"] for x in admin("GET", "/backups?all_tenants=1").json()["backups"]]
    assert bk["id"] not in [x["id"] for x in admin("GET", "/backups").json()["backups"]]
    limits = a("GET", "/limits").json()["limits"]["absolute"]
    assert limits["totalBackupsUsed"] == 1 and limits["totalBackupGigabytesUsed"] == 1
    quota = lambda **kw: admin("PUT", f"/os-quota-sets/{project}", {"quota_set": kw})  # noqa: E731
    assert quota(backups=1).status_code == 200
    r2 = a("POST", "/backups", {"backup": {"volume_id": vid}})
    assert r2.status_code == 413 and r2.json()["overLimit"]["message"].startswith("BackupLimitExceeded")
    assert quota(backups=10, backup_gigabytes=1).status_code == 200
    r2 = a("POST", "/backups", {"backup": {"volume_id": vid}})
    assert r2.status_code == 413 and "backup_gigabytes" in r2.text
    # restore to a new volume counts against the volume quota
    assert quota(volumes=1).status_code == 200
    r2 = a("POST", f"/backups/{bk['id']}/restore", {"restore": {}})
    assert r2.status_code == 413 and "VolumeLimitExceeded" in r2.text
    assert quota(volumes=10, backup_gigabytes=100).status_code == 200
    assert a("DELETE", f"/backups/{bk['id']}").status_code == 202
    wait_gone_api(a, f"/backups/{bk['id']}")
    a("DELETE", f"/volumes/{vid}")


def test_export_import_record_sdk_and_cinderclient(bcloud):
    api = Api(bcloud)
    conn = bcloud.sdk()
    vol = conn.block_storage.create_volume(size=1, name="rec", metadata={"origin": "rec"})
    conn.block_storage.wait_for_status(vol, "available", wait=30)
    payload = os.urandom(CHUNK + 99)
    write_at(bcloud, vol.id, 0, payload)
    original = digest(bcloud, vol.id)
    backup = conn.block_storage.create_backup(volume_id=vol.id, name="rec-bk")
    backup = conn.block_storage.wait_for_status(backup, "available", wait=60)
    assert backup.size == 1 and [b.id for b in conn.block_storage.backups(name="rec-bk")] == [backup.id]
    record = api("GET", f"/backups/{backup.id}/export_record").json()["backup-record"]
    assert record["backup_service"].endswith("posix") and record["backup_url"]
    r = api("POST", "/backups/import_record", {"backup-record": record})
    assert r.status_code == 400 and "already exists" in r.text
    # lose the database row (the data stays in the backup store), then import it back
    db = sqlite3.connect(bcloud.state_dir / "pocketstack.db")
    with db:
        db.execute("DELETE FROM volume_backup WHERE id = ?", (backup.id,))
    db.close()
    assert api("GET", f"/backups/{backup.id}").status_code == 404
    for bad in ({"backup_service": record["backup_service"], "backup_url": "!!notbase64"},
                {"backup_service": "cinder.backup.drivers.ceph", "backup_url": record["backup_url"]}, {}):
        assert api("POST", "/backups/import_record", {"backup-record": bad}).status_code == 400, bad
    r = api("POST", "/backups/import_record", {"backup-record": record})
    assert r.status_code == 201, r.text
    assert r.json()["backup"]["id"] == backup.id and r.json()["backup"]["name"] == "rec-bk"

    # python-cinderclient: list, show, restore to a new volume, delete
    from cinderclient import client as cinder_client
    from keystoneauth1 import loading, session as ks_session

    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=bcloud.auth_url, username="admin", password=bcloud.admin_password, project_name="admin",
        user_domain_name="Default", project_domain_name="Default")
    cinder = cinder_client.Client("3.45", session=ks_session.Session(auth=auth))
    assert backup.id in [b.id for b in cinder.backups.list()]
    assert cinder.backups.get(backup.id).status == "available"
    restored = cinder.restores.restore(backup.id, name="via-cinderclient")
    assert restored.backup_id == backup.id
    end = time.monotonic() + 60
    while cinder.volumes.get(restored.volume_id).status != "available":
        assert time.monotonic() < end
        time.sleep(0.3)
    assert digest(bcloud, restored.volume_id) == original
    assert cinder.volumes.get(restored.volume_id).metadata == {"origin": "rec"}  # restored with the data
    cinder.backups.delete(backup.id)
    wait_gone_api(api, f"/backups/{backup.id}")
    cinder.volumes.delete(restored.volume_id)
    conn.block_storage.delete_volume(vol)


def test_restart_repairs_interrupted_backups_and_restores(bcloud):
    api = Api(bcloud)
    vid, target = new_volume(api, "crash-src"), new_volume(api, "crash-target")
    write_at(bcloud, vid, 0, b"survives")
    done = api("POST", "/backups", {"backup": {"volume_id": vid}}).json()["backup"]
    wait_api(api, f"/backups/{done['id']}", "backup", "available")
    running = api("POST", "/backups", {"backup": {"volume_id": vid}}).json()["backup"]
    wait_api(api, f"/backups/{running['id']}", "backup", "available")
    bcloud.stop()
    # what a process killed mid-backup and mid-restore leaves behind
    db = sqlite3.connect(bcloud.state_dir / "pocketstack.db")
    with db:
        db.execute("UPDATE volume_backup SET status = 'creating' WHERE id = ?", (running["id"],))
        db.execute("UPDATE volume_backup SET status = 'restoring' WHERE id = ?", (done["id"],))
        db.execute("UPDATE volume_volume SET status = 'backing-up' WHERE id = ?", (vid,))
        db.execute("UPDATE volume_volume SET status = 'restoring-backup' WHERE id = ?", (target,))
    db.close()
    bcloud.start()
    api = Api(bcloud)
    assert api("GET", f"/volumes/{vid}").json()["volume"]["status"] == "available"
    assert api("GET", f"/volumes/{target}").json()["volume"]["status"] == "error_restoring"
    assert api("GET", f"/backups/{done['id']}").json()["backup"]["status"] == "available"
    crashed = api("GET", f"/backups/{running['id']}").json()["backup"]
    assert crashed["status"] == "error" and "interrupted" in crashed["fail_reason"]
    assert api("DELETE", f"/backups/{running['id']}").status_code == 202
    wait_gone_api(api, f"/backups/{running['id']}")
    assert api("POST", f"/backups/{done['id']}/restore", {"restore": {"volume_id": vid}}).status_code == 202
    wait_api(api, f"/volumes/{vid}", "volume", "available")
    wait_api(api, f"/backups/{done['id']}", "backup", "available")
    assert api("DELETE", f"/backups/{done['id']}").status_code == 202
    api("DELETE", f"/volumes/{vid}")
    api("DELETE", f"/volumes/{target}")


def test_swift_driver_stores_chunks_in_the_object_service(scloud):
    user, pw = project_user(scloud, "bk-swift")
    env = scloud.env_for(user, pw, "bk-swift")
    api = Api(scloud, user, pw, "bk-swift")
    vol = scloud.os_json("volume", "create", "--size", "1", "sw", env=env)
    wait_api(api, f"/volumes/{vol['id']}", "volume", "available")
    write_at(scloud, vol["id"], 5 << 20, os.urandom(2 * CHUNK))
    original = digest(scloud, vol["id"])
    full = scloud.os_json("volume", "backup", "create", "--name", "sw-full", vol["id"], env=env)
    wait_api(api, f"/backups/{full['id']}", "backup", "available")
    containers = [c["Name"] for c in scloud.os_json("container", "list", env=env)]
    assert containers == ["volumebackups"]
    objects = [o["Name"] for o in scloud.os_json("object", "list", "volumebackups", env=env)]
    assert objects == [f"backup-{full['id']}/chunk-{i:08d}" for i in range(3)]
    write_at(scloud, vol["id"], 0, b"new first chunk")
    changed = digest(scloud, vol["id"])
    inc = scloud.os_json("volume", "backup", "create", "--incremental", "--name", "sw-inc", vol["id"], env=env)
    assert wait_api(api, f"/backups/{inc['id']}", "backup", "available")["object_count"] == 1
    out = scloud.os_json("volume", "backup", "restore", "sw-inc", "sw-restored", env=env)
    wait_api(api, f"/volumes/{out['volume_id']}", "volume", "available")
    assert digest(scloud, out["volume_id"]) == changed
    scloud.os_json("volume", "backup", "restore", "--force", "sw-full", out["volume_id"], env=env)
    wait_api(api, f"/volumes/{out['volume_id']}", "volume", "available")
    assert digest(scloud, out["volume_id"]) == original
    record = Api(scloud)("GET", f"/backups/{full['id']}/export_record").json()["backup-record"]
    assert record["backup_service"].endswith("swift")
    scloud.openstack("volume", "backup", "delete", "sw-inc", env=env)
    wait_gone_api(api, f"/backups/{inc['id']}")
    scloud.openstack("volume", "backup", "delete", "sw-full", env=env)
    wait_gone_api(api, f"/backups/{full['id']}")
    assert scloud.os_json("object", "list", "volumebackups", env=env) == []


# ---------------------------------------------------------------------------- the chunk logic alone
class MemoryDriver(BackupDriver):
    """A backup driver keeping objects in a dict (the shared logic is in the base class)."""

    name = "memory"

    def __init__(self):
        self.objects = {}

    def put(self, owner, container, name, data):
        self.objects[(owner, container, name)] = data

    def get(self, owner, container, name):
        try:
            return self.objects[(owner, container, name)]
        except KeyError:
            raise BackupDriverError(name) from None

    def exists(self, owner, container, name):
        return (owner, container, name) in self.objects

    def delete_prefix(self, owner, container, prefix):
        gone = [k for k in self.objects if k[:2] == (owner, container) and k[2].startswith(prefix)]
        for k in gone:
            del self.objects[k]
        return len(gone)


def test_chunking_incrementals_holes_and_checksums():
    drv = MemoryDriver()
    a, b = os.urandom(CHUNK_SIZE), os.urandom(100)
    full = drv.backup("f", "p", "c", [a, CHUNK_SIZE, bytes(CHUNK_SIZE), b])  # data, hole, zeros, short tail
    assert full["size"] == 3 * CHUNK_SIZE + 100 and full["stored"] == 2 and len(drv.objects) == 2
    assert b"".join(drv.restore(full)) == a + bytes(2 * CHUNK_SIZE) + b
    c = os.urandom(CHUNK_SIZE)
    inc = drv.backup("i", "p", "c", [a, c, bytes(CHUNK_SIZE), b], parent=full)
    assert inc["stored"] == 1 and inc["chunks"][0][1] == "backup-f/chunk-00000000"  # unchanged: the parent's
    assert b"".join(drv.restore(inc)) == a + c + bytes(CHUNK_SIZE) + b
    drv.verify(inc)
    drv.objects[("p", "c", "backup-f/chunk-00000000")] = b"rot" + a[3:]
    with pytest.raises(BackupDriverError, match="checksum"):
        b"".join(drv.restore(inc))
    assert drv.delete("i", "p", "c") == 1 and drv.delete("f", "p", "c") == 2 and drv.objects == {}
    with pytest.raises(BackupDriverError):
        drv.verify(full)
