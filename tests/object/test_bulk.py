"""Bulk delete and extract-archive, driven by the real `swift` CLI, curl and raw HTTP."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from conftest import Cloud

SWIFT = str(Path(sys.executable).parent / "swift")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("bulkcloud"),
              config={("pocketstack", "enabled_services"): "identity,object"})
    c.start()
    yield c
    c.stop()


def swift(cloud, *args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    res = subprocess.run([SWIFT, "--os-auth-url", cloud.auth_url, "--auth-version", "3", "--os-username", "admin",
                          "--os-password", cloud.admin_password, "--os-project-name", "admin",
                          "--os-user-domain-name", "Default", "--os-project-domain-name", "Default", *args],
                         capture_output=True, text=True, timeout=180, cwd=cwd, env=env)
    assert res.returncode == 0, f"swift {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


class Client:
    def __init__(self, cloud, user=None, project="admin"):
        name, password = user or ("admin", cloud.admin_password)
        self.token = cloud.token(name, password, project)
        r = httpx.get(cloud.auth_url + "/auth/tokens", headers={"X-Auth-Token": self.token,
                                                              "X-Subject-Token": self.token})
        self.account = "AUTH_" + r.json()["token"]["project"]["id"]
        self.base = f"{cloud.url}/object/v1/{self.account}"
        self.http = httpx.Client(headers={"X-Auth-Token": self.token}, timeout=120)

    def __call__(self, method, path="", **kw):
        return self.http.request(method, self.base + path, **kw)

    def names(self, container):
        r = self("GET", f"/{container}", params={"format": "json"})
        return [o["name"] for o in r.json()] if r.status_code == 200 else None


@pytest.fixture(scope="module")
def api(cloud):
    return Client(cloud)


def unique(prefix="bk"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def keystone_user(cloud, project: str, role: str = "member") -> tuple[tuple[str, str], str]:
    """A fresh user with `role` on `project` (created when missing), via Keystone's REST API
    (faster than the CLI); returns ((name, password), project_id)."""
    h = {"X-Auth-Token": cloud.token()}
    r = httpx.get(cloud.auth_url + "/projects", params={"name": project}, headers=h)
    found = r.json()["projects"]
    if found:
        pid = found[0]["id"]
    else:
        r = httpx.post(cloud.auth_url + "/projects", json={"project": {"name": project, "domain_id": "default"}},
                       headers=h)
        pid = r.json()["project"]["id"]
    name, password = f"u-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex[:12]}"
    r = httpx.post(cloud.auth_url + "/users", json={"user": {"name": name, "password": password,
                                                             "domain_id": "default"}}, headers=h)
    uid = r.json()["user"]["id"]
    rid = httpx.get(cloud.auth_url + "/roles", params={"name": role}, headers=h).json()["roles"][0]["id"]
    assert httpx.put(f"{cloud.auth_url}/projects/{pid}/users/{uid}/roles/{rid}", headers=h).status_code == 204
    return (name, password), pid


def curl(*args, data: bytes | None = None) -> tuple[int, bytes]:
    res = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args], input=data,
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    body, _, code = res.stdout.rpartition(b"\n")
    return int(code), body


def make_tar(members: dict[str, bytes], mode: str = "w", pax: dict[str, dict] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if pax and name in pax:
                info.pax_headers = pax[name]
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------------------- bulk delete
def test_swift_delete_uses_bulk_delete(cloud, api):
    c = unique()
    api("PUT", f"/{c}")
    for i in range(25):  # swiftclient bulk-deletes past 2 x its 10 delete threads
        api("PUT", f"/{c}/o{i:02d} é", content=b"x")
    out = swift(cloud, "--debug", "delete", c)
    assert "?bulk-delete" in out.stderr and "-X POST" in out.stderr  # it did use bulk delete
    assert api("HEAD", f"/{c}").status_code == 404
    assert "o00 é" in out.stdout


def test_bulk_delete_with_curl_all_formats(cloud, api):
    c, full = unique(), unique()
    api("PUT", f"/{c}")
    api("PUT", f"/{full}")
    api("PUT", f"/{full}/keep", content=b"1")
    for name in ("a", "b/c", "ünï cödé"):
        api("PUT", f"/{c}/{name}", content=b"data")
    body = "\n".join(quote(n) for n in [f"/{c}/a", f"{c}/b/c", f"/{c}/ünï cödé", f"/{c}/missing",
                                          f"/{full}", f"/{c}"]).encode()
    code, out = curl("-X", "POST", f"{api.base}?bulk-delete", "-H", f"X-Auth-Token: {api.token}",
                     "-H", "Content-Type: text/plain", "-H", "Accept: application/json", "--data-binary", "@-",
                     data=body)
    assert code == 200
    result = json.loads(out)
    assert result["Number Deleted"] == 4 and result["Number Not Found"] == 1
    assert result["Response Status"] == "400 Bad Request"
    assert result["Errors"] == [[quote(f"/{full}"), "409 Conflict"]]
    assert api("HEAD", f"/{c}").status_code == 404 and api.names(full) == ["keep"]
    # plain text (the default) and XML; DELETE ?bulk-delete works like POST (Tempest)
    api("PUT", f"/{c}")
    api("PUT", f"/{c}/x", content=b"1")
    r = api("DELETE", "", params={"bulk-delete": ""}, content=f"{c}/x\n{c}".encode())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text.splitlines() == ["Number Deleted: 2", "Number Not Found: 0", "Response Body: ",
                                   "Response Status: 200 OK", "Errors:"]
    r = api("POST", "", params={"bulk-delete": ""}, content=f"/{full}/keep\n/{full}\n".encode(),
            headers={"Accept": "application/xml"})
    root = ET.fromstring(r.content)
    assert root.tag == "delete" and root.findtext("number_deleted") == "2"
    assert root.findtext("response_status") == "200 OK"
    # nothing to do, a foreign body type, names too long
    r = api("POST", "", params={"bulk-delete": ""}, content=b"\n\n", headers={"Accept": "application/json"})
    assert r.json()["Response Status"] == "400 Bad Request" and r.json()["Response Body"] == "Invalid bulk delete."
    r = api("POST", "", params={"bulk-delete": ""}, content=b"[]",
            headers={"Content-Type": "application/json", "Accept": "application/json"})
    assert r.status_code == 200 and r.json()["Response Status"] == "406 Not Acceptable"
    r = api("POST", "", params={"bulk-delete": ""}, content=b"/c/" + b"x" * 5000,
            headers={"Accept": "application/json"})
    assert r.json()["Response Status"] == "400 Bad Request" and r.json()["Response Body"] == "Invalid File Name"
    many = "".join(f"/c/{i}\n" for i in range(10001)).encode()
    r = api("POST", "", params={"bulk-delete": ""}, content=many, headers={"Accept": "application/json"})
    assert r.json()["Response Status"] == "413 Request Entity Too Large"
    assert r.json()["Response Body"] == "Maximum Bulk Deletes: 10000 per request"
    r = api("POST", "", params={"bulk-delete": ""}, content=b"/c/a%00b\n/c/%FF%FE\n/" + b"c" * 300,
            headers={"Accept": "application/json"})
    assert sorted(s for _, s in r.json()["Errors"]) == ["400 Bad Request", "412 Precondition Failed",
                                                        "412 Precondition Failed"]
    r = api("POST", "", params={"bulk-delete": ""}, content=b"/c/o", headers={"Accept": "image/png"})
    assert r.status_code == 200 and b"406 Not Acceptable" in r.content


def test_bulk_needs_write_access_on_the_account(cloud, api):
    c = unique()
    api("PUT", f"/{c}")
    api("PUT", f"/{c}/o", content=b"1")
    project = unique("p")
    reader = Client(cloud, keystone_user(cloud, "admin", "reader")[0])
    other = Client(cloud, keystone_user(cloud, project)[0], project)
    # as upstream (bulk runs each name as its own request): 200, every name refused in the body
    for who in (reader, other):
        r = who.http.post(api.base, params={"bulk-delete": ""}, content=f"/{c}/o\n/{c}".encode(),
                          headers={"Accept": "application/json"})
        assert r.status_code == 200 and r.json()["Number Deleted"] == 0
        assert r.json()["Errors"] == [[f"/{c}/o", "403 Forbidden"], [f"/{c}", "403 Forbidden"]]
    r = other.http.put(api.base, params={"extract-archive": "tar"}, content=make_tar({f"{c}/evil": b"x",
                                                                                       "newc/evil": b"x"}),
                       headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.json()["Number Files Created"] == 0
    assert sorted(s for _, s in r.json()["Errors"]) == ["403 Forbidden"] * 2
    r = httpx.post(api.base, params={"bulk-delete": ""}, content=f"/{c}/o".encode())
    assert r.status_code == 401
    assert api.names(c) == ["o"] and api("HEAD", "/newc").status_code == 404
    # a bulk delete only ever touches the caller's own account
    r = other("POST", "", params={"bulk-delete": ""}, content=f"/{c}/o".encode(),
              headers={"Accept": "application/json"})
    assert r.json()["Number Not Found"] == 1 and api.names(c) == ["o"]


# ---------------------------------------------------------------------------- extract archive
def test_extract_archive_account_level_tar_with_curl(cloud, api, tmp_path):
    c = unique()
    tar_bytes = make_tar({f"{c}/hello.txt": b"hello", f"{c}/dir/page.html": b"<p>", "toplevel.txt": b"ignored",
                          f"./{c}/dot.json": b"{}"},
                         pax={f"{c}/hello.txt": {"SCHILY.xattr.user.mime_type": "text/x-hello",
                                                 "SCHILY.xattr.user.meta.lunch": "burger"}})
    (tmp_path / "a.tar").write_bytes(tar_bytes)
    code, out = curl("-X", "PUT", f"{api.base}?extract-archive=tar", "-H", f"X-Auth-Token: {api.token}",
                     "-H", "Accept: application/json", "-H", "X-Object-Meta-From: tar", "-T", str(tmp_path / "a.tar"))
    assert code == 200, out
    result = json.loads(out)
    assert result == {"Response Status": "201 Created", "Response Body": "", "Number Files Created": 3,
                      "Errors": []}
    assert sorted(api.names(c)) == ["dir/page.html", "dot.json", "hello.txt"]
    h = api("GET", f"/{c}/hello.txt")
    assert h.content == b"hello" and h.headers["content-type"] == "text/x-hello"
    assert h.headers["x-object-meta-lunch"] == "burger" and h.headers["x-object-meta-from"] == "tar"
    assert api("HEAD", f"/{c}/dir/page.html").headers["content-type"] == "text/html"
    assert api("HEAD", f"/{c}/dot.json").headers["content-type"] == "application/json"


@pytest.mark.parametrize("kind,mode", [("tar.gz", "w:gz"), ("tar.bz2", "w:bz2")])
def test_extract_archive_compressed_into_container_and_prefix(cloud, api, kind, mode):
    c = unique()
    data = os.urandom(300_000)
    archive = make_tar({"a/one.bin": data, "two.txt": b"two"}, mode=mode)
    r = api("PUT", f"/{c}", params={"extract-archive": kind}, content=archive)
    assert r.status_code == 200 and "Number Files Created: 2" in r.text and "201 Created" in r.text
    assert sorted(api.names(c)) == ["a/one.bin", "two.txt"]
    assert api("GET", f"/{c}/a/one.bin").content == data
    # into a pseudo-folder of an existing container; XML answer
    r = api("PUT", f"/{c}/sub/dir", params={"extract-archive": kind}, content=archive,
            headers={"Accept": "text/xml"})
    root = ET.fromstring(r.content)
    assert root.tag == "extract" and root.findtext("number_files_created") == "2"
    assert "sub/dir/two.txt" in api.names(c)


def test_extract_archive_rejects_bad_members_and_archives(cloud, api):
    c = unique()
    before = {p for p in cloud.state_dir.rglob("*") if "devices" not in p.parts}
    members = {f"{c}/ok.txt": b"fine", f"{c}/../../escape.txt": b"evil", "../outside.txt": b"evil",
               f"{c}/./x": b"evil", f"{c}/" + "n" * 1100: b"long", "c" * 300 + "/x": b"long"}
    r = api("PUT", "", params={"extract-archive": "tar"}, content=make_tar(members),
            headers={"Accept": "application/json"})
    result = r.json()
    assert r.status_code == 200 and result["Number Files Created"] == 1
    assert result["Response Status"] == "400 Bad Request"
    statuses = sorted(s for _, s in result["Errors"])
    assert statuses == ["400 Bad Request"] * 5
    assert api.names(c) == ["ok.txt"]
    assert api("HEAD", "/..").status_code in (400, 404)
    after = {p for p in cloud.state_dir.rglob("*") if "devices" not in p.parts}
    assert not any("escape" in p.name or "outside" in p.name for p in after - before)
    # NUL and invalid UTF-8 in (pax) member names: 412, as upstream's check_utf8
    r = api("PUT", "", params={"extract-archive": "tar"}, headers={"Accept": "application/json"},
            content=make_tar({f"{c}/n1": b"z", f"{c}/n2": b"z"},
                             pax={f"{c}/n1": {"path": f"{c}/a\x00b"}, f"{c}/n2": {"path": f"{c}/\udcff"}}))
    assert [s for _, s in r.json()["Errors"]] == ["412 Precondition Failed"] * 2
    assert api.names(c) == ["ok.txt"]
    # a symlink member is skipped, not followed
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        link = tarfile.TarInfo(f"{c}/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    r = api("PUT", "", params={"extract-archive": "tar"}, content=buf.getvalue(),
            headers={"Accept": "application/json"})
    assert r.json()["Response Body"] == "Invalid Tar File: No Valid Files"
    # not a tar at all, a truncated gzip, an unknown format
    r = api("PUT", f"/{c}", params={"extract-archive": "tar.gz"}, content=b"definitely not gzip",
            headers={"Accept": "application/json"})
    assert r.status_code == 200 and r.json()["Response Status"] == "400 Bad Request"
    assert r.json()["Response Body"].startswith("Invalid Tar File")
    gz = make_tar({f"{c}/big": os.urandom(100_000)}, mode="w:gz")
    r = api("PUT", "", params={"extract-archive": "tar.gz"}, content=gz[: len(gz) // 2],
            headers={"Accept": "application/json"})
    assert r.json()["Response Status"] == "400 Bad Request"
    assert "big" not in api.names(c)
    r = api("PUT", f"/{c}", params={"extract-archive": "zip"}, content=b"PK")
    assert r.status_code == 400 and r.text == "Unsupported archive format"


def test_tempest_bulk_flow(cloud, api, tmp_path):
    """Tempest's test_account_bulk: a tar of a directory with one file, then a bulk delete of both."""
    d = tmp_path / unique("dir")
    d.mkdir()
    (d / "file.dat").write_bytes(b"")
    tar_path = tmp_path / "t.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(d, arcname=d.name)
    r = api("PUT", "", params={"extract-archive": "tar"}, content=tar_path.read_bytes())
    assert r.status_code == 200 and "content-type" in r.headers and "Number Files Created: 1" in r.text
    assert d.name in [x["name"] for x in api("GET", "", params={"format": "json"}).json()]
    assert api.names(d.name) == ["file.dat"]
    r = api("DELETE", "", params={"bulk-delete": ""}, content=f"{d.name}/file.dat\n{d.name}".encode())
    assert r.status_code == 200 and "Number Deleted: 2" in r.text
    assert d.name not in api("GET", "", params={"format": "plain"}).text.split()
    events = [json.loads(line) for line in (cloud.state_dir / "logs" / "events.jsonl").read_text().splitlines()]
    kinds = {e["event_type"] for e in events}
    assert {"object.bulk.deleted", "object.archive.extracted"} <= kinds
    last = [e for e in events if e["event_type"] == "object.bulk.deleted"][-1]
    assert last["payload"]["deleted"] == 2 and last["payload"]["account"] == api.account


