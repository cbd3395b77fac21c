"""Identity v2.0 as the Havana install guide drives it: tokens, OS-KSADM admin calls, admin_token bootstrap."""
import json
import shutil
import subprocess
import uuid
import warnings

import httpx
import pytest

from conftest import Cloud

ADMIN_TOKEN = "ADMIN"


@pytest.fixture(scope="module")
def token_cloud(tmp_path_factory):
    """A cloud configured as the guide does before any user exists: `[DEFAULT] admin_token`."""
    c = Cloud(tmp_path_factory.mktemp("v2cloud"), config={("DEFAULT", "admin_token"): ADMIN_TOKEN})
    c.start()
    yield c
    c.stop()


def v2(c: Cloud) -> str:
    return c.url + "/v2.0"


def auth_body(user, password, tenant=None, by_id=False):
    creds = {"userId" if by_id else "username": user, "password": password}
    body = {"auth": {"passwordCredentials": creds}}
    if tenant:
        body["auth"]["tenantName"] = tenant
    return body


def v2_token(c: Cloud, user="admin", password=None, tenant="admin") -> dict:
    r = httpx.post(v2(c) + "/tokens", json=auth_body(user, password or c.admin_password, tenant))
    assert r.status_code == 200, r.text
    return r.json()["access"]


def admin_headers(c: Cloud) -> dict:
    return {"X-Auth-Token": c.token()}


def new_member(c: Cloud, tenant="admin", role="member") -> tuple[str, str, str]:
    """A user with `role` on `tenant`, made through v2 with the admin's token; (id, name, password)."""
    h = admin_headers(c)
    name, password = "u-" + uuid.uuid4().hex[:8], "pw-" + uuid.uuid4().hex[:8]
    r = httpx.post(v2(c) + "/users", json={"user": {"name": name, "password": password, "email": None,
                                                     "enabled": True}}, headers=h)
    assert r.status_code == 200, r.text
    uid = r.json()["user"]["id"]
    tid = httpx.get(v2(c) + "/tenants", params={"name": tenant}, headers=h).json()["tenant"]["id"]
    rid = next(x["id"] for x in httpx.get(v2(c) + "/OS-KSADM/roles", headers=h).json()["roles"] if x["name"] == role)
    r = httpx.put(f"{v2(c)}/tenants/{tid}/users/{uid}/roles/OS-KSADM/{rid}", headers=h)
    assert r.status_code == 200, r.text
    return uid, name, password


def assert_error(r: httpx.Response, code: int) -> None:
    assert r.status_code == code, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["title"] and err["message"]


# ---------------------------------------------------------------------------- tokens
def test_guide_curl_check_gives_a_token_valid_on_v3(cloud):
    body = json.dumps(auth_body("admin", cloud.admin_password, "admin"))
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-s", "-d", body, "-H", "Content-Type: application/json",
                              v2(cloud) + "/tokens"], capture_output=True, text=True, timeout=60, check=True)
        access = json.loads(out.stdout)["access"]
    else:
        access = httpx.post(v2(cloud) + "/tokens", content=body).json()["access"]
    token = access["token"]
    assert token["tenant"]["name"] == "admin" and token["tenant"]["enabled"] is True
    assert token["expires"].endswith("Z") and token["issued_at"] and token["audit_ids"]
    assert access["user"]["name"] == "admin" and access["user"]["username"] == "admin"

    r = httpx.get(cloud.auth_url + "/auth/tokens",
                  headers={"X-Auth-Token": cloud.token(), "X-Subject-Token": token["id"]})
    assert r.status_code == 200, r.text
    v3 = r.json()["token"]
    assert v3["project"]["id"] == token["tenant"]["id"]
    assert v3["user"]["id"] == access["user"]["id"]
    assert v3["audit_ids"] == token["audit_ids"]
    # the v2 token is usable as a v3 credential, and validates through v2 as well
    assert httpx.get(cloud.auth_url + "/projects", headers={"X-Auth-Token": token["id"]}).status_code == 200
    r = httpx.get(f"{v2(cloud)}/tokens/{token['id']}", headers=admin_headers(cloud))
    assert r.status_code == 200, r.text
    assert r.json()["access"]["token"]["tenant"]["id"] == token["tenant"]["id"]
    assert httpx.head(f"{v2(cloud)}/tokens/{token['id']}", headers=admin_headers(cloud)).status_code == 200


