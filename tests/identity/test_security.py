"""Identity security through the real clients: isolation between projects, revocation,
secrets kept out of the logs, security compliance, and hostile input.

A cloud of our own with DEBUG logging serves (a) (b) (c) (e), so that the log check of
(c) reads the most talkative logs; (d) runs on a second cloud configured with
`[security_compliance]`. Setup goes through the REST API; every behaviour a user meets
through the `openstack` CLI is checked with it, and the exact HTTP answers with httpx.
"""
from __future__ import annotations

import datetime as dt
import re
import sqlite3
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import OPENSTACK, Cloud

REGEX_DESCRIPTION = "at least 7 characters with a letter and a digit"
COMPLIANCE = {
    ("security_compliance", "lockout_failure_attempts"): "2",
    ("security_compliance", "lockout_duration"): "3",
    ("security_compliance", "unique_last_password_count"): "2",
    ("security_compliance", "minimum_password_age"): "0",
    ("security_compliance", "password_regex"): r"^(?=.*\d)(?=.*[a-zA-Z]).{7,}$",
    ("security_compliance", "password_regex_description"): REGEX_DESCRIPTION,
    ("security_compliance", "change_password_upon_first_use"): "true",
    ("security_compliance", "password_expires_days"): "30",
}
ERROR_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                409: "Conflict", 413: "Request Entity Too Large"}


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def strong_pw() -> str:
    return "Pw1-" + uuid.uuid4().hex[:12]


def parallel(*calls):
    """Run independent CLI calls at once (each one still a real `openstack` process)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


def keystone_error(r: httpx.Response, status: int) -> dict:
    """The response is `status` with Keystone's error body; returns the error."""
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "title"}, body
    assert body["error"]["code"] == status and body["error"]["title"] == ERROR_TITLES[status], body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def password_auth(cloud, user_id: str, password: str, project_id: str | None = None) -> httpx.Response:
    body = {"auth": {"identity": {"methods": ["password"],
                                  "password": {"user": {"id": user_id, "password": password}}}}}
    if project_id:
        body["auth"]["scope"] = {"project": {"id": project_id}}
    return httpx.post(cloud.auth_url + "/auth/tokens", json=body)


