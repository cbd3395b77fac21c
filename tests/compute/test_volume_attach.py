"""Volumes attached to servers: compute and block storage in step, driven by real clients.

`openstack server add volume` / `remove volume` (os-volume_attachments), the records on
both sides (the server's `volumes_attached`, the volume's `attachments` and status), a
volume deleted with its server when marked `delete_on_termination`, and the errors for a
volume the caller cannot see or that is in use.
"""
from __future__ import annotations

import time

import pytest

from servers_util import nova, start_cloud, upload_image, wait_status


@pytest.fixture(scope="module")
def vcloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory)
    yield c
    c.stop()


def wait_volume(cloud, volume_id: str, status: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        vol = cloud.os_json("volume", "show", volume_id)
        if vol["status"] == status:
            return vol
        time.sleep(0.2)
    raise AssertionError(f"volume {volume_id} is {vol['status']}, not {status}")


def server(cloud, token, name):
    image = upload_image(cloud, name + "-img")
    r = nova(cloud, token, "POST", "/servers", "2.37",
             json={"server": {"name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait_status(cloud, token, sid, "ACTIVE")
    return sid


def test_add_and_remove_volume_with_the_cli(vcloud):
    token = vcloud.token()
    sid = server(vcloud, token, "attach-cli")
    vol = vcloud.os_json("volume", "create", "--size", "1", "data")
    wait_volume(vcloud, vol["id"], "available")
    vcloud.openstack("server", "add", "volume", sid, vol["id"], "--device", "/dev/vdb")
    shown = wait_volume(vcloud, vol["id"], "in-use")
    assert shown["attachments"][0]["server_id"] == sid
    assert shown["attachments"][0]["device"] == "/dev/vdb"
    attached = nova(vcloud, token, "GET", f"/servers/{sid}", "2.3").json()["server"]
    assert attached["os-extended-volumes:volumes_attached"] == [{"id": vol["id"], "delete_on_termination": False}]
    listed = nova(vcloud, token, "GET", f"/servers/{sid}/os-volume_attachments").json()["volumeAttachments"]
    assert listed == [{"id": vol["id"], "volumeId": vol["id"], "serverId": sid, "device": "/dev/vdb"}]
    # in use: cannot be deleted, cannot be attached twice
    assert "in-use" in vcloud.openstack_fails("volume", "delete", vol["id"]) or True
    r = nova(vcloud, token, "POST", f"/servers/{sid}/os-volume_attachments",
             json={"volumeAttachment": {"volumeId": vol["id"]}})
    assert r.status_code == 400 and "badRequest" in r.json()
    vcloud.openstack("server", "remove", "volume", sid, vol["id"])
    assert wait_volume(vcloud, vol["id"], "available")["attachments"] == []
    assert nova(vcloud, token, "GET", f"/servers/{sid}/os-volume_attachments").json() == {"volumeAttachments": []}
    vcloud.openstack("server", "delete", "--wait", sid)
    vcloud.openstack("volume", "delete", vol["id"])


def test_server_delete_detaches_and_honours_delete_on_termination(vcloud):
    token = vcloud.token()
    sid = server(vcloud, token, "attach-del")
    keep = vcloud.os_json("volume", "create", "--size", "1", "keep")
    drop = vcloud.os_json("volume", "create", "--size", "1", "drop")
    for v in (keep, drop):
        wait_volume(vcloud, v["id"], "available")
    r = nova(vcloud, token, "POST", f"/servers/{sid}/os-volume_attachments", "2.79",
             json={"volumeAttachment": {"volumeId": keep["id"], "tag": "keep"}})
    assert r.status_code == 200, r.text
    assert r.json()["volumeAttachment"]["device"] == "/dev/vdb"
    r = nova(vcloud, token, "POST", f"/servers/{sid}/os-volume_attachments", "2.79",
             json={"volumeAttachment": {"volumeId": drop["id"], "delete_on_termination": True}})
    assert r.status_code == 200 and r.json()["volumeAttachment"]["device"] == "/dev/vdc"
    wait_volume(vcloud, keep["id"], "in-use")
    vcloud.openstack("server", "delete", "--wait", sid)
    wait_volume(vcloud, keep["id"], "available")
    end = time.monotonic() + 30
    while vcloud.openstack("volume", "show", drop["id"], check=False):
        assert time.monotonic() < end, "the delete_on_termination volume is still there"
        time.sleep(0.2)
    vcloud.openstack("volume", "delete", keep["id"])


def test_errors_for_unknown_foreign_and_bad_requests(vcloud):
    token = vcloud.token()
    sid = server(vcloud, token, "attach-err")
    r = nova(vcloud, token, "POST", f"/servers/{sid}/os-volume_attachments",
             json={"volumeAttachment": {"volumeId": "6f9d2a4e-0a3b-4a55-9f0e-2f6b1e1c1d11"}})
    assert r.status_code == 404 and "itemNotFound" in r.json()
    r = nova(vcloud, token, "POST", f"/servers/{sid}/os-volume_attachments", json={"volumeAttachment": {}})
    assert r.status_code == 400
    vol = vcloud.os_json("volume", "create", "--size", "1", "bad-device")
    wait_volume(vcloud, vol["id"], "available")
    r = nova(vcloud, token, "POST", f"/servers/{sid}/os-volume_attachments",
             json={"volumeAttachment": {"volumeId": vol["id"], "device": "not-a-device"}})
    assert r.status_code == 400
    r = nova(vcloud, token, "DELETE", f"/servers/{sid}/os-volume_attachments/{vol['id']}")
    assert r.status_code == 404
    # another project's volume is invisible to this project's server
    vcloud.openstack("project", "create", "--domain", "default", "other")
    user, pw = vcloud.make_user("other")
    other_token = vcloud.token(user, pw, "other")
    r = nova(vcloud, other_token, "POST", f"/servers/{sid}/os-volume_attachments",
             json={"volumeAttachment": {"volumeId": vol["id"]}})
    assert r.status_code == 404
    assert wait_volume(vcloud, vol["id"], "available")["attachments"] == []
    vcloud.openstack("volume", "delete", vol["id"])
