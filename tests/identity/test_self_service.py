"""Self-service identity through the real clients: credentials, EC2 credentials and
ec2tokens/s3tokens, application credentials and access rules, trusts and delegation."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import sqlite3
import uuid

import httpx
import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3 as ks_v3
from keystoneclient.contrib.ec2.utils import Ec2Signer  # an independent reference signer

from conftest import Cloud


# ---------------------------------------------------------------------------- helpers
def call(cloud, method, path, token=None, **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["X-Auth-Token"] = token
    return httpx.request(method, cloud.auth_url + path, headers=headers, timeout=30, **kw)


def keystone_error(r, status):
    """A Keystone error body with the expected status (and never a 500)."""
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == status and err["title"] and err["message"], err
    return err["message"]


def password_auth(name, password, scope=None):
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": password}}}}}
    if scope:
        body["auth"]["scope"] = scope
    return body


def issue(cloud, body):
    r = httpx.post(cloud.auth_url + "/auth/tokens", json=body, timeout=30)
    return r


def validate(cloud, token):
    return call(cloud, "GET", "/auth/tokens", cloud.token(), headers={"X-Subject-Token": token})


def app_cred_env(cloud, ac_id, secret):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=cloud.auth_url, OS_AUTH_TYPE="v3applicationcredential",
               OS_APPLICATION_CREDENTIAL_ID=ac_id, OS_APPLICATION_CREDENTIAL_SECRET=secret,
               OS_IDENTITY_API_VERSION="3", OS_REGION_NAME="RegionOne", OS_INTERFACE="public")
    return env


def app_cred_token(cloud, ac_id, secret):
    body = {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": {"id": ac_id, "secret": secret}}}}
    return issue(cloud, body)


def db_rows(cloud, sql, *args):
    conn = sqlite3.connect(cloud.state_dir / "pocketstack.db")
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


class Person:
    """A user with a role on a project, and the ways to act as them."""

    def __init__(self, cloud, project, role="member"):
        self.cloud, self.project = cloud, project
        self.name, self.password = cloud.make_user(project, role)
        self.id = cloud.os_json("user", "show", self.name)["id"]
        self.env = cloud.env_for(self.name, self.password, project)

    def token(self):
        # Fresh each time: role changes and user updates revoke earlier tokens.
        return self.cloud.token(self.name, self.password, self.project)


@pytest.fixture(scope="module")
def world(cloud):
    """Two projects with a member each, plus a user without any role on A."""
    ids = {}
    for name in ("ss-proj-a", "ss-proj-b"):
        ids[name] = cloud.os_json("project", "create", "--domain", "default", name)["id"]
    roles = {r["Name"]: r["ID"] for r in cloud.os_json("role", "list")}
    w = type("World", (), {})()
    w.a, w.b = ids["ss-proj-a"], ids["ss-proj-b"]
    w.roles = roles
    w.alice = Person(cloud, "ss-proj-a")          # member of A
    w.bob = Person(cloud, "ss-proj-b")            # member of B
    w.carol = Person(cloud, "ss-proj-b")          # member of B only: a trustee on A
    return w


# ---------------------------------------------------------------------------- OS-EC2
def test_ec2_credentials_cli_lifecycle(cloud, world):
    alice = world.alice
    created = cloud.os_json("ec2", "credentials", "create", env=alice.env)
    access, secret = created["access"], created["secret"]
    assert created["user_id"] == alice.id and created["project_id"] == world.a
    assert created["trust_id"] is None

    listed = cloud.os_json("ec2", "credentials", "list", env=alice.env)
    assert [c["Access"] for c in listed] == [access]
    shown = cloud.os_json("ec2", "credentials", "show", access, env=alice.env)
    assert shown["secret"] == secret and shown["project_id"] == world.a

    # Upstream's id scheme: the credential id is sha256(access); the blob is JSON.
    cred = cloud.os_json("credential", "show", hashlib.sha256(access.encode()).hexdigest())
    assert cred["type"] == "ec2" and json.loads(cred["blob"])["secret"] == secret
    # ... and encrypted at rest.
    rows = db_rows(cloud, "SELECT encrypted_blob FROM identity_credential WHERE id = ?",
                   hashlib.sha256(access.encode()).hexdigest())
    assert rows and secret not in rows[0][0] and access not in rows[0][0]

    cloud.openstack("ec2", "credentials", "delete", access, env=alice.env)
    assert cloud.os_json("ec2", "credentials", "list", env=alice.env) == []
    err = cloud.openstack_fails("ec2", "credentials", "show", access, env=alice.env)
    assert "404" in err or "Could not find" in err


def test_ec2_api_shapes_and_errors(cloud, world):
    alice = world.alice
    path = f"/users/{alice.id}/credentials/OS-EC2"
    r = call(cloud, "POST", path, alice.token(), json={"tenant_id": world.a})
    assert r.status_code == 201, r.text
    body = r.json()["credential"]
    assert set(body) >= {"access", "secret", "user_id", "tenant_id", "trust_id", "links"}
    assert body["links"]["self"].endswith(f"/v3/users/{alice.id}/credentials/OS-EC2/{body['access']}")
    keystone_error(call(cloud, "POST", path, alice.token(), json={}), 400)
    keystone_error(call(cloud, "POST", path, alice.token(), json={"tenant_id": 42}), 400)
    keystone_error(call(cloud, "POST", path, alice.token(), json={"tenant_id": uuid.uuid4().hex}), 404)
    keystone_error(call(cloud, "POST", path, alice.token(), content=b"not json"), 400)
    keystone_error(call(cloud, "GET", f"{path}/{uuid.uuid4().hex}", alice.token()), 404)
    # Bob (project B) can neither list nor read nor create Alice's EC2 credentials.
    keystone_error(call(cloud, "GET", path, world.bob.token()), 403)
    keystone_error(call(cloud, "GET", f"{path}/{body['access']}", world.bob.token()), 403)
    keystone_error(call(cloud, "POST", path, world.bob.token(), json={"tenant_id": world.b}), 403)
    # ... nor reach it through his own path.
    keystone_error(call(cloud, "DELETE", f"/users/{world.bob.id}/credentials/OS-EC2/{body['access']}",
                        world.bob.token()), 403)
    assert call(cloud, "DELETE", f"{path}/{body['access']}", alice.token()).status_code == 204


def _ec2_v2_request(access, secret, host="127.0.0.1:8788", stamp=None):
    params = {"Action": "DescribeInstances", "AWSAccessKeyId": access, "SignatureVersion": "2",
              "SignatureMethod": "HmacSHA256", "Version": "2016-11-15",
              "Timestamp": stamp or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    creds = {"access": access, "host": host, "verb": "GET", "path": "/", "params": params}
    creds["signature"] = Ec2Signer(secret).generate(json.loads(json.dumps(creds)))
    return creds


def _ec2_v4_request(access, secret, host="127.0.0.1:8788"):
    now = dt.datetime.now(dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{access}/{now:%Y%m%d}/RegionOne/ec2/aws4_request"
    body = b"Action=DescribeRegions&Version=2016-11-15"
    headers = {"Host": host, "X-Amz-Date": amz_date,
               "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-date, "
                                "Signature=placeholder"}
    creds = {"access": access, "host": host, "verb": "POST", "path": "/",
             "params": {"Action": "DescribeRegions", "Version": "2016-11-15"},
             "headers": headers, "body_hash": hashlib.sha256(body).hexdigest()}
    creds["signature"] = Ec2Signer(secret).generate(json.loads(json.dumps(creds)))
    return creds


def test_ec2tokens_v2_v4_and_s3tokens(cloud, world):
    alice = world.alice
    r = call(cloud, "POST", f"/users/{alice.id}/credentials/OS-EC2", alice.token(), json={"tenant_id": world.a})
    access, secret = r.json()["credential"]["access"], r.json()["credential"]["secret"]

    for creds in (_ec2_v2_request(access, secret), _ec2_v4_request(access, secret)):
        r = httpx.post(cloud.auth_url + "/ec2tokens", json={"credentials": creds})
        assert r.status_code == 200, r.text
        tok = r.json()["token"]
        assert tok["user"]["id"] == alice.id and tok["project"]["id"] == world.a
        assert tok["methods"] == ["ec2credential"]
        assert "member" in {x["name"] for x in tok["roles"]} and tok["catalog"]
        v = validate(cloud, r.headers["X-Subject-Token"])
        assert v.status_code == 200 and v.json()["token"]["user"]["id"] == alice.id

    # HmacSHA1 v2 signatures, and signatures made without the port, are accepted too.
    params = {"Action": "DescribeInstances", "SignatureVersion": "2", "SignatureMethod": "HmacSHA1",
              "Timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    qs = "&".join(f"{k}={httpx.URL('', params={k: v}).query.decode().split('=', 1)[1]}"
                  for k, v in sorted(params.items()))
    sig = base64.b64encode(hmac.new(secret.encode(), f"GET\nlocalhost\n/\n{qs}".encode(),
                                    hashlib.sha1).digest()).decode()
    creds = {"access": access, "signature": sig, "host": "localhost:8788", "verb": "GET", "path": "/",
             "params": params}
    assert httpx.post(cloud.auth_url + "/ec2tokens", json={"credentials": creds}).status_code == 200

    # Wrong signature, unknown access key, stale timestamp, nothing signed: 401, never 500.
    bad = _ec2_v2_request(access, secret)
    bad["signature"] = base64.b64encode(b"x" * 32).decode()
    keystone_error(httpx.post(cloud.auth_url + "/ec2tokens", json={"credentials": bad}), 401)
    keystone_error(httpx.post(cloud.auth_url + "/ec2tokens",
                              json={"credentials": _ec2_v2_request(uuid.uuid4().hex, secret)}), 401)
    stale = _ec2_v2_request(access, secret, stamp="2001-01-01T00:00:00Z")
    keystone_error(httpx.post(cloud.auth_url + "/ec2tokens", json={"credentials": stale}), 401)
    keystone_error(httpx.post(cloud.auth_url + "/ec2tokens",
                              json={"credentials": {"access": access, "signature": "x", "params": {}}}), 401)
    keystone_error(httpx.post(cloud.auth_url + "/ec2tokens", json={}), 400)
    keystone_error(httpx.get(cloud.auth_url + "/ec2tokens"), 405)

    # S3: v2 (HMAC-SHA1 of the string to sign) and v4 string to sign.
    sts = "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/bucket/key"
    sig = base64.b64encode(hmac.new(secret.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    r = httpx.post(cloud.auth_url + "/s3tokens", json={"credentials": {
        "access": access, "token": base64.b64encode(sts.encode()).decode(), "signature": sig}})
    assert r.status_code == 200, r.text
    assert r.json()["token"]["project"]["id"] == world.a
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    sts4 = f"AWS4-HMAC-SHA256\n{day}T000000Z\n{day}/RegionOne/s3/aws4_request\n{'0' * 64}"
    key = ("AWS4" + secret).encode()
    for part in (day, "RegionOne", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig4 = hmac.new(key, sts4.encode(), hashlib.sha256).hexdigest()
    r = httpx.post(cloud.auth_url + "/s3tokens", json={"credentials": {
        "access": access, "token": base64.b64encode(sts4.encode()).decode(), "signature": sig4}})
    assert r.status_code == 200, r.text
    keystone_error(httpx.post(cloud.auth_url + "/s3tokens", json={"credentials": {
        "access": access, "token": base64.b64encode(sts4.encode()).decode(), "signature": "0" * 64}}), 401)

    # A disabled user's EC2 credentials stop working.
    cloud.openstack("user", "set", "--disable", alice.id)
    try:
        keystone_error(httpx.post(cloud.auth_url + "/ec2tokens",
                                  json={"credentials": _ec2_v2_request(access, secret)}), 401)
    finally:
        cloud.openstack("user", "set", "--enable", alice.id)


def test_signature_functions_match_the_reference_signer():
    """`delegation.ec2_signatures` (what ec2tokens and the S3 API use) agrees with
    keystoneclient's signer for v2 and for v4 with X-Amz-* query parameters."""
    from pocketstack.identity import delegation

    secret = uuid.uuid4().hex
    v2 = _ec2_v2_request("AKID", secret)
    assert v2["signature"] in delegation.ec2_signatures(secret, v2)
    params = {"Action": "DescribeRegions", "Version": "2016-11-15", "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
              "X-Amz-Credential": "AKID/20240101/RegionOne/ec2/aws4_request", "X-Amz-Date": "20240101T000000Z",
              "X-Amz-SignedHeaders": "host"}
    v4 = {"host": "ec2.example:8788", "verb": "GET", "path": "/", "params": params,
          "headers": {"Host": "ec2.example:8788"}, "body_hash": hashlib.sha256(b"").hexdigest()}
    ref = Ec2Signer(secret).generate(json.loads(json.dumps(v4)))
    assert ref in delegation.ec2_signatures(secret, v4)
    assert Ec2Signer(secret + "x").generate(json.loads(json.dumps(v4))) not in delegation.ec2_signatures(secret, v4)