class World:
    """Two projects A and B with their users, on one cloud; remembers every secret used."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.secrets: set[str] = {cloud.admin_password}
        self.admin_token = self.remember(cloud.token())
        self.http = httpx.Client(base_url=cloud.auth_url, headers={"X-Auth-Token": self.admin_token}, timeout=30)
        self.role = {r["name"]: r["id"] for r in self.get("/roles")["roles"]}
        self.a = self.create("projects", "project", name=uniq("proj-a"), domain_id="default")
        self.b = self.create("projects", "project", name=uniq("proj-b"), domain_id="default")
        self.a_member = self.user(self.a, "member")
        self.a_reader = self.user(self.a, "reader")
        self.b_member = self.user(self.b, "member")

    def remember(self, secret: str) -> str:
        self.secrets.add(secret)
        return secret

    def get(self, path: str) -> dict:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def create(self, collection: str, key: str, **body) -> dict:
        r = self.http.post(f"/{collection}", json={key: body})
        assert r.status_code == 201, r.text
        return r.json()[key]

    def user(self, project: dict | None, role: str | None = None) -> dict:
        pw = self.remember(strong_pw())
        user = self.create("users", "user", name=uniq("user"), domain_id="default", password=pw)
        user["password"] = pw
        if project:
            self.grant(user, project, role)
        return user

    def grant(self, user: dict, project: dict, role: str) -> None:
        r = self.http.put(f"/projects/{project['id']}/users/{user['id']}/roles/{self.role[role]}")
        assert r.status_code == 204, r.text

    def token(self, user: dict, project: dict | None = None) -> str:
        r = password_auth(self.cloud, user["id"], user["password"], project["id"] if project else None)
        assert r.status_code == 201, r.text
        return self.remember(r.headers["X-Subject-Token"])

    def validate(self, token: str) -> int:
        return self.http.get("/auth/tokens", headers={"X-Subject-Token": token}).status_code

    def env(self, user: dict, project: dict | None) -> dict:
        return self.cloud.env_for(user["name"], user["password"], project["name"] if project else None)

    def counts(self) -> dict:
        out = {}
        for coll in ("users", "projects", "groups", "roles", "domains", "regions", "services", "endpoints"):
            out[coll] = len(self.get(f"/{coll}")[coll])
        out["role_assignments"] = len(self.get("/role_assignments")["role_assignments"])
        return out


@pytest.fixture(scope="module")
def sec(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("sec"), config={("log", "level"): "DEBUG"})
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def world(sec):
    return World(sec)


# ---------------------------------------------------------------------------- (a) isolation
def test_project_members_see_nothing_of_another_project(sec, world):
    w = world
    env = w.env(w.a_member, w.a)
    (show_b, projects, assignments, assignments_b, users, show_other, show_self) = parallel(
        lambda: sec.openstack_fails("project", "show", w.b["id"], env=env),
        lambda: sec.os_json("project", "list", env=env),
        lambda: sec.openstack_fails("role", "assignment", "list", env=env),
        lambda: sec.openstack_fails("role", "assignment", "list", "--project", w.b["id"], env=env),
        lambda: sec.openstack_fails("user", "list", env=env),
        lambda: sec.openstack_fails("user", "show", w.b_member["id"], env=env),
        lambda: sec.os_json("user", "show", w.a_member["id"], env=env))
    for err in (show_b, assignments, assignments_b, users, show_other):
        assert "403" in err, err
    assert w.b["name"] not in show_b and w.b_member["name"] not in show_other
    # `project list` falls back to the caller's own projects.
    assert [p["Name"] for p in projects] == [w.a["name"]]
    assert show_self["id"] == w.a_member["id"]

    # The same, answer by answer, for both the member and the reader of A.
    for user in (w.a_member, w.a_reader):
        h = {"X-Auth-Token": w.token(user, w.a)}
        for path in (f"/projects/{w.b['id']}", f"/projects/{w.b['id']}/tags", "/projects",
                     f"/role_assignments?scope.project.id={w.b['id']}", "/role_assignments",
                     f"/role_assignments?user.id={user['id']}", "/users", f"/users/{w.b_member['id']}",
                     f"/users/{w.b_member['id']}/projects", f"/users/{w.b_member['id']}/groups", "/groups",
                     "/domains", "/credentials?user_id=" + w.b_member["id"]):
            r = httpx.get(sec.auth_url + path, headers=h)
            if path.startswith("/credentials"):  # self-service lists: 403 or only their own
                assert r.status_code == 403 or all(x["user_id"] == user["id"] for x in r.json()["credentials"])
                continue
            keystone_error(r, 403)
        mine = httpx.get(sec.auth_url + "/auth/projects", headers=h).json()["projects"]
        assert [p["id"] for p in mine] == [w.a["id"]]
        assert httpx.get(sec.auth_url + f"/users/{user['id']}", headers=h).status_code == 200
        keystone_error(password_auth(sec, user["id"], user["password"], w.b["id"]), 401)  # no token for B


def test_reader_and_member_cannot_change_anything(sec, world):
    w = world
    before = w.counts()
    reader_env, member_env = w.env(w.a_reader, w.a), w.env(w.a_member, w.a)
    *errors, _ = parallel(
        lambda: sec.openstack_fails("project", "set", "--description", "mine now", w.a["id"], env=reader_env),
        lambda: sec.openstack_fails("project", "delete", w.a["id"], env=reader_env),
        lambda: sec.openstack_fails("group", "create", uniq("group"), env=reader_env),
        lambda: sec.openstack_fails("project", "create", uniq("proj"), env=member_env),
        lambda: sec.openstack_fails("user", "create", "--password", w.remember(strong_pw()), uniq("user"),
                                    env=member_env),
        lambda: sec.openstack_fails("role", "create", uniq("role"), env=member_env),
        # The reader tries to make themself admin. openstacksdk ignores the 403 of this PUT
        # (the command exits 0, against real Keystone too), so the proof is that nothing changed.
        lambda: sec.openstack("role", "add", "--user", w.a_reader["id"], "--project", w.a["id"],
                              w.role["admin"], env=reader_env))
    for err in errors:
        assert "403" in err and "not authorized" in err.lower(), err
    mine = w.get(f"/role_assignments?user.id={w.a_reader['id']}")["role_assignments"]
    assert [(a["role"]["id"], a["scope"]) for a in mine] == [(w.role["reader"], {"project": {"id": w.a["id"]}})]

    # Every write, for both personas, is 403 with Keystone's body.
    any_id = "0" * 32
    writes = [
        ("POST", "/projects", {"project": {"name": uniq("p")}}),
        ("PATCH", f"/projects/{w.a['id']}", {"project": {"description": "x"}}),
        ("DELETE", f"/projects/{w.b['id']}", None),
        ("PUT", f"/projects/{w.a['id']}/tags/evil", None),
        ("POST", "/users", {"user": {"name": uniq("u")}}),
        ("PATCH", f"/users/{w.b_member['id']}", {"user": {"enabled": False}}),
        ("DELETE", f"/users/{w.b_member['id']}", None),
        ("POST", "/groups", {"group": {"name": uniq("g")}}),
        ("POST", "/roles", {"role": {"name": uniq("r")}}),
        ("DELETE", f"/roles/{w.role['admin']}", None),
        ("PUT", f"/projects/{w.a['id']}/users/{w.a_reader['id']}/roles/{w.role['admin']}", None),
        ("PUT", f"/system/users/{w.a_reader['id']}/roles/{w.role['admin']}", None),
        ("DELETE", f"/projects/{w.b['id']}/users/{w.b_member['id']}/roles/{w.role['member']}", None),
        ("POST", "/domains", {"domain": {"name": uniq("d")}}),
        ("PATCH", "/domains/default", {"domain": {"description": "x"}}),
        ("POST", "/regions", {"region": {"id": uniq("r")}}),
        ("POST", "/services", {"service": {"type": uniq("t")}}),
        ("POST", "/endpoints", {"endpoint": {"interface": "public", "url": "http://x", "service_id": any_id}}),
        ("PUT", f"/roles/{w.role['reader']}/implies/{w.role['admin']}", None),
    ]
    for user in (w.a_reader, w.a_member):
        h = {"X-Auth-Token": w.token(user, w.a)}
        for method, path, body in writes:
            keystone_error(httpx.request(method, sec.auth_url + path, json=body, headers=h), 403)
    assert w.counts() == before
    assert w.get(f"/projects/{w.a['id']}")["project"]["description"] == ""
    assert w.get(f"/users/{w.b_member['id']}")["user"]["enabled"] is True


# ---------------------------------------------------------------------------- (b) revocation
def test_tokens_die_on_disable_role_removal_project_disable_and_password_change(sec, world):
    w = world
    disabled, unroled, changer, reset = (w.user(w.a, "member") for _ in range(4))
    w.grant(unroled, w.b, "member")
    proj = w.create("projects", "project", name=uniq("proj"), domain_id="default")
    in_proj = w.user(proj, "member")
    bystander = w.user(w.a, "member")
    tokens = {
        "disabled": [w.token(disabled, w.a), w.token(disabled)],
        "unroled": [w.token(unroled, w.a)],
        "project": [w.token(in_proj, proj)],
        "changer": [w.token(changer, w.a), w.token(changer)],
        "reset": [w.token(reset, w.a)],
    }
    kept = {"bystander": w.token(bystander, w.a), "unroled on B": w.token(unroled, w.b),
            "in_proj unscoped": w.token(in_proj), "admin": w.admin_token}
    for tok in [t for ts in tokens.values() for t in ts] + list(kept.values()):
        assert w.validate(tok) == 200

    new_pw = w.remember(strong_pw())
    reset_pw = w.remember(strong_pw())
    parallel(
        lambda: sec.openstack("user", "set", "--disable", disabled["id"]),
        lambda: sec.openstack("role", "remove", "--user", unroled["id"], "--project", w.a["id"], "member"),
        lambda: sec.openstack("project", "set", "--disable", proj["id"]),
        lambda: sec.openstack("user", "password", "set", "--original-password", changer["password"],
                              "--password", new_pw, env=w.env(changer, w.a)),
        lambda: sec.openstack("user", "set", "--password", reset_pw, reset["id"]))
    for what, toks in tokens.items():
        for tok in toks:
            r = w.http.get("/auth/tokens", headers={"X-Subject-Token": tok})
            assert r.status_code == 404, (what, r.status_code)
            keystone_error(r, 404)
            # ... and a revoked token authenticates nothing.
            keystone_error(httpx.get(sec.auth_url + "/auth/projects", headers={"X-Auth-Token": tok}), 401)
    for what, tok in kept.items():
        assert w.validate(tok) == 200, what

    # Re-enabling the project does not resurrect its old tokens; new ones work.
    assert w.http.patch(f"/projects/{proj['id']}", json={"project": {"enabled": True}}).status_code == 200
    assert w.validate(tokens["project"][0]) == 404
    assert w.validate(w.token(in_proj, proj)) == 200
    changer["password"], reset["password"] = new_pw, reset_pw
    assert w.validate(w.token(changer, w.a)) == 200 and w.validate(w.token(reset, w.a)) == 200


# ---------------------------------------------------------------------------- (e) bad input
def _expired_copy(cloud, token: str) -> str:
    """The same token re-sealed with the cloud's own key but an expiry in the past."""
    from pocketstack.identity.fernet import KeyRepository
    from pocketstack.identity.tokens import Payload

    keys = KeyRepository(cloud.state_dir / "fernet-keys")
    payload = Payload.unpack(keys.decrypt(token))
    now = time.time()
    payload.issued_at, payload.expires_at = now - 7200, now - 3600
    return keys.encrypt(payload.pack())


