"""Every Identity v3 resource through the real `openstack` CLI, on SQLite and on PostgreSQL.

Each behaviour is one CLI call; setup and verification go through the REST API with an
admin token (milliseconds instead of the CLI's ~1.5 s), and CLI calls that do not depend
on each other run side by side, so the module stays quick while still proving what the
real client sends and understands. The `c` fixture runs every test twice: once against
the SQLite cloud, once against the PostgreSQL one.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest


@pytest.fixture(scope="module", params=["cloud", "pg_cloud"])
def c(request):
    return request.getfixturevalue(request.param)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def parallel(*calls):
    """Run independent CLI calls at once (each one still a real `openstack` process)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        return [f.result() for f in futures]


class Rest:
    """Admin REST calls for setup and checks."""

    def __init__(self, cloud):
        self.http = httpx.Client(base_url=cloud.auth_url, headers={"X-Auth-Token": cloud.token()}, timeout=30)

    def __call__(self, method: str, path: str, expect: int | None = None, **kw) -> httpx.Response:
        r = self.http.request(method, path, **kw)
        if expect is not None:
            assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r

    def get(self, path: str) -> dict:
        return self("GET", path, 200).json()

    def status(self, method: str, path: str) -> int:
        return self(method, path).status_code

    def create(self, collection: str, key: str, **body) -> dict:
        return self("POST", f"/{collection}", 201, json={key: body}).json()[key]

    def domain(self) -> dict:
        return self.create("domains", "domain", name=uniq("dom"))

    def project(self, domain_id: str, **kw) -> dict:
        return self.create("projects", "project", name=uniq("proj"), domain_id=domain_id, **kw)

    def user(self, domain_id: str, password: str | None = None, **kw) -> dict:
        return self.create("users", "user", name=uniq("user"), domain_id=domain_id,
                           password=password or uniq("pw"), **kw)

    def grant(self, path: str) -> None:
        self("PUT", path, 204)

    def assignments(self, query: str) -> list[dict]:
        return self.get(f"/role_assignments?{query}")["role_assignments"]


def rest(cloud) -> Rest:
    if getattr(cloud, "_rest", None) is None:
        cloud._rest = Rest(cloud)
    return cloud._rest


def password_token(cloud, user_id: str, password: str, project_id: str | None = None) -> httpx.Response:
    body = {"auth": {"identity": {"methods": ["password"],
                                  "password": {"user": {"id": user_id, "password": password}}}}}
    if project_id:
        body["auth"]["scope"] = {"project": {"id": project_id}}
    return httpx.post(cloud.auth_url + "/auth/tokens", json=body)


# ---------------------------------------------------------------------------- domains
def test_domain_lifecycle(c):
    api = rest(c)
    name = uniq("dom")
    dom = c.os_json("domain", "create", "--description", "first", name)
    assert (dom["name"], dom["description"], dom["enabled"]) == (name, "first", True)

    c.openstack("domain", "set", "--disable", "--description", "second", name)
    shown, listed, err = parallel(lambda: c.os_json("domain", "show", dom["id"]),
                                  lambda: c.os_json("domain", "list"),
                                  lambda: c.openstack_fails("domain", "set", "--disable", "default"))
    assert (shown["name"], shown["description"], shown["enabled"]) == (name, "second", False)
    listed = {d["Name"]: d for d in listed}
    assert listed[name]["Enabled"] is False and listed["Default"]["Enabled"] is True
    assert "403" in err and "default domain cannot be disabled" in err
    assert api.get("/domains/default")["domain"]["enabled"] is True

    # An enabled domain cannot be deleted (Keystone: disable it first).
    other = api.domain()
    assert api.status("DELETE", f"/domains/{other['id']}") == 403
    c.openstack("domain", "delete", name)
    assert api.status("GET", f"/domains/{dom['id']}") == 404