# ---------------------------------------------------------------------------- /v3/credentials
def test_credentials_cli_crud_and_ownership(cloud, world):
    alice, bob = world.alice, world.bob
    # A member manages their own credentials with the CLI.
    mine = cloud.os_json("credential", "create", alice.id, '{"cert": "alice"}', "--type", "cert",
                         "--project", world.a, env=alice.env)
    assert mine["type"] == "cert" and mine["user_id"] == alice.id and mine["project_id"] == world.a
    assert json.loads(mine["blob"]) == {"cert": "alice"}
    cloud.openstack("credential", "set", "--user", alice.id, "--type", "cert", "--data", '{"cert": "v2"}',
                    mine["id"], env=alice.env)
    assert json.loads(cloud.os_json("credential", "show", mine["id"], env=alice.env)["blob"]) == {"cert": "v2"}

    # The admin creates one for Bob; filters work.
    bobs = cloud.os_json("credential", "create", bob.id, "s3cr3t-blob", "--type", "totp")
    ids = {c["ID"] for c in cloud.os_json("credential", "list", "--user", bob.id)}
    assert bobs["id"] in ids and mine["id"] not in ids
    assert {c["Type"] for c in cloud.os_json("credential", "list", "--type", "totp")} == {"totp"}
    admin_view = {c["ID"] for c in cloud.os_json("credential", "list")}
    assert {mine["id"], bobs["id"]} <= admin_view

    # Members see only their own.
    alices = cloud.os_json("credential", "list", env=alice.env)
    assert mine["id"] in {c["ID"] for c in alices} and {c["User ID"] for c in alices} == {alice.id}
    bobs_view = cloud.os_json("credential", "list", env=bob.env)
    assert bobs["id"] in {c["ID"] for c in bobs_view} and {c["User ID"] for c in bobs_view} == {bob.id}
    r = call(cloud, "GET", "/credentials", bob.token(), params={"user_id": alice.id})
    assert r.status_code == 200 and r.json()["credentials"] == []
    keystone_error(call(cloud, "GET", f"/credentials/{mine['id']}", bob.token()), 403)
    keystone_error(call(cloud, "PATCH", f"/credentials/{mine['id']}", bob.token(),
                        json={"credential": {"blob": "x"}}), 403)
    keystone_error(call(cloud, "DELETE", f"/credentials/{mine['id']}", bob.token()), 403)
    keystone_error(call(cloud, "POST", "/credentials", bob.token(),
                        json={"credential": {"user_id": alice.id, "type": "cert", "blob": "x"}}), 403)
    # ... and cannot hand their own credential to someone else.
    keystone_error(call(cloud, "PATCH", f"/credentials/{bobs['id']}", bob.token(),
                        json={"credential": {"user_id": alice.id}}), 403)

    # The blob is encrypted at rest.
    rows = db_rows(cloud, "SELECT encrypted_blob FROM identity_credential WHERE id = ?", bobs["id"])
    assert "s3cr3t-blob" not in rows[0][0]

    cloud.openstack("credential", "delete", mine["id"], env=alice.env)
    cloud.openstack("credential", "delete", bobs["id"])
    keystone_error(call(cloud, "GET", f"/credentials/{bobs['id']}", cloud.token()), 404)