def test_bad_input_is_a_keystone_error_and_changes_nothing(sec, world):
    w = world
    url = sec.auth_url
    h = {"X-Auth-Token": w.admin_token}
    before = w.counts()

    def check(method, path, status, *, json_body=None, content=None, headers=None):
        hdrs = {**h, **(headers or {})}
        if content is not None:
            hdrs.setdefault("Content-Type", "application/json")
        r = httpx.request(method, url + path, json=json_body, content=content, headers=hdrs, timeout=30)
        return keystone_error(r, status)

    # malformed JSON, non-object bodies, absurd nesting
    for coll in ("projects", "users", "groups", "roles", "domains", "regions", "services", "endpoints"):
        check("POST", f"/{coll}", 400, content=b'{"x": ')
        check("POST", f"/{coll}", 400, content=b"[1, 2]")
        check("POST", f"/{coll}", 400, content=b"[" * 50000 + b"]" * 50000)
    check("PATCH", f"/projects/{w.a['id']}", 400, content=b"{bad json")
    check("POST", "/auth/tokens", 400, content=b"{", headers={"X-Auth-Token": ""})

    # wrong types
    wrong = [
        ("projects", {"project": {"name": 5}}), ("projects", {"project": {"name": "x", "enabled": "yes"}}),
        ("projects", {"project": {"name": "x", "tags": "a"}}), ("projects", {"project": "x"}),
        ("projects", {"project": {"name": "x", "parent_id": ""}}),
        ("users", {"user": {"name": "x", "password": 5}}), ("users", {"user": {"name": ["x"]}}),
        ("users", {"user": {"name": "x", "enabled": 1}}), ("users", {"user": {"name": "x", "options": {"nope": 1}}}),
        ("groups", {"group": {"name": None}}), ("roles", {"role": {"name": {"a": 1}}}),
        ("domains", {"domain": {"name": "x", "enabled": "false"}}), ("regions", {"region": {"id": 5}}),
        ("services", {"service": {"type": 5}}),
        ("endpoints", {"endpoint": {"interface": "sideways", "url": "http://x", "service_id": "x"}}),
    ]
    for coll, body in wrong:
        check("POST", f"/{coll}", 400, json_body=body)
    check("PATCH", f"/users/{w.a_member['id']}", 400, json_body={"user": {"enabled": "no"}})
    check("PATCH", f"/projects/{w.a['id']}", 400, json_body={"project": {"name": 7}})
    auth_user = {"domain": {"id": "default"}, "password": "x"}
    for bad in ({**auth_user, "name": ["admin"]}, {**auth_user, "name": {"a": 1}}, {"id": 5, "password": "x"},
                {"name": "admin", "domain": {"name": ["Default"]}, "password": "x"}, {**auth_user, "name": "admin",
                                                                                     "password": 5}):
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": bad}}}}
        check("POST", "/auth/tokens", 400, json_body=body, headers={"X-Auth-Token": ""})
    for cred in ({"id": ["x"], "secret": "s"}, {"name": ["x"], "user": {"id": w.a_member["id"]}, "secret": "s"},
                 {"name": "x", "user": {"name": "admin", "domain": {"name": 5}}, "secret": "s"}):
        body = {"auth": {"identity": {"methods": ["application_credential"], "application_credential": cred}}}
        check("POST", "/auth/tokens", 400, json_body=body, headers={"X-Auth-Token": ""})
    scope = {"project": {"name": ["admin"], "domain": {"id": "default"}}}
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "id": w.a_member["id"], "password": w.a_member["password"]}}}, "scope": scope}}
    check("POST", "/auth/tokens", 400, json_body=body, headers={"X-Auth-Token": ""})

    # unknown ids
    for coll in ("projects", "users", "groups", "roles", "domains", "regions", "services", "endpoints"):
        check("GET", f"/{coll}/{uuid.uuid4().hex}", 404)
        check("PATCH", f"/{coll}/{uuid.uuid4().hex}", 404, json_body={coll[:-1]: {"description": "x"}})
        check("DELETE", f"/{coll}/{uuid.uuid4().hex}", 404)
    check("PUT", f"/projects/{w.a['id']}/users/{w.a_member['id']}/roles/{uuid.uuid4().hex}", 404)
    check("PUT", f"/projects/{uuid.uuid4().hex}/users/{w.a_member['id']}/roles/{w.role['reader']}", 404)
    check("PUT", f"/groups/{uuid.uuid4().hex}/users/{w.a_member['id']}", 404)
    check("POST", "/users", 404, json_body={"user": {"name": uniq("u"), "default_project_id": uuid.uuid4().hex}})

    # duplicates
    dup_group = w.create("groups", "group", name=uniq("group"))
    before["groups"] += 1
    for coll, body in (("projects", {"project": {"name": w.a["name"]}}), ("users", {"user": {"name": "admin"}}),
                       ("groups", {"group": {"name": dup_group["name"]}}), ("roles", {"role": {"name": "admin"}}),
                       ("domains", {"domain": {"name": "Default"}}), ("regions", {"region": {"id": "RegionOne"}})):
        check("POST", f"/{coll}", 409, json_body=body)
    check("PATCH", f"/projects/{w.a['id']}", 409, json_body={"project": {"name": w.b["name"]}})

    # over-long names
    for coll, key, limit in (("projects", "project", 64), ("domains", "domain", 64), ("users", "user", 255),
                             ("groups", "group", 255), ("roles", "role", 255)):
        check("POST", f"/{coll}", 400, json_body={key: {"name": "n" * (limit + 1)}})
    check("PATCH", f"/users/{w.a_member['id']}", 400, json_body={"user": {"name": "n" * 256}})

    # bodies over 114688 bytes, declared or streamed
    big = {"project": {"name": uniq("big"), "description": "d" * 114688}}
    check("POST", "/projects", 413, json_body=big)

    def stream():
        yield b'{"project": {"name": "streamed", "description": "'
        for _ in range(120):
            yield b"d" * 1024
        yield b'"}}'
    check("POST", "/projects", 413, content=stream())
    check("POST", "/auth/tokens", 413, content=b'{"auth": "' + b"a" * 120000 + b'"}', headers={"X-Auth-Token": ""})

    # missing, garbage and expired tokens
    expired = w.remember(_expired_copy(sec, w.admin_token))
    for token in ("", "garbage", "gAAAAA" + "A" * 150, w.admin_token[:-4] + "AAAA", expired):
        for method, path in (("GET", "/projects"), ("POST", "/projects"), ("GET", "/auth/catalog")):
            r = httpx.request(method, url + path, headers={"X-Auth-Token": token},
                              json={"project": {"name": uniq("p")}} if method == "POST" else None)
            keystone_error(r, 401)
            assert r.headers["WWW-Authenticate"].startswith("Keystone uri=")
    keystone_error(w.http.get("/auth/tokens", headers={"X-Subject-Token": expired}), 404)
    assert w.validate(w.admin_token) == 200
    # The real client, handed the expired token, gets the 401 too.
    env = {k: v for k, v in sec.admin_env().items() if k in ("PATH", "HOME", "OS_IDENTITY_API_VERSION")}
    env.update(OS_AUTH_TYPE="admin_token", OS_TOKEN=expired, OS_ENDPOINT=sec.auth_url)
    err = sec.openstack_fails("project", "list", env=env)
    assert "401" in err, err

    after = w.counts()
    assert after == before, (before, after)