# ---------------------------------------------------------------------------- projects
def test_project_hierarchy_tags_filters_and_lifecycle(c):
    api = rest(c)
    dom = api.domain()
    top_name, tag_a, tag_b = uniq("top"), uniq("tag"), uniq("tag")
    top = c.os_json("project", "create", "--domain", dom["id"], "--description", "top of the tree",
                    "--tag", tag_a, "--tag", tag_b, "--property", "colour=blue", top_name)
    assert top["domain_id"] == dom["id"] and top["parent_id"] == dom["id"]
    assert set(top["tags"]) == {tag_a, tag_b} and top["colour"] == "blue" and top["enabled"] is True
    child = c.os_json("project", "create", "--domain", dom["id"], "--parent", top_name, uniq("child"))
    assert child["parent_id"] == top["id"] and child["domain_id"] == dom["id"]
    grand = api.project(dom["id"], parent_id=child["id"])

    user = api.user(dom["id"])
    member = api.get("/roles?name=member")["roles"][0]["id"]
    api.grant(f"/projects/{child['id']}/users/{user['id']}/roles/{member}")

    shown, listed, tagged, mine = parallel(
        lambda: c.os_json("project", "show", "--domain", dom["id"], "--parents", "--children", grand["name"]),
        lambda: c.os_json("project", "list", "--domain", dom["id"]),
        lambda: c.os_json("project", "list", "--tags", f"{tag_a},{tag_b}"),
        lambda: c.os_json("project", "list", "--user", user["id"]))
    # --parents/--children: Keystone's parents_as_ids nests the nearest parent outermost and
    # ends with the domain (the project acting as a domain).
    assert shown["id"] == grand["id"]
    assert shown["parents"] == {child["id"]: {top["id"]: {dom["id"]: None}}}
    assert shown["subtree"] is None
    assert api.get(f"/projects/{top['id']}?subtree_as_ids")["project"]["subtree"] == {child["id"]: {grand["id"]: None}}
    assert api.status("GET", f"/projects/{top['id']}?parents_as_list&parents_as_ids") == 400

    assert {p["ID"] for p in listed} == {top["id"], child["id"], grand["id"]}
    assert [p["ID"] for p in tagged] == [top["id"]]
    # --user: a direct (not inherited) grant on the child gives the child only.
    assert {p["ID"] for p in mine} == {child["id"]}

    new_name = uniq("renamed")
    c.openstack("project", "set", "--disable", "--name", new_name, "--description", "off", grand["id"])
    got = api.get(f"/projects/{grand['id']}")["project"]
    assert (got["name"], got["description"], got["enabled"]) == (new_name, "off", False)
    # A project whose subtree is still enabled cannot be disabled, a non-leaf cannot be
    # deleted (both 403, as Keystone); a disabled project can be enabled again.
    err_disable, err_delete, _ = parallel(lambda: c.openstack_fails("project", "set", "--disable", top["id"]),
                                          lambda: c.openstack_fails("project", "delete", top["id"]),
                                          lambda: c.openstack("project", "set", "--enable", grand["id"]))
    assert "403" in err_disable and "subtree contains enabled projects" in err_disable
    assert "403" in err_delete and "not a leaf" in err_delete
    assert api.get(f"/projects/{top['id']}")["project"]["enabled"] is True
    assert api.get(f"/projects/{grand['id']}")["project"]["enabled"] is True
    c.openstack("project", "delete", grand["id"], child["id"], top["id"])
    for p in (grand, child, top):
        assert api.status("GET", f"/projects/{p['id']}") == 404