def test_ec2_credentials_through_credentials_api(cloud, world):
    admin = cloud.token()
    access = uuid.uuid4().hex
    blob = json.dumps({"access": access, "secret": "s"})
    r = call(cloud, "POST", "/credentials", admin, json={"credential": {
        "user_id": world.alice.id, "project_id": world.a, "type": "ec2", "blob": blob}})
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert cred["id"] == hashlib.sha256(access.encode()).hexdigest()
    assert isinstance(cred["blob"], str) and cred["links"]["self"].endswith(f"/v3/credentials/{cred['id']}")
    # Same access key again: conflict. It also shows up in the OS-EC2 view.
    keystone_error(call(cloud, "POST", "/credentials", admin, json={"credential": {
        "user_id": world.alice.id, "project_id": world.a, "type": "ec2", "blob": blob}}), 409)
    r = call(cloud, "GET", f"/users/{world.alice.id}/credentials/OS-EC2/{access}", world.alice.token())
    assert r.status_code == 200 and r.json()["credential"]["secret"] == "s"
    # Updating the blob keeps the id (Tempest's check); scope keys may not change.
    r = call(cloud, "PATCH", f"/credentials/{cred['id']}", admin,
             json={"credential": {"blob": json.dumps({"access": "new", "secret": "n"})}})
    assert r.status_code == 200 and r.json()["credential"]["id"] == cred["id"]
    assert json.loads(r.json()["credential"]["blob"])["access"] == "new"
    keystone_error(call(cloud, "PATCH", f"/credentials/{cred['id']}", admin, json={"credential": {
        "blob": json.dumps({"access": "new", "secret": "n", "trust_id": "x"})}}), 400)
    keystone_error(call(cloud, "PATCH", f"/credentials/{cred['id']}", admin,
                        json={"credential": {"id": "other"}}), 400)
    assert call(cloud, "DELETE", f"/credentials/{cred['id']}", admin).status_code == 204