# ---------------------------------------------------------------------------- (c) logs
def test_no_password_or_token_reaches_the_logs(sec, world):
    """Runs last in this module: every secret the tests above used, plus a few more sent
    the ways most likely to leak (bad passwords, v2 bodies, tokens in v2 URLs)."""
    w = world
    url = sec.url
    wrong = w.remember("wrong-" + strong_pw())
    err = sec.openstack_fails("token", "issue", env=sec.env_for(w.a_member["name"], wrong, w.a["name"]))
    assert "401" in err
    tok = w.remember(sec.os_json("token", "issue", env=w.env(w.a_member, w.a))["id"])
    v2 = httpx.post(url + "/v2.0/tokens", json={"auth": {"passwordCredentials": {
        "username": w.a_reader["name"], "password": w.a_reader["password"]}, "tenantName": w.a["name"]}})
    if v2.status_code == 200:
        w.remember(v2.json()["access"]["token"]["id"])
    httpx.get(url + f"/v2.0/tokens/{tok}", headers={"X-Auth-Token": w.admin_token})
    httpx.get(url + "/v3/auth/tokens", headers={"X-Auth-Token": w.admin_token, "X-Subject-Token": tok})
    httpx.post(url + f"/v3/users/{w.a_member['id']}/password",
               json={"user": {"original_password": wrong, "password": w.remember(strong_pw())}})
    sec.openstack("token", "revoke", tok)

    logs = sorted(p for p in (sec.state_dir / "logs").rglob("*") if p.is_file())
    assert logs, "no log files"
    texts = {p: p.read_text(errors="replace") for p in logs}
    up_out = (sec.state_dir / "up.out").read_text(errors="replace")
    combined = "\n".join(texts.values())
    # The logs did record the traffic (so their silence about secrets means something).
    assert "POST /v3/auth/tokens 401" in combined and "GET /v3/auth/tokens" in combined
    assert len(w.secrets) >= 8
    for secret in w.secrets:
        for path, text in texts.items():
            assert secret not in text, f"a secret ({secret[:6]}...) is in {path}"
        if secret != sec.admin_password:  # `pocketstack up` prints the admin password it was given, by design
            assert secret not in up_out, f"a secret ({secret[:6]}...) is in up.out"