# ---------------------------------------------------------------------------- users
def test_user_lifecycle_and_own_password_change(c):
    api = rest(c)
    dom = api.domain()
    proj = api.project(dom["id"])
    name, pw1 = uniq("user"), uniq("pw")
    user = c.os_json("user", "create", "--domain", dom["id"], "--password", pw1, "--email", "u@example.org",
                     "--description", "a user", "--project", proj["id"], name)
    assert user["name"] == name and user["domain_id"] == dom["id"] and user["enabled"] is True
    assert user["default_project_id"] == proj["id"]
    assert user["email"] == "u@example.org" and user["description"] == "a user"
    assert "password" not in user

    member = api.get("/roles?name=member")["roles"][0]["id"]
    api.grant(f"/projects/{proj['id']}/users/{user['id']}/roles/{member}")
    by_name, by_id, in_domain, on_project = parallel(
        lambda: c.os_json("user", "show", "--domain", dom["id"], name),
        lambda: c.os_json("user", "show", user["id"]),
        lambda: c.os_json("user", "list", "--domain", dom["id"]),
        lambda: c.os_json("user", "list", "--project", proj["id"]))
    assert by_name["id"] == by_id["id"] == user["id"] and by_id["email"] == "u@example.org"
    assert [u["ID"] for u in in_domain] == [user["id"]]
    assert [u["Name"] for u in on_project] == [name]
    # The default project scopes a token asked without a scope.
    r = password_token(c, user["id"], pw1)
    assert r.status_code == 201 and r.json()["token"]["project"]["id"] == proj["id"]

    new_name, pw2 = uniq("renamed"), uniq("pw")
    c.openstack("user", "set", "--name", new_name, "--password", pw2, "--email", "new@example.org", user["id"])
    got = api.get(f"/users/{user['id']}")["user"]
    assert (got["name"], got["email"]) == (new_name, "new@example.org")
    assert password_token(c, user["id"], pw1).status_code == 401
    assert password_token(c, user["id"], pw2, proj["id"]).status_code == 201

    # The user changes their own password with the real client.
    pw3 = uniq("pw")
    env = c.env_for(new_name, pw2, proj["name"])
    env.update(OS_USER_DOMAIN_NAME=dom["name"], OS_PROJECT_DOMAIN_NAME=dom["name"])
    c.openstack("user", "password", "set", "--original-password", pw2, "--password", pw3, env=env)
    assert password_token(c, user["id"], pw2, proj["id"]).status_code == 401
    assert password_token(c, user["id"], pw3, proj["id"]).status_code == 201

    c.openstack("user", "set", "--disable", user["id"])
    assert api.get(f"/users/{user['id']}")["user"]["enabled"] is False
    r = password_token(c, user["id"], pw3, proj["id"])
    assert r.status_code == 401 and r.json()["error"]["code"] == 401

    c.openstack("user", "delete", user["id"])
    assert api.status("GET", f"/users/{user['id']}") == 404


# ---------------------------------------------------------------------------- groups
def test_group_membership_lifecycle(c):
    api = rest(c)
    dom = api.domain()
    user = api.user(dom["id"])
    name = uniq("group")
    grp = c.os_json("group", "create", "--domain", dom["id"], "--description", "a group", name)
    assert (grp["name"], grp["domain_id"], grp["description"]) == (name, dom["id"], "a group")

    c.openstack("group", "add", "user", "--group-domain", dom["id"], "--user-domain", dom["id"],
                name, user["name"])
    api("HEAD", f"/groups/{grp['id']}/users/{user['id']}", 204)
    out, members, groups = parallel(
        lambda: c.openstack("group", "contains", "user", "--group-domain", dom["id"], "--user-domain", dom["id"],
                            name, user["name"]),
        lambda: c.os_json("user", "list", "--group", name, "--domain", dom["id"]),
        lambda: c.os_json("group", "list", "--user", user["id"]))
    assert out.strip() == f"{user['name']} in group {name}"
    assert [u["ID"] for u in members] == [user["id"]]
    assert [g["ID"] for g in groups] == [grp["id"]]

    new_name = uniq("renamed")
    c.openstack("group", "set", "--name", new_name, "--description", "renamed", grp["id"])
    shown = c.os_json("group", "show", "--domain", dom["id"], new_name)
    assert (shown["id"], shown["description"]) == (grp["id"], "renamed")

    c.openstack("group", "remove", "user", grp["id"], user["id"])
    api("HEAD", f"/groups/{grp['id']}/users/{user['id']}", 404)
    assert api.get(f"/users/{user['id']}/groups")["groups"] == []
    c.openstack("group", "delete", grp["id"])
    assert api.status("GET", f"/groups/{grp['id']}") == 404