def test_tenant_token_carries_roles_and_v2_catalog(cloud):
    uid, name, password = new_member(cloud)
    access = v2_token(cloud, name, password, "admin")
    roles = {r["name"] for r in access["user"]["roles"]}
    assert {"member", "reader"} <= roles and "admin" not in roles
    assert access["user"]["roles_links"] == [] and access["user"]["id"] == uid
    assert access["metadata"]["is_admin"] == 0
    assert len(access["metadata"]["roles"]) == len(access["user"]["roles"])
    identity = [s for s in access["serviceCatalog"] if s["type"] == "identity"]
    assert identity and identity[0]["name"] == "keystone" and identity[0]["endpoints_links"] == []
    ep = identity[0]["endpoints"][0]
    assert ep["region"] == "RegionOne" and ep["id"]
    for key in ("publicURL", "internalURL", "adminURL"):
        assert ep[key] == cloud.url + "/v2.0", ep  # v2-era clients get the v2.0 identity URL

    # keystoneauth's own v2 plugin accepts the document and finds the endpoints
    from keystoneauth1 import session
    from keystoneauth1.identity import v2 as ka_v2

    sess = session.Session(auth=ka_v2.Password(auth_url=v2(cloud), username=name, password=password,
                                               tenant_name="admin"))
    assert sess.get_endpoint(service_type="identity", interface="public") == cloud.url + "/v2.0"
    assert sess.get_project_id() == access["token"]["tenant"]["id"]


def test_unscoped_token_and_own_tenants(cloud):
    uid, name, password = new_member(cloud)
    access = v2_token(cloud, name, password, tenant=None)
    assert "tenant" not in access["token"]
    assert access["serviceCatalog"] == [] and access["user"]["roles"] == []
    r = httpx.get(v2(cloud) + "/tenants", headers={"X-Auth-Token": access["token"]["id"]})
    assert r.status_code == 200, r.text
    assert [t["name"] for t in r.json()["tenants"]] == ["admin"]
    assert r.json()["tenants_links"] == []
    # rescope with the token and a tenantId
    tid = r.json()["tenants"][0]["id"]
    r = httpx.post(v2(cloud) + "/tokens", json={"auth": {"token": {"id": access["token"]["id"]}, "tenantId": tid}})
    assert r.status_code == 200, r.text
    scoped = r.json()["access"]
    assert scoped["token"]["tenant"]["id"] == tid and scoped["serviceCatalog"]
    assert access["token"]["audit_ids"][0] in scoped["token"]["audit_ids"]
    # by userId too
    r = httpx.post(v2(cloud) + "/tokens", json=auth_body(uid, password, "admin", by_id=True))
    assert r.status_code == 200 and r.json()["access"]["user"]["name"] == name


def test_admin_sees_every_tenant_and_v3_tokens_validate_on_v2(cloud):
    h = admin_headers(cloud)
    tenants = httpx.get(v2(cloud) + "/tenants", headers=h).json()["tenants"]
    assert {"admin", "service"} <= {t["name"] for t in tenants}
    v3_token = cloud.token()
    r = httpx.get(f"{v2(cloud)}/tokens/{v3_token}", headers=h, params={"belongsTo": "nope"})
    assert_error(r, 401)
    r = httpx.get(f"{v2(cloud)}/tokens/{v3_token}", headers=h)
    assert r.status_code == 200 and r.json()["access"]["token"]["tenant"]["name"] == "admin"
    r = httpx.get(f"{v2(cloud)}/tokens/{v3_token}/endpoints", headers=h)
    assert r.status_code == 200, r.text
    eps = r.json()["endpoints"]
    assert any(e["type"] == "identity" and e["publicURL"] and e["adminURL"] for e in eps)
    assert_error(httpx.get(f"{v2(cloud)}/tokens/not-a-token", headers=h), 404)


