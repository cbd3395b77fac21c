"""The Image service (Glance v2) through the real clients: the `openstack` CLI,
openstacksdk and python-glanceclient, plus raw HTTP where the behaviour under test is
the wire format itself (ranges, error bodies, JSON-patch dialects, quotas).

The guide's "verify the Image service" step comes first: a real qcow2 made by
`qemu-img`, uploaded public, listed and shown, downloaded byte for byte.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3 as ks_v3

from conftest import Cloud

PATCH = "application/openstack-images-v2.1-json-patch"


# ---------------------------------------------------------------------------- helpers
def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("qemu-img is required (tools/install-system-deps.sh installs it)")
        pytest.skip("qemu-img is not installed (run tools/install-system-deps.sh as root)")
    return path


def make_qcow2(path: Path, size: str = "64M", backing: Path | None = None) -> Path:
    args = [qemu_img(), "create", "-f", "qcow2"]
    if backing is not None:
        args += ["-b", str(backing), "-F", "raw"]
    subprocess.run(args + [str(path), size], check=True, capture_output=True)
    return path


def image_api(cloud: Cloud) -> str:
    return cloud.url + "/image/v2"


def call(cloud: Cloud, method: str, path: str, token: str, **kw) -> httpx.Response:
    headers = {"X-Auth-Token": token, **kw.pop("headers", {})}
    return httpx.request(method, image_api(cloud) + path, headers=headers, timeout=60, **kw)


def new_project(cloud: Cloud, unique) -> tuple[str, str]:
    name = unique("proj")
    pid = cloud.os_json("project", "create", "--domain", "default", name)["id"]
    return name, pid


class Tenant:
    """A project with one member user: its CLI env, SDK connection and token."""

    def __init__(self, cloud: Cloud, unique, role: str = "member"):
        self.cloud = cloud
        self.project, self.project_id = new_project(cloud, unique)
        self.user, self.password = cloud.make_user(self.project, role)
        self.env = cloud.env_for(self.user, self.password, self.project)

    def token(self) -> str:
        return self.cloud.token(self.user, self.password, self.project)

    def sdk(self):
        return self.cloud.sdk(username=self.user, password=self.password, project_name=self.project)

    def glance(self):
        from glanceclient import Client

        auth = ks_v3.Password(auth_url=self.cloud.auth_url, username=self.user, password=self.password,
                              project_name=self.project, user_domain_id="default",
                              project_domain_id="default")
        return Client("2", session=ks_session.Session(auth=auth))


def events_of(cloud: Cloud, kind: str) -> list[dict]:
    path = cloud.state_dir / "logs" / "events.jsonl"
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event_type"] == kind]


def stored_files(cloud: Cloud) -> list[str]:
    """Image data files in the store (and leftovers of uploads in progress)."""
    root = cloud.state_dir / "images"
    out = [p.name for p in root.iterdir() if p.is_file()] if root.exists() else []
    incoming = root / ".incoming"
    if incoming.exists():
        out += [".incoming/" + p.name for p in incoming.iterdir()]
    return out


def wait_status(cloud: Cloud, token: str, image_id: str, want: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = call(cloud, "GET", f"/images/{image_id}", token).json()
        if body["status"] == want or time.monotonic() > deadline:
            assert body["status"] == want, body
            return body
        time.sleep(0.1)


@pytest.fixture(scope="module")
def tenant_a(cloud, tmp_path_factory):
    return Tenant(cloud, lambda p: f"{p}-a-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="module")
def tenant_b(cloud):
    return Tenant(cloud, lambda p: f"{p}-b-{uuid.uuid4().hex[:6]}")


# ---------------------------------------------------------------------------- the guide's flow
def test_guide_flow_public_qcow2(cloud, tmp_path, unique, tenant_b):
    disk = make_qcow2(tmp_path / "cirros.img")
    data = disk.read_bytes()
    name = unique("cirros")
    img = cloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                        "--public", "--file", str(disk), name)
    assert img["status"] == "active" and img["visibility"] == "public"
    assert img["checksum"] == hashlib.md5(data).hexdigest()
    assert img["size"] == len(data)
    assert img["virtual_size"] == 64 << 20  # from the qcow2 header, not the file size
    props = img.get("properties") or {}
    assert props.get("os_hash_algo", img.get("os_hash_algo")) == "sha512"
    assert props.get("os_hash_value", img.get("os_hash_value")) == hashlib.sha512(data).hexdigest()

    listed = cloud.os_json("image", "list")
    assert {"ID": img["id"], "Name": name, "Status": "active"} in listed
    shown = cloud.os_json("image", "show", name)
    assert shown["id"] == img["id"] and shown["disk_format"] == "qcow2"

    # Any project sees and downloads a public image, byte for byte.
    assert img["id"] in [i["ID"] for i in cloud.os_json("image", "list", env=tenant_b.env)]
    out = tmp_path / "copy.img"
    cloud.openstack("image", "save", "--file", str(out), img["id"], env=tenant_b.env)
    assert out.read_bytes() == data

    # Events for telemetry: create, upload, activate and the download (with bytes sent).
    assert any(e["payload"]["id"] == img["id"] for e in events_of(cloud, "image.create"))
    assert any(e["payload"]["id"] == img["id"] for e in events_of(cloud, "image.upload"))
    assert any(e["payload"]["id"] == img["id"] for e in events_of(cloud, "image.activate"))
    sends = [e["payload"] for e in events_of(cloud, "image.send") if e["payload"]["image_id"] == img["id"]]
    assert sends and sends[-1]["bytes_sent"] == len(data)
    assert sends[-1]["receiver_tenant_id"] == tenant_b.project_id

    cloud.openstack("image", "delete", img["id"])
    assert img["id"] not in stored_files(cloud)
    assert any(e["payload"]["id"] == img["id"] for e in events_of(cloud, "image.delete"))


def test_set_unset_save_delete(cloud, tmp_path, unique):
    raw = os.urandom(300_000)
    src = tmp_path / "disk.raw"
    src.write_bytes(raw)
    name = unique("img")
    img = cloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                        "--file", str(src), "--property", "os_distro=cirros", "--tag", "first", name)
    iid, token = img["id"], cloud.token()
    assert img["visibility"] == "shared"  # Glance's default
    cloud.openstack("image", "set", "--name", name + "-2", "--min-disk", "1", "--min-ram", "64",
                    "--property", "hw_disk_bus=virtio", "--tag", "second", "--protected", iid)
    shown = cloud.os_json("image", "show", iid)
    assert shown["name"] == name + "-2" and shown["min_disk"] == 1 and shown["min_ram"] == 64
    assert shown["protected"] is True
    assert shown["properties"]["os_distro"] == "cirros" and shown["properties"]["hw_disk_bus"] == "virtio"
    assert sorted(shown["tags"]) == ["first", "second"]

    cloud.openstack("image", "unset", "--property", "os_distro", "--tag", "first", iid)
    body = call(cloud, "GET", f"/images/{iid}", token).json()
    assert "os_distro" not in body and body["tags"] == ["second"] and body["hw_disk_bus"] == "virtio"

    out = tmp_path / "saved"
    cloud.openstack("image", "save", "--file", str(out), iid)
    assert out.read_bytes() == raw

    err = cloud.openstack_fails("image", "delete", iid)
    assert "protected" in err.lower()
    cloud.openstack("image", "set", "--unprotected", iid)
    cloud.openstack("image", "delete", iid)
    assert call(cloud, "GET", f"/images/{iid}", token).status_code == 404
    assert iid not in stored_files(cloud)


def test_deactivate_reactivate(cloud, tmp_path, tenant_a):
    token = tenant_a.token()
    iid = call(cloud, "POST", "/images", token, json={"name": "d", "disk_format": "raw",
                                                      "container_format": "bare"}).json()["id"]
    assert call(cloud, "PUT", f"/images/{iid}/file", token, content=b"x" * 4096).status_code == 204
    cloud.openstack("image", "set", "--deactivate", iid, env=tenant_a.env)
    assert call(cloud, "GET", f"/images/{iid}", token).json()["status"] == "deactivated"
    r = call(cloud, "GET", f"/images/{iid}/file", token)
    assert r.status_code == 403 and "deactivated" in r.text
    # admins still can, as in Glance
    assert call(cloud, "GET", f"/images/{iid}/file", cloud.token()).content == b"x" * 4096
    cloud.openstack("image", "set", "--activate", iid, env=tenant_a.env)
    assert call(cloud, "GET", f"/images/{iid}/file", token).content == b"x" * 4096
    assert call(cloud, "POST", f"/images/{iid}/actions/reactivate", token).status_code == 204
    queued = call(cloud, "POST", "/images", token, json={}).json()["id"]
    assert call(cloud, "POST", f"/images/{queued}/actions/deactivate", token).status_code == 400
    for x in (iid, queued):
        call(cloud, "DELETE", f"/images/{x}", token)


# ---------------------------------------------------------------------------- visibility + policy
def test_member_private_ok_public_refused(cloud, tmp_path, tenant_a):
    src = tmp_path / "p.raw"
    src.write_bytes(os.urandom(1024))
    img = cloud.os_json("image", "create", "--private", "--disk-format", "raw", "--container-format", "bare",
                        "--file", str(src), "priv-" + uuid.uuid4().hex[:6], env=tenant_a.env)
    assert img["visibility"] == "private" and img["owner"] == tenant_a.project_id and img["status"] == "active"
    err = cloud.openstack_fails("image", "create", "--public", "--disk-format", "raw",
                                "--container-format", "bare", "pub-" + uuid.uuid4().hex[:6], env=tenant_a.env)
    assert "403" in err and "publicize_image" in err
    token, iid = tenant_a.token(), img["id"]

    def visibility(tok, value):
        return call(cloud, "PATCH", f"/images/{iid}", tok, headers={"Content-Type": PATCH},
                    json=[{"op": "replace", "path": "/visibility", "value": value}])

    assert visibility(token, "public").status_code == 403
    assert visibility(token, "community").json()["visibility"] == "community"  # allowed, as upstream
    assert visibility(cloud.token(), "public").json()["visibility"] == "public"  # admins publicize
    # a reader may look but not create or change
    reader, pw = cloud.make_user(tenant_a.project, "reader")
    rtoken = cloud.token(reader, pw, tenant_a.project)
    assert call(cloud, "GET", f"/images/{iid}", rtoken).json()["id"] == iid
    assert call(cloud, "POST", "/images", rtoken, json={"name": "r"}).status_code == 403
    assert visibility(rtoken, "private").status_code == 403
    # a member may not give its image away to another project; the admin may
    r = call(cloud, "PATCH", f"/images/{iid}", token, headers={"Content-Type": PATCH},
             json=[{"op": "replace", "path": "/owner", "value": "someone-else"}])
    assert r.status_code == 403
    assert call(cloud, "POST", "/images", token, json={"owner": "someone-else"}).status_code == 403
    call(cloud, "DELETE", f"/images/{iid}", token)


def test_foreign_project_sees_nothing(cloud, tenant_a, tenant_b):
    ta, tb = tenant_a.token(), tenant_b.token()
    ids = {}
    for vis in ("private", "shared", "community", "public"):
        body = {"name": f"vis-{vis}", "disk_format": "raw", "container_format": "bare"}
        if vis != "public":
            body["visibility"] = vis
            r = call(cloud, "POST", "/images", ta, json=body)
        else:
            body["visibility"] = vis
            body["owner"] = tenant_a.project_id
            r = call(cloud, "POST", "/images", cloud.token(), json=body)
        assert r.status_code == 201, r.text
        ids[vis] = r.json()["id"]

    listed = {i["id"] for i in call(cloud, "GET", "/images", tb, params={"limit": 1000}).json()["images"]}
    assert ids["public"] in listed
    assert not {ids["private"], ids["shared"], ids["community"]} & listed
    community = call(cloud, "GET", "/images", tb, params={"visibility": "community"}).json()["images"]
    assert ids["community"] in {i["id"] for i in community}
    assert {i["visibility"] for i in community} == {"community"}
    all_vis = {i["id"] for i in call(cloud, "GET", "/images", tb, params={"visibility": "all"}).json()["images"]}
    assert ids["community"] in all_vis and ids["private"] not in all_vis and ids["shared"] not in all_vis

    # Private and (unshared) shared images of another project: 404 everywhere, never 403.
    for vis in ("private", "shared"):
        iid = ids[vis]
        for method, path, kw in (("GET", f"/images/{iid}", {}), ("DELETE", f"/images/{iid}", {}),
                                 ("GET", f"/images/{iid}/file", {}), ("GET", f"/images/{iid}/members", {}),
                                 ("PUT", f"/images/{iid}/tags/x", {}),
                                 ("POST", f"/images/{iid}/members", {"json": {"member": tenant_b.project_id}}),
                                 ("PATCH", f"/images/{iid}", {"content": "[]",
                                                              "headers": {"Content-Type": PATCH}})):
            r = call(cloud, method, path, tb, **kw)
            assert r.status_code == 404, (vis, method, path, r.status_code, r.text)
        assert "No Image found" in cloud.openstack_fails("image", "show", iid, env=tenant_b.env)

    # Visible but not theirs: the community and public images can't be modified or deleted.
    for vis in ("community", "public"):
        iid = ids[vis]
        assert call(cloud, "GET", f"/images/{iid}", tb).status_code == 200
        r = call(cloud, "PATCH", f"/images/{iid}", tb, headers={"Content-Type": PATCH},
                 json=[{"op": "replace", "path": "/name", "value": "mine"}])
        assert r.status_code == 403, r.text
        assert call(cloud, "DELETE", f"/images/{iid}", tb).status_code == 403
        assert call(cloud, "PUT", f"/images/{iid}/file", tb, content=b"x").status_code == 403
    for iid in ids.values():
        assert call(cloud, "DELETE", f"/images/{iid}", cloud.token()).status_code == 204


def test_sharing_with_members_cli(cloud, tmp_path, tenant_a, tenant_b):
    src = tmp_path / "s.raw"
    src.write_bytes(os.urandom(2048))
    img = cloud.os_json("image", "create", "--shared", "--disk-format", "raw", "--container-format", "bare",
                        "--file", str(src), "shared-" + uuid.uuid4().hex[:6], env=tenant_a.env)
    iid, ta, tb = img["id"], tenant_a.token(), tenant_b.token()
    member = cloud.os_json("image", "add", "project", iid, tenant_b.project_id, env=tenant_a.env)
    assert member["status"] == "pending" and member["member_id"] == tenant_b.project_id

    def b_sees(**params):
        return iid in [i["id"] for i in call(cloud, "GET", "/images", tb, params=params).json()["images"]]

    assert not b_sees()                                            # pending: not in the default list ...
    assert b_sees(visibility="shared", member_status="pending")   # ... unless asked for
    assert call(cloud, "GET", f"/images/{iid}", tb).status_code == 200  # but visible
    members = cloud.os_json("image", "member", "list", iid, env=tenant_a.env)
    assert [(x["Member ID"], x["Status"]) for x in members] == [(tenant_b.project_id, "pending")]

    # Only the member accepts; the owner cannot accept for it.
    r = call(cloud, "PUT", f"/images/{iid}/members/{tenant_b.project_id}", ta, json={"status": "accepted"})
    assert r.status_code == 403, r.text
    cloud.openstack("image", "set", "--accept", iid, env=tenant_b.env)
    assert iid in [i["ID"] for i in cloud.os_json("image", "list", env=tenant_b.env)]
    out = tmp_path / "b.raw"
    cloud.openstack("image", "save", "--file", str(out), iid, env=tenant_b.env)
    assert out.read_bytes() == src.read_bytes()
    # The member sees only its own membership; it cannot modify the image or its members.
    assert [x["member_id"] for x in call(cloud, "GET", f"/images/{iid}/members", tb).json()["members"]] == \
        [tenant_b.project_id]
    assert "403" in cloud.openstack_fails("image", "set", "--name", "stolen", iid, env=tenant_b.env)
    assert call(cloud, "POST", f"/images/{iid}/members", tb, json={"member": "someone"}).status_code == 403
    assert call(cloud, "DELETE", f"/images/{iid}/members/{tenant_b.project_id}", tb).status_code == 403

    r = call(cloud, "PUT", f"/images/{iid}/members/{tenant_b.project_id}", tb, json={"status": "rejected"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert not b_sees()
    assert b_sees(visibility="shared", member_status="rejected")
    assert b_sees(visibility="shared", member_status="all")
    r = call(cloud, "PUT", f"/images/{iid}/members/{tenant_b.project_id}", tb, json={"status": "bogus"})
    assert r.status_code == 400

    cloud.openstack("image", "remove", "project", iid, tenant_b.project_id, env=tenant_a.env)
    assert call(cloud, "GET", f"/images/{iid}", tb).status_code == 404
    assert call(cloud, "GET", f"/images/{iid}/members", ta).json()["members"] == []

    # Members only for shared images; duplicates conflict; unknown members are 404.
    def set_visibility(value):
        r = call(cloud, "PATCH", f"/images/{iid}", ta, headers={"Content-Type": PATCH},
                 json=[{"op": "replace", "path": "/visibility", "value": value}])
        assert r.status_code == 200, r.text

    set_visibility("private")
    r = call(cloud, "POST", f"/images/{iid}/members", ta, json={"member": tenant_b.project_id})
    assert r.status_code == 403 and "shared" in r.text
    assert call(cloud, "GET", f"/images/{iid}/members", ta).status_code == 403
    set_visibility("shared")
    assert call(cloud, "POST", f"/images/{iid}/members", ta, json={"member": tenant_b.project_id}).status_code == 200
    assert call(cloud, "POST", f"/images/{iid}/members", ta, json={"member": tenant_b.project_id}).status_code == 409
    assert call(cloud, "GET", f"/images/{iid}/members/nobody", ta).status_code == 404
    assert call(cloud, "GET", f"/images/{iid}/members/{tenant_b.project_id}", tb).json()["status"] == "pending"
    # a member of a shared image that is made private loses sight of it
    set_visibility("private")
    assert call(cloud, "GET", f"/images/{iid}", tb).status_code == 404
    call(cloud, "DELETE", f"/images/{iid}", ta)


# ---------------------------------------------------------------------------- openstacksdk
def test_sdk_upload_download_ranges(cloud, tenant_a):
    conn = tenant_a.sdk()
    data = os.urandom(3 * 1024 * 1024 + 17)
    img = conn.image.create_image(name="sdk-" + uuid.uuid4().hex[:6], data=data, disk_format="raw",
                                  container_format="bare", visibility="private", validate_checksum=True)
    img = conn.image.get_image(img.id)
    assert img.status == "active" and img.size == len(data)
    assert img.checksum == hashlib.md5(data).hexdigest()
    assert img.hash_algo == "sha512" and img.hash_value == hashlib.sha512(data).hexdigest()
    assert conn.image.download_image(img).content == data
    streamed = b"".join(conn.image.download_image(img, stream=True).iter_content(65536))
    assert streamed == data

    token = tenant_a.token()
    full = call(cloud, "GET", f"/images/{img.id}/file", token)
    assert full.headers["content-md5"] == hashlib.md5(data).hexdigest()
    assert full.headers["content-type"] == "application/octet-stream"
    part = call(cloud, "GET", f"/images/{img.id}/file", token, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = call(cloud, "GET", f"/images/{img.id}/file", token, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    rest = call(cloud, "GET", f"/images/{img.id}/file", token, headers={"Range": f"bytes={len(data) - 5}-"})
    assert rest.content == data[-5:]
    bad = call(cloud, "GET", f"/images/{img.id}/file", token, headers={"Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{len(data)}"

    # No data yet: 204, as Glance.
    empty = conn.image.create_image(name="empty", disk_format="raw", container_format="bare")
    assert call(cloud, "GET", f"/images/{empty.id}/file", token).status_code == 204
    conn.image.update_image(empty, name="renamed", os_distro="ubuntu")
    fetched = conn.image.get_image(empty.id)
    assert fetched.name == "renamed" and fetched.os_distro == "ubuntu"
    conn.image.add_tag(fetched, "t1")
    assert conn.image.get_image(empty.id).tags == ["t1"]
    conn.image.remove_tag(fetched, "t1")
    conn.image.delete_image(empty)
    conn.image.delete_image(img)
    assert conn.image.find_image(img.id) is None


def test_sdk_interoperable_import(cloud, tenant_a):
    conn = tenant_a.sdk()
    data = os.urandom(50_000)
    img = conn.image.create_image(name="imp-" + uuid.uuid4().hex[:6], data=data, disk_format="raw",
                                  container_format="bare", use_import=True, validate_checksum=False)
    token = tenant_a.token()
    body = wait_status(cloud, token, img.id, "active")
    assert body["checksum"] == hashlib.md5(data).hexdigest() and body["stores"] == "file"
    assert body["os_glance_importing_to_stores"] == "" and body["os_glance_failed_import"] == ""
    tasks = call(cloud, "GET", f"/images/{img.id}/tasks", token).json()["tasks"]
    assert [t["status"] for t in tasks] == ["success"]
    assert tasks[0]["input"]["import_req"]["method"]["name"] == "glance-direct"
    assert call(cloud, "GET", f"/images/{img.id}/file", token).content == data
    assert not (cloud.state_dir / "images" / "staging" / img.id).exists()

    info = call(cloud, "GET", "/info/import", token).json()
    assert info["import-methods"]["value"] == ["glance-direct", "copy-image"]  # web-download: off
    stores = call(cloud, "GET", "/info/stores", token).json()["stores"]
    assert stores == [{"id": "file", "description": stores[0]["description"], "default": True}]
    # copy-image is for admins; importing a queued image without staging conflicts
    r = call(cloud, "POST", f"/images/{img.id}/import", token, json={"method": {"name": "copy-image"}})
    assert r.status_code == 403
    r = call(cloud, "POST", f"/images/{img.id}/import", cloud.token(),
             json={"method": {"name": "copy-image"}, "all_stores": True})
    assert r.status_code == 202
    q = call(cloud, "POST", "/images", token, json={"disk_format": "raw", "container_format": "bare"}).json()
    r = call(cloud, "POST", f"/images/{q['id']}/import", token, json={"method": {"name": "glance-direct"}})
    assert r.status_code == 409
    r = call(cloud, "POST", f"/images/{q['id']}/import", token,
             json={"method": {"name": "web-download", "uri": "http://example.com/x.img"}})
    assert r.status_code == 400
    conn.image.delete_image(img)


# ---------------------------------------------------------------------------- glanceclient
def test_glanceclient_create_upload_data(cloud, tenant_a, tenant_b):
    gc = tenant_a.glance()
    data = os.urandom(200_000)
    img = gc.images.create(name="gc-" + uuid.uuid4().hex[:6], disk_format="raw", container_format="bare",
                           visibility="shared", os_distro="fedora", tags=["a", "b"])
    assert img.status == "queued" and img.os_distro == "fedora"
    gc.images.upload(img.id, io.BytesIO(data), image_size=len(data))
    got = gc.images.get(img.id)
    assert got.status == "active" and got.size == len(data) and got.checksum == hashlib.md5(data).hexdigest()
    assert b"".join(gc.images.data(img.id)) == data  # verified against os_hash_value by the client

    updated = gc.images.update(img.id, name="gc-renamed", min_ram=128, remove_props=["os_distro"],
                               architecture="x86_64")
    assert updated.name == "gc-renamed" and updated.min_ram == 128
    assert "os_distro" not in updated and updated.architecture == "x86_64"
    gc.image_tags.update(img.id, "c")
    gc.image_tags.delete(img.id, "a")
    assert sorted(gc.images.get(img.id).tags) == ["b", "c"]

    listed = [i.id for i in gc.images.list(filters={"name": "gc-renamed"})]
    assert listed == [img.id]
    assert img.id in [i.id for i in gc.images.list(filters={"tag": ["b", "c"]})]
    assert img.id not in [i.id for i in gc.images.list(filters={"tag": ["a"]})]

    member = gc.image_members.create(img.id, tenant_b.project_id)
    assert member.status == "pending"
    gcb = tenant_b.glance()
    gcb.image_members.update(img.id, tenant_b.project_id, "accepted")
    assert img.id in [i.id for i in gcb.images.list()]
    assert [m.member_id for m in gc.image_members.list(img.id)] == [tenant_b.project_id]
    assert b"".join(gcb.images.data(img.id)) == data

    schema = gc.schemas.get("image")
    assert schema.name == "image" and schema.is_base_property("name")
    assert not schema.is_base_property("os_distro") and schema.is_core_property("os_distro")

    gc.images.deactivate(img.id)
    assert gc.images.get(img.id).status == "deactivated"
    gc.images.reactivate(img.id)
    gc.images.delete(img.id)
    from glanceclient import exc

    with pytest.raises(exc.HTTPNotFound) as info:
        gc.images.get(img.id)
    assert img.id in str(info.value)


# ---------------------------------------------------------------------------- lists
def test_list_filters_sort_and_pages(cloud, tenant_a):
    token = tenant_a.token()
    tag = uuid.uuid4().hex[:8]
    made = []
    for i, (size, disk) in enumerate([(1000, "raw"), (3000, "qcow2"), (2000, "raw"), (5000, "iso")]):
        body = {"name": f"L{i}-{tag}", "disk_format": disk, "container_format": "bare", "tags": [tag],
                "custom": f"v{i % 2}", "os_hidden": i == 3}
        img = call(cloud, "POST", "/images", token, json=body).json()
        r = call(cloud, "PUT", f"/images/{img['id']}/file", token, content=os.urandom(size),
                 headers={"Content-Type": "application/octet-stream"}) if disk == "raw" else None
        assert r is None or r.status_code == 204, r.text
        made.append(img["id"])
    q = lambda **p: call(cloud, "GET", "/images", token, params={"tag": tag, **p})  # noqa: E731

    assert {i["id"] for i in q().json()["images"]} == set(made[:3])  # the hidden one is left out
    assert {i["id"] for i in q(os_hidden="true").json()["images"]} == {made[3]}
    assert [i["id"] for i in q(custom="v1").json()["images"]] == [made[1]]
    assert [i["id"] for i in q(disk_format="qcow2").json()["images"]] == [made[1]]
    assert {i["id"] for i in q(status="active").json()["images"]} == {made[0], made[2]}
    assert [i["id"] for i in q(size_min="1500", size_max="2500").json()["images"]] == [made[2]]
    assert [i["id"] for i in q(size="1000").json()["images"]] == [made[0]]
    assert {i["id"] for i in q(name=f"in:L0-{tag},L1-{tag}").json()["images"]} == {made[0], made[1]}
    assert [i["name"] for i in q(sort="name:asc").json()["images"]] == [f"L{i}-{tag}" for i in range(3)]
    assert [i["name"] for i in q(sort_key="name", sort_dir="desc").json()["images"]] == \
        [f"L{i}-{tag}" for i in (2, 1, 0)]
    sizes = [i["size"] for i in q(sort="size:asc", status="active").json()["images"]]
    assert sizes == [1000, 2000]
    created = call(cloud, "GET", f"/images/{made[1]}", token).json()["created_at"]
    assert made[0] not in {i["id"] for i in q(created_at=f"gt:{created}").json()["images"]}
    assert made[1] in {i["id"] for i in q(created_at=f"gte:{created}").json()["images"]}

    # limit/marker paging with `next` links, as glanceclient and the SDK follow them
    page = q(limit="2", sort="name:asc").json()
    assert [i["name"] for i in page["images"]] == [f"L0-{tag}", f"L1-{tag}"]
    assert page["next"].startswith("/v2/images?") and "marker=" in page["next"]
    page2 = httpx.get(cloud.url + "/image" + page["next"], headers={"X-Auth-Token": token}).json()
    assert [i["name"] for i in page2["images"]] == [f"L2-{tag}"] and "next" not in page2
    conn = tenant_a.sdk()
    assert len(list(conn.image.images(tag=tag, limit=1))) == 3  # the SDK pages through them all

    for params, status in (({"limit": "x"}, 400), ({"limit": "-1"}, 400), ({"sort_key": "bogus"}, 400),
                           ({"sort_dir": "up"}, 400), ({"sort": "name", "sort_key": "name"}, 400),
                           ({"visibility": "everyone"}, 400), ({"member_status": "maybe"}, 400),
                           ({"marker": str(uuid.uuid4())}, 400), ({"size_min": "big"}, 400),
                           ({"created_at": "gt:yesterday"}, 400), ({"os_hidden": "perhaps"}, 400)):
        assert q(**params).status_code == status, params
    for iid in made:
        call(cloud, "DELETE", f"/images/{iid}", token)


# ---------------------------------------------------------------------------- negative
def test_json_patch_errors(cloud, tenant_a):
    token = tenant_a.token()
    iid = call(cloud, "POST", "/images", token, json={"name": "p", "disk_format": "raw",
                                                      "container_format": "bare"}).json()["id"]

    def patch(doc, ctype=PATCH):
        return call(cloud, "PATCH", f"/images/{iid}", token, content=json.dumps(doc),
                    headers={"Content-Type": ctype})

    assert patch([{"op": "replace", "path": "/name", "value": "x"}], "application/json").status_code == 415
    assert patch({"op": "replace"}).status_code == 400                                  # not a list
    assert patch([{"op": "move", "path": "/name", "from": "/x"}]).status_code == 400    # unsupported op
    assert patch([{"op": "replace", "path": "name", "value": "x"}]).status_code == 400  # not a pointer
    assert patch([{"op": "add", "path": "/x"}]).status_code == 400                      # no value
    assert patch([{"op": "replace", "path": "/min_ram", "value": "lots"}]).status_code == 400
    assert patch([{"op": "replace", "path": "/disk_format", "value": "floppy"}]).status_code == 400
    assert patch([{"op": "add", "path": "/prop", "value": 5}]).status_code == 400        # not a string
    assert patch([{"op": "replace", "path": "/status", "value": "active"}]).status_code == 403
    assert patch([{"op": "add", "path": "/os_glance_foo", "value": "x"}]).status_code == 403
    assert patch([{"op": "remove", "path": "/name"}]).status_code == 403
    assert patch([{"op": "remove", "path": "/nothing"}]).status_code == 409
    assert patch([{"op": "replace", "path": "/nothing", "value": "x"}]).status_code == 409
    assert patch([{"op": "replace", "path": "/name/deeper", "value": "x"}]).status_code == 400
    r = call(cloud, "PATCH", f"/images/{iid}", token, content="[{", headers={"Content-Type": PATCH})
    assert r.status_code == 400
    # A failed patch changes nothing, even its valid operations.
    assert patch([{"op": "replace", "path": "/name", "value": "changed"},
                  {"op": "replace", "path": "/status", "value": "active"}]).status_code == 403
    assert call(cloud, "GET", f"/images/{iid}", token).json()["name"] == "p"
    # v2.0 dialect (Tempest's): {"replace": "/name", "value": ...}; add of an existing one conflicts
    v20 = "application/openstack-images-v2.0-json-patch"
    r = patch([{"replace": "/name", "value": "v20"}, {"add": "/k", "value": "v"}], v20)
    assert r.status_code == 200 and r.json()["name"] == "v20" and r.json()["k"] == "v"
    assert patch([{"add": "/k", "value": "again"}], v20).status_code == 409
    assert patch([{"op": "add", "path": "/k", "value": "again"}]).json()["k"] == "again"  # v2.1: replaces

    # create-time checks
    for body, status in (({"status": "active"}, 403), ({"os_glance_x": "y"}, 403), ({"size": 5}, 403),
                         ({"disk_format": "wrong"}, 400), ({"container_format": "wrong"}, 400),
                         ({"visibility": "world"}, 400), ({"protected": "yes"}, 400),
                         ({"id": "not-a-uuid"}, 400), ({"min_disk": -1}, 400), ({"tags": "x"}, 400),
                         ({"name": "x" * 256}, 400), ({"prop": 1}, 400)):
        r = call(cloud, "POST", "/images", token, json=body)
        assert r.status_code == status, (body, r.status_code, r.text)
    dup = call(cloud, "POST", "/images", token, json={"id": iid})
    assert dup.status_code == 409
    # read-only and unknown members of the tags API
    assert call(cloud, "DELETE", f"/images/{iid}/tags/nope", token).status_code == 404
    assert call(cloud, "PUT", f"/images/{uuid.uuid4()}/tags/x", token).status_code == 404
    call(cloud, "DELETE", f"/images/{iid}", token)


def test_error_bodies_html_and_json(cloud, tenant_a):
    token = tenant_a.token()
    missing = str(uuid.uuid4())
    r = call(cloud, "GET", f"/images/{missing}", token)
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "404 Not Found" in r.text and f"No image found with ID {missing}" in r.text
    r = call(cloud, "GET", f"/images/{missing}", token, headers={"Accept": "application/json"})
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"message": f"No image found with ID {missing}", "code": "404 Not Found",
                        "title": "Not Found"}
    assert call(cloud, "GET", "/images", "not-a-token").status_code == 401
    assert call(cloud, "GET", "/images/", token).status_code == 404


def test_wrong_and_unsafe_formats_are_refused(cloud, tmp_path, tenant_a):
    token = tenant_a.token()
    backing = tmp_path / "secret.raw"
    backing.write_bytes(b"host secret")
    cases = [
        ("raw", make_qcow2(tmp_path / "q.qcow2", "1M").read_bytes(), "qcow2"),       # qcow2 posing as raw
        ("qcow2", os.urandom(4096), "not in qcow2"),                                 # raw posing as qcow2
        ("qcow2", make_qcow2(tmp_path / "b.qcow2", "1M", backing).read_bytes(), "backing"),  # unsafe
    ]
    for disk_format, data, message in cases:
        iid = call(cloud, "POST", "/images", token, json={"disk_format": disk_format,
                                                          "container_format": "bare"}).json()["id"]
        r = call(cloud, "PUT", f"/images/{iid}/file", token, content=data,
                 headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 400 and message in r.text, (disk_format, r.status_code, r.text)
        body = call(cloud, "GET", f"/images/{iid}", token).json()
        assert body["status"] == "queued" and body["size"] is None and body["checksum"] is None
        assert iid not in stored_files(cloud) and not [f for f in stored_files(cloud) if iid in f]
        # the same goes for the interoperable import: staged, refused at import, back to queued
        assert call(cloud, "PUT", f"/images/{iid}/stage", token, content=data).status_code == 204
        assert call(cloud, "POST", f"/images/{iid}/import", token,
                    json={"method": {"name": "glance-direct"}}).status_code == 202
        body = wait_status(cloud, token, iid, "queued")
        assert body["os_glance_failed_import"] == "file"
        task = call(cloud, "GET", f"/images/{iid}/tasks", token).json()["tasks"][0]
        assert task["status"] == "failure" and message in task["message"]
        assert iid not in stored_files(cloud)
        call(cloud, "DELETE", f"/images/{iid}", token)
    # an upload before the formats are set is refused
    iid = call(cloud, "POST", "/images", token, json={"name": "noformat"}).json()["id"]
    r = call(cloud, "PUT", f"/images/{iid}/file", token, content=b"abc")
    assert r.status_code == 400 and "disk_format" in r.text
    # and a second upload into an active image conflicts
    good = call(cloud, "POST", "/images", token, json={"disk_format": "qcow2", "container_format": "bare"}).json()
    qcow = make_qcow2(tmp_path / "ok.qcow2", "2M").read_bytes()
    assert call(cloud, "PUT", f"/images/{good['id']}/file", token, content=qcow).status_code == 204
    body = call(cloud, "GET", f"/images/{good['id']}", token).json()
    assert body["status"] == "active" and body["virtual_size"] == 2 << 20
    assert call(cloud, "PUT", f"/images/{good['id']}/file", token, content=qcow).status_code == 409
    for x in (iid, good["id"]):
        call(cloud, "DELETE", f"/images/{x}", token)


def test_interrupted_upload_leaves_nothing(cloud, tenant_a):
    token = tenant_a.token()
    iid = call(cloud, "POST", "/images", token, json={"disk_format": "raw", "container_format": "bare"}).json()["id"]
    # Announce 64 MiB, send 8 MiB, hang up.
    with socket.create_connection(("127.0.0.1", cloud.port)) as sock:
        sock.sendall((f"PUT /image/v2/images/{iid}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"X-Auth-Token: {token}\r\nContent-Type: application/octet-stream\r\n"
                      f"Content-Length: {64 << 20}\r\n\r\n").encode())
        chunk = os.urandom(1 << 20)
        for _ in range(8):
            sock.sendall(chunk)
        time.sleep(0.5)
        assert call(cloud, "GET", f"/images/{iid}", token).json()["status"] == "saving"
    body = wait_status(cloud, token, iid, "queued")
    assert body["size"] is None and body["checksum"] is None
    deadline = time.monotonic() + 10
    while [f for f in stored_files(cloud) if iid in f] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [f for f in stored_files(cloud) if iid in f]
    # and the image takes a complete upload afterwards
    data = os.urandom(100_000)
    assert call(cloud, "PUT", f"/images/{iid}/file", token, content=data).status_code == 204
    assert call(cloud, "GET", f"/images/{iid}/file", token).content == data
    # a short body (fewer bytes than announced by x-openstack-image-size) is refused too
    other = call(cloud, "POST", "/images", token, json={"disk_format": "raw", "container_format": "bare"}).json()
    r = call(cloud, "PUT", f"/images/{other['id']}/file", token, content=b"abc",
             headers={"x-openstack-image-size": "10"})
    assert r.status_code == 400
    assert call(cloud, "GET", f"/images/{other['id']}", token).json()["status"] == "queued"
    for x in (iid, other["id"]):
        call(cloud, "DELETE", f"/images/{x}", token)


def test_schemas_and_versions(cloud, tenant_a):
    token = tenant_a.token()
    for name in ("image", "images", "member", "members", "metadefs/namespace", "metadefs/tags"):
        r = call(cloud, "GET", f"/schemas/{name}", token)
        assert r.status_code == 200 and r.json()["name"] == name.split("/")[-1]
    image = call(cloud, "GET", "/schemas/image", token).json()
    assert image["additionalProperties"] == {"type": "string"}
    assert "qcow2" in image["properties"]["disk_format"]["enum"]
    assert call(cloud, "GET", "/schemas/nope", token).status_code == 404
    r = httpx.get(cloud.url + "/image")
    assert r.status_code == 300
    ids = [v["id"] for v in r.json()["versions"]]
    assert ids[0] == "v2.16" and "v2.0" in ids
    assert r.json()["versions"][0]["links"][0]["href"] == cloud.url + "/image/v2/"
    assert httpx.get(cloud.url + "/image/versions").status_code == 200


# ---------------------------------------------------------------------------- quotas
@pytest.fixture(scope="module")
def quota_cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("imgquota"), config={
        ("image", "image_size_total"): "2",      # MiB per project
        ("image", "image_count_total"): "3",
        ("image", "image_size_cap"): str(1536 * 1024),
        ("image", "image_tag_quota"): "2",
        ("image", "image_member_quota"): "1",
    })
    c.start()
    yield c
    c.stop()


def test_quotas_refuse_with_413_and_store_nothing(quota_cloud):
    cloud = quota_cloud
    tenant = Tenant(cloud, lambda p: f"{p}-{uuid.uuid4().hex[:6]}")
    token = tenant.token()
    new = lambda: call(cloud, "POST", "/images", token, json={"disk_format": "raw",  # noqa: E731
                                                              "container_format": "bare"})
    first = new().json()["id"]
    # over the per-image cap (1.5 MiB), announced: refused before reading
    r = call(cloud, "PUT", f"/images/{first}/file", token, content=os.urandom(2 << 20))
    assert r.status_code == 413 and "image_size_cap" in r.text
    # over the cap, not announced (chunked): refused mid-stream
    r = call(cloud, "PUT", f"/images/{first}/file", token, content=iter([os.urandom(1 << 20)] * 2))
    assert r.status_code == 413
    body = call(cloud, "GET", f"/images/{first}", token).json()
    assert body["status"] == "queued" and body["size"] is None
    assert stored_files(cloud) == []
    # 1 MiB fits; then the project total (2 MiB) leaves room for 1 MiB more, not 1.2
    assert call(cloud, "PUT", f"/images/{first}/file", token, content=os.urandom(1 << 20)).status_code == 204
    second = new().json()["id"]
    r = call(cloud, "PUT", f"/images/{second}/file", token, content=os.urandom(1200 * 1024))
    assert r.status_code == 413 and "image_size_total" in r.text
    assert call(cloud, "GET", f"/images/{second}", token).json()["status"] == "queued"
    assert stored_files(cloud) == [first]
    usage = call(cloud, "GET", "/info/usage", token).json()["usage"]
    assert usage["image_count_total"] == {"limit": 3, "usage": 2}
    assert usage["image_size_total"] == {"limit": 2, "usage": 1}
    # three images at most
    third = new().json()["id"]
    r = new()
    assert r.status_code == 413 and "image_count_total" in r.text
    assert "413" in cloud.openstack_fails("image", "create", "fourth", env=tenant.env)
    # tags and members
    assert call(cloud, "PUT", f"/images/{third}/tags/a", token).status_code == 204
    assert call(cloud, "PUT", f"/images/{third}/tags/b", token).status_code == 204
    assert call(cloud, "PUT", f"/images/{third}/tags/c", token).status_code == 413
    assert call(cloud, "POST", f"/images/{third}/members", token, json={"member": "p1"}).status_code == 200
    assert call(cloud, "POST", f"/images/{third}/members", token, json={"member": "p2"}).status_code == 413
    # deleting frees the quota
    call(cloud, "DELETE", f"/images/{first}", token)
    assert stored_files(cloud) == []
    assert new().status_code == 201


# ---------------------------------------------------------------------------- stores + web-download
@pytest.fixture(scope="module")
def web_source(tmp_path_factory):
    """A local HTTP server: /img.raw, and /redirect pointing to a host outside the allow-list."""
    import http.server
    import threading

    root = tmp_path_factory.mktemp("web")
    (root / "img.raw").write_bytes(os.urandom(70_000))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def do_GET(self):
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{self.server.server_port}/img.raw")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port, (root / "img.raw").read_bytes()
    server.shutdown()


@pytest.fixture(scope="module")
def stores_cloud(tmp_path_factory, web_source):
    port, _ = web_source
    c = Cloud(tmp_path_factory.mktemp("imgstores"), config={
        ("DEFAULT", "enabled_backends"): "fast:file, cheap:file",
        ("glance_store", "default_backend"): "fast",
        ("image", "enabled_import_methods"): "glance-direct,web-download,copy-image",
        ("import_filtering_opts", "allowed_hosts"): "127.0.0.1",
        ("import_filtering_opts", "allowed_ports"): str(port),
    })
    c.start()
    yield c
    c.stop()


def test_multiple_stores_copy_and_delete_from_store(stores_cloud):
    cloud = stores_cloud
    token = cloud.token()
    stores = call(cloud, "GET", "/info/stores", token).json()["stores"]
    assert [(s["id"], s.get("default", False)) for s in stores] == [("fast", True), ("cheap", False)]
    data = os.urandom(123_456)
    iid = call(cloud, "POST", "/images", token, json={"disk_format": "raw", "container_format": "bare"}).json()["id"]
    assert call(cloud, "PUT", f"/images/{iid}/file", token, content=data).status_code == 204
    assert call(cloud, "GET", f"/images/{iid}", token).json()["stores"] == "fast"
    assert (cloud.state_dir / "images" / "fast" / iid).read_bytes() == data

    r = call(cloud, "POST", f"/images/{iid}/import", token,
             json={"method": {"name": "copy-image"}, "stores": ["cheap"]})
    assert r.status_code == 202
    deadline = time.monotonic() + 20
    while True:
        body = call(cloud, "GET", f"/images/{iid}", token).json()
        if body.get("os_glance_importing_to_stores") == "" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert body["stores"] == "cheap,fast" and body["os_glance_failed_import"] == ""
    assert (cloud.state_dir / "images" / "cheap" / iid).read_bytes() == data

    assert call(cloud, "DELETE", f"/stores/fast/{iid}", token).status_code == 204
    assert call(cloud, "GET", f"/images/{iid}", token).json()["stores"] == "cheap"
    assert not (cloud.state_dir / "images" / "fast" / iid).exists()
    assert call(cloud, "GET", f"/images/{iid}/file", token).content == data  # served from "cheap"
    assert call(cloud, "DELETE", f"/stores/cheap/{iid}", token).status_code == 409  # the last copy
    # an upload may name its store; unknown stores are refused
    other = call(cloud, "POST", "/images", token, json={"disk_format": "raw", "container_format": "bare"}).json()
    r = call(cloud, "PUT", f"/images/{other['id']}/file", token, content=b"abc",
             headers={"X-Image-Meta-Store": "nowhere"})
    assert r.status_code == 400
    r = call(cloud, "PUT", f"/images/{other['id']}/file", token, content=b"abc",
             headers={"X-Image-Meta-Store": "cheap"})
    assert r.status_code == 204 and call(cloud, "GET", f"/images/{other['id']}", token).json()["stores"] == "cheap"
    # glance-direct into every store at once
    staged = call(cloud, "POST", "/images", token, json={"disk_format": "raw", "container_format": "bare"}).json()
    assert call(cloud, "PUT", f"/images/{staged['id']}/stage", token, content=data).status_code == 204
    assert call(cloud, "GET", f"/images/{staged['id']}", token).json()["status"] == "uploading"
    r = call(cloud, "POST", f"/images/{staged['id']}/import", token,
             json={"method": {"name": "glance-direct"}, "all_stores": True})
    assert r.status_code == 202
    deadline = time.monotonic() + 20
    while True:
        body = call(cloud, "GET", f"/images/{staged['id']}", token).json()
        if (body["status"] == "active" and body.get("os_glance_importing_to_stores") == "") \
                or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert body["stores"] == "cheap,fast"
    for x in (iid, other["id"], staged["id"]):
        assert call(cloud, "DELETE", f"/images/{x}", token).status_code == 204
    for store in ("fast", "cheap"):
        assert not [p for p in (cloud.state_dir / "images" / store).iterdir() if p.is_file()]


def test_web_download_allow_list(stores_cloud, web_source):
    cloud = stores_cloud
    port, data = web_source
    token = cloud.token()
    methods = call(cloud, "GET", "/info/import", token).json()["import-methods"]["value"]
    assert "web-download" in methods

    def new():
        return call(cloud, "POST", "/images", token, json={"disk_format": "raw", "container_format": "bare"}).json()["id"]

    iid = new()
    r = call(cloud, "POST", f"/images/{iid}/import", token,
             json={"method": {"name": "web-download", "uri": f"http://127.0.0.1:{port}/img.raw"}})
    assert r.status_code == 202, r.text
    body = wait_status(cloud, token, iid, "active")
    assert body["checksum"] == hashlib.md5(data).hexdigest()
    assert call(cloud, "GET", f"/images/{iid}/file", token).content == data
    # hosts, ports and schemes outside the allow-list are refused up front...
    other = new()
    for uri in ("http://localhost:%d/img.raw" % port, "http://127.0.0.1:1/img.raw", "file:///etc/passwd",
                "ftp://127.0.0.1/x"):
        r = call(cloud, "POST", f"/images/{other}/import", token,
                 json={"method": {"name": "web-download", "uri": uri}})
        assert r.status_code == 400 and "filtering" in r.text, uri
    # ... and so is a redirect that leaves it: the import fails, the image goes back to queued
    r = call(cloud, "POST", f"/images/{other}/import", token,
             json={"method": {"name": "web-download", "uri": f"http://127.0.0.1:{port}/redirect"}})
    assert r.status_code == 202
    body = wait_status(cloud, token, other, "queued")
    assert body["os_glance_failed_import"]
    task = call(cloud, "GET", f"/images/{other}/tasks", token).json()["tasks"][0]
    assert task["status"] == "failure" and "filtering" in task["message"]
    for x in (iid, other):
        call(cloud, "DELETE", f"/images/{x}", token)


# ---------------------------------------------------------------------------- other databases
@pytest.fixture(scope="module")
def mariadb_cloud(tmp_path_factory):
    try:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=3, autocommit=True)
    except Exception:
        if os.environ.get("CI"):
            pytest.fail("MariaDB on 127.0.0.1:3306 is required in CI")
        pytest.skip("no MariaDB on 127.0.0.1:3306")
    name = "pocketstack_img_" + uuid.uuid4().hex[:8]
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    c = Cloud(tmp_path_factory.mktemp("imgmaria"), db_url=f"mysql+pymysql://root@127.0.0.1:3306/{name}",
              config={("image", "image_size_total"): "1"})
    try:
        c.start()
        yield c
    finally:
        c.stop()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.mark.parametrize("db", ["pg_cloud", "mariadb_cloud"])
def test_image_service_on_other_databases(request, db):
    cloud = request.getfixturevalue(db)
    a = Tenant(cloud, lambda p: f"{p}-{uuid.uuid4().hex[:6]}")
    b = Tenant(cloud, lambda p: f"{p}-{uuid.uuid4().hex[:6]}")
    ta, tb = a.token(), b.token()
    tag = uuid.uuid4().hex[:8]
    ids = []
    for i, size in enumerate([3000, None, 1000]):
        img = call(cloud, "POST", "/images", ta, json={"name": f"db{i}", "disk_format": "raw", "tags": [tag],
                                                       "container_format": "bare", "prop": f"p{i}",
                                                       "description": "ünïcode ✓"}).json()
        if size:
            assert call(cloud, "PUT", f"/images/{img['id']}/file", ta, content=os.urandom(size)).status_code == 204
        ids.append(img["id"])
    q = lambda **p: [i["name"] for i in call(cloud, "GET", "/images", ta, params={"tag": tag, **p}).json()["images"]]  # noqa: E731
    assert q(sort="name:asc") == ["db0", "db1", "db2"]
    assert q(sort="size:asc", status="active") == ["db2", "db0"]
    assert q(prop="p1") == ["db1"] and q(name="in:db0,db2", sort="name:desc") == ["db2", "db0"]
    assert q(size_min="2000") == ["db0"]
    assert call(cloud, "GET", f"/images/{ids[0]}", ta).json()["description"] == "ünïcode ✓"
    page = call(cloud, "GET", "/images", ta, params={"tag": tag, "limit": 2, "sort": "name:asc"}).json()
    assert len(page["images"]) == 2 and "next" in page
    # sharing
    assert call(cloud, "POST", f"/images/{ids[0]}/members", ta, json={"member": b.project_id}).status_code == 200
    assert call(cloud, "PUT", f"/images/{ids[0]}/members/{b.project_id}", tb,
                json={"status": "accepted"}).status_code == 200
    assert ids[0] in [i["id"] for i in call(cloud, "GET", "/images", tb).json()["images"]]
    assert ids[1] not in [i["id"] for i in call(cloud, "GET", "/images", tb).json()["images"]]
    # sizes are summed on the database side: usage, and the size quota (1 MiB on MariaDB here)
    r = call(cloud, "PUT", f"/images/{ids[1]}/file", ta, content=os.urandom(1 << 20))
    if db == "mariadb_cloud":
        assert r.status_code == 413
    else:
        assert r.status_code == 204
        usage = call(cloud, "GET", "/info/usage", ta).json()["usage"]
        assert usage["image_size_total"]["usage"] == 1 and usage["image_count_total"]["usage"] == 3
        ids.append(call(cloud, "POST", "/images", ta, json={"disk_format": "raw", "container_format": "bare",
                                                            "tags": [tag], "name": "db3"}).json()["id"])
        ids[1], ids[3] = ids[3], ids[1]
    # interoperable import
    assert call(cloud, "PUT", f"/images/{ids[1]}/stage", ta, content=b"staged").status_code == 204
    assert call(cloud, "POST", f"/images/{ids[1]}/import", ta,
                json={"method": {"name": "glance-direct"}}).status_code == 202
    assert wait_status(cloud, ta, ids[1], "active")["size"] == 6
    assert call(cloud, "GET", f"/images/{ids[1]}/tasks", ta).json()["tasks"][0]["status"] == "success"
    for iid in ids:
        assert call(cloud, "DELETE", f"/images/{iid}", ta).status_code == 204
    assert q() == []