@pytest.mark.parametrize("body, status", [
    ({}, 400),
    ({"credential": "x"}, 400),
    ({"credential": {"type": "cert", "blob": "x"}}, 400),                          # no user_id
    ({"credential": {"user_id": "USER", "blob": "x"}}, 400),                         # no type
    ({"credential": {"user_id": "USER", "type": "cert"}}, 400),                      # no blob
    ({"credential": {"user_id": "USER", "type": "cert", "blob": {"a": 1}}}, 400),    # blob not a string
    ({"credential": {"user_id": 5, "type": "cert", "blob": "x"}}, 400),
    ({"credential": {"user_id": "USER", "type": "ec2", "blob": "{\"access\": \"a\"}"}}, 400),  # no project
    ({"credential": {"user_id": "USER", "type": "ec2", "blob": "not json", "project_id": "PROJ"}}, 400),
    ({"credential": {"user_id": "USER", "type": "ec2", "blob": "{\"secret\": \"s\"}", "project_id": "PROJ"}}, 400),
    ({"credential": {"user_id": "USER", "type": "ec2", "blob": "[1, 2]", "project_id": "PROJ"}}, 400),
    ({"credential": {"user_id": uuid.uuid4().hex, "type": "cert", "blob": "x"}}, 404),
    ({"credential": {"user_id": "USER", "type": "cert", "blob": "x", "project_id": "nope"}}, 404),
])
def test_credential_bad_input(cloud, world, body, status):
    text = json.dumps(body).replace("USER", world.alice.id).replace("PROJ", world.a)
    r = call(cloud, "POST", "/credentials", cloud.token(), content=text,
             headers={"Content-Type": "application/json"})
    keystone_error(r, status)


# ---------------------------------------------------------------------------- application credentials
def test_application_credential_cli_and_token(cloud, world):
    alice = world.alice
    ac = cloud.os_json("application", "credential", "create", "ss-app", "--description", "for CI",
                       env=alice.env)
    secret, ac_id = ac["Secret"], ac["ID"]
    assert ac["Project ID"] == world.a and ac["Description"] == "for CI" and ac["Unrestricted"] is False
    assert {r["name"] for r in ac["Roles"]} == {"member", "reader"}  # the caller's roles by default

    listed = cloud.os_json("application", "credential", "list", env=alice.env)
    assert [x["Name"] for x in listed] == ["ss-app"]
    shown = cloud.os_json("application", "credential", "show", "ss-app", env=alice.env)
    assert shown["ID"] == ac_id and not shown.get("Secret")
    r = call(cloud, "GET", f"/users/{alice.id}/application_credentials/{ac_id}", alice.token())
    assert r.status_code == 200 and "secret" not in r.json()["application_credential"]
    r = call(cloud, "GET", f"/users/{alice.id}/application_credentials", alice.token(), params={"name": "nope"})
    assert r.json()["application_credentials"] == []

    # The secret is stored bcrypt-hashed, never in clear.
    (hashed,) = db_rows(cloud, "SELECT secret_hash FROM identity_application_credential WHERE id = ?", ac_id)[0]
    assert hashed.startswith("$2") and secret not in hashed

    # `openstack token issue` with the application credential.
    env = app_cred_env(cloud, ac_id, secret)
    tok = cloud.os_json("token", "issue", env=env)
    assert tok["project_id"] == world.a and tok["user_id"] == alice.id
    body = validate(cloud, tok["id"]).json()["token"]
    assert body["application_credential"] == {"id": ac_id, "name": "ss-app", "restricted": True}
    assert body["methods"] == ["application_credential"]
    bad_env = app_cred_env(cloud, ac_id, secret + "x")
    cloud.openstack_fails("token", "issue", env=bad_env)

    # Deleting it revokes its tokens.
    cloud.openstack("application", "credential", "delete", "ss-app", env=alice.env)
    assert validate(cloud, tok["id"]).status_code == 404
    cloud.openstack_fails("token", "issue", env=env)
    assert cloud.os_json("application", "credential", "list", env=alice.env) == []