def test_delete_token_revokes_it_everywhere(cloud):
    token = v2_token(cloud)["token"]["id"]
    h = admin_headers(cloud)
    assert httpx.delete(f"{v2(cloud)}/tokens/{token}", headers=h).status_code == 204
    r = httpx.get(cloud.auth_url + "/auth/tokens", headers={**h, "X-Subject-Token": token})
    assert r.status_code == 404
    assert_error(httpx.get(f"{v2(cloud)}/tokens/{token}", headers=h), 404)
    assert_error(httpx.get(v2(cloud) + "/tenants", headers={"X-Auth-Token": token}), 401)


def test_bad_credentials_and_bad_input(cloud):
    url = v2(cloud) + "/tokens"
    assert_error(httpx.post(url, json=auth_body("admin", "wrong", "admin")), 401)
    assert_error(httpx.post(url, json=auth_body("nobody", "x")), 401)
    assert_error(httpx.post(url, json=auth_body("admin", cloud.admin_password, "no-such-tenant")), 401)
    assert_error(httpx.post(url, json={"auth": {"passwordCredentials": {"username": "admin"}}}), 400)
    assert_error(httpx.post(url, json={"auth": {"passwordCredentials": {"password": "x"}}}), 400)
    assert_error(httpx.post(url, json={"auth": {"tenantName": "admin"}}), 400)
    assert_error(httpx.post(url, json={"auth": {"token": "abc"}}), 400)
    assert_error(httpx.post(url, json={"nothing": {}}), 400)
    assert_error(httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400)
    assert_error(httpx.post(url, json={"auth": {"passwordCredentials": {"username": "x" * 300,
                                                                        "password": "x"}}}), 400)
    h = admin_headers(cloud)
    assert_error(httpx.post(v2(cloud) + "/tenants", json={"tenant": {"description": "no name"}}, headers=h), 400)
    assert_error(httpx.post(v2(cloud) + "/tenants", json={"tenant": "x"}, headers=h), 400)
    assert_error(httpx.post(v2(cloud) + "/users", json={"user": {"name": "x-" + uuid.uuid4().hex[:6],
                                                                 "enabled": "yes"}}, headers=h), 400)
    assert_error(httpx.post(v2(cloud) + "/users", json={"user": {"password": "p"}}, headers=h), 400)
    assert_error(httpx.post(v2(cloud) + "/OS-KSADM/roles", json={"role": {}}, headers=h), 400)
    assert_error(httpx.post(v2(cloud) + "/OS-KSADM/services", json={"OS-KSADM:service": {"name": "x"}},
                            headers=h), 400)
    svc = httpx.get(v2(cloud) + "/OS-KSADM/services", headers=h).json()["OS-KSADM:services"][0]["id"]
    assert_error(httpx.post(v2(cloud) + "/endpoints", json={"endpoint": {"service_id": svc,
                                                                         "adminurl": "http://x/"}}, headers=h), 400)
    assert_error(httpx.post(v2(cloud) + "/endpoints", json={"endpoint": {"publicurl": "http://x/"}},
                            headers=h), 400)
    assert_error(httpx.get(v2(cloud) + "/tenants/no-such-tenant", headers=h), 404)
    assert_error(httpx.put(v2(cloud) + "/users/no-such-user/OS-KSADM/password",
                           json={"user": {"password": "p"}}, headers=h), 404)
    assert_error(httpx.get(v2(cloud) + "/tenants"), 401)


