"""Boot from volume and volume-backed snapshots: compute and block storage in step.

Driven by the real clients: `openstack server create --boot-from-volume` / `--volume` /
`--block-device`, openstacksdk, raw Nova requests for the error bodies. Checks both sides
(the server's `image` and `volumes_attached`, the volume's status and attachment), the
fate of volumes when the server goes (delete_on_termination), Nova's 400s, a failed root
volume (server ERROR with a fault, nothing left behind), createImage of a volume-backed
server (volume snapshots + an image with the `block_device_mapping` property) and a boot
from that image, and the actions upstream refuses or handles differently.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from servers_util import fault, nova, start_cloud, upload_image, wait_status


@pytest.fixture(scope="module")
def bcloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory)
    c.image = upload_image(c, "bfv-img")
    c.tok = c.token()
    yield c
    c.stop()


def wait_volume(cloud, volume_id: str, *statuses: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    vol = {}
    while time.monotonic() < end:
        vol = cloud.os_json("volume", "show", volume_id)
        if vol["status"] in statuses:
            return vol
        time.sleep(0.2)
    raise AssertionError(f"volume {volume_id} is {vol.get('status')}, not {statuses}")


def wait_gone(cloud, volume_id: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while cloud.openstack("volume", "show", volume_id, check=False):
        assert time.monotonic() < end, f"volume {volume_id} is still there"
        time.sleep(0.2)


def volume_count(cloud) -> int:
    return len(cloud.os_json("volume", "list"))


def boot(cloud, body: dict, version: str = "2.79"):
    server = {"name": "bfv", "flavorRef": "1", "networks": "none", **body}
    return nova(cloud, cloud.tok, "POST", "/servers", version, json={"server": server})


def test_boot_from_volume_with_the_cli(bcloud):
    """`--boot-from-volume`: a root volume made from the image, in use as /dev/vda."""
    server = bcloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", bcloud.image,
                            "--boot-from-volume", "1", "--no-network", "--wait", "bfv-cli")
    assert server["status"] == "ACTIVE"
    shown = nova(bcloud, bcloud.tok, "GET", f"/servers/{server['id']}", "2.79").json()["server"]
    assert shown["image"] == ""
    attached = shown["os-extended-volumes:volumes_attached"]
    assert len(attached) == 1 and attached[0]["delete_on_termination"] is False
    vol = wait_volume(bcloud, attached[0]["id"], "in-use")
    assert vol["size"] == 1 and vol["bootable"] in ("true", True)
    assert vol["volume_image_metadata"]["image_id"] == bcloud.image
    assert [(a["server_id"], a["device"]) for a in vol["attachments"]] == [(server["id"], "/dev/vda")]
    # 2.1 shows volumes without delete_on_termination
    old = nova(bcloud, bcloud.tok, "GET", f"/servers/{server['id']}", "2.1").json()["server"]
    assert old["os-extended-volumes:volumes_attached"] == [{"id": vol["id"]}]
    listed = nova(bcloud, bcloud.tok, "GET", f"/servers/{server['id']}/os-volume_attachments").json()
    assert listed["volumeAttachments"][0]["device"] == "/dev/vda"
    # the root volume cannot be detached
    r = nova(bcloud, bcloud.tok, "DELETE", f"/servers/{server['id']}/os-volume_attachments/{vol['id']}")
    assert "root device" in fault(r, 400, "badRequest")
    # delete_on_termination false: the volume stays, available and detached
    bcloud.openstack("server", "delete", "--wait", server["id"])
    vol = wait_volume(bcloud, vol["id"], "available")
    assert vol["attachments"] == []
    bcloud.openstack("volume", "delete", vol["id"])


def test_boot_from_existing_volume_and_extra_volumes(bcloud):
    """`--volume` (source volume), plus a blank data volume and one from a snapshot."""
    root = bcloud.os_json("volume", "create", "--size", "1", "--image", bcloud.image, "--bootable", "root")
    src = bcloud.os_json("volume", "create", "--size", "1", "src")
    wait_volume(bcloud, root["id"], "available")
    wait_volume(bcloud, src["id"], "available")
    snap = bcloud.os_json("volume", "snapshot", "create", "--volume", src["id"], "snap")
    end = time.monotonic() + 30
    while bcloud.os_json("volume", "snapshot", "show", snap["id"])["status"] != "available":
        assert time.monotonic() < end
        time.sleep(0.2)
    server = bcloud.os_json(
        "server", "create", "--flavor", "m1.tiny", "--volume", root["id"], "--no-network",
        "--block-device", "source_type=blank,destination_type=volume,volume_size=2,delete_on_termination=true",
        "--block-device", f"uuid={snap['id']},source_type=snapshot,destination_type=volume,"
                          "delete_on_termination=true",
        "--wait", "bfv-volume")
    assert server["status"] == "ACTIVE"
    shown = nova(bcloud, bcloud.tok, "GET", f"/servers/{server['id']}", "2.79").json()["server"]
    attached = shown["os-extended-volumes:volumes_attached"]
    assert attached[0] == {"id": root["id"], "delete_on_termination": False}
    ids = [a["id"] for a in attached]
    assert len(ids) == 3
    devices = {}
    for vid in ids:
        vol = wait_volume(bcloud, vid, "in-use")
        assert vol["attachments"][0]["server_id"] == server["id"]
        devices[vid] = (vol["attachments"][0]["device"], vol["size"])
    assert devices[root["id"]] == ("/dev/vda", 1)
    assert sorted(devices[v] for v in ids[1:]) == [("/dev/vdb", 2), ("/dev/vdc", 1)]
    bcloud.openstack("server", "delete", "--wait", server["id"])
    assert wait_volume(bcloud, root["id"], "available")["attachments"] == []
    for vid in ids[1:]:
        wait_gone(bcloud, vid)  # delete_on_termination
    bcloud.openstack("volume", "snapshot", "delete", snap["id"])
    end = time.monotonic() + 30
    while bcloud.openstack("volume", "snapshot", "show", snap["id"], check=False):
        assert time.monotonic() < end
        time.sleep(0.2)
    bcloud.openstack("volume", "delete", root["id"], src["id"])


def test_delete_on_termination_with_openstacksdk(bcloud):
    conn = bcloud.sdk()
    server = conn.compute.create_server(
        name="bfv-sdk", flavor_id="1", networks="none",
        block_device_mapping=[{"uuid": bcloud.image, "source_type": "image", "destination_type": "volume",
                               "volume_size": 1, "boot_index": 0, "delete_on_termination": True}])
    server = conn.compute.wait_for_server(server, wait=60)
    assert server.status == "ACTIVE"
    assert not (server.image or {}).get("id")
    vols = server.attached_volumes
    assert len(vols) == 1 and vols[0]["delete_on_termination"] is True
    assert conn.block_storage.get_volume(vols[0]["id"]).status == "in-use"
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60)
    wait_gone(bcloud, vols[0]["id"])


def test_errors_as_nova(bcloud):
    before = volume_count(bcloud)
    missing = "6f9d2a4e-0a3b-4a55-9f0e-2f6b1e1c1d11"
    vol_root = {"source_type": "volume", "destination_type": "volume", "boot_index": 0}
    r = boot(bcloud, {"block_device_mapping_v2": [{**vol_root, "uuid": missing}]})
    assert fault(r, 400, "badRequest") == f"Block Device Mapping is Invalid: failed to get volume {missing}."
    r = boot(bcloud, {"block_device_mapping_v2": [{"source_type": "snapshot", "destination_type": "volume",
                                                   "boot_index": 0, "uuid": missing}]})
    assert fault(r, 400, "badRequest") == f"Block Device Mapping is Invalid: failed to get snapshot {missing}."
    r = boot(bcloud, {"block_device_mapping_v2": [{"source_type": "image", "destination_type": "volume",
                                                   "boot_index": 0, "uuid": missing, "volume_size": 1}]})
    assert fault(r, 400, "badRequest") == f"Block Device Mapping is Invalid: failed to get image {missing}."
    # no boot index 0
    r = boot(bcloud, {"block_device_mapping_v2": [{"source_type": "image", "destination_type": "volume",
                                                   "boot_index": 1, "uuid": bcloud.image, "volume_size": 1}]})
    assert "Boot sequence" in fault(r, 400, "badRequest")
    # bad combinations and missing sizes
    r = boot(bcloud, {"block_device_mapping_v2": [{"source_type": "image", "destination_type": "volume",
                                                   "boot_index": 0, "uuid": bcloud.image}]})
    assert "need to have a non-zero size" in fault(r, 400, "badRequest")
    r = boot(bcloud, {"imageRef": bcloud.image,
                      "block_device_mapping_v2": [{"source_type": "blank", "destination_type": "volume"}]})
    assert "Blank volumes" in fault(r, 400, "badRequest")
    r = boot(bcloud, {"block_device_mapping_v2": [{"source_type": "image", "destination_type": "local",
                                                   "boot_index": 0, "uuid": bcloud.image}]})
    assert "Mapping image to local is not supported." in fault(r, 400, "badRequest")
    r = boot(bcloud, {"imageRef": bcloud.image,
                      "block_device_mapping_v2": [{"source_type": "blank", "destination_type": "volume",
                                                   "volume_size": 1, "uuid": bcloud.image}]})
    assert "Invalid device UUID." in fault(r, 400, "badRequest")
    # an image whose min_disk is larger than the volume
    big = upload_image(bcloud, "bfv-big")
    bcloud.openstack("image", "set", "--min-disk", "5", big)
    r = boot(bcloud, {"block_device_mapping_v2": [{"source_type": "image", "destination_type": "volume",
                                                   "boot_index": 0, "uuid": big, "volume_size": 2}]})
    assert fault(r, 400, "badRequest") == ("Volume is smaller than the minimum size specified in image metadata. "
                                           "Volume size is 2147483648 bytes, minimum size is 5368709120 bytes.")
    # a volume in use elsewhere; and several servers from one volume
    vol = bcloud.os_json("volume", "create", "--size", "1", "busy")
    wait_volume(bcloud, vol["id"], "available")
    r = boot(bcloud, {"block_device_mapping_v2": [{**vol_root, "uuid": vol["id"]}]})
    assert fault(r, 400, "badRequest") == f"Block Device {vol['id']} is not bootable."
    bcloud.openstack("volume", "set", "--bootable", vol["id"])
    r = boot(bcloud, {"block_device_mapping_v2": [{**vol_root, "uuid": vol["id"]}], "max_count": 2})
    assert fault(r, 400, "badRequest") == "Cannot attach one or more volumes to multiple instances"
    r = boot(bcloud, {"block_device_mapping_v2": [{**vol_root, "uuid": vol["id"]}]})
    assert r.status_code == 202, r.text
    first = r.json()["server"]["id"]
    r = boot(bcloud, {"block_device_mapping_v2": [{**vol_root, "uuid": vol["id"]}]})
    assert fault(r, 400, "badRequest").startswith("Invalid volume:")
    wait_status(bcloud, bcloud.tok, first, "ACTIVE")
    # another project's volume is "failed to get"
    bcloud.openstack("project", "create", "--domain", "default", "bfv-other")
    user, pw = bcloud.make_user("bfv-other")
    other = bcloud.token(user, pw, "bfv-other")
    r = nova(bcloud, other, "POST", "/servers", "2.79", json={"server": {
        "name": "x", "flavorRef": "1", "networks": "none",
        "block_device_mapping_v2": [{**vol_root, "uuid": vol["id"]}]}})
    assert "failed to get volume" in fault(r, 400, "badRequest")
    # zero-disk flavors: image-backed only for admins (Nova's policy), volume-backed for all
    bcloud.openstack("flavor", "create", "--ram", "64", "--disk", "0", "--vcpus", "1", "--public", "--id", "zero", "zero")
    r = nova(bcloud, other, "POST", "/servers", "2.79", json={"server": {
        "name": "x", "flavorRef": "zero", "networks": "none", "imageRef": bcloud.image}})
    assert fault(r, 403, "forbidden") == "Only volume-backed servers are allowed for flavors with zero disk."
    r = nova(bcloud, other, "POST", "/servers", "2.79", json={"server": {
        "name": "zero-bfv", "flavorRef": "zero", "networks": "none",
        "block_device_mapping_v2": [{"source_type": "image", "destination_type": "volume", "boot_index": 0,
                                     "uuid": bcloud.image, "volume_size": 1, "delete_on_termination": True}]}})
    assert r.status_code == 202, r.text
    zero = r.json()["server"]["id"]
    assert wait_status(bcloud, other, zero, "ACTIVE")["image"] == ""
    nova(bcloud, other, "DELETE", f"/servers/{zero}")
    wait_status(bcloud, other, zero, "DELETED")
    bcloud.openstack("server", "delete", "--wait", first)
    wait_volume(bcloud, vol["id"], "available")
    bcloud.openstack("volume", "delete", vol["id"])
    end = time.monotonic() + 30
    while volume_count(bcloud) != before:  # nothing half-created by the refused requests
        assert time.monotonic() < end, bcloud.os_json("volume", "list")
        time.sleep(0.2)


def test_root_volume_failure_is_the_server_fault(bcloud):
    """A root volume that cannot be made: ERROR with a fault, the volume cleaned up."""
    before = volume_count(bcloud)
    # a qcow2 image of 3 GiB virtual size: it does not fit the 1 GiB volume, the copy fails
    if not shutil.which("qemu-img"):
        pytest.skip("qemu-img is needed to build the qcow2 image (tools/install-system-deps.sh)")
    path = Path(bcloud.state_dir) / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(path), "3G"], check=True, capture_output=True)
    image = bcloud.os_json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                           "--file", str(path), "bfv-big-virtual")["id"]
    r = boot(bcloud, {"block_device_mapping_v2": [{"source_type": "image", "destination_type": "volume",
                                                   "boot_index": 0, "uuid": image, "volume_size": 1}]})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    body = wait_status(bcloud, bcloud.tok, sid, "ERROR", timeout=60)
    assert body["fault"]["message"].startswith(f"Build of instance {sid} aborted: Volume ")
    assert nova(bcloud, bcloud.tok, "GET", f"/servers/{sid}", "2.79").json()["server"][
        "os-extended-volumes:volumes_attached"] == []
    end = time.monotonic() + 30
    while volume_count(bcloud) != before:
        assert time.monotonic() < end, bcloud.os_json("volume", "list")
        time.sleep(0.2)
    bcloud.openstack("server", "delete", "--wait", sid)


def test_snapshot_of_volume_backed_server_and_boot_from_it(bcloud):
    server = bcloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", bcloud.image,
                            "--boot-from-volume", "1", "--no-network", "--wait", "bfv-snap")
    sid = server["id"]
    root = nova(bcloud, bcloud.tok, "GET", f"/servers/{sid}", "2.79").json()["server"][
        "os-extended-volumes:volumes_attached"][0]["id"]
    r = nova(bcloud, bcloud.tok, "POST", f"/servers/{sid}/action", "2.45",
             json={"createBackup": {"name": "b", "backup_type": "daily", "rotation": 1}})
    assert fault(r, 400, "badRequest") == "Backup is not supported for volume-backed instances."
    bcloud.openstack("server", "image", "create", "--name", "bfv-snapshot", "--wait", sid)
    image = bcloud.os_json("image", "show", "bfv-snapshot")
    assert image["status"] == "active" and image["size"] == 0
    props = image["properties"]
    assert props["bdm_v2"] == "True" and props["root_device_name"] == "/dev/vda"
    bdms = json.loads(props["block_device_mapping"])
    assert len(bdms) == 1
    bdm = bdms[0]
    assert (bdm["source_type"], bdm["destination_type"], bdm["boot_index"], bdm["volume_size"],
            bdm["device_name"], bdm["delete_on_termination"]) == ("snapshot", "volume", 0, 1, "/dev/vda", False)
    snap = bcloud.os_json("volume", "snapshot", "show", bdm["snapshot_id"])
    assert snap["volume_id"] == root and snap["status"] in ("creating", "available")
    # boot from the snapshot image: the root volume comes from the volume snapshot
    again = bcloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", image["id"], "--no-network",
                           "--wait", "bfv-from-snap")
    assert again["status"] == "ACTIVE"
    shown = nova(bcloud, bcloud.tok, "GET", f"/servers/{again['id']}", "2.79").json()["server"]
    vols = shown["os-extended-volumes:volumes_attached"]
    assert len(vols) == 1 and vols[0]["id"] != root
    vol = wait_volume(bcloud, vols[0]["id"], "in-use")
    assert vol["snapshot_id"] == snap["id"]
    assert vol["attachments"][0]["server_id"] == again["id"]
    assert vol["volume_image_metadata"]["image_id"] == bcloud.image
    bcloud.openstack("server", "delete", "--wait", again["id"])
    wait_volume(bcloud, vol["id"], "available")  # the image's mapping says keep it
    bcloud.openstack("volume", "delete", vol["id"])
    wait_gone(bcloud, vol["id"])
    bcloud.openstack("volume", "snapshot", "delete", snap["id"])
    bcloud.openstack("image", "delete", image["id"])
    bcloud.openstack("server", "delete", "--wait", sid)
    bcloud.openstack("volume", "delete", root)


def test_actions_on_a_volume_backed_server(bcloud):
    r = boot(bcloud, {"block_device_mapping_v2": [{"source_type": "image", "destination_type": "volume",
                                                   "boot_index": 0, "uuid": bcloud.image, "volume_size": 1,
                                                   "delete_on_termination": True}]})
    sid = r.json()["server"]["id"]
    wait_status(bcloud, bcloud.tok, sid, "ACTIVE")
    other = upload_image(bcloud, "bfv-other-img")
    # rebuild with another image: refused before 2.93, re-images the root volume from 2.93
    r = nova(bcloud, bcloud.tok, "POST", f"/servers/{sid}/action", "2.92", json={"rebuild": {"imageRef": other}})
    assert fault(r, 400, "badRequest") == (f"Image {other} is unacceptable: Unable to rebuild with a different "
                                           f"image for a volume-backed server.")
    r = nova(bcloud, bcloud.tok, "POST", f"/servers/{sid}/action", "2.93", json={"rebuild": {"imageRef": other}})
    assert r.status_code == 202, r.text
    body = wait_status(bcloud, bcloud.tok, sid, "ACTIVE", version="2.79")
    assert body["image"] == ""
    root = body["os-extended-volumes:volumes_attached"][0]["id"]
    vol = wait_volume(bcloud, root, "in-use")
    assert vol["volume_image_metadata"]["image_id"] == other
    # shelve keeps the volume (no shelve image), unshelve brings it back on a host
    images_before = len(bcloud.os_json("image", "list"))
    bcloud.openstack("server", "shelve", sid)
    wait_status(bcloud, bcloud.tok, sid, "SHELVED_OFFLOADED")
    assert len(bcloud.os_json("image", "list")) == images_before
    assert wait_volume(bcloud, root, "reserved")["attachments"] == []  # Cinder lists attached ones only
    body = nova(bcloud, bcloud.tok, "GET", f"/servers/{sid}", "2.79").json()["server"]
    assert body["os-extended-volumes:volumes_attached"] == [{"id": root, "delete_on_termination": True}]
    bcloud.openstack("server", "unshelve", sid)
    wait_status(bcloud, bcloud.tok, sid, "ACTIVE")
    assert wait_volume(bcloud, root, "in-use")["attachments"][0]["server_id"] == sid
    # resize to a flavor without a root disk: fine for a volume-backed server
    bcloud.openstack("flavor", "create", "--ram", "256", "--disk", "0", "--vcpus", "1", "--id", "bfv0", "bfv0")
    r = nova(bcloud, bcloud.tok, "POST", f"/servers/{sid}/action", json={"resize": {"flavorRef": "bfv0"}})
    assert r.status_code == 202, r.text
    wait_status(bcloud, bcloud.tok, sid, "VERIFY_RESIZE")
    r = nova(bcloud, bcloud.tok, "POST", f"/servers/{sid}/action", json={"confirmResize": None})
    assert r.status_code == 204, r.text
    assert wait_status(bcloud, bcloud.tok, sid, "ACTIVE", version="2.79")["flavor"]["disk"] == 0
    assert wait_volume(bcloud, root, "in-use")["attachments"][0]["server_id"] == sid
    bcloud.openstack("server", "delete", "--wait", sid)
    wait_gone(bcloud, root)


def wait_cinder(cc, volume_id: str, status: str = "available", timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while cc.volumes.get(volume_id).status != status:
        assert time.monotonic() < end, f"volume {volume_id} never became {status}"
        time.sleep(0.2)


def test_novaclient_and_cinderclient(bcloud):
    """python-novaclient boots from a volume (v2 and the legacy `block_device_mapping`);
    python-cinderclient sees the attachment and, after the delete, the volume free again."""
    from cinderclient import client as cclient
    from keystoneauth1 import loading, session
    from novaclient import client as nclient

    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=bcloud.auth_url, username="admin", password=bcloud.admin_password, project_name="admin",
        user_domain_name="Default", project_domain_name="Default")
    sess = session.Session(auth=auth)
    nc, cc = nclient.Client("2.79", session=sess), cclient.Client("3.27", session=sess)
    vol = cc.volumes.create(1, name="nc-root", imageRef=bcloud.image)
    wait_cinder(cc, vol.id)
    server = nc.servers.create("nc-bfv", image=None, flavor="1", nics="none", block_device_mapping_v2=[
        {"uuid": vol.id, "source_type": "volume", "destination_type": "volume", "boot_index": 0}])
    assert wait_status(bcloud, bcloud.tok, server.id, "ACTIVE")["image"] == ""
    got = cc.volumes.get(vol.id)
    assert got.status == "in-use" and got.attachments[0]["server_id"] == server.id
    assert [v.id for v in nc.volumes.get_server_volumes(server.id)] == [vol.id]
    nc.servers.delete(server.id)
    wait_status(bcloud, bcloud.tok, server.id, "DELETED")
    wait_cinder(cc, vol.id)
    # the legacy block_device_mapping: the volume on vda is the root
    server = nc.servers.create("nc-legacy", image=None, flavor="1", nics="none",
                               block_device_mapping={"vda": f"{vol.id}:::0"})
    body = wait_status(bcloud, bcloud.tok, server.id, "ACTIVE", version="2.79")
    assert body["os-extended-volumes:volumes_attached"] == [{"id": vol.id, "delete_on_termination": False}]
    nc.servers.delete(server.id)
    wait_status(bcloud, bcloud.tok, server.id, "DELETED")
    wait_cinder(cc, vol.id)
    cc.volumes.delete(vol.id)
