"""Key pairs per user: generate (old microversions), import, fingerprints, types, admin
access to other users' keys, paging, quota, and the private key never stored or logged."""
from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from periphery_util import Persona, fault, need, new_project, nova


def _ed25519_public() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode() + " me@host"


def _md5(public: str) -> str:
    digest = hashlib.md5(base64.b64decode(public.split()[1])).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


@pytest.fixture(scope="module")
def env(cloud):
    proj = new_project(cloud)
    return {"admin": cloud.token(), "alice": Persona(cloud, proj, "member"),
            "bob": Persona(cloud, proj, "member")}


def test_cli_create_import_list_delete(cloud, env, tmp_path, unique):
    alice = env["alice"]
    name = unique("k")
    out = cloud.openstack("keypair", "create", name, env=alice.env)
    assert "PRIVATE KEY" in out
    pub = _ed25519_public()
    (tmp_path / "id.pub").write_text(pub)
    imported = cloud.os_json("keypair", "create", "--public-key", str(tmp_path / "id.pub"), name + "-imp",
                             env=alice.env)
    assert imported["fingerprint"] == _md5(pub)
    listed = {k["Name"]: k for k in cloud.os_json("keypair", "list", env=alice.env)}
    assert {name, name + "-imp"} <= set(listed)
    shown = cloud.os_json("keypair", "show", name + "-imp", env=alice.env)
    assert shown["fingerprint"] == _md5(pub) and shown["type"] == "ssh"
    # per user: bob (same project) sees none of them
    assert cloud.os_json("keypair", "list", env=env["bob"].env) == []
    fault(nova(cloud, env["bob"].token, "GET", f"/os-keypairs/{name}"), 404, "itemNotFound")
    cloud.openstack("keypair", "delete", name, name + "-imp", env=alice.env)
    assert cloud.os_json("keypair", "list", env=alice.env) == []
    logs = (cloud.state_dir / "logs" / "pocketstack.log").read_text()
    events = (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "PRIVATE KEY" not in logs and "PRIVATE KEY" not in events
    assert "compute.keypair.create" in events and "compute.keypair.delete" in events


def test_generate_at_old_microversions(cloud, env, unique):
    t = env["alice"].token
    name = unique("gen")
    r = nova(cloud, t, "POST", "/os-keypairs", "2.1", json={"keypair": {"name": name}})
    assert r.status_code == 200
    kp = r.json()["keypair"]
    assert kp["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert kp["public_key"].startswith("ssh-rsa ") and kp["fingerprint"] == _md5(kp["public_key"])
    assert kp["user_id"] == env["alice"].user_id and "type" not in kp
    shown = nova(cloud, t, "GET", f"/os-keypairs/{name}", "2.1").json()["keypair"]
    assert "private_key" not in shown and shown["deleted"] is False and isinstance(shown["id"], int)
    assert nova(cloud, t, "DELETE", f"/os-keypairs/{name}", "2.1").status_code == 202

    r = nova(cloud, t, "POST", "/os-keypairs", "2.2", json={"keypair": {"name": name, "type": "x509"}})
    assert r.status_code == 201
    kp = r.json()["keypair"]
    assert kp["type"] == "x509" and "BEGIN CERTIFICATE" in kp["public_key"] and "PRIVATE KEY" in kp["private_key"]
    assert len(kp["fingerprint"].split(":")) == 20
    assert nova(cloud, t, "GET", "/os-keypairs", "2.2").json()["keypairs"][0]["keypair"]["type"] == "x509"
    assert nova(cloud, t, "DELETE", f"/os-keypairs/{name}", "2.2").status_code == 204


def test_bad_input_and_conflicts(cloud, env, unique):
    t = env["alice"].token
    name = unique("bad")
    pub = _ed25519_public()
    assert nova(cloud, t, "POST", "/os-keypairs", json={"keypair": {"name": name, "public_key": pub}}).status_code == 200
    assert name in fault(nova(cloud, t, "POST", "/os-keypairs", json={"keypair": {"name": name, "public_key": pub}}),
                         409, "conflictingRequest")
    fault(nova(cloud, t, "POST", "/os-keypairs", json={"keypair": {"name": "x", "public_key": "ssh-rsa garbage"}}),
          400, "badRequest")
    fault(nova(cloud, t, "POST", "/os-keypairs", json={"keypair": {"name": "bad@name", "public_key": pub}}),
          400, "badRequest")
    fault(nova(cloud, t, "POST", "/os-keypairs", json={"keypair": {"name": "", "public_key": pub}}), 400, "badRequest")
    fault(nova(cloud, t, "POST", "/os-keypairs", json={"keypair": {"public_key": pub}}), 400, "badRequest")
    fault(nova(cloud, t, "POST", "/os-keypairs", "2.2", json={"keypair": {"name": "t", "type": "pgp"}}),
          400, "badRequest")
    fault(nova(cloud, t, "POST", "/os-keypairs", json={"keypair": {"name": "t", "extra": 1}}), 400, "badRequest")
    fault(nova(cloud, t, "DELETE", "/os-keypairs/does-not-exist"), 404, "itemNotFound")
    names = [k["keypair"]["name"] for k in nova(cloud, t, "GET", "/os-keypairs").json()["keypairs"]]
    assert names == [name]
    nova(cloud, t, "DELETE", f"/os-keypairs/{name}")


def test_292_no_generation_and_new_chars(cloud, env, unique):
    need(cloud, "2.92")
    t = env["alice"].token
    fault(nova(cloud, t, "POST", "/os-keypairs", "2.92", json={"keypair": {"name": unique("n")}}), 400, "badRequest")
    name = unique("me") + "@host.x"
    r = nova(cloud, t, "POST", "/os-keypairs", "2.92", json={"keypair": {"name": name, "public_key": _ed25519_public()}})
    assert r.status_code == 201 and "private_key" not in r.json()["keypair"]
    assert nova(cloud, t, "DELETE", f"/os-keypairs/{name}", "2.92").status_code == 204


def test_admin_acts_for_other_users(cloud, env, unique):
    admin, alice, bob = env["admin"], env["alice"], env["bob"]
    name = unique("adm")
    body = {"keypair": {"name": name, "public_key": _ed25519_public(), "user_id": alice.user_id}}
    r = nova(cloud, admin, "POST", "/os-keypairs", "2.10", json=body)
    assert r.status_code == 201 and r.json()["keypair"]["user_id"] == alice.user_id
    assert nova(cloud, alice.token, "GET", f"/os-keypairs/{name}", "2.10").status_code == 200
    listed = nova(cloud, admin, "GET", f"/os-keypairs?user_id={alice.user_id}", "2.10").json()["keypairs"]
    assert name in [k["keypair"]["name"] for k in listed]
    # a member may not act for another user
    fault(nova(cloud, bob.token, "GET", f"/os-keypairs?user_id={alice.user_id}", "2.10"), 403, "forbidden")
    fault(nova(cloud, bob.token, "GET", f"/os-keypairs/{name}?user_id={alice.user_id}", "2.10"), 403, "forbidden")
    fault(nova(cloud, bob.token, "DELETE", f"/os-keypairs/{name}?user_id={alice.user_id}", "2.10"), 403, "forbidden")
    body["keypair"]["name"] = name + "b"
    fault(nova(cloud, bob.token, "POST", "/os-keypairs", "2.10", json=body), 403, "forbidden")
    # before 2.10 user_id in the body is unknown
    fault(nova(cloud, admin, "POST", "/os-keypairs", "2.9", json=body), 400, "badRequest")
    assert nova(cloud, admin, "DELETE", f"/os-keypairs/{name}?user_id={alice.user_id}", "2.10").status_code == 204


def test_paging_235(cloud, env):
    bob = env["bob"]
    for i in range(3):
        nova(cloud, bob.token, "POST", "/os-keypairs", json={"keypair": {"name": f"page{i}",
                                                                         "public_key": _ed25519_public()}})
    page = nova(cloud, bob.token, "GET", "/os-keypairs?limit=2", "2.35").json()
    assert [k["keypair"]["name"] for k in page["keypairs"]] == ["page0", "page1"]
    assert "marker=page1" in page["keypairs_links"][0]["href"]
    rest = nova(cloud, bob.token, "GET", "/os-keypairs?limit=2&marker=page1", "2.35").json()
    assert [k["keypair"]["name"] for k in rest["keypairs"]] == ["page2"] and "keypairs_links" not in rest
    fault(nova(cloud, bob.token, "GET", "/os-keypairs?marker=nope", "2.35"), 400, "badRequest")
    # before 2.35 paging parameters are ignored
    assert len(nova(cloud, bob.token, "GET", "/os-keypairs?limit=1", "2.34").json()["keypairs"]) == 3
    for i in range(3):
        nova(cloud, bob.token, "DELETE", f"/os-keypairs/page{i}")


def test_keypair_quota(cloud, env):
    bob = env["bob"]
    cloud.openstack("quota", "set", "--key-pairs", "1", bob.project)
    try:
        assert nova(cloud, bob.token, "POST", "/os-keypairs", json={"keypair": {"name": "q1", "public_key":
                                                                                 _ed25519_public()}}).status_code == 200
        msg = fault(nova(cloud, bob.token, "POST", "/os-keypairs", json={"keypair": {"name": "q2", "public_key":
                                                                                      _ed25519_public()}}),
                    403, "forbidden")
        assert "key pairs" in msg
    finally:
        cloud.openstack("quota", "set", "--key-pairs", "100", bob.project)
        nova(cloud, bob.token, "DELETE", "/os-keypairs/q1")


def test_sdk_and_novaclient(cloud, env, unique):
    alice = env["alice"]
    conn = cloud.sdk(alice.name, alice.password, alice.project)
    name = unique("sdk")
    kp = conn.compute.create_keypair(name=name, public_key=_ed25519_public())
    assert kp.fingerprint and conn.compute.find_keypair(name).name == name
    conn.compute.delete_keypair(name)
    assert conn.compute.find_keypair(name) is None

    from keystoneauth1 import loading, session
    from novaclient import client as nclient

    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=cloud.auth_url, username=alice.name, password=alice.password, project_name=alice.project,
        user_domain_name="Default", project_domain_name="Default")
    nc = nclient.Client("2.2", session=session.Session(auth=auth))
    made = nc.keypairs.create(name, key_type="ssh")
    assert made.private_key and made.type == "ssh"
    assert [k.name for k in nc.keypairs.list()] == [name]
    nc.keypairs.delete(name)
    assert nc.keypairs.list() == []