# ---------------------------------------------------------------------------- roles
def test_roles_domain_roles_and_implied_roles(c):
    api = rest(c)
    dom = api.domain()
    name = uniq("role")
    role, dom_role = parallel(lambda: c.os_json("role", "create", "--description", "a role", name),
                              lambda: c.os_json("role", "create", "--domain", dom["id"], uniq("domrole")))
    assert (role["name"], role["domain_id"], role["description"]) == (name, None, "a role")
    assert dom_role["domain_id"] == dom["id"]
    implied = api.create("roles", "role", name=uniq("implied"))

    rule = c.os_json("implied", "role", "create", role["id"], "--implied-role", implied["id"])
    assert (rule["prior_role"], rule["implies"]) == (role["id"], implied["id"])
    api("HEAD", f"/roles/{role['id']}/implies/{implied['id']}", 204)
    new_name = uniq("renamed")
    rules, _, in_domain = parallel(
        lambda: c.os_json("implied", "role", "list"),
        lambda: c.openstack("role", "set", "--name", new_name, "--description", "renamed", role["id"]),
        lambda: c.os_json("role", "list", "--domain", dom["id"]))
    assert (role["id"], implied["id"]) in {(r["Prior Role ID"], r["Implied Role ID"]) for r in rules}
    assert {("admin", "manager"), ("manager", "member"), ("member", "reader")} <= \
        {(r["Prior Role Name"], r["Implied Role Name"]) for r in rules}  # the bootstrap chain
    assert [r["ID"] for r in in_domain] == [dom_role["id"]]
    shown = c.os_json("role", "show", new_name)
    assert (shown["id"], shown["description"]) == (role["id"], "renamed")
    assert dom_role["id"] not in {r["id"] for r in api.get("/roles")["roles"]}

    c.openstack("implied", "role", "delete", role["id"], "--implied-role", implied["id"])
    api("HEAD", f"/roles/{role['id']}/implies/{implied['id']}", 404)
    c.openstack("role", "delete", role["id"], dom_role["id"])
    assert api.status("GET", f"/roles/{role['id']}") == 404
    assert api.status("GET", f"/roles/{dom_role['id']}") == 404


# ---------------------------------------------------------------------------- assignments
def test_role_assignments_direct_group_inherited_implied_and_system(c):
    api = rest(c)
    dom = api.domain()
    d = dom["name"]
    proj = api.project(dom["id"])
    sub = api.project(dom["id"], parent_id=proj["id"])
    user = api.user(dom["id"])
    grp = api.create("groups", "group", name=uniq("group"), domain_id=dom["id"])
    api("PUT", f"/groups/{grp['id']}/users/{user['id']}", 204)
    roles = {k: api.create("roles", "role", name=uniq(k)) for k in
             ("direct", "prior", "implied", "ondomain", "inherited", "sysuser", "sysgroup")}
    api("PUT", f"/roles/{roles['prior']['id']}/implies/{roles['implied']['id']}", 201)
    rn = {k: r["name"] for k, r in roles.items()}
    u = ["--user", user["name"], "--user-domain", d]
    g = ["--group", grp["name"], "--group-domain", d]
    on_proj = ["--project", proj["name"], "--project-domain", d]
    grants = [
        (u + on_proj, rn["direct"]),
        (g + on_proj, rn["prior"]),
        (u + ["--domain", d], rn["ondomain"]),
        (g + ["--domain", d, "--inherited"], rn["inherited"]),
        (u + ["--system", "all"], rn["sysuser"]),
        (g + ["--system", "all"], rn["sysgroup"]),
    ]
    parallel(*[lambda a=args, r=role: c.openstack("role", "add", *a, r) for args, role in grants])

    direct = api.assignments(f"user.id={user['id']}") + api.assignments(f"group.id={grp['id']}")
    assert len(direct) == 6

    def rows(listing):
        return {(a["Role"], a["User"], a["Group"], a["Project"], a["Domain"], a["System"], a["Inherited"])
                for a in listing}

    ud, pd, sd = f"{user['name']}@{d}", f"{proj['name']}@{d}", f"{sub['name']}@{d}"
    effective, on_project, implied_only = parallel(
        lambda: c.os_json("role", "assignment", "list", "--names", "--effective", *u),
        lambda: c.os_json("role", "assignment", "list", "--names", *on_proj),
        lambda: c.os_json("role", "assignment", "list", "--effective", "--role", roles["implied"]["id"], *u))
    assert rows(effective) == {
        (rn["direct"], ud, "", pd, "", "", False),
        (rn["prior"], ud, "", pd, "", "", False),      # through the group
        (rn["implied"], ud, "", pd, "", "", False),    # implied by the group's role
        (rn["inherited"], ud, "", pd, "", "", False),  # inherited from the domain, via the group
        (rn["inherited"], ud, "", sd, "", "", False),
        (rn["ondomain"], ud, "", "", d, "", False),
        (rn["sysuser"], ud, "", "", "", "all", False),
        (rn["sysgroup"], ud, "", "", "", "all", False),
    }
    assert rows(on_project) == {
        (rn["direct"], ud, "", pd, "", "", False),
        (rn["prior"], "", f"{grp['name']}@{d}", pd, "", "", False),
    }
    assert rows(implied_only) == {(roles["implied"]["id"], user["id"], "", proj["id"], "", "", False)}

    parallel(*[lambda a=args, r=role: c.openstack("role", "remove", *a, r) for args, role in grants])
    assert api.assignments(f"user.id={user['id']}&effective") == []
    assert api.assignments(f"group.id={grp['id']}") == []