# ---------------------------------------------------------------------------- (d) compliance
@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("compliance"), config=COMPLIANCE)
    c.start()
    c.http = httpx.Client(base_url=c.auth_url, headers={"X-Auth-Token": c.token()}, timeout=30)
    c.project_id = c.http.get("/projects?name=admin").json()["projects"][0]["id"]
    c.member_role = c.http.get("/roles?name=member").json()["roles"][0]["id"]
    yield c
    c.stop()


def _sc_user(sc, password: str, first_use: bool = False) -> dict:
    body = {"name": uniq("user"), "domain_id": "default", "password": password}
    if not first_use:
        body["options"] = {"ignore_change_password_upon_first_use": True}
    r = sc.http.post("/users", json={"user": body})
    assert r.status_code == 201, r.text
    user = r.json()["user"]
    assert sc.http.put(f"/projects/{sc.project_id}/users/{user['id']}/roles/{sc.member_role}").status_code == 204
    return user


def _change(sc, user_id: str, original: str, new: str) -> httpx.Response:
    """Self-service password change: the original password authenticates it, no token needed."""
    return httpx.post(f"{sc.auth_url}/users/{user_id}/password",
                      json={"user": {"original_password": original, "password": new}})


def test_lockout_after_failed_attempts_then_unlock(sc):
    pw = strong_pw()
    user = _sc_user(sc, pw)
    env = sc.env_for(user["name"], pw, "admin")
    for _ in range(2):
        keystone_error(password_auth(sc, user["id"], "Wrong-pw-123"), 401)
    locked_at = time.monotonic()
    # Locked: even the right password is refused ...
    err = keystone_error(password_auth(sc, user["id"], pw, sc.project_id), 401)
    assert "locked" in err["message"]
    # ... by the real client too, unless it took the whole lockout duration just to start.
    res = subprocess.run([OPENSTACK, "token", "issue", "-f", "json"], capture_output=True, text=True, env=env)
    if res.returncode == 0:
        assert time.monotonic() - locked_at > 3, "the real client got a token while the account was locked"
    else:
        assert "401" in res.stderr and "locked" in res.stderr, res.stderr
    time.sleep(max(0.0, locked_at + 3.3 - time.monotonic()))
    assert sc.os_json("token", "issue", env=env)["user_id"] == user["id"]
    # A success resets the count: one more failure does not lock again.
    keystone_error(password_auth(sc, user["id"], "Wrong-pw-123"), 401)
    assert password_auth(sc, user["id"], pw).status_code == 201
    # The administrator is exempt (ignore_lockout_failure_attempts at bootstrap).
    admin_id = sc.http.get("/users?name=admin").json()["users"][0]["id"]
    for _ in range(3):
        keystone_error(password_auth(sc, admin_id, "Wrong-pw-123"), 401)
    assert password_auth(sc, admin_id, sc.admin_password).status_code == 201