def test_non_admin_is_forbidden_admin_calls(cloud):
    uid, name, password = new_member(cloud)
    token = v2_token(cloud, name, password, "admin")["token"]["id"]
    h = {"X-Auth-Token": token}
    url = v2(cloud)
    assert_error(httpx.post(url + "/tenants", json={"tenant": {"name": "nope"}}, headers=h), 403)
    assert_error(httpx.get(url + "/users", headers=h), 403)
    assert_error(httpx.post(url + "/users", json={"user": {"name": "nope"}}, headers=h), 403)
    assert_error(httpx.put(f"{url}/users/{uid}/OS-KSADM/enabled", json={"user": {"enabled": False}},
                           headers=h), 403)
    assert_error(httpx.post(url + "/OS-KSADM/roles", json={"role": {"name": "nope"}}, headers=h), 403)
    assert_error(httpx.post(url + "/OS-KSADM/services", json={"OS-KSADM:service": {"type": "x"}},
                            headers=h), 403)
    assert_error(httpx.get(url + "/endpoints", headers=h), 403)
    admin_tok = cloud.token()
    assert_error(httpx.get(f"{url}/tokens/{admin_tok}", headers=h), 403)
    assert_error(httpx.delete(f"{url}/tokens/{admin_tok}", headers=h), 403)
    # the caller's own tenants and own token are fine
    assert httpx.get(url + "/tenants", headers=h).status_code == 200
    assert httpx.get(f"{url}/tokens/{token}", headers=h).status_code == 200


def test_own_password_change_returns_a_new_token(cloud):
    uid, name, password = new_member(cloud)
    old = v2_token(cloud, name, password, "admin")
    r = httpx.patch(f"{v2(cloud)}/OS-KSCRUD/users/{uid}", headers={"X-Auth-Token": old["token"]["id"]},
                    json={"user": {"original_password": password, "password": "new-" + password}})
    assert r.status_code == 200, r.text
    new = r.json()["access"]
    assert new["token"]["tenant"]["name"] == "admin"
    assert httpx.get(v2(cloud) + "/tenants", headers={"X-Auth-Token": new["token"]["id"]}).status_code == 200
    assert_error(httpx.post(v2(cloud) + "/tokens", json=auth_body(name, password, "admin")), 401)
    v2_token(cloud, name, "new-" + password, "admin")


def test_extensions_and_version(cloud):
    r = httpx.get(v2(cloud) + "/extensions")
    assert r.status_code == 200
    assert "OS-KSADM" in {e["alias"] for e in r.json()["extensions"]["values"]}
    assert httpx.get(v2(cloud) + "/extensions/OS-KSADM").json()["extension"]["alias"] == "OS-KSADM"
    assert httpx.get(v2(cloud)).json()["version"]["id"] == "v2.0"


def test_no_admin_token_warning_without_admin_token(cloud):
    assert "admin_token" not in (cloud.state_dir / "up.out").read_text()


# ---------------------------------------------------------------------------- the guide's bootstrap
def test_up_warns_when_admin_token_is_set(token_cloud):
    out = (token_cloud.state_dir / "up.out").read_text()
    assert any("WARNING" in line and "admin_token" in line for line in out.splitlines()), out