# ---------------------------------------------------------------------------- catalog
def test_regions_services_and_endpoints(c):
    api = rest(c)
    top_id, child_id = uniq("region"), uniq("region")
    svc_name, svc_type = uniq("svc"), uniq("type")
    top, svc = parallel(lambda: c.os_json("region", "create", "--description", "top", top_id),
                        lambda: c.os_json("service", "create", "--name", svc_name, "--description", "a service",
                                          svc_type))
    assert (top["region"], top["parent_region"], top["description"]) == (top_id, None, "top")
    assert (svc["name"], svc["type"], svc["description"], svc["enabled"]) == (svc_name, svc_type, "a service", True)
    child = c.os_json("region", "create", "--parent-region", top_id, child_id)
    assert child["parent_region"] == top_id

    def create_endpoint(interface):
        return c.os_json("endpoint", "create", "--region", child_id, svc_name, interface,
                         f"http://{interface}.example.org:9999/v1")

    _, *created = parallel(lambda: c.openstack("region", "set", "--description", "the child", child_id),
                           *[lambda i=i: create_endpoint(i) for i in ("public", "internal", "admin")])
    eps = {}
    for interface, ep in zip(("public", "internal", "admin"), created):
        assert (ep["interface"], ep["region"], ep["service_id"]) == (interface, child_id, svc["id"])
        eps[interface] = ep["id"]
    assert svc["id"] in {s["id"] for s in api.get("/auth/catalog")["catalog"]}

    shown, listed, _, by_service, filtered, err = parallel(
        lambda: c.os_json("region", "show", child_id),
        lambda: c.os_json("region", "list"),
        lambda: c.openstack("endpoint", "set", "--url", "http://moved.example.org/v2", eps["public"]),
        lambda: c.os_json("endpoint", "list", "--service", svc_name),
        lambda: c.os_json("endpoint", "list", "--interface", "internal", "--region", child_id),
        # Keystone refuses to delete a region while it or a child region has endpoints.
        lambda: c.openstack_fails("region", "delete", top_id))
    assert (shown["description"], shown["parent_region"]) == ("the child", top_id)
    listed = {r["Region"]: r for r in listed}
    assert listed[child_id]["Parent Region"] == top_id and "RegionOne" in listed
    assert {e["ID"] for e in by_service} == set(eps.values())
    assert [e["ID"] for e in filtered] == [eps["internal"]]
    assert "403" in err and "associated endpoints" in err
    assert api.status("GET", f"/regions/{child_id}") == 200

    c.openstack("service", "set", "--disable", "--description", "off", svc_name)
    got, ep_shown, services = parallel(lambda: c.os_json("service", "show", svc["id"]),
                                       lambda: c.os_json("endpoint", "show", eps["public"]),
                                       lambda: c.os_json("service", "list"))
    assert (got["enabled"], got["description"]) == (False, "off")
    assert ep_shown["url"] == "http://moved.example.org/v2"
    assert [s["ID"] for s in services if s["Name"] == svc_name] == [svc["id"]]
    assert svc["id"] not in {s["id"] for s in api.get("/auth/catalog")["catalog"]}  # disabled: not in catalogs

    c.openstack("endpoint", "delete", *eps.values())
    for ep_id in eps.values():
        assert api.status("GET", f"/endpoints/{ep_id}") == 404
    # Without endpoints left, deleting the parent takes the child region with it (Keystone's cascade).
    parallel(lambda: c.openstack("region", "delete", top_id),
             lambda: c.openstack("service", "delete", svc["id"]))
    assert api.status("GET", f"/regions/{top_id}") == 404
    assert api.status("GET", f"/regions/{child_id}") == 404
    assert api.status("GET", f"/services/{svc['id']}") == 404


