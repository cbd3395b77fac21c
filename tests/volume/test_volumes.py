"""Block Storage through the real clients: `openstack volume ...`, openstacksdk, curl-level HTTP.

One cloud for the module. Covers the guide's volume flow (create, list, extend, snapshot,
volume from snapshot / volume / image, delete), metadata, types and access, quotas (and
the 20-parallel-creates race), limits, services and pools, the legacy attach actions and
the 3.27 attachments API, microversion gating, and Cinder's error bodies for bad input.
"""
from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import pytest

from tests.conftest import Cloud

VOLUME_CONFIG = {("pocketstack", "enabled_services"): "identity,image,volume"}


@pytest.fixture(scope="module")
def vcloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("volume"), config=VOLUME_CONFIG)
    c.start()
    yield c
    c.stop()


def project_user(cloud, project: str, role: str = "member") -> tuple[str, str]:
    if cloud.openstack("project", "show", project, check=False) == "":
        cloud.openstack("project", "create", "--domain", "default", project)
    return cloud.make_user(project, role=role)


def wait_for(cloud, kind: str, ident: str, status: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        data = cloud.os_json(*kind.split(), "show", ident)
        if data["status"] == status:
            return data
        assert not data["status"].startswith("error"), data
        time.sleep(0.2)
    raise AssertionError(f"{kind} {ident} not {status}: {data['status']}")


def wait_gone(cloud, kind: str, ident: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cloud.openstack(*kind.split(), "show", ident, check=False) == "":
            return
        time.sleep(0.2)
    raise AssertionError(f"{kind} {ident} still there")


class Api:
    """Raw HTTP for what the CLI does not expose (microversions, error bodies)."""

    def __init__(self, cloud, user="admin", password=None, project="admin"):
        self.token = cloud.token(user, password, project)
        catalog = httpx.get(cloud.auth_url + "/auth/catalog", headers={"X-Auth-Token": self.token}).json()
        self.base = next(ep["url"] for s in catalog["catalog"] if s["type"] == "block-storage"
                         for ep in s["endpoints"] if ep["interface"] == "public")

    def __call__(self, method, path, body=None, version=None, **kw):
        headers = {"X-Auth-Token": self.token}
        if version:
            headers["OpenStack-API-Version"] = f"volume {version}"
        return httpx.request(method, self.base + path, json=body, headers=headers, timeout=30, **kw)


def test_guide_flow_create_extend_snapshot_clone_delete(vcloud):
    vol = vcloud.os_json("volume", "create", "--size", "1", "--property", "purpose=test", "myvolume")
    assert vol["status"] == "creating" and vol["size"] == 1 and vol["type"] == "__DEFAULT__"
    wait_for(vcloud, "volume", "myvolume", "available")
    listed = vcloud.os_json("volume", "list")
    assert [v["Name"] for v in listed] == ["myvolume"]
    vcloud.openstack("volume", "set", "--size", "2", "myvolume")
    assert wait_for(vcloud, "volume", "myvolume", "available")["size"] == 2
    snap = vcloud.os_json("volume", "snapshot", "create", "--volume", "myvolume", "mysnap")
    wait_for(vcloud, "volume snapshot", snap["id"], "available")
    from_snap = vcloud.os_json("volume", "create", "--snapshot", "mysnap", "fromsnap")
    clone = vcloud.os_json("volume", "create", "--source", "myvolume", "--size", "3", "clone")
    assert wait_for(vcloud, "volume", from_snap["id"], "available")["size"] == 2
    assert wait_for(vcloud, "volume", clone["id"], "available")["size"] == 3
    shown = vcloud.os_json("volume", "show", "myvolume")
    assert shown["properties"] == {"purpose": "test"}
    # delete with a snapshot: refused, then cascade
    err = vcloud.openstack_fails("volume", "delete", "myvolume")
    assert "snapshots" in err
    vcloud.openstack("volume", "delete", "--purge", "myvolume", "fromsnap", "clone")
    for ident in ("myvolume", "fromsnap", "clone"):
        wait_gone(vcloud, "volume", ident)
    assert vcloud.os_json("volume", "snapshot", "list") == []
    files = list((vcloud.state_dir / "volume" / "file").glob("*"))
    assert files == [], files  # every data file is gone with its volume


def test_volume_from_image_carries_image_metadata_and_data(vcloud, tmp_path):
    data = b"pocketstack-volume-image" * 4096
    src = tmp_path / "img.raw"
    src.write_bytes(data)
    image = vcloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                           "--file", str(src), "--property", "os_distro=tiny", "vimg")
    vol = vcloud.os_json("volume", "create", "--image", image["id"], "--size", "1", "fromimg")
    shown = wait_for(vcloud, "volume", vol["id"], "available")
    assert shown["bootable"] in ("true", True)
    assert shown["volume_image_metadata"]["image_id"] == image["id"]
    assert shown["volume_image_metadata"]["os_distro"] == "tiny"
    path = vcloud.state_dir / "volume" / "file" / f"volume-{vol['id']}"
    with open(path, "rb") as fh:
        assert fh.read(len(data)) == data
    assert path.stat().st_size == 1 << 30
    # and back into an image
    out = vcloud.os_json("image", "create", "--volume", vol["id"], "fromvol")
    image_id = out.get("image_id") or out.get("id")
    end = time.monotonic() + 60
    while vcloud.os_json("image", "show", image_id)["status"] != "active":
        assert time.monotonic() < end
        time.sleep(0.5)
    assert vcloud.os_json("image", "show", image_id)["size"] == 1 << 30
    wait_for(vcloud, "volume", vol["id"], "available")
    vcloud.openstack("volume", "delete", vol["id"])


def test_metadata_api_and_sdk(vcloud):
    conn = vcloud.sdk()
    vol = conn.block_storage.create_volume(size=1, name="meta", metadata={"a": "1"})
    vol = conn.block_storage.wait_for_status(vol, "available", wait=30)
    conn.block_storage.set_volume_metadata(vol, b="2")
    assert conn.block_storage.get_volume(vol).metadata == {"a": "1", "b": "2"}
    conn.block_storage.delete_volume_metadata(vol, keys=["a"])
    assert conn.block_storage.get_volume(vol).metadata == {"b": "2"}
    api = Api(vcloud)
    r = api("GET", f"/volumes/{vol.id}/metadata/b")
    assert r.json() == {"meta": {"b": "2"}}
    r = api("GET", f"/volumes/{vol.id}/metadata/nope")
    assert r.status_code == 404 and "itemNotFound" in r.json()
    r = api("PUT", f"/volumes/{vol.id}/metadata/b", {"meta": {"c": "3"}})
    assert r.status_code == 400 and r.json()["badRequest"]["message"] == "Request body and URI mismatch"
    conn.block_storage.delete_volume(vol)
    conn.block_storage.wait_for_delete(vol, wait=30)


def test_types_extra_specs_and_private_access(vcloud):
    vcloud.openstack("volume", "type", "create", "--property", "volume_backend_name=file", "gold")
    private = vcloud.os_json("volume", "type", "create", "--private", "secret")
    user, pw = project_user(vcloud, "demo-types")
    env = vcloud.env_for(user, pw, "demo-types")
    names = [t["Name"] for t in vcloud.os_json("volume", "type", "list", env=env)]
    assert "gold" in names and "secret" not in names and "__DEFAULT__" in names
    project = vcloud.os_json("project", "show", "demo-types")["id"]
    vcloud.openstack("volume", "type", "set", "--project", project, "secret")
    names = [t["Name"] for t in vcloud.os_json("volume", "type", "list", env=env)]
    assert "secret" in names
    gold = vcloud.os_json("volume", "type", "show", "gold")
    assert gold["properties"] == {"volume_backend_name": "file"}
    vol = vcloud.os_json("volume", "create", "--size", "1", "--type", "gold", "typed", env=env)
    wait_for(vcloud, "volume", vol["id"], "available")
    err = vcloud.openstack_fails("volume", "type", "delete", "gold")
    assert "in use" in err
    vcloud.openstack("volume", "set", "--type", "secret", "--retype-policy", "never", vol["id"], env=env)
    assert vcloud.os_json("volume", "show", vol["id"])["type"] == "secret"
    vcloud.openstack("volume", "delete", vol["id"], env=env)
    wait_gone(vcloud, "volume", vol["id"])
    vcloud.openstack("volume", "type", "delete", "gold")
    vcloud.openstack("volume", "type", "delete", private["id"])
    # members cannot manage types
    err = vcloud.openstack_fails("volume", "type", "create", "nope", env=env)
    assert "403" in err or "Policy" in err


def test_quotas_limits_and_parallel_create_race(vcloud):
    user, pw = project_user(vcloud, "demo-quota")
    project = vcloud.os_json("project", "show", "demo-quota")["id"]
    vcloud.openstack("quota", "set", "--volumes", "5", "--gigabytes", "100", project)
    api = Api(vcloud, user, pw, "demo-quota")

    def create(i):
        return api("POST", "/volumes", {"volume": {"size": 1, "name": f"race-{i}"}}).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(create, range(20)))
    assert codes.count(202) == 5 and codes.count(413) == 15, codes
    r = api("POST", "/volumes", {"volume": {"size": 1}})
    assert r.status_code == 413
    assert r.json()["overLimit"]["message"].startswith("VolumeLimitExceeded: Maximum number of volumes allowed (5)")
    limits = api("GET", "/limits").json()["limits"]["absolute"]
    assert limits["maxTotalVolumes"] == 5 and limits["totalVolumesUsed"] == 5
    usage = api("GET", f"/os-quota-sets/{project}?usage=true").json()["quota_set"]
    assert usage["volumes"] == {"limit": 5, "in_use": 5, "reserved": 0, "allocated": 0}
    vcloud.openstack("quota", "set", "--volumes", "10", project)
    r = api("POST", "/volumes", {"volume": {"size": 200}})
    assert r.status_code == 413 and "VolumeSizeExceedsAvailableQuota" in r.text
    # members cannot raise their own quota
    r = api("PUT", f"/os-quota-sets/{project}", {"quota_set": {"volumes": 50}})
    assert r.status_code == 403 and "forbidden" in r.json()