def test_no_server_errors_logged(cloud):
    assert "Traceback" not in (cloud.state_dir / "up.out").read_text()


def test_unit_accept_negotiation_and_bodies():
    from types import SimpleNamespace

    from pocketstack.object import bulk

    def fmt(accept):
        return bulk.best_format(SimpleNamespace(headers={"accept": accept} if accept else {}))

    assert fmt(None) == "text/plain" and fmt("*/*") == "text/plain"
    assert fmt("application/json") == "application/json" and fmt("text/xml;q=0.9, application/json;q=0.5") == "text/xml"
    assert fmt("application/*") == "application/json" and fmt("image/png") is None
    body = bulk.result_body("text/plain", {"Number Deleted": 1, "Response Status": "200 OK"},
                            [["/c/o", "409 Conflict"]], "delete")
    assert body == b"Number Deleted: 1\nResponse Status: 200 OK\nErrors:\n/c/o, 409 Conflict\n"
    xml = bulk.result_body("application/xml", {"Number Deleted": 1}, [["/c/<o>", "409 Conflict"]], "delete")
    assert xml == (b"<delete>\n<number_deleted>1</number_deleted>\n<errors>\n<object><name>/c/&lt;o&gt;</name>"
                   b"<status>409 Conflict</status></object>\n</errors>\n</delete>\n")