def test_guide_bootstrap_with_admin_token(token_cloud):
    """tenant-create, user-create, role-create, user-role-add, service-create, endpoint-create (v2 client)."""
    from keystoneclient import exceptions as ks_exc
    from keystoneclient.v2_0 import client

    c = token_cloud
    sfx = uuid.uuid4().hex[:6]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kc = client.Client(token=ADMIN_TOKEN, endpoint=v2(c))
        tenant = kc.tenants.create(f"admin-{sfx}", description="Admin Tenant")
        service_tenant = kc.tenants.create(f"service-{sfx}", description="Service Tenant")
        assert tenant.enabled is True and tenant.description == "Admin Tenant"
        user = kc.users.create(f"admin-{sfx}", "openstack", "admin@example.com")
        assert user.email == "admin@example.com" and user.enabled is True and user.name == f"admin-{sfx}"
        role = kc.roles.create(f"admin-{sfx}")
        kc.roles.add_user_role(user, role, tenant)
        assert [r.name for r in kc.roles.roles_for_user(user, tenant)] == [role.name]
        svc = kc.services.create("keystone", "identity", "Keystone Identity Service")
        ep = kc.endpoints.create("regionOne", svc.id, "http://controller:5000/v2.0",
                                 "http://controller:35357/v2.0", "http://controller:5000/v2.0")
        assert ep.region == "regionOne" and ep.publicurl == "http://controller:5000/v2.0"
        assert ep.adminurl == "http://controller:35357/v2.0" and ep.service_id == svc.id

        # reads back
        assert {tenant.id, service_tenant.id} <= {t.id for t in kc.tenants.list()}
        assert kc.tenants.get(tenant.id).name == tenant.name
        assert user.id in {u.id for u in kc.users.list()}
        assert role.id in {r.id for r in kc.roles.list()}
        assert svc.id in {s.id for s in kc.services.list()}
        assert kc.services.get(svc.id).type == "identity"
        listed = [e for e in kc.endpoints.list() if e.id == ep.id]
        assert listed and listed[0].internalurl == "http://controller:5000/v2.0"
        assert kc.tenants.list_users(tenant)[0].id == user.id
        assert [r.name for r in kc.roles.roles_for_user(user)] == []  # no global (system) roles
        with pytest.raises(ks_exc.Conflict):
            kc.tenants.create(tenant.name)
        with pytest.raises(ks_exc.NotFound):
            kc.tenants.get("missing")

    # the new user authenticates as the guide checks it, and the v3 API sees the same data
    access = v2_token(c, user.name, "openstack", tenant.name)
    assert [r["name"] for r in access["user"]["roles"]] == [role.name]
    guide_eps = [s for s in access["serviceCatalog"]
                 if s["type"] == "identity" and any(e["region"] == "regionOne" for e in s["endpoints"])]
    assert guide_eps and guide_eps[0]["endpoints"][0]["id"] == ep.id
    assert guide_eps[0]["endpoints"][0]["adminURL"] == "http://controller:35357/v2.0"
    h = {"X-Auth-Token": ADMIN_TOKEN}
    v3_eps = httpx.get(c.auth_url + "/endpoints", params={"service_id": svc.id}, headers=h).json()["endpoints"]
    assert sorted(e["interface"] for e in v3_eps) == ["admin", "internal", "public"]
    assert {e["region_id"] for e in v3_eps} == {"regionOne"}
    assert httpx.get(c.auth_url + "/regions/regionOne", headers=h).status_code == 200
    assert httpx.get(f"{c.auth_url}/projects/{tenant.id}", headers=h).json()["project"]["domain_id"] == "default"
    assert httpx.get(f"{c.auth_url}/users/{user.id}", headers=h).json()["user"]["email"] == "admin@example.com"

    # name lookups, updates, password, enabled
    r = httpx.get(v2(c) + "/tenants", params={"name": tenant.name}, headers=h)
    assert r.json()["tenant"]["id"] == tenant.id
    assert httpx.get(v2(c) + "/users", params={"name": user.name}, headers=h).json()["user"]["id"] == user.id
    assert_error(httpx.get(v2(c) + "/users", params={"name": "missing"}, headers=h), 404)
    r = httpx.post(f"{v2(c)}/tenants/{tenant.id}", json={"tenant": {"description": "changed", "enabled": True}},
                   headers=h)
    assert r.status_code == 200 and r.json()["tenant"]["description"] == "changed"
    r = httpx.put(f"{v2(c)}/users/{user.id}", json={"user": {"email": "new@example.com"}}, headers=h)
    assert r.status_code == 200 and r.json()["user"]["email"] == "new@example.com"
    r = httpx.put(f"{v2(c)}/users/{user.id}/OS-KSADM/password", json={"user": {"password": "secret2"}}, headers=h)
    assert r.status_code == 200, r.text
    assert_error(httpx.post(v2(c) + "/tokens", json=auth_body(user.name, "openstack", tenant.name)), 401)
    token = v2_token(c, user.name, "secret2", tenant.name)["token"]["id"]
    r = httpx.put(f"{v2(c)}/users/{user.id}/OS-KSADM/enabled", json={"user": {"enabled": False}}, headers=h)
    assert r.status_code == 200 and r.json()["user"]["enabled"] is False
    assert_error(httpx.get(f"{v2(c)}/tokens/{token}", headers=h), 404)  # disabling revokes
    assert_error(httpx.post(v2(c) + "/tokens", json=auth_body(user.name, "secret2", tenant.name)), 401)
    httpx.put(f"{v2(c)}/users/{user.id}/OS-KSADM/enabled", json={"user": {"enabled": True}}, headers=h)

    # a default tenant makes the user a member there, as upstream v2 does
    r = httpx.post(v2(c) + "/users", json={"user": {"name": f"svc-{sfx}", "password": "pw", "email": None,
                                                     "tenantId": service_tenant.id, "enabled": True}}, headers=h)
    assert r.status_code == 200 and r.json()["user"]["tenantId"] == service_tenant.id
    assert "member" in {x["name"] for x in v2_token(c, f"svc-{sfx}", "pw", service_tenant.name)["user"]["roles"]}

    # and tear down through v2
    url = f"{v2(c)}/tenants/{tenant.id}/users/{user.id}/roles/OS-KSADM/{role.id}"
    assert httpx.delete(url, headers=h).status_code == 204
    assert_error(httpx.delete(url, headers=h), 404)
    assert httpx.delete(f"{v2(c)}/endpoints/{ep.id}", headers=h).status_code == 204
    assert httpx.get(c.auth_url + "/endpoints", params={"service_id": svc.id}, headers=h).json()["endpoints"] == []
    assert_error(httpx.delete(f"{v2(c)}/endpoints/{ep.id}", headers=h), 404)
    assert httpx.delete(f"{v2(c)}/OS-KSADM/services/{svc.id}", headers=h).status_code == 204
    assert httpx.delete(f"{v2(c)}/OS-KSADM/roles/{role.id}", headers=h).status_code == 204
    assert httpx.delete(f"{v2(c)}/users/{user.id}", headers=h).status_code == 204
    assert httpx.delete(f"{v2(c)}/tenants/{tenant.id}", headers=h).status_code == 204
    assert_error(httpx.get(f"{v2(c)}/tenants/{tenant.id}", headers=h), 404)
    assert_error(httpx.get(f"{v2(c)}/users/{user.id}", headers=h), 404)


