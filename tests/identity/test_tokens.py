"""Tokens through the real clients: issue, validate, revoke, scopes, catalog."""
import httpx


def test_token_issue_and_revoke_with_cli(cloud):
    tok = cloud.os_json("token", "issue")
    assert tok["id"] and tok["project_id"] and tok["user_id"]
    headers = {"X-Auth-Token": cloud.token(), "X-Subject-Token": tok["id"]}
    assert httpx.get(cloud.auth_url + "/auth/tokens", headers=headers).status_code == 200
    cloud.openstack("token", "revoke", tok["id"])
    r = httpx.get(cloud.auth_url + "/auth/tokens", headers=headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == 404


def test_catalog_lists_identity(cloud):
    cat = cloud.os_json("catalog", "list")
    identity = [s for s in cat if s["Type"] == "identity"]
    assert identity, cat
    urls = {e["url"] for e in identity[0]["Endpoints"]}
    assert urls == {cloud.auth_url}
    assert {e["interface"] for e in identity[0]["Endpoints"]} == {"public", "internal", "admin"}


def test_sdk_token_and_project_listing(cloud):
    conn = cloud.sdk()
    names = {p.name for p in conn.identity.projects()}
    assert {"admin", "service"} <= names
    assert conn.auth_token


def test_bad_password_is_401_with_keystone_body(cloud):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": "wrong"}}}}}
    r = httpx.post(cloud.auth_url + "/auth/tokens", json=body)
    assert r.status_code == 401
    assert r.json()["error"]["title"] == "Unauthorized"
    assert "WWW-Authenticate" in r.headers
    assert r.headers["x-openstack-request-id"].startswith("req-")