def test_application_credential_restricted_roles(cloud, world):
    alice = world.alice
    ac = cloud.os_json("application", "credential", "create", "ss-reader", "--role", "reader",
                       "--secret", "my-own-secret", env=alice.env)
    assert [r["name"] for r in ac["Roles"]] == ["reader"] and ac["Secret"] == "my-own-secret"
    r = app_cred_token(cloud, ac["ID"], "my-own-secret")
    assert r.status_code == 201, r.text
    assert {x["name"] for x in r.json()["token"]["roles"]} == {"reader"}
    # By name + user as well.
    r = issue(cloud, {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {
        "name": "ss-reader", "secret": "my-own-secret", "user": {"id": alice.id}}}}})
    assert r.status_code == 201, r.text
    # Roles the caller does not hold: refused; unknown roles: 404.
    path = f"/users/{alice.id}/application_credentials"
    keystone_error(call(cloud, "POST", path, alice.token(), json={"application_credential": {
        "name": "x1", "roles": [{"name": "admin"}]}}), 400)
    keystone_error(call(cloud, "POST", path, alice.token(), json={"application_credential": {
        "name": "x2", "roles": [{"name": "no-such-role"}]}}), 404)
    keystone_error(call(cloud, "POST", path, alice.token(), json={"application_credential": {
        "name": "x3", "roles": [{"id": uuid.uuid4().hex}]}}), 404)
    # An implied role comes along: asking for member also gives reader.
    r = call(cloud, "POST", path, alice.token(), json={"application_credential": {
        "name": "ss-member", "roles": [{"name": "member"}]}})
    assert r.status_code == 201 and {x["name"] for x in r.json()["application_credential"]["roles"]} == \
        {"member", "reader"}
    for name in ("ss-reader", "ss-member"):
        cloud.openstack("application", "credential", "delete", name, env=alice.env)


def test_application_credential_tokens_cannot_mint_unless_unrestricted(cloud, world):
    alice = world.alice
    path = f"/users/{alice.id}/application_credentials"
    made = {}
    for name, unrestricted in (("ss-restricted", False), ("ss-unrestricted", True)):
        r = call(cloud, "POST", path, alice.token(), json={"application_credential": {
            "name": name, "unrestricted": unrestricted}})
        assert r.status_code == 201, r.text
        made[name] = r.json()["application_credential"]
        assert made[name]["unrestricted"] is unrestricted
    restricted_tok = app_cred_token(cloud, made["ss-restricted"]["id"], made["ss-restricted"]["secret"])
    restricted_tok = restricted_tok.headers["X-Subject-Token"]
    keystone_error(call(cloud, "POST", path, restricted_tok, json={"application_credential": {"name": "y"}}), 403)
    keystone_error(call(cloud, "POST", f"/users/{alice.id}/credentials/OS-EC2", restricted_tok,
                        json={"tenant_id": world.a}), 403)
    keystone_error(call(cloud, "DELETE", f"{path}/{made['ss-unrestricted']['id']}", restricted_tok), 403)
    free_tok = app_cred_token(cloud, made["ss-unrestricted"]["id"], made["ss-unrestricted"]["secret"])
    free_tok = free_tok.headers["X-Subject-Token"]
    r = call(cloud, "POST", path, free_tok, json={"application_credential": {"name": "ss-child"}})
    assert r.status_code == 201, r.text
    # Trusts are never managed with application credential tokens.
    keystone_error(call(cloud, "GET", "/OS-TRUST/trusts", free_tok), 403)
    for name in ("ss-restricted", "ss-unrestricted", "ss-child"):
        cloud.openstack("application", "credential", "delete", name, env=alice.env)


def test_access_rules(cloud, world):
    alice = world.alice
    rules = [{"service": "compute", "path": "/v2.1/servers/*/ips", "method": "GET"}]
    ac = cloud.os_json("application", "credential", "create", "ss-rules", "--access-rules", json.dumps(rules),
                       env=alice.env)
    assert len(ac["Access Rules"]) == 1
    rule = ac["Access Rules"][0]
    assert {k: rule[k] for k in ("service", "path", "method")} == rules[0] and rule["id"]

    listed = cloud.os_json("access", "rule", "list", env=alice.env)
    assert [x["ID"] for x in listed] == [rule["id"]]
    shown = cloud.os_json("access", "rule", "show", rule["id"], env=alice.env)
    assert shown["Path"] == "/v2.1/servers/*/ips" and shown["Service"] == "compute"
    # The same rule is reused by a second credential, and may not be deleted while in use.
    r = call(cloud, "POST", f"/users/{alice.id}/application_credentials", alice.token(),
             json={"application_credential": {"name": "ss-rules2", "access_rules": rules}})
    assert r.json()["application_credential"]["access_rules"][0]["id"] == rule["id"]
    keystone_error(call(cloud, "DELETE", f"/users/{alice.id}/access_rules/{rule['id']}", alice.token()), 403)
    keystone_error(call(cloud, "GET", f"/users/{alice.id}/access_rules/{rule['id']}", world.bob.token()), 403)
    keystone_error(call(cloud, "GET", f"/users/{world.bob.id}/access_rules/{rule['id']}", world.bob.token()), 404)
    cloud.openstack("application", "credential", "delete", "ss-rules", "ss-rules2", env=alice.env)
    # The rule outlives the credentials (as upstream), then goes.
    assert [x["ID"] for x in cloud.os_json("access", "rule", "list", env=alice.env)] == [rule["id"]]
    cloud.openstack("access", "rule", "delete", rule["id"], env=alice.env)
    assert cloud.os_json("access", "rule", "list", env=alice.env) == []