def test_bad_input_gets_cinder_errors_never_500(vcloud):
    api = Api(vcloud)
    cases = [
        ("POST", "/volumes", {"volume": {"size": 0}}, 400),
        ("POST", "/volumes", {"volume": {"size": "abc"}}, 400),
        ("POST", "/volumes", {"volume": {}}, 400),
        ("POST", "/volumes", {"nothing": {}}, 400),
        ("POST", "/volumes", {"volume": {"size": 1, "volume_type": "no-such-type"}}, 404),
        ("POST", "/volumes", {"volume": {"size": 1, "availability_zone": "mars"}}, 400),
        ("POST", "/volumes", {"volume": {"size": 1, "snapshot_id": "nope"}}, 404),
        ("POST", "/volumes", {"volume": {"size": 1, "imageRef": "nope"}}, 400),
        ("POST", "/volumes", {"volume": {"size": 1, "metadata": {"k": "v" * 256}}}, 400),
        ("GET", "/volumes/does-not-exist", None, 404),
        ("DELETE", "/volumes/does-not-exist", None, 404),
        ("POST", "/volumes/does-not-exist/action", {"os-extend": {"new_size": 2}}, 404),
        ("GET", "/volumes?sort=size:sideways", None, 400),
        ("GET", "/volumes?marker=nope", None, 404),
        ("GET", "/snapshots/does-not-exist", None, 404),
        ("POST", "/snapshots", {"snapshot": {"volume_id": "nope"}}, 404),
        ("GET", "/types/does-not-exist", None, 404),
    ]
    for method, path, body, status in cases:
        r = api(method, path, body)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        fault = next(iter(r.json()))
        assert r.json()[fault]["code"] == status and r.json()[fault]["message"], r.text
    r = api("POST", "/volumes", content=b"{not json")
    assert r.status_code == 400
    vol = api("POST", "/volumes", {"volume": {"size": 1, "name": "bad-actions"}}).json()["volume"]
    for _ in range(100):
        if api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "available":
            break
        time.sleep(0.1)
    for action, status in [({"os-extend": {"new_size": 1}}, 400), ({"os-extend": {}}, 400),
                           ({"os-no-such": {}}, 400), ({"os-reset_status": {"status": "bogus"}}, 400),
                           ({"os-detach": {"attachment_id": "nope"}}, 404),
                           ({"os-attach": {"mountpoint": "/dev/vdb"}}, 400)]:
        r = api("POST", f"/volumes/{vol['id']}/action", action)
        assert r.status_code == status, (action, r.text)
    # as Cinder's manager: detaching a volume with no attachment left just settles it available
    assert api("POST", f"/volumes/{vol['id']}/action", {"os-detach": {}}).status_code == 202
    assert api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "available"
    r = api("GET", "/volumes", version="3.99")
    assert r.status_code == 406
    api("DELETE", f"/volumes/{vol['id']}")