def test_admin_token_lists_everything_and_sees_global_roles(token_cloud):
    c = token_cloud
    h = {"X-Auth-Token": ADMIN_TOKEN}
    assert {"admin", "service"} <= {t["name"] for t in httpx.get(v2(c) + "/tenants", headers=h).json()["tenants"]}
    admin = httpx.get(v2(c) + "/users", params={"name": "admin"}, headers=h).json()["user"]
    roles = httpx.get(f"{v2(c)}/users/{admin['id']}/roles", headers=h).json()["roles"]
    assert [r["name"] for r in roles] == ["admin"]  # the admin's system role is its v2 global role
    tid = httpx.get(v2(c) + "/tenants", params={"name": "admin"}, headers=h).json()["tenant"]["id"]
    roles = httpx.get(f"{v2(c)}/users/{admin['id']}/roles", params={"tenantId": tid}, headers=h).json()["roles"]
    assert [r["name"] for r in roles] == ["admin"]
    assert_error(httpx.get(v2(c) + "/tenants", headers={"X-Auth-Token": "WRONG"}), 401)


def test_non_default_domain_is_invisible_to_v2(token_cloud):
    c = token_cloud
    h = {"X-Auth-Token": ADMIN_TOKEN}
    dom = httpx.post(c.auth_url + "/domains", json={"domain": {"name": "d-" + uuid.uuid4().hex[:6]}},
                     headers=h).json()["domain"]
    user = httpx.post(c.auth_url + "/users", json={"user": {"name": "other", "domain_id": dom["id"],
                                                            "password": "pw"}}, headers=h).json()["user"]
    proj = httpx.post(c.auth_url + "/projects", json={"project": {"name": "p", "domain_id": dom["id"]}},
                      headers=h).json()["project"]
    assert_error(httpx.get(f"{v2(c)}/users/{user['id']}", headers=h), 404)
    assert_error(httpx.get(f"{v2(c)}/tenants/{proj['id']}", headers=h), 404)
    assert proj["id"] not in {t["id"] for t in httpx.get(v2(c) + "/tenants", headers=h).json()["tenants"]}
    assert_error(httpx.post(v2(c) + "/tokens", json=auth_body(user["id"], "pw", by_id=True)), 401)
    assert_error(httpx.post(v2(c) + "/tokens", json=auth_body("other", "pw")), 401)