@pytest.mark.parametrize("body, status", [
    ({}, 400),
    ({"application_credential": {}}, 400),                                   # no name
    ({"application_credential": {"name": ""}}, 400),
    ({"application_credential": {"name": 7}}, 400),
    ({"application_credential": {"name": "n", "bogus": 1}}, 400),
    ({"application_credential": {"name": "n", "unrestricted": "yes"}}, 400),
    ({"application_credential": {"name": "n", "secret": 12}}, 400),
    ({"application_credential": {"name": "n", "expires_at": "2001-01-01T00:00:00"}}, 400),
    ({"application_credential": {"name": "n", "expires_at": "bad.123Z"}}, 400),
    ({"application_credential": {"name": "n", "roles": "member"}}, 400),
    ({"application_credential": {"name": "n", "roles": [{"id": "a", "name": "b"}]}}, 400),
    ({"application_credential": {"name": "n", "roles": [{"name": "no-such"}]}}, 404),
    ({"application_credential": {"name": "n", "access_rules": [{"service": "compute", "path": "/x",
                                                                "method": "FETCH"}]}}, 400),
    ({"application_credential": {"name": "n", "access_rules": [{"service": "compute", "path": "x",
                                                                "method": "GET"}]}}, 400),
    ({"application_credential": {"name": "n", "access_rules": [{"service": "compute"}]}}, 400),
    ({"application_credential": {"name": "n", "access_rules": "all"}}, 400),
    ({"application_credential": {"name": "n", "access_rules": [{"service": "compute", "path": "/" + "a" * 200,
                                                                "method": "GET"}]}}, 400),
    ({"application_credential": {"name": "n", "expires_at": "9999-12-31T23:59:59-12:00"}}, 400),
])
def test_application_credential_bad_input(cloud, world, body, status):
    r = call(cloud, "POST", f"/users/{world.alice.id}/application_credentials", world.alice.token(), json=body)
    keystone_error(r, status)


def test_application_credential_expiry_name_and_ownership(cloud, world):
    alice, bob = world.alice, world.bob
    path = f"/users/{alice.id}/application_credentials"
    expires = (dt.datetime.utcnow() + dt.timedelta(hours=1)).replace(microsecond=123456)
    r = call(cloud, "POST", path, alice.token(), json={"application_credential": {
        "name": "ss-exp", "expires_at": expires.isoformat()}})
    assert r.status_code == 201, r.text
    ac = r.json()["application_credential"]
    assert ac["expires_at"] == expires.isoformat()  # Tempest compares it this way
    keystone_error(call(cloud, "POST", path, alice.token(), json={"application_credential": {"name": "ss-exp"}}),
                   409)
    # Nobody else sees or creates them, even with the owner's id in the path.
    keystone_error(call(cloud, "GET", path, bob.token()), 403)
    keystone_error(call(cloud, "GET", f"{path}/{ac['id']}", bob.token()), 403)
    keystone_error(call(cloud, "GET", f"/users/{bob.id}/application_credentials/{ac['id']}", bob.token()), 403)
    keystone_error(call(cloud, "DELETE", f"{path}/{ac['id']}", bob.token()), 403)
    keystone_error(call(cloud, "POST", path, bob.token(), json={"application_credential": {"name": "z"}}), 403)
    assert cloud.os_json("application", "credential", "list", env=bob.env) == []
    # The admin may read and delete them, but not create them for someone else.
    assert call(cloud, "GET", f"{path}/{ac['id']}", cloud.token()).status_code == 200
    keystone_error(call(cloud, "POST", path, cloud.token(), json={"application_credential": {"name": "z"}}), 403)
    assert call(cloud, "DELETE", f"{path}/{ac['id']}", cloud.token()).status_code == 204
    keystone_error(call(cloud, "GET", f"{path}/{ac['id']}", alice.token()), 404)


def test_application_credential_user_limit(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("limited"), config={("application_credential", "user_limit"): "2"})
    c.start()
    try:
        tok = c.token()
        uid = c.os_json("user", "show", "admin")["id"]
        for i in range(2):
            r = call(c, "POST", f"/users/{uid}/application_credentials", tok,
                     json={"application_credential": {"name": f"l{i}"}})
            assert r.status_code == 201, r.text
        keystone_error(call(c, "POST", f"/users/{uid}/application_credentials", tok,
                            json={"application_credential": {"name": "l2"}}), 403)
    finally:
        c.stop()


# ---------------------------------------------------------------------------- trusts
def _trust_token(cloud, trustee, trust_id):
    return issue(cloud, password_auth(trustee.name, trustee.password, {"OS-TRUST:trust": {"id": trust_id}}))