def test_password_regex_and_history(sc):
    users_before = len(sc.http.get("/users").json()["users"])
    err = sc.openstack_fails("user", "create", "--password", "short1", uniq("user"))
    assert "400" in err and REGEX_DESCRIPTION in err
    assert len(sc.http.get("/users").json()["users"]) == users_before
    pw0 = strong_pw()
    user = _sc_user(sc, pw0)
    for weak in ("short1", "onlyletters", "12345678"):
        err = keystone_error(_change(sc, user["id"], pw0, weak), 400)
        assert REGEX_DESCRIPTION in err["message"]
    keystone_error(sc.http.patch(f"/users/{user['id']}", json={"user": {"password": "nodigits"}}), 400)

    # The real client changes the password; the last two are remembered.
    pw1, pw2 = strong_pw(), strong_pw()
    sc.openstack("user", "password", "set", "--original-password", pw0, "--password", pw1,
                 env=sc.env_for(user["name"], pw0, "admin"))
    for reused in (pw1, pw0):
        err = keystone_error(_change(sc, user["id"], pw1, reused), 400)
        assert "previous password" in err["message"]
    assert _change(sc, user["id"], pw1, pw2).status_code == 204
    keystone_error(_change(sc, user["id"], pw2, pw1), 400)
    assert _change(sc, user["id"], pw2, pw0).status_code == 204  # pw0 is three passwords back
    assert password_auth(sc, user["id"], pw0).status_code == 201
    keystone_error(_change(sc, user["id"], "Not-the-pw-1", strong_pw()), 401)


