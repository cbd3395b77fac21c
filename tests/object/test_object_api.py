"""Object Storage (Swift v1 under /object) driven by the real `swift` CLI, `openstack` CLI and openstacksdk."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from conftest import Cloud

SWIFT = str(Path(sys.executable).parent / "swift")
OBJECT_CONFIG = {("pocketstack", "enabled_services"): "identity,image,object"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("objcloud"), config=OBJECT_CONFIG)
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def users(cloud):
    """Two projects: `alpha` with a member and a reader, `beta` with a member."""
    out = {}
    for project in ("alpha", "beta"):
        cloud.openstack("project", "create", "--domain", "default", project)
        out[project + "_id"] = cloud.os_json("project", "show", project)["id"]
    out["member"] = cloud.make_user("alpha", "member")
    out["reader"] = cloud.make_user("alpha", "reader")
    out["other"] = cloud.make_user("beta", "member")
    return out


def swift(cloud, *args, user=None, project="admin", cwd=None, check=True):
    name, password = user or ("admin", cloud.admin_password)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    res = subprocess.run([SWIFT, "--os-auth-url", cloud.auth_url, "--auth-version", "3", "--os-username", name,
                          "--os-password", password, "--os-project-name", project, "--os-user-domain-name",
                          "Default", "--os-project-domain-name", "Default", *args],
                         capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"swift {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


class Client:
    """Raw HTTP against one account, with a token of `user` in `project`."""

    def __init__(self, cloud, user=None, project="admin", account_project_id=None):
        name, password = user or ("admin", cloud.admin_password)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": name, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        r = httpx.post(cloud.auth_url + "/auth/tokens", json=body)
        assert r.status_code == 201, r.text
        self.token = r.headers["X-Subject-Token"]
        pid = account_project_id or r.json()["token"]["project"]["id"]
        self.account = f"AUTH_{pid}"
        self.base = f"{cloud.url}/object/v1/{self.account}"
        self.http = httpx.Client(headers={"X-Auth-Token": self.token}, timeout=60)

    def __call__(self, method, path="", **kw):
        return self.http.request(method, self.base + path, **kw)


@pytest.fixture(scope="module")
def admin(cloud):
    return Client(cloud)


def unique(prefix="c"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------- the guide's checks
def test_catalog_and_info(cloud):
    eps = cloud.os_json("catalog", "show", "object-store")
    assert "/object/v1/AUTH_" in json.dumps(eps)
    info = httpx.get(cloud.url + "/object/info").json()
    assert info["swift"]["max_file_size"] > 0 and info["swift"]["container_listing_limit"] == 10000
    res = swift(cloud, "capabilities")
    assert "max_file_size" in res.stdout


def test_guide_stat_upload_download(cloud, tmp_path):
    res = swift(cloud, "stat")
    assert "Account: AUTH_" in res.stdout and "Containers: " in res.stdout
    data = os.urandom(300_000)
    (tmp_path / "FILE").write_bytes(data)
    c = unique()
    swift(cloud, "upload", c, "FILE", cwd=tmp_path)
    assert swift(cloud, "list").stdout.split().count(c) == 1
    assert swift(cloud, "list", c).stdout.split() == ["FILE"]
    out = tmp_path / "out"
    out.mkdir()
    swift(cloud, "download", c, "FILE", cwd=out)
    assert (out / "FILE").read_bytes() == data
    stat = swift(cloud, "stat", c, "FILE").stdout
    assert hashlib.md5(data).hexdigest() in stat and "Content Length: 300000" in stat
    acct = swift(cloud, "stat").stdout
    assert "Objects: " in acct
    swift(cloud, "delete", c)
    assert c not in swift(cloud, "list").stdout.split()


def test_each_object_on_three_devices(cloud, admin):
    c = unique()
    assert admin("PUT", f"/{c}").status_code == 201
    assert admin("PUT", f"/{c}/obj", content="replicated").status_code == 201
    devices = cloud.state_dir / "object" / "devices"
    found = sorted(p.relative_to(devices).parts[0] for p in devices.glob("*/objects/*/*/*/*.data"))
    # every .data file in the cloud is this object's or an earlier test's; ours is on 3 devices
    from pocketstack.object.storage import read_trailer

    ours = [p for p in devices.glob("*/objects/*/*/*/*.data") if read_trailer(p)["name"].endswith(f"/{c}/obj")]
    assert len({p.relative_to(devices).parts[0] for p in ours}) == 3, found
    assert {p.read_bytes()[:10] for p in ours} == {b"replicated"}
    # losing one replica (device directory wiped) still serves the object
    first = sorted(ours)[0]
    first.unlink()
    assert admin("GET", f"/{c}/obj").content == b"replicated"


# ---------------------------------------------------------------------------- openstack CLI, openstacksdk
def test_openstack_cli_containers_and_objects(cloud, tmp_path):
    c = unique()
    created = cloud.os_json("container", "create", c)
    assert created[0]["container"] == c
    assert c in [x["Name"] for x in cloud.os_json("container", "list")]
    src = tmp_path / "note.txt"
    src.write_text("hello from openstack\n")
    cloud.os_json("object", "create", "--name", "note.txt", c, str(src))
    assert [x["Name"] for x in cloud.os_json("object", "list", c)] == ["note.txt"]
    shown = cloud.os_json("object", "show", c, "note.txt")
    assert shown["content-length"] == str(len("hello from openstack\n")) and shown["content-type"] == "text/plain"
    cshow = cloud.os_json("container", "show", c)
    assert str(cshow["object_count"]) == "1"
    dest = tmp_path / "saved.txt"
    cloud.openstack("object", "save", "--file", str(dest), c, "note.txt")
    assert dest.read_text() == "hello from openstack\n"
    err = cloud.openstack_fails("container", "delete", c)
    assert "409" in err or "onflict" in err
    cloud.openstack("object", "delete", c, "note.txt")
    cloud.openstack("container", "delete", c)
    assert c not in [x["Name"] for x in cloud.os_json("container", "list")]


def test_openstacksdk(cloud):
    conn = cloud.sdk()
    c = unique()
    conn.object_store.create_container(name=c)
    conn.object_store.upload_object(container=c, name="a/b.bin", data=b"\x00\x01sdk")
    assert conn.object_store.download_object("a/b.bin", container=c) == b"\x00\x01sdk"
    names = [o.name for o in conn.object_store.objects(c)]
    assert names == ["a/b.bin"]
    conn.object_store.set_object_metadata("a/b.bin", container=c, color="blue")
    meta = conn.object_store.get_object_metadata("a/b.bin", container=c)
    assert meta.metadata.get("color") == "blue"
    conn.object_store.delete_object("a/b.bin", container=c)
    conn.object_store.delete_container(c)
    assert c not in [x.name for x in conn.object_store.containers()]


# ---------------------------------------------------------------------------- listings
def test_listings_prefix_delimiter_formats(cloud, admin):
    c = unique()
    admin("PUT", f"/{c}")
    names = ["a", "b/1", "b/2", "b/3/x", "c.txt", "d/e"]
    for n in names:
        assert admin("PUT", f"/{c}/{n}", content=n.encode()).status_code == 201
    listed = lambda **q: admin("GET", f"/{c}", params=q)  # noqa: E731
    assert listed().text.split("\n")[:-1] == names
    assert listed(prefix="b/").text.split() == ["b/1", "b/2", "b/3/x"]
    assert listed(delimiter="/").text.split() == ["a", "b/", "c.txt", "d/"]
    assert listed(prefix="b/", delimiter="/").text.split() == ["b/1", "b/2", "b/3/"]
    assert listed(limit="2", marker="a").text.split() == ["b/1", "b/2"]
    assert listed(end_marker="b/2").text.split() == ["a", "b/1"]
    assert listed(reverse="true").text.split() == names[::-1]
    assert listed(reverse="true", delimiter="/").text.split() == ["d/", "c.txt", "b/", "a"]
    j = listed(format="json", delimiter="/").json()
    assert j[0]["name"] == "a" and j[0]["bytes"] == 1 and j[0]["hash"] == hashlib.md5(b"a").hexdigest()
    assert {"subdir": "b/"} in j and "last_modified" in j[0] and j[0]["content_type"]
    r = listed(format="xml")
    assert r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "container" and [o.findtext("name") for o in root.findall("object")] == names
    r = admin("GET", f"/{c}", headers={"Accept": "application/json"})
    assert r.headers["content-type"].startswith("application/json")
    # swift CLI's own listing options
    assert swift(cloud, "list", c, "--prefix", "b/").stdout.split() == ["b/1", "b/2", "b/3/x"]
    assert swift(cloud, "list", c, "--delimiter", "/").stdout.split() == ["a", "b/", "c.txt", "d/"]
    # account listing
    acct = admin("GET", "", params={"format": "json", "prefix": c}).json()
    assert acct == [{"name": c, "count": 6, "bytes": sum(map(len, names)), "last_modified": acct[0]["last_modified"]}]
    assert ET.fromstring(admin("GET", "", params={"format": "xml", "prefix": c}).content).find(
        "container/name").text == c
    head = admin("HEAD", f"/{c}")
    assert head.status_code == 204 and head.headers["X-Container-Object-Count"] == "6"
    assert head.headers["X-Container-Bytes-Used"] == str(sum(map(len, names)))
    assert "X-Timestamp" in head.headers and "X-Trans-Id" in head.headers
    ahead = admin("HEAD", "")
    assert int(ahead.headers["X-Account-Object-Count"]) >= 6 and "X-Account-Bytes-Used" in ahead.headers
    # empty plain listing is 204, json is []
    e = unique()
    admin("PUT", f"/{e}")
    assert admin("GET", f"/{e}").status_code == 204
    assert admin("GET", f"/{e}", params={"format": "json"}).json() == []


# ---------------------------------------------------------------------------- metadata
def test_metadata_account_container_object(cloud, tmp_path):
    c = unique()
    swift(cloud, "post", c, "-m", "Color:red", "-r", ".r:*")
    st = swift(cloud, "stat", c).stdout
    assert "Meta Color: red" in st and "Read ACL: .r:*" in st
    swift(cloud, "post", c, "-m", "Color:")
    assert "Meta Color" not in swift(cloud, "stat", c).stdout
    swift(cloud, "post", "-m", "Owner:ops")
    assert "Meta Owner: ops" in swift(cloud, "stat").stdout
    (tmp_path / "o").write_text("x")
    swift(cloud, "upload", c, "o", "-H", "X-Object-Meta-Kind:first", cwd=tmp_path)
    assert "Meta Kind: first" in swift(cloud, "stat", c, "o").stdout
    swift(cloud, "post", c, "o", "-m", "Size:big", "-H", "Content-Type:text/x-test")
    st = swift(cloud, "stat", c, "o").stdout
    assert "Meta Size: big" in st and "Meta Kind" not in st and "text/x-test" in st  # POST replaces
    swift(cloud, "delete", c)


# ---------------------------------------------------------------------------- copy, range, conditionals, errors
def test_copy(cloud, admin):
    c, d = unique(), unique()
    admin("PUT", f"/{c}")
    admin("PUT", f"/{d}")
    admin("PUT", f"/{c}/src", content=b"copy me", headers={"X-Object-Meta-A": "1", "Content-Type": "text/x-a"})
    r = admin("COPY", f"/{c}/src", headers={"Destination": f"/{d}/dst", "X-Object-Meta-B": "2"})
    assert r.status_code == 201 and r.headers["X-Copied-From"] == f"{c}/src"
    got = admin("GET", f"/{d}/dst")
    assert got.content == b"copy me" and got.headers["X-Object-Meta-A"] == "1" and got.headers["X-Object-Meta-B"] == "2"
    assert got.headers["content-type"] == "text/x-a"
    r = admin("PUT", f"/{d}/dst2", headers={"X-Copy-From": f"/{c}/src", "Content-Length": "0"})
    assert r.status_code == 201 and admin("GET", f"/{d}/dst2").content == b"copy me"
    assert admin("COPY", f"/{c}/missing", headers={"Destination": f"{d}/x"}).status_code == 404
    swift(cloud, "copy", "-d", f"/{d}/dst3", c, "src")
    assert admin("GET", f"/{d}/dst3").content == b"copy me"


def test_range_and_conditionals(cloud, admin):
    c = unique()
    admin("PUT", f"/{c}")
    body = bytes(range(256)) * 4
    put = admin("PUT", f"/{c}/r", content=body)
    etag = put.headers["Etag"]
    assert etag == hashlib.md5(body).hexdigest()
    r = admin("GET", f"/{c}/r", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == body[10:20] and r.headers["Content-Range"] == "bytes 10-19/1024"
    r = admin("GET", f"/{c}/r", headers={"Range": "bytes=-4"})
    assert r.status_code == 206 and r.content == body[-4:]
    r = admin("GET", f"/{c}/r", headers={"Range": "bytes=1000-"})
    assert r.content == body[1000:]
    r = admin("GET", f"/{c}/r", headers={"Range": "bytes=5000-6000"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */1024"
    assert admin("GET", f"/{c}/r", headers={"If-None-Match": etag}).status_code == 304
    assert admin("GET", f"/{c}/r", headers={"If-None-Match": f'"{etag}"'}).status_code == 304
    assert admin("GET", f"/{c}/r", headers={"If-Match": "nope"}).status_code == 412
    assert admin("GET", f"/{c}/r", headers={"If-Match": etag}).status_code == 200
    lm = admin("HEAD", f"/{c}/r").headers["Last-Modified"]
    assert admin("GET", f"/{c}/r", headers={"If-Modified-Since": lm}).status_code == 304
    assert admin("GET", f"/{c}/r", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 200
    assert admin("GET", f"/{c}/r", headers={"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status_code == 412
    head = admin("HEAD", f"/{c}/r")
    assert head.headers["Content-Length"] == "1024" and head.headers["Accept-Ranges"] == "bytes"
    assert head.headers["Etag"] == etag and "X-Timestamp" in head.headers
    # PUT: If-None-Match: *, ETag check, content type guess
    assert admin("PUT", f"/{c}/r", content=b"x", headers={"If-None-Match": "*"}).status_code == 412
    bad = admin("PUT", f"/{c}/e", content=b"abc", headers={"ETag": "0" * 32})
    assert bad.status_code == 422 and bad.text == (
        "<html><h1>Unprocessable Entity</h1><p>Unable to process the contained instructions</p></html>")
    assert admin("GET", f"/{c}/e").status_code == 404
    ok = admin("PUT", f"/{c}/e.json", content=b"{}", headers={"ETag": hashlib.md5(b"{}").hexdigest()})
    assert ok.status_code == 201
    assert admin("HEAD", f"/{c}/e.json").headers["content-type"] == "application/json"
    # chunked upload
    r = admin("PUT", f"/{c}/chunked", content=iter([b"ab", b"cd"]))
    assert r.status_code == 201 and admin("GET", f"/{c}/chunked").content == b"abcd"


def test_errors_conflict_and_not_found(cloud, admin):
    c = unique()
    admin("PUT", f"/{c}")
    admin("PUT", f"/{c}/o", content=b"1")
    r = admin("DELETE", f"/{c}")
    assert r.status_code == 409
    assert r.text == "<html><h1>Conflict</h1><p>There was a conflict when trying to complete your request.</p></html>"
    res = swift(cloud, "delete", c, "o")
    assert res.returncode == 0
    assert admin("DELETE", f"/{c}").status_code == 204
    r = admin("GET", f"/{c}/o")
    assert r.status_code == 404 and r.text == "<html><h1>Not Found</h1><p>The resource could not be found.</p></html>"
    assert admin("HEAD", f"/{c}").status_code == 404
    assert admin("PUT", f"/{c}/o", content=b"1").status_code == 404  # no container
    assert admin("PUT", f"/{'x' * 257}").status_code == 400
    r = httpx.get(f"{admin.base}")
    assert r.status_code == 401 and "Www-Authenticate" in r.headers
    r = httpx.get(f"{admin.base}", headers={"X-Auth-Token": "garbage"})
    assert r.status_code == 401


# ---------------------------------------------------------------------------- authorization
def test_cross_project_forbidden_and_reader_read_only(cloud, users, tmp_path):
    member = Client(cloud, users["member"], "alpha")
    c = unique()
    assert member("PUT", f"/{c}").status_code == 201
    assert member("PUT", f"/{c}/o", content=b"mine").status_code == 201
    # a member of another project: 403 on everything in alpha's account
    other = Client(cloud, users["other"], "beta", account_project_id=users["alpha_id"])
    for method, path in (("GET", ""), ("HEAD", f"/{c}"), ("GET", f"/{c}/o"), ("PUT", f"/{c}/x"),
                         ("DELETE", f"/{c}/o"), ("POST", "")):
        r = other(method, path, content=b"" if method == "PUT" else None)
        assert r.status_code == 403, (method, path, r.status_code)
    assert other("GET", "").text == "<html><h1>Forbidden</h1><p>Access was denied to this resource.</p></html>"
    # admin of the admin project is not the owner of alpha's account either (keystoneauth)
    assert Client(cloud, account_project_id=users["alpha_id"])("GET", "").status_code == 403
    # a reader of alpha reads but cannot write
    reader = Client(cloud, users["reader"], "alpha")
    assert reader("GET", f"/{c}/o").content == b"mine"
    assert reader("GET", "").status_code == 200
    assert reader("PUT", f"/{c}/new", content=b"no").status_code == 403
    assert reader("DELETE", f"/{c}/o").status_code == 403
    assert reader("POST", f"/{c}", headers={"X-Container-Meta-X": "1"}).status_code == 403
    res = swift(cloud, "list", c, user=users["reader"], project="alpha")
    assert res.stdout.split() == ["o"]
    (tmp_path / "f").write_text("x")
    res = swift(cloud, "upload", c, "f", user=users["reader"], project="alpha", cwd=tmp_path, check=False)
    assert res.returncode != 0 and "403" in res.stderr
    # the other project's own account is separate
    beta = Client(cloud, users["other"], "beta")
    assert c not in beta("GET", "").text.split()


def test_corrupt_or_missing_replicas(cloud, admin):
    """Reads skip a truncated/garbled replica; a write needs a quorum (2 of 3) of devices."""
    from pocketstack.object.storage import read_trailer

    c = unique()
    admin("PUT", f"/{c}")
    admin("PUT", f"/{c}/o", content=b"0123456789")
    devices = cloud.state_dir / "object" / "devices"
    ours = sorted(p for p in devices.glob("*/objects/*/*/*/*.data") if read_trailer(p)["name"].endswith(f"/{c}/o"))
    assert len(ours) == 3
    ours[0].write_bytes(b"garbage")
    ours[1].write_bytes(ours[1].read_bytes()[3:])  # truncated
    r = admin("GET", f"/{c}/o")
    assert r.status_code == 200 and r.content == b"0123456789"
    assert admin("HEAD", f"/{c}/o").headers["Content-Length"] == "10"


def test_guide_v2_flow(cloud, tmp_path):
    """The install guide's check: `swift -V 2.0 -A $OS_AUTH_URL -U project:user -K $PASS stat/upload/download`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    base = [SWIFT, "-V", "2.0", "-A", cloud.url + "/v2.0", "-U", "admin:admin", "-K", cloud.admin_password]
    (tmp_path / "guide.txt").write_text("guide\n")
    c = unique()
    for args in (["stat"], ["upload", c, "guide.txt"], ["list", c]):
        res = subprocess.run(base + args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["guide.txt"]
    res = subprocess.run(base + ["download", c, "guide.txt", "-o", "-"], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert res.stdout == "guide\n"
