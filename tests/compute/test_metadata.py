"""The metadata service (`/metadata`) and the config drive, for a real server of the cloud.

The request is made as the dataplane's metadata proxy makes it: `X-Instance-ID` and
`X-Instance-ID-Signature` (HMAC-SHA256 under the shared secret in the state dir). The
config drive is built from the same facts and read back as an ISO 9660 image.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest

from pocketstack.compute import configdrive, metadata


@pytest.fixture(scope="module")
def server(cloud, tmp_path_factory):
    token = cloud.token()
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.37"}
    img = tmp_path_factory.mktemp("img") / "disk.raw"
    img.write_bytes(b"\0" * 65536)
    image = cloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                          "--file", str(img), "md-image")
    pub = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK0wmN/Cr3JXqmLW7u+g9pTh+wyqDHpSQEQQpqs+fUNF md@test"
    cloud.openstack("keypair", "create", "--public-key", _write(tmp_path_factory, pub), "mdkey")
    body = {"server": {"name": "md-server", "imageRef": image["id"], "flavorRef": "1", "networks": "none",
                       "key_name": "mdkey", "metadata": {"role": "web"},
                       "user_data": base64.b64encode(b"#!/bin/sh\necho hello\n").decode()}}
    r = httpx.post(cloud.url + "/compute/v2.1/servers", json=body, headers=headers)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    for _ in range(200):
        status = httpx.get(f"{cloud.url}/compute/v2.1/servers/{sid}", headers=headers).json()["server"]["status"]
        if status == "ACTIVE":
            break
        time.sleep(0.1)
    secret = (cloud.state_dir / "compute" / "metadata_proxy_secret").read_text().strip()
    project = cloud.os_json("project", "show", "admin")["id"]
    return {"id": sid, "secret": secret, "project": project, "pub": pub, "headers": headers}


def _write(factory, text: str) -> str:
    path = factory.mktemp("key") / "key.pub"
    path.write_text(text + "\n")
    return str(path)


def md(cloud, server, path: str, method: str = "GET", content: bytes | None = None, sign: str | None = None):
    sig = sign or hmac.new(server["secret"].encode(), server["id"].encode(), hashlib.sha256).hexdigest()
    return httpx.request(method, f"{cloud.url}/metadata/{path}", content=content,
                         headers={"X-Instance-ID": server["id"], "X-Tenant-ID": server["project"],
                                  "X-Instance-ID-Signature": sig})


def test_openstack_tree(cloud, server):
    assert "latest" in md(cloud, server, "openstack").text.split("\n")
    meta = md(cloud, server, "openstack/latest/meta_data.json").json()
    assert meta["uuid"] == server["id"] and meta["name"] == "md-server"
    assert meta["hostname"] == "md-server"
    assert {k: v.strip() for k, v in meta["public_keys"].items()} == {"mdkey": server["pub"]}
    assert meta["meta"] == {"role": "web"}
    assert "admin_pass" not in meta  # only the config drive carries it
    assert md(cloud, server, "openstack/latest/user_data").content == b"#!/bin/sh\necho hello\n"
    assert md(cloud, server, "openstack/2013-10-17/network_data.json").json() == {
        "links": [], "networks": [], "services": []}
    assert md(cloud, server, "openstack/nope/meta_data.json").status_code == 404


def test_ec2_tree(cloud, server):
    assert md(cloud, server, "latest/meta-data/instance-id").text == server["id"]
    assert md(cloud, server, "latest/meta-data/public-keys/0/openssh-key").text.strip() == server["pub"]
    listing = md(cloud, server, "latest/meta-data/").text.split("\n")
    assert "hostname" in listing and "placement/" in listing
    assert md(cloud, server, "2009-04-04/user-data").content.startswith(b"#!/bin/sh")


def test_password_is_set_once_and_readable_by_the_owner(cloud, server):
    assert md(cloud, server, "openstack/latest/password", "POST", b"encrypted-pw").status_code == 200
    assert md(cloud, server, "openstack/latest/password", "POST", b"again").status_code == 409
    assert md(cloud, server, "openstack/latest/password").text == "encrypted-pw"
    shown = httpx.get(f"{cloud.url}/compute/v2.1/servers/{server['id']}/os-server-password",
                      headers=server["headers"]).json()
    assert shown == {"password": "encrypted-pw"}


def test_unsigned_or_foreign_requests_are_refused(cloud, server):
    assert md(cloud, server, "openstack/latest/meta_data.json", sign="0" * 64).status_code == 403
    r = httpx.get(f"{cloud.url}/metadata/openstack/latest/meta_data.json")
    assert r.status_code == 400
    forged = dict(server, id="00000000-0000-0000-0000-000000000000")
    assert md(cloud, forged, "openstack/latest/meta_data.json").status_code == 404


def test_config_drive_iso_round_trip(tmp_path):
    inst = metadata.InstanceView(uuid="6f9d2a4e-0a3b-4a55-9f0e-2f6b1e1c1d11", name="vm", hostname="vm",
                                 project_id="p", key_name="k", key_data="ssh-ed25519 AAAA k",
                                 user_data=b"#cloud-config\n", admin_pass="s3cret",
                                 vifs=[{"id": "port-1234567890", "address": "fa:16:3e:00:00:01",
                                        "network": {"id": "n1", "label": "private", "subnets": [
                                            {"cidr": "10.0.0.0/24", "gateway": "10.0.0.1", "version": 4,
                                             "dns_nameservers": ["10.0.0.2"],
                                             "ips": [{"address": "10.0.0.5", "type": "fixed", "version": 4,
                                                      "floating_ips": []}]}]}}])
    iso = configdrive.build_iso(configdrive.files_for(inst), tmp_path / "disk.config")
    with open(iso, "rb") as fh:
        fh.seek(32768)
        assert fh.read(6)[1:6] == b"CD001"  # ISO 9660 primary volume descriptor
        fh.seek(32768 + 40)
        assert fh.read(32).strip() == b"config-2"
    files = configdrive.read_iso(iso)
    meta = json.loads(files["openstack/latest/meta_data.json"])
    assert meta["admin_pass"] == "s3cret" and meta["public_keys"] == {"k": "ssh-ed25519 AAAA k"}
    net = json.loads(files["openstack/latest/network_data.json"])
    assert net["networks"][0]["ip_address"] == "10.0.0.5"
    assert net["services"] == [{"type": "dns", "address": "10.0.0.2"}]
    assert files["openstack/latest/user_data"] == b"#cloud-config\n"
    assert json.loads(files["ec2/latest/meta-data.json"])["local-ipv4"] == "10.0.0.5"
    assert not list(tmp_path.glob(".configdrive-*"))  # written atomically, no temp left