def test_catalog_and_tokens_for_each_scope(c):
    api = rest(c)
    # Domain scope (OS_DOMAIN_NAME): a user holding a role on a domain.
    dom = api.domain()
    pw = uniq("pw")
    user = api.user("default", password=pw)
    reader = api.get("/roles?name=reader")["roles"][0]["id"]
    api.grant(f"/domains/{dom['id']}/users/{user['id']}/roles/{reader}")

    catalog, shown, project_tok, domain_tok, system_tok = parallel(
        lambda: c.os_json("catalog", "list"),
        lambda: c.os_json("catalog", "show", "identity"),
        lambda: c.os_json("token", "issue"),
        lambda: c.os_json("token", "issue", env=c.env_for(user["name"], pw, domain=dom["name"])),
        # System scope (OS_SYSTEM_SCOPE=all): the admin holds admin on the system.
        lambda: c.os_json("token", "issue", env=c.env_for("admin", c.admin_password, system=True)))

    identity = [s for s in catalog if s["Type"] == "identity"]
    assert len(identity) == 1
    assert {(e["interface"], e["url"]) for e in identity[0]["Endpoints"]} == \
        {(i, c.auth_url) for i in ("public", "internal", "admin")}
    assert shown["type"] == "identity" and {e["url"] for e in shown["endpoints"]} == {c.auth_url}

    def validate(token_id):
        r = api("GET", "/auth/tokens", headers={"X-Subject-Token": token_id})
        assert r.status_code == 200, r.text
        return r.json()["token"]

    admin_project = api.get("/projects?name=admin")["projects"][0]["id"]
    assert project_tok["project_id"] == admin_project
    body = validate(project_tok["id"])
    assert body["project"]["id"] == admin_project and "admin" in {r["name"] for r in body["roles"]}

    assert domain_tok["domain_id"] == dom["id"] and "project_id" not in domain_tok
    body = validate(domain_tok["id"])
    assert body["domain"]["id"] == dom["id"] and [r["name"] for r in body["roles"]] == ["reader"]

    assert system_tok["system"] == "all" and "project_id" not in system_tok
    body = validate(system_tok["id"])
    assert body["system"] == {"all": True} and "project" not in body and "domain" not in body


def test_unknown_and_unstorable_ids_are_404_on_both_engines(c):
    """No cheap CLI call here: ids PostgreSQL cannot even compare (NUL) must still be a 404."""
    api = rest(c)
    for collection in ("projects", "users", "groups", "roles", "domains", "regions", "services", "endpoints"):
        for ident in ("does-not-exist", "a%00b"):
            for method in ("GET", "PATCH", "DELETE"):
                kw = {"json": {collection[:-1]: {"description": "x"}}} if method == "PATCH" else {}
                r = api(method, f"/{collection}/{ident}", **kw)
                assert r.status_code == 404, (method, collection, ident, r.status_code, r.text)
                assert set(r.json()["error"]) == {"code", "message", "title"}
    r = api("GET", "/role_assignments?scope.project.id=a%00b&include_subtree")
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