def test_change_password_upon_first_use(sc):
    pw0, pw1 = strong_pw(), strong_pw()
    name = uniq("user")
    user = sc.os_json("user", "create", "--password", pw0, "--project", "admin", name)
    assert sc.http.put(f"/projects/{sc.project_id}/users/{user['id']}/roles/{sc.member_role}").status_code == 204
    err = sc.openstack_fails("token", "issue", env=sc.env_for(name, pw0, "admin"))
    assert "401" in err and "change your password" in err
    keystone_error(password_auth(sc, user["id"], pw0), 401)
    # No token is possible yet, so the change authenticates with the original password.
    assert _change(sc, user["id"], pw0, pw1).status_code == 204
    tok = sc.os_json("token", "issue", env=sc.env_for(name, pw1, "admin"))
    assert tok["user_id"] == user["id"]
    # An administrator's reset must be changed at first use again.
    pw2, pw3 = strong_pw(), strong_pw()
    assert sc.http.patch(f"/users/{user['id']}", json={"user": {"password": pw2}}).status_code == 200
    err = keystone_error(password_auth(sc, user["id"], pw2), 401)
    assert "change your password" in err["message"]
    assert _change(sc, user["id"], pw2, pw3).status_code == 204
    assert password_auth(sc, user["id"], pw3, sc.project_id).status_code == 201