def test_cross_project_isolation(vcloud):
    u1, p1 = project_user(vcloud, "iso-a")
    u2, p2 = project_user(vcloud, "iso-b")
    reader, rp = project_user(vcloud, "iso-a", role="reader")
    a, b, r = Api(vcloud, u1, p1, "iso-a"), Api(vcloud, u2, p2, "iso-b"), Api(vcloud, reader, rp, "iso-a")
    vol = a("POST", "/volumes", {"volume": {"size": 1, "name": "mine"}}).json()["volume"]
    assert b("GET", f"/volumes/{vol['id']}").status_code == 404
    assert b("DELETE", f"/volumes/{vol['id']}").status_code == 404
    assert b("GET", "/volumes").json()["volumes"] == []
    assert b("GET", "/volumes?all_tenants=1").json()["volumes"] == []
    assert r("GET", f"/volumes/{vol['id']}").status_code == 200
    assert r("POST", "/volumes", {"volume": {"size": 1}}).status_code == 403
    assert r("DELETE", f"/volumes/{vol['id']}").status_code == 403
    shown = a("GET", f"/volumes/{vol['id']}").json()["volume"]
    assert "os-vol-host-attr:host" not in shown  # admin-only
    admin = Api(vcloud)
    assert admin("GET", f"/volumes/{vol['id']}").json()["volume"]["os-vol-host-attr:host"].endswith("#file")
    ids = [v["id"] for v in admin("GET", "/volumes?all_tenants=1").json()["volumes"]]
    assert vol["id"] in ids
    for _ in range(100):
        if a("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "available":
            break
        time.sleep(0.1)
    assert a("DELETE", f"/volumes/{vol['id']}").status_code == 202


def test_attach_actions_and_attachments_api(vcloud):
    api = Api(vcloud)
    vol = api("POST", "/volumes", {"volume": {"size": 1, "name": "att"}}).json()["volume"]
    for _ in range(100):
        if api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "available":
            break
        time.sleep(0.1)
    server = "6f9d2a4e-0a3b-4a55-9f0e-2f6b1e1c1d11"
    act = lambda body, version=None: api("POST", f"/volumes/{vol['id']}/action", body, version=version)  # noqa: E731
    assert act({"os-reserve": None}).status_code == 202
    assert api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "attaching"
    conn = act({"os-initialize_connection": {"connector": {"host": "compute1", "initiator": "iqn.x"}}})
    assert conn.status_code == 200
    assert conn.json()["connection_info"]["data"]["device_path"].endswith(vol["id"])
    assert act({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb", "mode": "rw"}}).status_code == 202
    shown = api("GET", f"/volumes/{vol['id']}").json()["volume"]
    assert shown["status"] == "in-use" and shown["attachments"][0]["server_id"] == server
    assert shown["attachments"][0]["device"] == "/dev/vdb"
    # in-use: no delete, no second attach (not multiattach), extend only from 3.42
    assert api("DELETE", f"/volumes/{vol['id']}").status_code == 400
    assert act({"os-reserve": None}).status_code == 400
    assert act({"os-extend": {"new_size": 2}}).status_code == 400
    assert act({"os-extend": {"new_size": 2}}, version="3.42").status_code == 202
    for _ in range(100):
        if api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "in-use":
            break
        time.sleep(0.1)
    assert act({"os-begin_detaching": None}).status_code == 202
    assert act({"os-roll_detaching": None}).status_code == 202
    assert act({"os-detach": {"attachment_id": shown["attachments"][0]["attachment_id"]}}).status_code == 202
    assert api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "available"
    # the attachments API (3.27+, complete at 3.44)
    assert api("POST", "/attachments", {"attachment": {"volume_uuid": vol["id"]}}).status_code == 404
    r = api("POST", "/attachments", {"attachment": {"volume_uuid": vol["id"], "instance_uuid": server}},
            version="3.44")
    assert r.status_code == 200, r.text
    att = r.json()["attachment"]
    assert att["status"] == "reserved"
    assert api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "reserved"
    r = api("PUT", f"/attachments/{att['id']}", {"attachment": {"connector": {"host": "c1"}}}, version="3.44")
    assert r.json()["attachment"]["connection_info"]["driver_volume_type"] == "file"
    assert api("POST", f"/attachments/{att['id']}/action", {"os-complete": None}, version="3.44").status_code == 204
    assert api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "in-use"
    listed = api("GET", "/attachments/detail", version="3.44").json()["attachments"]
    assert [a["id"] for a in listed] == [att["id"]] and listed[0]["status"] == "attached"
    assert api("DELETE", f"/attachments/{att['id']}", version="3.44").status_code == 200
    assert api("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "available"
    api("DELETE", f"/volumes/{vol['id']}")


def test_microversion_fields_services_pools_az(vcloud):
    api = Api(vcloud)
    r = httpx.get(vcloud.url + "/volume/")
    assert r.status_code == 300 and r.json()["versions"][0]["version"] == "3.71"
    vol = api("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]
    base = api("GET", f"/volumes/{vol['id']}").json()["volume"]
    assert "volume_type_id" not in base and "group_id" not in base
    newer = api("GET", f"/volumes/{vol['id']}", version="3.65")
    assert newer.headers["OpenStack-API-Version"] == "volume 3.65"
    body = newer.json()["volume"]
    assert body["volume_type_id"] and body["consumes_quota"] is True and "cluster_name" in body
    assert api("GET", "/volumes/summary", version="3.12").json()["volume-summary"]["total_count"] >= 1
    assert api("GET", "/volumes/summary").status_code == 404
    services = vcloud.os_json("volume", "service", "list")
    assert {s["Binary"] for s in services} == {"cinder-scheduler", "cinder-volume"}
    assert all(s["State"] == "up" for s in services)
    pools = api("GET", "/scheduler-stats/get_pools?detail=true").json()["pools"]
    assert pools[0]["capabilities"]["total_capacity_gb"] > 0
    zones = vcloud.os_json("availability", "zone", "list", "--volume")
    assert zones[0]["Zone Name"] == "nova"
    api("DELETE", f"/volumes/{vol['id']}")
    assert json.loads(json.dumps(base))  # serialisable as returned


def test_extend_volume_completion_3_71(vcloud):
    """`os-extend_volume_completion` (3.71, admin): only for a volume left `extending` with the
    target size in its admin metadata (a backend waiting for the compute host); it then
    finishes (size, status from the attachments) or fails the extend (error_extending)."""
    import sqlite3

    api = Api(vcloud)
    conn = vcloud.sdk(block_storage_api_version="3.71")
    vol = conn.block_storage.create_volume(size=1, name="grow")
    conn.block_storage.wait_for_status(vol, "available", wait=30)
    # not extending: 400 with Cinder's reason (openstacksdk and raw HTTP)
    with pytest.raises(Exception, match="not being extended"):
        conn.block_storage.complete_volume_extend(vol)
    api("POST", f"/volumes/{vol.id}/action", {"os-reset_status": {"status": "extending"}})
    r = api("POST", f"/volumes/{vol.id}/action", {"os-extend_volume_completion": {"error": False}}, version="3.71")
    assert r.status_code == 400 and "admin metadata" in r.json()["badRequest"]["message"]
    r = api("POST", f"/volumes/{vol.id}/action", {"os-extend_volume_completion": {"bogus": 1}}, version="3.71")
    assert r.status_code == 400

    def waiting(volume_id, new_size, reservations="[]"):  # what a backend waiting for feedback records
        with sqlite3.connect(vcloud.state_dir / "pocketstack.db") as db:
            db.executemany("INSERT INTO volume_admin_metadata (volume_id, key, value) VALUES (?, ?, ?)",
                           [(volume_id, "extend_new_size", str(new_size)),
                            (volume_id, "extend_reservations", reservations)])

    waiting(vol.id, 3)
    user, pw = project_user(vcloud, "ext-member")
    assert Api(vcloud, user, pw, "ext-member")("POST", f"/volumes/{vol.id}/action",
                                               {"os-extend_volume_completion": {}}).status_code == 404
    conn.block_storage.complete_volume_extend(vol)  # error=False
    got = api("GET", f"/volumes/{vol.id}").json()["volume"]
    assert got["size"] == 3 and got["status"] == "available"
    r = api("POST", f"/volumes/{vol.id}/action", {"os-extend_volume_completion": {}})
    assert r.status_code == 400  # done: not extending any more

    api("POST", f"/volumes/{vol.id}/action", {"os-reset_status": {"status": "extending"}})
    waiting(vol.id, 5)
    assert api("POST", f"/volumes/{vol.id}/action", {"os-extend_volume_completion": {"error": True}}
               ).status_code == 202
    got = api("GET", f"/volumes/{vol.id}").json()["volume"]
    assert got["size"] == 3 and got["status"] == "error_extending"
    msgs = api("GET", "/messages", version="3.3").json()["messages"]
    assert any(m_["resource_uuid"] == vol.id for m_ in msgs)
    api("POST", f"/volumes/{vol.id}/action", {"os-reset_status": {"status": "extending"}})
    waiting(vol.id, 2)  # not bigger than the volume
    r = api("POST", f"/volumes/{vol.id}/action", {"os-extend_volume_completion": {}})
    assert r.status_code == 400 and "smaller or equal" in r.json()["badRequest"]["message"]
    api("POST", f"/volumes/{vol.id}/action", {"os-reset_status": {"status": "available"}})
    conn.block_storage.delete_volume(vol)


def test_reimage_3_68_cinderclient(vcloud, tmp_path):
    """`os-reimage` (3.68, python-cinderclient's `volumes.reimage`): the image's bytes and
    metadata replace the volume's; Cinder's refusals."""
    from cinderclient import client as cinder_client
    from cinderclient import exceptions as cinder_exc
    from keystoneauth1 import loading, session as ks_session

    data = b"reimaged!" * 5000
    src = tmp_path / "re.raw"
    src.write_bytes(data)
    image = vcloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                           "--file", str(src), "--property", "os_distro=again", "reimg")
    vol = vcloud.os_json("volume", "create", "--size", "1", "toreimage")
    wait_for(vcloud, "volume", vol["id"], "available")
    path = vcloud.state_dir / "volume" / "file" / f"volume-{vol['id']}"
    with open(path, "r+b") as fh:
        fh.write(b"old contents" * 10000)
    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=vcloud.auth_url, username="admin", password=vcloud.admin_password, project_name="admin",
        user_domain_name="Default", project_domain_name="Default")
    sess = ks_session.Session(auth=auth)
    r = Api(vcloud)("POST", f"/volumes/{vol['id']}/action", {"os-reimage": {"image_id": image["id"]}},
                    version="3.67")
    assert r.status_code == 400  # not an action before 3.68
    cinder = cinder_client.Client("3.68", session=sess)
    with pytest.raises(cinder_exc.NotFound):
        cinder.volumes.reimage(vol["id"], "00000000-0000-0000-0000-000000000000")
    cinder.volumes.reimage(vol["id"], image["id"])
    end = time.monotonic() + 60
    while (got := cinder.volumes.get(vol["id"])).status != "available" or \
            getattr(got, "volume_image_metadata", {}).get("image_id") != image["id"]:
        assert time.monotonic() < end and got.status in ("available", "downloading"), got.status
        time.sleep(0.2)
    assert got.volume_image_metadata["os_distro"] == "again"
    with open(path, "rb") as fh:
        head = fh.read(len(data) + 12)
    assert head == data + bytes(12)  # the old bytes are gone
    # in-use (reserved without reimage_reserved) and too-small volumes are refused
    api = Api(vcloud)
    api("POST", f"/volumes/{vol['id']}/action", {"os-reset_status": {"status": "reserved"}})
    r = api("POST", f"/volumes/{vol['id']}/action", {"os-reimage": {"image_id": image["id"]}}, version="3.68")
    assert r.status_code == 400 and "status must be available or error" in r.json()["badRequest"]["message"]
    api("POST", f"/volumes/{vol['id']}/action", {"os-reset_status": {"status": "available"}})
    vcloud.openstack("volume", "delete", vol["id"])


def test_resource_filters_3_33_and_time_filters_3_60(vcloud):
    listed = vcloud.os_json("--os-volume-api-version", "3.33", "block", "storage", "resource", "filter", "list")
    by_name = {r["Resource"]: r["Filters"] for r in listed}
    assert "status" in by_name["volume"] and "volume_id" in by_name["snapshot"]
    shown = vcloud.os_json("--os-volume-api-version", "3.33", "block", "storage", "resource", "filter", "show",
                           "backup")
    assert "container" in shown["Filters"]
    api = Api(vcloud)
    assert api("GET", "/resource_filters", version="3.32").status_code == 404

    vol = api("POST", "/volumes", {"volume": {"size": 1, "name": "timed"}}).json()["volume"]
    created = api("GET", f"/volumes/{vol['id']}").json()["volume"]["created_at"]

    def names(when, version="3.60"):
        r = api("GET", "/volumes", version=version, params={"created_at": when})
        return {v["name"] for v in r.json()["volumes"]}

    assert "timed" in names(f"gte:{created}")
    assert "timed" in names("lt:2999-01-01T00:00:00,gt:2000-01-01T00:00:00")
    assert "timed" not in names(f"gt:{created}")
    assert "timed" in names(f"gt:{created}", version="3.59")  # not a filter before 3.60
    r = api("GET", "/volumes?created_at=after:yesterday", version="3.60")
    assert r.status_code == 400 and "badRequest" in r.json()
    api("DELETE", f"/volumes/{vol['id']}")


def test_project_default_types_3_62(vcloud):
    """`/default-types` (3.62) through openstacksdk: a project's own default type is used by
    its type-less creates and by `GET /types/default` there; admin only."""
    vcloud.openstack("volume", "type", "create", "proj-default")
    type_id = vcloud.os_json("volume", "type", "show", "proj-default")["id"]
    user, pw = project_user(vcloud, "dt-proj")
    project_id = vcloud.os_json("project", "show", "dt-proj")["id"]
    conn = vcloud.sdk(block_storage_api_version="3.67")
    got = conn.block_storage.set_default_type(project_id, "proj-default")
    assert got.volume_type_id == type_id and got.project_id == project_id
    assert conn.block_storage.show_default_type(project_id).volume_type_id == type_id
    assert project_id in [d.project_id for d in conn.block_storage.default_types()]
    member = Api(vcloud, user, pw, "dt-proj")
    assert member("GET", "/types/default").json()["volume_type"]["name"] == "proj-default"
    assert Api(vcloud)("GET", "/types/default").json()["volume_type"]["name"] == "__DEFAULT__"
    vol = member("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]
    assert vol["volume_type"] == "proj-default"
    assert member("PUT", f"/default-types/{project_id}", {"default_type": {"volume_type": "__DEFAULT__"}},
                  version="3.62").status_code == 403
    api = Api(vcloud)
    assert api("GET", f"/default-types/{project_id}", version="3.61").status_code == 404  # 3.62+
    r = api("PUT", f"/default-types/{project_id}", {"default_type": {"volume_type": "nope"}}, version="3.62")
    assert r.status_code == 400
    assert api("DELETE", "/types/" + type_id).status_code == 400  # a project's default
    conn.block_storage.unset_default_type(project_id)
    assert api("GET", f"/default-types/{project_id}", version="3.62").status_code == 404
    assert member("GET", "/types/default").json()["volume_type"]["name"] == "__DEFAULT__"
    wait_for(vcloud, "volume", vol["id"], "available")
    member("DELETE", f"/volumes/{vol['id']}")
