"""Domain-specific configuration and OS-OAUTH1 consumers, over HTTP against a real cloud."""
from __future__ import annotations

import sqlite3
import uuid

import httpx
import pytest


def call(cloud, method, path, token, **kw):
    return httpx.request(method, cloud.auth_url + path, headers={"X-Auth-Token": token}, timeout=30, **kw)


def status(r, code):
    assert r.status_code == code, (r.status_code, r.text)
    if code >= 400:
        assert r.json()["error"]["code"] == code
    return r.json() if r.content else None


def db_rows(cloud, sql, *args):
    conn = sqlite3.connect(cloud.state_dir / "pocketstack.db")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def admin(cloud):
    return cloud.token()


@pytest.fixture(scope="module")
def member(cloud):
    name, password = cloud.make_user("admin", "member")
    return cloud.token(name, password)


@pytest.fixture
def domain(cloud, admin):
    dom = status(call(cloud, "POST", "/domains", admin, json={"domain": {"name": "d-" + uuid.uuid4().hex[:8]}}),
                 201)["domain"]
    yield dom["id"]
    call(cloud, "PATCH", f"/domains/{dom['id']}", admin, json={"domain": {"enabled": False}})
    call(cloud, "DELETE", f"/domains/{dom['id']}", admin)


def test_default_config(cloud, admin):
    cfg = status(call(cloud, "GET", "/domains/config/default", admin), 200)["config"]
    assert cfg["identity"] == {"driver": "sql", "list_limit": None}
    assert cfg["ldap"]["url"] == "ldap://localhost" and "password" not in cfg["ldap"]
    assert status(call(cloud, "GET", "/domains/config/ldap/default", admin), 200)["config"] == {"ldap": cfg["ldap"]}
    assert status(call(cloud, "GET", "/domains/config/ldap/user_tree_dn/default", admin), 200)["config"] == \
        {"user_tree_dn": None}
    # Unknown groups/options and the sensitive password: refused as Keystone does (403).
    status(call(cloud, "GET", "/domains/config/nova/default", admin), 403)
    status(call(cloud, "GET", "/domains/config/ldap/nope/default", admin), 403)
    status(call(cloud, "GET", "/domains/config/ldap/password/default", admin), 403)


def test_domain_config_round_trip(cloud, admin, domain):
    base = f"/domains/{domain}/config"
    status(call(cloud, "GET", base, admin), 404)
    config = {"identity": {"driver": "ldap"},
              "ldap": {"url": "ldap://example.org", "user_tree_dn": "ou=Users,dc=example,dc=org",
                       "password": "bind-secret-42"}}
    visible = {"identity": {"driver": "ldap"},
               "ldap": {"url": "ldap://example.org", "user_tree_dn": "ou=Users,dc=example,dc=org"}}
    assert status(call(cloud, "PUT", base, admin, json={"config": config}), 201)["config"] == visible
    assert status(call(cloud, "GET", base, admin), 200)["config"] == visible
    # The bind password is never returned, and is not stored in clear.
    status(call(cloud, "GET", f"{base}/ldap/password", admin), 404)
    rows = db_rows(cloud, "SELECT value, sensitive FROM identity_domain_config WHERE domain_id = ? "
                          "AND option_name = 'password'", domain)
    assert len(rows) == 1 and rows[0][1] and "bind-secret-42" not in rows[0][0]
    # A second PUT replaces the configuration (200, as upstream).
    assert status(call(cloud, "PUT", base, admin, json={"config": config}), 200)["config"] == visible

    assert status(call(cloud, "GET", f"{base}/ldap", admin), 200)["config"] == {"ldap": visible["ldap"]}
    assert status(call(cloud, "GET", f"{base}/ldap/url", admin), 200)["config"] == {"url": "ldap://example.org"}
    out = status(call(cloud, "PATCH", f"{base}/identity", admin,
                      json={"config": {"identity": {"driver": "sql", "list_limit": 5}}}), 200)["config"]
    assert out["identity"] == {"driver": "sql", "list_limit": 5}
    out = status(call(cloud, "PATCH", f"{base}/ldap/url", admin, json={"config": {"url": "ldap://b"}}), 200)
    assert out["config"]["ldap"]["url"] == "ldap://b"
    # Group/option PATCHes only change what exists, and only what the URL names.
    status(call(cloud, "PATCH", f"{base}/ldap/suffix", admin, json={"config": {"suffix": "dc=x"}}), 404)
    status(call(cloud, "PATCH", f"{base}/ldap/url", admin, json={"config": {"user_tree_dn": "x"}}), 403)
    status(call(cloud, "PATCH", f"{base}/nova", admin, json={"config": {"nova": {"x": 1}}}), 403)
    status(call(cloud, "PATCH", base, admin, json={"config": {"ldap": {"bogus": 1}}}), 403)
    status(call(cloud, "PUT", base, admin, json={"config": {}}), 403)
    status(call(cloud, "PUT", base, admin, json={"config": ["ldap"]}), 400)
    status(call(cloud, "PUT", base, admin, json=["config"]), 400)

    status(call(cloud, "DELETE", f"{base}/identity/driver", admin), 204)
    status(call(cloud, "GET", f"{base}/identity/driver", admin), 404)
    status(call(cloud, "DELETE", f"{base}/identity/driver", admin), 404)
    status(call(cloud, "DELETE", f"{base}/identity", admin), 204)
    status(call(cloud, "GET", f"{base}/identity", admin), 404)
    status(call(cloud, "DELETE", base, admin), 204)
    status(call(cloud, "GET", base, admin), 404)
    assert db_rows(cloud, "SELECT count(*) FROM identity_domain_config WHERE domain_id = ?", domain) == [(0,)]