def _expires_in(stamp: str) -> dt.timedelta:
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return when - dt.datetime.now(dt.timezone.utc)


def test_password_expires_after_password_expires_days(sc):
    pw = strong_pw()
    user = _sc_user(sc, pw)
    r = password_auth(sc, user["id"], pw, sc.project_id)
    assert r.status_code == 201
    left = _expires_in(r.json()["token"]["user"]["password_expires_at"])
    assert dt.timedelta(days=29, hours=23) < left <= dt.timedelta(days=30)
    assert sc.http.get(f"/users/{user['id']}").json()["user"]["password_expires_at"] == \
        r.json()["token"]["user"]["password_expires_at"]
    admin = sc.http.get("/users?name=admin").json()["users"][0]
    assert admin["password_expires_at"] is None  # ignore_password_expiry, set at bootstrap

    # Expired (moved into the past in the database): the password no longer authenticates.
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(sc.state_dir / "pocketstack.db") as db:
        db.execute("UPDATE identity_password SET expires_at = ? WHERE user_id = ?", (past, user["id"]))
    err = sc.openstack_fails("token", "issue", env=sc.env_for(user["name"], pw, "admin"))
    assert "401" in err and "expired" in err
    keystone_error(password_auth(sc, user["id"], pw), 401)
    # The user can still change it themself, and the new one lasts another 30 days.
    new = strong_pw()
    assert _change(sc, user["id"], pw, new).status_code == 204
    r = password_auth(sc, user["id"], new, sc.project_id)
    assert r.status_code == 201
    assert _expires_in(r.json()["token"]["user"]["password_expires_at"]) > dt.timedelta(days=29, hours=23)


def test_passwords_are_stored_bcrypt_hashed(sc):
    pw = strong_pw()
    _sc_user(sc, pw)
    with sqlite3.connect(sc.state_dir / "pocketstack.db") as db:
        hashes = [h for (h,) in db.execute("SELECT password_hash FROM identity_password")]
    assert len(hashes) >= 2
    for h in hashes:
        assert re.fullmatch(r"\$2b\$\d\d\$[./A-Za-z0-9]{53}", h), h
    assert not any(pw in h or sc.admin_password in h for h in hashes)
    dump = (sc.state_dir / "pocketstack.db").read_bytes()
    assert pw.encode() not in dump and sc.admin_password.encode() not in dump
