"""Object Storage access control: container ACLs, account ACLs, anonymous `.r:*`, the reader
role and TempAuth v1.0, driven by the real `swift` CLI, curl and raw HTTP with real tokens."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from conftest import Cloud

SWIFT = str(Path(sys.executable).parent / "swift")
OBJECT_CONFIG = {("pocketstack", "enabled_services"): "identity,object"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("objaccess"), config=OBJECT_CONFIG)
    c.start()
    yield c
    c.stop()


class User:
    def __init__(self, cloud, project, role):
        self.cloud, self.project = cloud, project
        self.name, self.password = cloud.make_user(project, role)
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": self.name, "domain": {"id": "default"}, "password": self.password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        r = httpx.post(cloud.auth_url + "/auth/tokens", json=body)
        assert r.status_code == 201, r.text
        self.token = r.headers["X-Subject-Token"]
        self.user_id = r.json()["token"]["user"]["id"]
        self.project_id = r.json()["token"]["project"]["id"]
        self.account = f"AUTH_{self.project_id}"
        self.url = f"{cloud.url}/object/v1/{self.account}"

    def http(self, method, url, **kw):
        headers = {"X-Auth-Token": self.token, **kw.pop("headers", {})}
        return httpx.request(method, url, headers=headers, timeout=60, **kw)

    def swift(self, *args, check=True, cwd=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
        res = subprocess.run([SWIFT, "--os-auth-url", self.cloud.auth_url, "--auth-version", "3",
                              "--os-username", self.name, "--os-password", self.password,
                              "--os-project-name", self.project, "--os-user-domain-name", "Default",
                              "--os-project-domain-name", "Default", *args],
                             capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
        if check and res.returncode != 0:
            raise AssertionError(f"swift {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res


@pytest.fixture(scope="module")
def people(cloud):
    for project in ("alpha", "beta"):
        cloud.openstack("project", "create", "--domain", "default", project)
    return {"owner": User(cloud, "alpha", "member"), "reader": User(cloud, "alpha", "reader"),
            "other": User(cloud, "beta", "member"), "third": User(cloud, "beta", "member")}


def unique(prefix="c"):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def curl(*args):
    res = subprocess.run(["curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code}", *args],
                         capture_output=True, text=True, timeout=60)
    body, _, code = res.stdout.rpartition("\n")
    return int(code), body


@pytest.fixture(scope="module")
def shared(people, tmp_path_factory):
    """A container of the owner with one object, made with the swift CLI."""
    owner = people["owner"]
    c = unique("shared")
    work = tmp_path_factory.mktemp("shared")
    (work / "doc.txt").write_text("shared data\n")
    owner.swift("upload", c, "doc.txt", cwd=work)
    return c


# ---------------------------------------------------------------------------- container ACLs
def test_second_user_reads_via_acl_with_swift_cli(people, shared, tmp_path):
    owner, other = people["owner"], people["other"]
    cross = ["--os-storage-url", owner.url]
    denied = other.swift(*cross, "list", shared, check=False)
    assert denied.returncode != 0 and "403" in denied.stderr
    owner.swift("post", "-r", f"{other.project_id}:{other.user_id}", shared)
    assert other.swift(*cross, "list", shared).stdout.split() == ["doc.txt"]
    other.swift(*cross, "download", shared, "doc.txt", cwd=tmp_path)
    assert (tmp_path / "doc.txt").read_text() == "shared data\n"
    # read access is not write access, and does not reach the privileged headers
    (tmp_path / "new.txt").write_text("x")
    up = other.swift(*cross, "upload", shared, "new.txt", cwd=tmp_path, check=False)
    assert up.returncode != 0
    head = other.http("HEAD", f"{owner.url}/{shared}")
    assert head.status_code == 204 and "x-container-read" not in head.headers
    assert owner.http("HEAD", f"{owner.url}/{shared}").headers["x-container-read"] == \
        f"{other.project_id}:{other.user_id}"
    # a user of the same project not named in the ACL stays out
    assert people["third"].http("GET", f"{owner.url}/{shared}/doc.txt").status_code == 403
    owner.swift("post", "-r", "", shared)
    assert other.http("GET", f"{owner.url}/{shared}/doc.txt").status_code == 403


def test_write_acl_and_owner_only_acl_changes(people):
    owner, other = people["owner"], people["other"]
    c = unique()
    assert owner.http("PUT", f"{owner.url}/{c}", headers={"X-Container-Write": f"{other.project_id}:*"}
                      ).status_code == 201
    assert other.http("PUT", f"{owner.url}/{c}/up", content=b"from beta").status_code == 201
    assert other.http("DELETE", f"{owner.url}/{c}/up").status_code == 204
    # write without read: cannot list or read
    assert other.http("GET", f"{owner.url}/{c}").status_code == 403
    # only owners change ACLs (container writes are not granted by the ACL)
    r = other.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": ".r:*"})
    assert r.status_code == 403
    assert "x-container-read" not in owner.http("HEAD", f"{owner.url}/{c}").headers
    # referrers are not allowed in write ACLs; bad designators are refused
    r = owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Write": ".r:*"})
    assert r.status_code == 400 and "Referrers not allowed in write ACL" in r.text
    r = owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": ".bogus:x"})
    assert r.status_code == 400 and "Unknown designator" in r.text
    r = owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": ".r:"})
    assert r.status_code == 400


def test_acl_forms_names_wildcards_and_roles(cloud, people):
    owner, other = people["owner"], people["other"]
    c = unique()
    owner.http("PUT", f"{owner.url}/{c}")
    owner.http("PUT", f"{owner.url}/{c}/o", content=b"data")
    url = f"{owner.url}/{c}/o"
    for acl in (f"beta:{other.name}", f"*:{other.user_id}", f"{other.project_id}:*", "*:*"):
        owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": acl})
        assert other.http("GET", url).status_code == 200, acl
    owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": "beta:someone-else"})
    assert other.http("GET", url).status_code == 403
    # a role name grants users of the account's own project holding that role
    cloud.openstack("role", "create", "auditor-role")
    aud = User(cloud, "alpha", "auditor-role")
    assert aud.http("GET", url).status_code == 403
    owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": "auditor-role"})
    assert aud.http("GET", url).status_code == 200
    assert other.http("GET", url).status_code == 403  # another project's token: not by role


def test_anonymous_public_container_with_curl(people):
    owner = people["owner"]
    c = unique("pub")
    owner.http("PUT", f"{owner.url}/{c}")
    owner.http("PUT", f"{owner.url}/{c}/index.html", content=b"<h1>hi</h1>")
    code, body = curl(f"{owner.url}/{c}/index.html")
    assert code == 401
    assert owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": ".r:*"}).status_code == 204
    code, body = curl(f"{owner.url}/{c}/index.html")
    assert (code, body) == (200, "<h1>hi</h1>")
    assert curl(f"{owner.url}/{c}")[0] == 401  # no listing without .rlistings
    assert curl("-X", "PUT", "-d", "x", f"{owner.url}/{c}/new")[0] == 401  # never writes
    owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": ".r:*,.rlistings"})
    code, body = curl(f"{owner.url}/{c}")
    assert (code, body.strip()) == (200, "index.html")
    # referrer rules apply in order; a denied host gets nothing
    owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": ".r:*,.r:-evil.example.com"})
    assert curl("-H", "Referer: http://evil.example.com/page", f"{owner.url}/{c}/index.html")[0] == 401
    assert curl("-H", "Referer: http://good.example.com/page", f"{owner.url}/{c}/index.html")[0] == 200
    owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": ".ref:.example.com"})
    assert owner.http("HEAD", f"{owner.url}/{c}").headers["x-container-read"] == ".r:.example.com"
    assert curl("-H", "Referer: http://www.example.com/", f"{owner.url}/{c}/index.html")[0] == 200
    assert curl(f"{owner.url}/{c}/index.html")[0] == 401
    # anonymous callers never see the privileged headers
    owner.http("POST", f"{owner.url}/{c}", headers={"X-Container-Read": ".r:*,.rlistings"})
    anon = httpx.head(f"{owner.url}/{c}")
    assert anon.status_code == 204 and "x-container-read" not in anon.headers


def test_reader_role_reads_only(people, shared, tmp_path):
    reader, owner = people["reader"], people["owner"]
    assert shared in reader.swift("list").stdout.split()
    reader.swift("download", shared, "doc.txt", cwd=tmp_path)
    (tmp_path / "r.txt").write_text("no")
    res = reader.swift("upload", shared, "r.txt", cwd=tmp_path, check=False)
    assert res.returncode != 0 and "403" in (res.stderr + res.stdout)
    assert reader.http("DELETE", f"{owner.url}/{shared}/doc.txt").status_code == 403
    assert reader.http("POST", owner.url, headers={"X-Account-Meta-X": "y"}).status_code == 403
    # other projects' readers and members: nothing
    assert people["other"].http("GET", owner.url).status_code == 403


def test_invalid_token_is_401(people):
    r = httpx.get(people["owner"].url, headers={"X-Auth-Token": "not-a-token"})
    assert r.status_code == 401 and "www-authenticate" in r.headers


# ---------------------------------------------------------------------------- account ACLs
def test_account_acls(people):
    owner, other, third = people["owner"], people["other"], people["third"]
    c = unique()
    owner.http("PUT", f"{owner.url}/{c}")
    owner.http("PUT", f"{owner.url}/{c}/o", content=b"acct")
    assert other.http("GET", owner.url).status_code == 403
    acl = {"read-only": [f"{other.project_id}:{other.user_id}"], "read-write": [f"{third.project_id}:{third.user_id}"]}
    r = owner.http("POST", owner.url, headers={"X-Account-Access-Control": json.dumps(acl)})
    assert r.status_code == 204
    stored = json.loads(owner.http("HEAD", owner.url).headers["x-account-access-control"])
    assert stored == acl
    # read-only: list the account, list containers, read objects; no writes; no privileged headers
    listing = other.http("GET", owner.url, params={"format": "json"})
    assert listing.status_code == 200 and c in [x["name"] for x in listing.json()]
    assert "x-account-access-control" not in listing.headers
    assert other.http("GET", f"{owner.url}/{c}/o").content == b"acct"
    assert other.http("PUT", f"{owner.url}/{c}/x", content=b"x").status_code == 403
    # read-write: containers and objects, but not the account's own metadata
    c2 = unique()
    assert third.http("PUT", f"{owner.url}/{c2}", headers={"X-Container-Read": ".r:*"}).status_code == 201
    assert "x-container-read" not in owner.http("HEAD", f"{owner.url}/{c2}").headers  # dropped: not an owner
    assert third.http("PUT", f"{owner.url}/{c2}/x", content=b"x").status_code == 201
    assert third.http("POST", owner.url, headers={"X-Account-Meta-A": "b"}).status_code == 403
    # non-owners cannot grant themselves more
    r = other.http("POST", owner.url, headers={"X-Account-Access-Control": json.dumps({"admin": ["*:*"]})})
    assert r.status_code == 403
    # admin level: owner powers, including the privileged headers
    owner.http("POST", owner.url, headers={"X-Account-Access-Control": json.dumps(
        {"admin": [f"{other.project_id}:{other.user_id}"]})})
    assert "x-account-access-control" in other.http("HEAD", owner.url).headers
    assert other.http("POST", f"{owner.url}/{c2}", headers={"X-Container-Read": ".r:*"}).status_code == 204
    # bad JSON or unknown levels: 400
    for bad in ("not json", '{"owner": ["x"]}', '{"admin": "x"}'):
        assert owner.http("POST", owner.url, headers={"X-Account-Access-Control": bad}).status_code == 400
    owner.http("POST", owner.url, headers={"X-Remove-Account-Access-Control": "x"})
    assert other.http("GET", owner.url).status_code == 403


# ---------------------------------------------------------------------------- TempAuth v1.0
def test_tempauth_v1_with_swift_cli(cloud, people, tmp_path):
    owner = people["owner"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ST_"))}
    base = [SWIFT, "-A", f"{cloud.url}/object/auth/v1.0", "-U", f"alpha:{owner.name}", "-K", owner.password]
    res = subprocess.run([*base, "stat"], capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    assert f"Account: {owner.account}" in res.stdout
    (tmp_path / "v1.txt").write_text("via tempauth")
    c = unique("ta")
    res = subprocess.run([*base, "upload", c, "v1.txt"], capture_output=True, text=True, timeout=60, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert owner.http("GET", f"{owner.url}/{c}/v1.txt").text == "via tempauth"
    bad = subprocess.run([SWIFT, "-A", f"{cloud.url}/object/auth/v1.0", "-U", f"alpha:{owner.name}", "-K", "wrong",
                          "stat"], capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode != 0 and "401" in bad.stderr


def test_tempauth_headers_with_curl(cloud, people):
    owner = people["owner"]
    r = httpx.get(f"{cloud.url}/object/auth/v1", headers={"X-Storage-User": f"{owner.project_id}:{owner.name}",
                                                          "X-Storage-Pass": owner.password})
    assert r.status_code == 200
    assert r.headers["x-storage-url"] == owner.url
    assert r.headers["x-auth-token"] == r.headers["x-storage-token"]
    assert 0 < int(r.headers["x-auth-token-expires"]) <= 3600 * 24
    token = r.headers["x-auth-token"]
    code, _ = curl("-H", f"X-Auth-Token: {token}", owner.url)
    assert code in (200, 204)
    for headers in ({}, {"X-Auth-User": f"alpha:{owner.name}"}, {"X-Auth-User": owner.name, "X-Auth-Key": "x"},
                    {"X-Auth-User": f"nope:{owner.name}", "X-Auth-Key": owner.password},
                    {"X-Auth-User": f"beta:{owner.name}", "X-Auth-Key": owner.password}):
        assert httpx.get(f"{cloud.url}/object/auth/v1.0", headers=headers).status_code == 401, headers


# ---------------------------------------------------------------------------- unit: ACL syntax
def test_clean_acl_and_referrers_unit():
    from pocketstack.object.acl import clean_acl, clean_account_acl, parse_acl, referrer_allowed

    assert clean_acl("x-container-read", "bob , sue,,") == "bob,sue"
    assert clean_acl("x-container-read", ".referrer : *") == ".r:*"
    assert clean_acl("x-container-read", ".ref:*.example.com, .rlistings") == ".r:.example.com,.rlistings"
    assert clean_acl("x-container-read", ".r:-thief.com") == ".r:-thief.com"
    for bad_name, bad in (("x-container-write", ".r:*"), ("x-container-read", ".r:"),
                          ("x-container-read", ".r:-"), ("x-container-read", ".bad:x")):
        with pytest.raises(ValueError):
            clean_acl(bad_name, bad)
    refs, groups = parse_acl(".r:*,.r:-bad.com,proj:user,.rlistings")
    assert refs == ["*", "-bad.com"] and groups == ["proj:user", ".rlistings"]
    assert referrer_allowed("http://good.com/x", refs) and not referrer_allowed("http://bad.com/", refs)
    assert referrer_allowed("https://a.example.com/", [".example.com"])
    assert not referrer_allowed(None, [".example.com"]) and referrer_allowed(None, ["*"])
    assert clean_account_acl('{"read-only": ["a:b"], "admin": []}') == '{"read-only":["a:b"]}'
    with pytest.raises(ValueError):
        clean_account_acl('["a"]')