def test_trust_cli_lifecycle_with_impersonation(cloud, world):
    alice, carol = world.alice, world.carol       # carol has no role on project A
    trust = cloud.os_json("trust", "create", "--project", world.a, "--role", "member", "--impersonate",
                          alice.id, carol.id, env=alice.env)
    tid = trust["id"]
    assert trust["trustor_user_id"] == alice.id and trust["trustee_user_id"] == carol.id
    assert trust["project_id"] == world.a and trust["is_impersonation"] in (True, "True")

    # The trustee gets a trust-scoped token; with impersonation, it is the trustor's.
    r = _trust_token(cloud, carol, tid)
    assert r.status_code == 201, r.text
    tok = r.json()["token"]
    assert tok["user"]["id"] == alice.id and tok["project"]["id"] == world.a
    assert tok["OS-TRUST:trust"]["id"] == tid and tok["OS-TRUST:trust"]["impersonation"] is True
    assert {x["name"] for x in tok["roles"]} == {"member", "reader"}
    trust_token = r.headers["X-Subject-Token"]
    # keystoneauth (what every client uses) gets one as well.
    auth = ks_v3.Password(auth_url=cloud.auth_url, username=carol.name, password=carol.password,
                          user_domain_id="default", trust_id=tid)
    sess = ks_session.Session(auth=auth)
    assert sess.get_token() and auth.get_access(sess).trust_id == tid
    # Only the trustee may use it.
    keystone_error(_trust_token(cloud, world.bob, tid), 403)

    # Both parties see it; others do not.
    assert tid in {t["ID"] for t in cloud.os_json("trust", "list", env=alice.env)}
    assert tid in {t["ID"] for t in cloud.os_json("trust", "list", env=carol.env)}
    assert tid not in {t["ID"] for t in cloud.os_json("trust", "list", env=world.bob.env)}
    assert tid in {t["ID"] for t in cloud.os_json("trust", "list")}  # the admin sees all
    shown = cloud.os_json("trust", "show", tid, env=carol.env)
    assert shown["project_id"] == world.a and "member" in str(shown["roles"])
    keystone_error(call(cloud, "GET", f"/OS-TRUST/trusts/{tid}", world.bob.token()), 403)
    keystone_error(call(cloud, "GET", "/OS-TRUST/trusts", world.bob.token(),
                        params={"trustor_user_id": alice.id}), 403)
    r = call(cloud, "GET", "/OS-TRUST/trusts/", alice.token(), params={"trustor_user_id": alice.id})
    assert [t["id"] for t in r.json()["trusts"]] == [tid] and "roles" not in r.json()["trusts"][0]

    # Roles sub-resources.
    r = call(cloud, "GET", f"/OS-TRUST/trusts/{tid}/roles", carol.token())
    assert [x["name"] for x in r.json()["roles"]] == ["member"]
    member_id = world.roles["member"]
    r = call(cloud, "GET", f"/OS-TRUST/trusts/{tid}/roles/{member_id}", alice.token())
    assert r.status_code == 200 and r.json()["role"]["name"] == "member"
    assert r.json()["role"]["links"]["self"].endswith(f"/v3/roles/{member_id}")
    assert call(cloud, "HEAD", f"/OS-TRUST/trusts/{tid}/roles/{member_id}", alice.token()).status_code == 200
    keystone_error(call(cloud, "GET", f"/OS-TRUST/trusts/{tid}/roles/{world.roles['reader']}", alice.token()), 404)
    assert call(cloud, "HEAD", f"/OS-TRUST/trusts/{tid}/roles/{world.roles['admin']}",
                alice.token()).status_code == 404

    # Only the trustor (or an admin) deletes it; its tokens die with it.
    keystone_error(call(cloud, "DELETE", f"/OS-TRUST/trusts/{tid}", carol.token()), 403)
    assert validate(cloud, trust_token).status_code == 200
    cloud.openstack("trust", "delete", tid, env=alice.env)
    assert validate(cloud, trust_token).status_code == 404
    keystone_error(call(cloud, "GET", f"/OS-TRUST/trusts/{tid}", alice.token()), 404)
    assert _trust_token(cloud, carol, tid).status_code == 401
    assert tid not in {t["ID"] for t in cloud.os_json("trust", "list", env=alice.env)}


def test_trust_without_impersonation_and_remaining_uses(cloud, world):
    alice, carol = world.alice, world.carol
    expires = (dt.datetime.utcnow() + dt.timedelta(hours=1)).replace(microsecond=0).isoformat() + "Z"
    r = call(cloud, "POST", "/OS-TRUST/trusts", alice.token(), json={"trust": {
        "trustor_user_id": alice.id, "trustee_user_id": carol.id, "project_id": world.a,
        "impersonation": False, "roles": [{"name": "reader"}], "remaining_uses": 1, "expires_at": expires}})
    assert r.status_code == 201, r.text
    trust = r.json()["trust"]
    assert trust["remaining_uses"] == 1 and trust["expires_at"].startswith(expires[:-1])
    assert trust["roles_links"]["self"].endswith(f"/OS-TRUST/trusts/{trust['id']}/roles")
    assert trust["links"]["self"].endswith(f"/v3/OS-TRUST/trusts/{trust['id']}")
    r = _trust_token(cloud, carol, trust["id"])
    assert r.status_code == 201, r.text
    tok = r.json()["token"]
    assert tok["user"]["id"] == carol.id and tok["OS-TRUST:trust"]["impersonation"] is False
    assert {x["name"] for x in tok["roles"]} == {"reader"}
    # The one use is spent: no more tokens, and the trust reads as gone.
    assert _trust_token(cloud, carol, trust["id"]).status_code in (401, 403)
    keystone_error(call(cloud, "GET", f"/OS-TRUST/trusts/{trust['id']}", alice.token()), 404)


def test_trust_redelegation(cloud, world):
    alice, carol, bob = world.alice, world.carol, world.bob
    r = call(cloud, "POST", "/OS-TRUST/trusts", alice.token(), json={"trust": {
        "trustor_user_id": alice.id, "trustee_user_id": carol.id, "project_id": world.a,
        "impersonation": True, "roles": [{"name": "member"}], "allow_redelegation": True,
        "redelegation_count": 2}})
    assert r.status_code == 201, r.text
    parent = r.json()["trust"]
    assert parent["redelegation_count"] == 2 and parent["allow_redelegation"] is True
    carol_trust_token = _trust_token(cloud, carol, parent["id"]).headers["X-Subject-Token"]
    # Carol (acting as Alice through impersonation) redelegates to Bob.
    body = {"trust": {"trustor_user_id": alice.id, "trustee_user_id": bob.id, "project_id": world.a,
                      "impersonation": True, "roles": [{"name": "member"}], "allow_redelegation": True}}
    r = call(cloud, "POST", "/OS-TRUST/trusts", carol_trust_token, json=body)
    assert r.status_code == 201, r.text
    child = r.json()["trust"]
    assert child["redelegated_trust_id"] == parent["id"] and child["redelegation_count"] == 1
    # More roles than the parent trust delegates: refused.
    wider = json.loads(json.dumps(body))
    wider["trust"]["roles"] = [{"name": "manager"}]
    cloud.openstack("role", "add", "--user", alice.id, "--project", world.a, "manager")
    try:
        assert call(cloud, "POST", "/OS-TRUST/trusts", carol_trust_token, json=wider).status_code == 403
    finally:
        cloud.openstack("role", "remove", "--user", alice.id, "--project", world.a, "manager")
    r = _trust_token(cloud, bob, child["id"])
    assert r.status_code == 201, r.text
    bob_token = r.headers["X-Subject-Token"]
    # Deleting the parent takes the redelegated trust and its tokens along.
    assert call(cloud, "DELETE", f"/OS-TRUST/trusts/{parent['id']}", alice.token()).status_code == 204
    keystone_error(call(cloud, "GET", f"/OS-TRUST/trusts/{child['id']}", alice.token()), 404)
    assert validate(cloud, bob_token).status_code == 404