def test_domain_config_rules(cloud, admin, member, domain):
    base = f"/domains/{domain}/config"
    status(call(cloud, "PUT", "/domains/no-such-domain/config", admin,
                json={"config": {"ldap": {"url": "ldap://x"}}}), 404)
    status(call(cloud, "GET", "/domains/no-such-domain/config", admin), 404)
    status(call(cloud, "PUT", base, member, json={"config": {"ldap": {"url": "ldap://x"}}}), 403)
    status(call(cloud, "GET", "/domains/config/default", member), 403)
    status(call(cloud, "PUT", base, admin, json={"config": {"ldap": {"url": "ldap://x"}}}), 201)
    status(call(cloud, "GET", base, member), 403)
    # Anyone may read the default domain's password rules; no other domain has any.
    cfg = status(call(cloud, "GET", "/domains/default/config/security_compliance", member), 200)["config"]
    assert set(cfg["security_compliance"]) == {"password_regex", "password_regex_description"}
    status(call(cloud, "GET", f"{base}/security_compliance", admin), 403)
    status(call(cloud, "GET", "/domains/default/config/security_compliance/lockout_duration", admin), 403)
    # Deleting the domain deletes its configuration.
    status(call(cloud, "PATCH", f"/domains/{domain}", admin, json={"domain": {"enabled": False}}), 200)
    status(call(cloud, "DELETE", f"/domains/{domain}", admin), 204)
    assert db_rows(cloud, "SELECT count(*) FROM identity_domain_config WHERE domain_id = ?", domain) == [(0,)]


def test_consumer_round_trip(cloud, admin, member):
    created = status(call(cloud, "POST", "/OS-OAUTH1/consumers", admin,
                          json={"consumer": {"description": "my app", "color": "blue"}}), 201)["consumer"]
    cid, secret = created["id"], created["secret"]
    assert created["description"] == "my app" and created["color"] == "blue" and len(secret) >= 32
    assert created["links"]["self"].endswith(f"/v3/OS-OAUTH1/consumers/{cid}")
    # The secret is shown once, and is encrypted at rest.
    shown = status(call(cloud, "GET", f"/OS-OAUTH1/consumers/{cid}", admin), 200)["consumer"]
    assert "secret" not in shown and shown["description"] == "my app"
    listed = status(call(cloud, "GET", "/OS-OAUTH1/consumers", admin), 200)["consumers"]
    assert cid in [c["id"] for c in listed] and all("secret" not in c for c in listed)
    (stored,), = db_rows(cloud, "SELECT encrypted_secret FROM identity_oauth_consumer WHERE id = ?", cid)
    assert secret not in stored

    updated = status(call(cloud, "PATCH", f"/OS-OAUTH1/consumers/{cid}", admin,
                          json={"consumer": {"description": "renamed"}}), 200)["consumer"]
    assert updated["description"] == "renamed" and updated["color"] == "blue" and "secret" not in updated
    status(call(cloud, "PATCH", f"/OS-OAUTH1/consumers/{cid}", admin, json={"consumer": {"secret": "x"}}), 400)
    status(call(cloud, "PATCH", f"/OS-OAUTH1/consumers/{cid}", admin, json={"consumer": {}}), 400)
    status(call(cloud, "PATCH", f"/OS-OAUTH1/consumers/{cid}", admin, json={"consumer": {"id": "other"}}), 400)
    status(call(cloud, "POST", "/OS-OAUTH1/consumers", admin, json={"consumer": {"description": 5}}), 400)
    status(call(cloud, "POST", "/OS-OAUTH1/consumers", member, json={"consumer": {}}), 403)
    status(call(cloud, "GET", "/OS-OAUTH1/consumers", member), 403)

    status(call(cloud, "DELETE", f"/OS-OAUTH1/consumers/{cid}", admin), 204)
    status(call(cloud, "GET", f"/OS-OAUTH1/consumers/{cid}", admin), 404)
    status(call(cloud, "DELETE", f"/OS-OAUTH1/consumers/{cid}", admin), 404)
