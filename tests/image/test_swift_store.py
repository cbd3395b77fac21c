"""Glance-on-Swift: with `[glance_store] default_store = swift`, image data lives in the
object service (a service account's `glance` container), uploaded and downloaded with the
real `openstack` CLI, byte for byte, and removed with the image."""
from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from conftest import Cloud

CONFIG = {("pocketstack", "enabled_services"): "identity,image,object",
          ("glance_store", "default_store"): "swift"}


@pytest.fixture(scope="module")
def scloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("swiftstore"), config=CONFIG)
    c.start()
    yield c
    c.stop()


def test_upload_download_delete_through_the_object_service(scloud, tmp_path):
    data = os.urandom(3 << 20)
    src = tmp_path / "img.raw"
    src.write_bytes(data)
    image = scloud.os_json("image", "create", "--disk-format", "raw", "--container-format", "bare",
                           "--file", str(src), "on-swift")
    assert image["status"] == "active" and image["checksum"] == hashlib.md5(data).hexdigest()
    images_dir = scloud.state_dir / "images"
    assert not [p for p in images_dir.glob("*") if p.is_file()], "data must not be in the file store"
    assert not list((images_dir / "spool").glob("*")), "the spool file is removed after the upload"
    out = tmp_path / "back.raw"
    scloud.openstack("image", "save", "--file", str(out), image["id"])
    assert out.read_bytes() == data
    # the object is in the service account's container (not in the admin's own account)
    assert "glance" not in scloud.openstack("container", "list", "-f", "value").split()
    scloud.openstack("role", "add", "--user", "admin", "--project", "admin", "ResellerAdmin")
    token = scloud.token()
    glance = f"{scloud.url}/object/v1/AUTH_glance/glance"
    listed = httpx.get(glance, headers={"X-Auth-Token": token}).text.split()
    assert listed == [image["id"]]
    head = httpx.head(f"{glance}/{image['id']}", headers={"X-Auth-Token": token})
    assert int(head.headers["content-length"]) == len(data)
    assert head.headers["etag"].strip('"') == hashlib.md5(data).hexdigest()
    scloud.openstack("image", "delete", image["id"])
    assert scloud.openstack("image", "show", image["id"], check=False) == ""
    assert httpx.get(glance, headers={"X-Auth-Token": token}).text.split() == []


def test_bad_format_is_refused_and_nothing_is_stored(scloud, tmp_path):
    src = tmp_path / "fake.qcow2"
    src.write_bytes(b"not a qcow2 image" * 100)
    err = scloud.openstack_fails("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                                 "--file", str(src), "bad")
    assert "400" in err or "format" in err.lower()
    assert not list((scloud.state_dir / "images" / "spool").glob("*"))
