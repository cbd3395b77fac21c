"""Object Storage middleware features: quotas, versioning (stack and history), expiry, CORS,
symlinks, `/info` and `/crossdomain.xml`, driven with the `swift` CLI and raw HTTP."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import Cloud

SWIFT = str(Path(sys.executable).parent / "swift")
OBJECT_CONFIG = {("pocketstack", "enabled_services"): "identity,object", ("object", "expirer_interval"): "1"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("objfeatures"), config=OBJECT_CONFIG)
    c.start()
    yield c
    c.stop()


class Client:
    def __init__(self, cloud, user="admin", password=None, project="admin"):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password or cloud.admin_password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        r = httpx.post(cloud.auth_url + "/auth/tokens", json=body)
        assert r.status_code == 201, r.text
        self.token = r.headers["X-Subject-Token"]
        self.account = "AUTH_" + r.json()["token"]["project"]["id"]
        self.base = f"{cloud.url}/object/v1/{self.account}"
        self.http = httpx.Client(headers={"X-Auth-Token": self.token}, timeout=60)

    def __call__(self, method, path="", **kw):
        return self.http.request(method, self.base + path, **kw)


@pytest.fixture(scope="module")
def admin(cloud):
    return Client(cloud)


def unique(prefix="c"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def swift(cloud, *args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    res = subprocess.run([SWIFT, "--os-auth-url", cloud.auth_url, "--auth-version", "3", "--os-username", "admin",
                          "--os-password", cloud.admin_password, "--os-project-name", "admin",
                          "--os-user-domain-name", "Default", "--os-project-domain-name", "Default", *args],
                         capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    return res


# ---------------------------------------------------------------------------- /info
def test_info_capabilities(cloud):
    info = httpx.get(cloud.url + "/object/info").json()
    swift_info = info["swift"]
    for key in ("max_file_size", "max_meta_name_length", "max_meta_value_length", "max_meta_count",
                "max_meta_overall_size", "container_listing_limit", "account_listing_limit",
                "max_object_name_length", "max_container_name_length", "policies", "version", "strict_cors_mode",
                "allow_account_management", "account_autocreate", "valid_api_versions"):
        assert key in swift_info, key
    for key in ("tempurl", "account_quotas", "container_quotas", "versioned_writes", "symlink", "tempauth",
                "crossdomain"):
        assert key in info, key
    assert info["versioned_writes"]["allowed_flags"] == ["x-versions-location", "x-history-location"]
    assert info["symlink"]["symloop_max"] == 2 and info["tempauth"] == {"account_acls": True}
    assert {"incoming_remove_headers", "outgoing_allow_headers"} <= set(info["tempurl"])
    res = swift(cloud, "capabilities")
    assert res.returncode == 0 and "tempurl" in res.stdout and "versioned_writes" in res.stdout


def test_crossdomain(cloud):
    r = httpx.get(cloud.url + "/object/crossdomain.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert r.text.startswith('<?xml version="1.0"?>\n<!DOCTYPE cross-domain-policy SYSTEM ')
    assert r.text.endswith("</cross-domain-policy>")


# ---------------------------------------------------------------------------- quotas
def test_container_quotas(admin):
    c = unique()
    assert admin("PUT", f"/{c}", headers={"X-Container-Meta-Quota-Bytes": "10",
                                          "X-Container-Meta-Quota-Count": "2"}).status_code == 201
    assert admin("PUT", f"/{c}/a", content=b"12345").status_code == 201
    r = admin("PUT", f"/{c}/b", content=b"1234567")
    assert r.status_code == 413 and r.text == "Upload exceeds quota."
    # a chunked upload with no length is cut off too, and nothing is kept
    r = admin("PUT", f"/{c}/chunked", content=iter([b"123", b"4567"]))
    assert r.status_code == 413
    assert admin("HEAD", f"/{c}/chunked").status_code == 404
    assert admin("PUT", f"/{c}/b", content=b"123").status_code == 201
    r = admin("PUT", f"/{c}/c", content=b"")
    assert r.status_code == 413  # count quota: 2 objects
    head = admin("HEAD", f"/{c}").headers
    assert (head["x-container-object-count"], head["x-container-bytes-used"]) == ("2", "8")
    r = admin("POST", f"/{c}", headers={"X-Container-Meta-Quota-Bytes": "lots"})
    assert r.status_code == 400 and r.text == "Invalid bytes quota."
    r = admin("POST", f"/{c}", headers={"X-Container-Meta-Quota-Count": "-1"})
    assert r.status_code == 400 and r.text == "Invalid count quota."
    # copies count too
    r = admin("PUT", f"/{c}/copy", headers={"X-Copy-From": f"{c}/a"})
    assert r.status_code == 413


def test_account_quota_needs_reseller_admin(cloud):
    cloud.openstack("project", "create", "--domain", "default", "quota-proj")
    name, pw = cloud.make_user("quota-proj", "member")
    member = Client(cloud, name, pw, "quota-proj")
    rname, rpw = cloud.make_user("admin", "ResellerAdmin")
    reseller = Client(cloud, rname, rpw, "admin")
    # the owner may not set its own quota
    assert member("POST", headers={"X-Account-Meta-Quota-Bytes": "20"}).status_code == 403
    r = reseller.http.post(member.base, headers={"X-Account-Meta-Quota-Bytes": "20"})
    assert r.status_code == 204
    r = reseller.http.post(member.base, headers={"X-Account-Quota-Bytes": "x"})
    assert r.status_code == 400
    assert member("HEAD").headers["x-account-meta-quota-bytes"] == "20"
    c = unique()
    member("PUT", f"/{c}")
    assert member("PUT", f"/{c}/ok", content=b"x" * 15).status_code == 201
    before = member("HEAD").headers["x-account-bytes-used"]
    r = member("PUT", f"/{c}/big", content=b"x" * 10)
    assert r.status_code == 413 and r.text == "Upload exceeds quota."
    assert member("HEAD").headers["x-account-bytes-used"] == before
    # object count quota (X-Account-Quota-Count)
    reseller.http.post(member.base, headers={"X-Remove-Account-Meta-Quota-Bytes": "x", "X-Account-Quota-Count": "1"})
    assert "x-account-meta-quota-bytes" not in member("HEAD").headers
    assert member("PUT", f"/{c}/two", content=b"x").status_code == 413
    reseller.http.post(member.base, headers={"X-Remove-Account-Quota-Count": "x"})
    assert member("PUT", f"/{c}/two", content=b"x").status_code == 201


# ---------------------------------------------------------------------------- versioning
def test_versions_location_stack_mode(cloud, admin):
    c, v = unique("vbase"), unique("vers")
    # the archive container must exist
    assert admin("PUT", f"/{c}", headers={"X-Versions-Location": v}).status_code == 201
    assert admin("PUT", f"/{c}/obj", content=b"one").status_code == 201  # nothing to archive yet
    assert admin("PUT", f"/{c}/obj", content=b"two").status_code == 412
    assert admin("DELETE", f"/{c}/other").status_code == 404
    assert admin("PUT", f"/{v}").status_code == 201
    assert admin("HEAD", f"/{c}").headers["x-versions-location"] == v
    for data in (b"two", b"three"):
        assert admin("PUT", f"/{c}/obj", content=data).status_code == 201
    names = admin("GET", f"/{v}").text.split()
    assert len(names) == 2 and all(n.startswith("003obj/") for n in names)
    assert [admin("GET", f"/{v}/{n}").content for n in names] == [b"one", b"two"]
    assert admin("GET", f"/{c}/obj").content == b"three"
    # DELETE pops the previous version back
    assert admin("DELETE", f"/{c}/obj").status_code == 204
    assert admin("GET", f"/{c}/obj").content == b"two"
    assert admin("DELETE", f"/{c}/obj").status_code == 204
    assert admin("GET", f"/{c}/obj").content == b"one"
    assert admin("DELETE", f"/{c}/obj").status_code == 204
    assert admin("GET", f"/{c}/obj").status_code == 404
    assert admin("GET", f"/{v}").status_code == 204  # empty archive
    # swift CLI sees the setting; removing it stops versioning
    res = swift(cloud, "stat", c)
    assert f"Versions-Location: {v}" in res.stdout or v in res.stdout
    admin("POST", f"/{c}", headers={"X-Remove-Versions-Location": "x"})
    assert "x-versions-location" not in admin("HEAD", f"/{c}").headers
    admin("PUT", f"/{c}/obj", content=b"a")
    admin("PUT", f"/{c}/obj", content=b"b")
    assert admin("GET", f"/{v}").status_code == 204


def test_history_location_mode(admin):
    c, v = unique("hbase"), unique("hist")
    admin("PUT", f"/{v}")
    assert admin("PUT", f"/{c}", headers={"X-History-Location": v}).status_code == 201
    head = admin("HEAD", f"/{c}").headers
    assert head["x-history-location"] == v and "x-versions-location" not in head
    admin("PUT", f"/{c}/doc", content=b"v1")
    admin("PUT", f"/{c}/doc", content=b"v2")
    assert admin("DELETE", f"/{c}/doc").status_code == 204
    assert admin("GET", f"/{c}/doc").status_code == 404  # history mode does not restore
    listing = admin("GET", f"/{v}", params={"format": "json"}).json()
    assert [x["name"][:7] for x in listing] == ["003doc/"] * 3
    assert [x["content_type"] for x in listing][-1] == "application/x-deleted;swift_versions_deleted=1"
    assert [admin("GET", f"/{v}/{x['name']}").content for x in listing[:2]] == [b"v1", b"v2"]
    # both modes at once: 400; slashes: 412
    r = admin("POST", f"/{c}", headers={"X-Versions-Location": v, "X-History-Location": v})
    assert r.status_code == 400
    assert admin("POST", f"/{c}", headers={"X-Versions-Location": "a/b"}).status_code == 412
    # switching modes replaces the other
    admin("POST", f"/{c}", headers={"X-Versions-Location": v})
    head = admin("HEAD", f"/{c}").headers
    assert head["x-versions-location"] == v and "x-history-location" not in head


# ---------------------------------------------------------------------------- expiry
def test_delete_at_and_after(admin):
    c = unique()
    admin("PUT", f"/{c}")
    at = int(time.time()) + 300
    assert admin("PUT", f"/{c}/later", content=b"x", headers={"X-Delete-At": str(at)}).status_code == 201
    assert admin("HEAD", f"/{c}/later").headers["x-delete-at"] == str(at)
    for headers, text in (({"X-Delete-At": "soon"}, "Non-integer X-Delete-At"),
                          ({"X-Delete-At": str(int(time.time()) - 5)}, "X-Delete-At in past"),
                          ({"X-Delete-After": "x"}, "Non-integer X-Delete-After"),
                          ({"X-Delete-After": "-1"}, "X-Delete-After in past")):
        r = admin("PUT", f"/{c}/bad", content=b"x", headers=headers)
        assert (r.status_code, r.text) == (400, text), headers
        r = admin("POST", f"/{c}/later", headers=headers)
        assert r.status_code == 400, headers
    assert admin("HEAD", f"/{c}/bad").status_code == 404
    # expiring soon: 404 at once after the time, gone from listings and counts
    assert admin("PUT", f"/{c}/brief", content=b"12345", headers={"X-Delete-After": "2"}).status_code == 201
    assert admin("GET", f"/{c}/brief").status_code == 200
    # POST sets an expiry on an existing object
    admin("PUT", f"/{c}/posted", content=b"p")
    assert admin("POST", f"/{c}/posted", headers={"X-Delete-After": "2"}).status_code == 202
    time.sleep(3.2)
    for name in ("brief", "posted"):
        assert admin("GET", f"/{c}/{name}").status_code == 404
        assert admin("HEAD", f"/{c}/{name}").status_code == 404
        assert admin("POST", f"/{c}/{name}", headers={"X-Object-Meta-A": "b"}).status_code == 404
    assert admin("GET", f"/{c}").text.split() == ["later"]
    assert admin("HEAD", f"/{c}").headers["x-container-object-count"] == "1"


def test_expirer_removes_objects_in_background(cloud, admin):
    c = unique()
    admin("PUT", f"/{c}")
    admin("PUT", f"/{c}/gone", content=b"bye", headers={"X-Delete-After": "1"})
    devices = cloud.state_dir / "object" / "devices"
    from pocketstack.object.storage import read_trailer

    def data_files():
        return [p for p in devices.glob("*/objects/*/*/*/*.data") if read_trailer(p)["name"].endswith(f"/{c}/gone")]

    assert len(data_files()) == 3
    deadline = time.time() + 15
    while data_files() and time.time() < deadline:
        time.sleep(0.5)
    assert data_files() == []  # the expirer thread deleted it without any request touching it
    events = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "object.object.expired" in events


# ---------------------------------------------------------------------------- CORS
def test_cors_preflight_and_actual_requests(cloud, admin):
    c = unique()
    admin("PUT", f"/{c}", headers={"X-Container-Meta-Access-Control-Allow-Origin": "http://app.example.com",
                                   "X-Container-Meta-Access-Control-Max-Age": "600",
                                   "X-Container-Meta-Access-Control-Expose-Headers": "X-My-Header"})
    admin("PUT", f"/{c}/o", content=b"cors", headers={"X-Object-Meta-Color": "red"})
    url = f"{admin.base}/{c}/o"
    # a preflight needs no token
    r = httpx.options(url, headers={"Origin": "http://app.example.com", "Access-Control-Request-Method": "GET",
                                    "Access-Control-Request-Headers": "x-auth-token"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://app.example.com"
    assert r.headers["access-control-max-age"] == "600"
    assert "GET" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "x-auth-token"
    r = httpx.options(url, headers={"Origin": "http://evil.example.com", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 401
    r = httpx.options(url, headers={"Origin": "http://app.example.com", "Access-Control-Request-Method": "BREW"})
    assert r.status_code == 401
    r = httpx.options(url)
    assert r.status_code == 200 and "GET" in r.headers["allow"]
    # actual requests
    r = admin("GET", f"/{c}/o", headers={"Origin": "http://app.example.com"})
    assert r.headers["access-control-allow-origin"] == "http://app.example.com"
    exposed = r.headers["access-control-expose-headers"]
    assert "etag" in exposed and "x-object-meta-color" in exposed and "x-my-header" in exposed
    r = admin("GET", f"/{c}/o", headers={"Origin": "http://evil.example.com"})
    assert "access-control-allow-origin" not in r.headers
    # errors carry CORS headers too, so the browser can read them
    r = httpx.get(f"{admin.base}/{c}/missing", headers={"Origin": "http://app.example.com"})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "http://app.example.com"
    r = admin("GET", f"/{c}/missing", headers={"Origin": "http://app.example.com"})
    assert r.status_code == 404 and r.headers["access-control-allow-origin"] == "http://app.example.com"
    # "*" answers "*"
    admin("POST", f"/{c}", headers={"X-Container-Meta-Access-Control-Allow-Origin": "*"})
    r = httpx.options(url, headers={"Origin": "http://any.example.org", "Access-Control-Request-Method": "PUT"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"


# ---------------------------------------------------------------------------- symlinks
def test_symlinks(cloud, admin, tmp_path):
    c, t = unique("links"), unique("targets")
    admin("PUT", f"/{c}")
    admin("PUT", f"/{t}")
    admin("PUT", f"/{t}/real", content=b"the target", headers={"Content-Type": "text/plain"})
    r = admin("PUT", f"/{c}/link", content=b"", headers={"X-Symlink-Target": f"{t}/real"})
    assert r.status_code == 201
    r = admin("GET", f"/{c}/link")
    assert r.content == b"the target" and r.headers["content-location"] == f"/v1/{admin.account}/{t}/real"
    assert r.headers["content-type"] == "text/plain"
    r = admin("HEAD", f"/{c}/link", params={"symlink": "get"})
    assert r.headers["x-symlink-target"] == f"{t}/real" and r.headers["content-type"] == "application/symlink"
    assert r.headers["content-length"] == "0"
    r = admin("GET", f"/{c}/link", params={"symlink": "get"})
    assert r.content == b""
    listing = {x["name"]: x for x in admin("GET", f"/{c}", params={"format": "json"}).json()}
    assert listing["link"]["symlink_path"] == f"/v1/{admin.account}/{t}/real"
    assert listing["link"]["hash"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert listing["link"]["content_type"] == "application/symlink"
    # swift CLI: --symlink-target style via headers, and download follows the link
    res = swift(cloud, "download", c, "link", "-o", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out").read_bytes() == b"the target"
    # bad requests
    r = admin("PUT", f"/{c}/bad", content=b"body", headers={"X-Symlink-Target": f"{t}/real"})
    assert (r.status_code, r.text) == (400, "Symlink requests require a zero byte body")
    r = admin("PUT", f"/{c}/bad", content=b"", headers={"X-Symlink-Target": "no-slash"})
    assert r.status_code == 412
    r = admin("PUT", f"/{c}/self", content=b"", headers={"X-Symlink-Target": f"{c}/self"})
    assert (r.status_code, r.text) == (400, "Symlink cannot target itself")
    # dangling link: 404; loops past the limit: 409
    admin("PUT", f"/{c}/dangling", content=b"", headers={"X-Symlink-Target": f"{t}/missing"})
    assert admin("GET", f"/{c}/dangling").status_code == 404
    admin("PUT", f"/{c}/l1", content=b"", headers={"X-Symlink-Target": f"{c}/l2"})
    admin("PUT", f"/{c}/l2", content=b"", headers={"X-Symlink-Target": f"{c}/l3"})
    admin("PUT", f"/{c}/l3", content=b"", headers={"X-Symlink-Target": f"{c}/l1"})
    r = admin("GET", f"/{c}/l1")
    assert r.status_code == 409 and "Too many levels of symbolic links, maximum allowed is 2" in r.text
    # POST to a symlink: applied to the link, answered 307 towards the target
    r = admin("POST", f"/{c}/link", headers={"X-Object-Meta-A": "b"}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"].endswith(f"/{t}/real")
    assert admin("HEAD", f"/{c}/link", params={"symlink": "get"}).headers["x-symlink-target"] == f"{t}/real"


def test_static_symlinks_and_cross_account(cloud, admin):
    c = unique("static")
    admin("PUT", f"/{c}")
    put = admin("PUT", f"/{c}/target", content=b"static data")
    etag = put.headers["etag"]
    r = admin("PUT", f"/{c}/slink", content=b"", headers={"X-Symlink-Target": f"{c}/target",
                                                          "X-Symlink-Target-Etag": etag})
    assert r.status_code == 201
    r = admin("HEAD", f"/{c}/slink", params={"symlink": "get"})
    assert r.headers["x-symlink-target-etag"] == etag and r.headers["x-symlink-target-bytes"] == "11"
    assert admin("GET", f"/{c}/slink").content == b"static data"
    listing = {x["name"]: x for x in admin("GET", f"/{c}", params={"format": "json"}).json()}
    assert (listing["slink"]["symlink_etag"], listing["slink"]["symlink_bytes"]) == (etag, 11)
    r = admin("PUT", f"/{c}/slink2", content=b"", headers={"X-Symlink-Target": f"{c}/target",
                                                           "X-Symlink-Target-Etag": "0" * 32})
    assert r.status_code == 409
    r = admin("PUT", f"/{c}/slink3", content=b"", headers={"X-Symlink-Target": f"{c}/nothing",
                                                           "X-Symlink-Target-Etag": etag})
    assert (r.status_code, r.text) == (409, "X-Symlink-Target does not exist")
    # the target changes: the static link now fails
    admin("PUT", f"/{c}/target", content=b"changed")
    assert admin("GET", f"/{c}/slink").status_code == 409
    # a link into another account is only as good as the caller's access there
    cloud.openstack("project", "create", "--domain", "default", "linkproj")
    name, pw = cloud.make_user("linkproj", "member")
    other = Client(cloud, name, pw, "linkproj")
    oc = unique("theirs")
    other("PUT", f"/{oc}")
    other("PUT", f"/{oc}/secret", content=b"private")
    admin("PUT", f"/{c}/xlink", content=b"", headers={"X-Symlink-Target": f"{oc}/secret",
                                                      "X-Symlink-Target-Account": other.account})
    assert admin("GET", f"/{c}/xlink").status_code == 403
    other("POST", f"/{oc}", headers={"X-Container-Read": ".r:*"})
    assert admin("GET", f"/{c}/xlink").content == b"private"


# ---------------------------------------------------------------------------- static web
def test_static_web_site(admin):
    c = unique("site")
    admin("PUT", f"/{c}", headers={"X-Container-Read": ".r:*,.rlistings",
                                   "X-Container-Meta-Web-Index": "index.html",
                                   "X-Container-Meta-Web-Error": "error.html"})
    for name, body in (("index.html", b"<h1>home</h1>"), ("docs/index.html", b"<h1>docs</h1>"),
                       ("404error.html", b"<h1>not here</h1>"), ("files/a.txt", b"a")):
        admin("PUT", f"/{c}/{name}", content=body, headers={"Content-Type": "text/html"})
    site = f"{admin.base}/{c}"
    r = httpx.get(site)
    assert r.status_code == 301 and r.headers["location"] == f"{site}/"
    r = httpx.get(site, follow_redirects=True)
    assert (r.status_code, r.content) == (200, b"<h1>home</h1>")
    assert httpx.get(f"{site}/docs").headers["location"] == f"{site}/docs/"
    assert httpx.get(f"{site}/docs/").content == b"<h1>docs</h1>"
    r = httpx.get(f"{site}/nothing.html")
    assert (r.status_code, r.content) == (404, b"<h1>not here</h1>")
    # listings of a directory without an index: disabled until Web-Listings is set
    assert httpx.get(f"{site}/files/").status_code == 404
    admin("POST", f"/{c}", headers={"X-Container-Meta-Web-Listings": "true",
                                    "X-Container-Meta-Web-Listings-CSS": "style.css"})
    r = httpx.get(f"{site}/files/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'href="./a%2Etxt">a.txt</a>' in r.text
    assert '<link rel="stylesheet" type="text/css" href="../style.css" />' in r.text
    # token requests see the API unless they ask for the web view
    assert admin("GET", f"/{c}").text.split()[0] == "404error.html"
    r = admin("GET", f"/{c}/", headers={"X-Web-Mode": "true"})
    assert r.content == b"<h1>home</h1>"