def test_ec2_credential_made_with_trust_token(cloud, world):
    alice, carol = world.alice, world.carol
    r = call(cloud, "POST", "/OS-TRUST/trusts", alice.token(), json={"trust": {
        "trustor_user_id": alice.id, "trustee_user_id": carol.id, "project_id": world.a,
        "impersonation": True, "roles": [{"name": "member"}]}})
    tid = r.json()["trust"]["id"]
    trust_token = _trust_token(cloud, carol, tid).headers["X-Subject-Token"]
    r = call(cloud, "POST", f"/users/{alice.id}/credentials/OS-EC2", trust_token, json={"tenant_id": world.a})
    assert r.status_code == 201, r.text
    cred = r.json()["credential"]
    assert cred["trust_id"] == tid
    # A delegated token cannot reach another project's EC2 credentials.
    keystone_error(call(cloud, "POST", f"/users/{alice.id}/credentials/OS-EC2", trust_token,
                        json={"tenant_id": world.b}), 403)
    r = httpx.post(cloud.auth_url + "/ec2tokens",
                   json={"credentials": _ec2_v2_request(cred["access"], cred["secret"])})
    assert r.status_code == 200, r.text
    tok = r.json()["token"]
    assert tok["OS-TRUST:trust"]["id"] == tid and tok["user"]["id"] == alice.id
    # Trust tokens may not manage application credentials.
    keystone_error(call(cloud, "POST", f"/users/{alice.id}/application_credentials", trust_token,
                        json={"application_credential": {"name": "via-trust"}}), 403)
    call(cloud, "DELETE", f"/OS-TRUST/trusts/{tid}", alice.token())
    keystone_error(httpx.post(cloud.auth_url + "/ec2tokens",
                              json={"credentials": _ec2_v2_request(cred["access"], cred["secret"])}), 401)


@pytest.mark.parametrize("change, status", [
    ({"roles": [{"name": "admin"}]}, 404),                 # the trustor does not hold it
    ({"roles": [{"name": "no-such-role"}]}, 404),
    ({"roles": [{"id": "x", "name": "y"}]}, 400),
    ({"roles": "member"}, 400),
    ({"roles": []}, 403),                                  # a project trust needs a role
    ({"trustor_user_id": "OTHER"}, 403),                   # the trustor must be the caller
    ({"trustee_user_id": None}, 400),
    ({"trustee_user_id": "nobody-" + uuid.uuid4().hex[:6]}, 404),
    ({"impersonation": "yes"}, 400),
    ({"impersonation": None}, 400),
    ({"expires_at": "2001-01-01T00:00:00Z"}, 400),
    ({"expires_at": "bad.123Z"}, 400),
    ({"remaining_uses": 0}, 400),
    ({"remaining_uses": "1"}, 400),
    ({"project_id": "no-such-project"}, 404),
    ({"allow_redelegation": True, "redelegation_count": 99}, 403),
    ({"allow_redelegation": True, "remaining_uses": 2}, 400),
])
def test_trust_bad_input(cloud, world, change, status):
    trust = {"trustor_user_id": world.alice.id, "trustee_user_id": world.carol.id, "project_id": world.a,
             "impersonation": False, "roles": [{"name": "member"}]}
    for key, value in change.items():
        if value is None:
            trust.pop(key)
        else:
            trust[key] = world.bob.id if value == "OTHER" else value
    r = call(cloud, "POST", "/OS-TRUST/trusts", world.alice.token(), json={"trust": trust})
    keystone_error(r, status)


def test_trust_malformed_bodies(cloud, world):
    tok = world.alice.token()
    keystone_error(call(cloud, "POST", "/OS-TRUST/trusts", tok, json={}), 400)
    keystone_error(call(cloud, "POST", "/OS-TRUST/trusts", tok, json={"trust": []}), 400)
    keystone_error(call(cloud, "POST", "/OS-TRUST/trusts", tok, content=b"{"), 400)
    keystone_error(call(cloud, "GET", f"/OS-TRUST/trusts/{uuid.uuid4().hex}", tok), 404)
    keystone_error(call(cloud, "GET", f"/OS-TRUST/trusts/{uuid.uuid4().hex}/roles", tok), 404)
    keystone_error(call(cloud, "DELETE", f"/OS-TRUST/trusts/{uuid.uuid4().hex}", tok), 404)
    keystone_error(call(cloud, "GET", "/OS-TRUST/trusts"), 401)


def test_zz_no_unhandled_server_errors(cloud):
    """Runs last in this module: nothing above made the server fail with a 500."""
    log = (cloud.state_dir / "logs" / "pocketstack.log").read_text()
    assert "unhandled error" not in log and "Traceback" not in log, log[-4000:]
