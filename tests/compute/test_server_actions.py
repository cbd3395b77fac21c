"""Server actions through `openstack server ...` (with --wait where it exists) and the raw API:
the state machine, 409s for conflicting states, instance actions and their events."""
from __future__ import annotations

import time

import pytest

from servers_util import boot, fault, nova, start_cloud, upload_image, wait_status


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory, fake_hosts=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def image(cloud):
    return upload_image(cloud)


@pytest.fixture(scope="module")
def token(cloud):
    return cloud.token()


def act(cloud, token, sid, body, version="2.1"):
    return nova(cloud, token, "POST", f"/servers/{sid}/action", version, json=body)


def status(cloud, token, sid, version="2.1"):
    return nova(cloud, token, "GET", f"/servers/{sid}", version).json()["server"]


def test_power_cycle_with_cli(cloud, image, token):
    server = boot(cloud, token, "power", image)
    sid = server["id"]
    cloud.openstack("server", "stop", "power")
    assert wait_status(cloud, token, sid, "SHUTOFF")["OS-EXT-STS:power_state"] == 4
    # stopping a stopped server is a conflict, with Nova's message and body
    msg = fault(act(cloud, token, sid, {"os-stop": None}), 409, "conflictingRequest")
    assert msg == f"Cannot 'stop' instance {sid} while it is in vm_state stopped"
    fault(act(cloud, token, sid, {"reboot": {"type": "SOFT"}}), 409, "conflictingRequest")
    cloud.openstack("server", "start", "power")
    wait_status(cloud, token, sid, "ACTIVE")
    cloud.openstack("server", "reboot", "--hard", "--wait", "power")
    cloud.openstack("server", "reboot", "--wait", "power")
    cloud.openstack("server", "pause", "power")
    assert wait_status(cloud, token, sid, "PAUSED")["OS-EXT-STS:power_state"] == 3
    fault(act(cloud, token, sid, {"suspend": None}), 409, "conflictingRequest")
    cloud.openstack("server", "unpause", "power")
    wait_status(cloud, token, sid, "ACTIVE")
    cloud.openstack("server", "suspend", "power")
    assert wait_status(cloud, token, sid, "SUSPENDED")["OS-EXT-STS:power_state"] == 7
    cloud.openstack("server", "resume", "power")
    wait_status(cloud, token, sid, "ACTIVE")
    fault(act(cloud, token, sid, {"reboot": {"type": "sideways"}}), 400, "badRequest")
    fault(act(cloud, token, sid, {"frobnicate": None}), 400, "badRequest")
    # every action was recorded, newest first, with events for admins
    actions = cloud.os_json("server", "event", "list", "power")
    assert [a["Action"] for a in actions][:3] == ["resume", "suspend", "unpause"]
    assert actions[-1]["Action"] == "create"
    req_id = actions[-1]["Request ID"]
    detail = nova(cloud, token, "GET", f"/servers/{sid}/os-instance-actions/{req_id}", "2.62").json()
    events = detail["instanceAction"]["events"]
    assert "compute_build_and_run_instance" in [e["event"] for e in events]
    assert all(e["result"] == "Success" for e in events)


def test_lock_rescue_password_crash_dump(cloud, image, token):
    server = boot(cloud, token, "locky", image)
    sid = server["id"]
    cloud.openstack("--os-compute-api-version", "2.73", "server", "lock", "--reason", "maintenance", "locky")
    body = status(cloud, token, sid, "2.73")
    assert body["locked"] is True and body["locked_reason"] == "maintenance"
    assert [s["Name"] for s in cloud.os_json("--os-compute-api-version", "2.73", "server", "list", "--locked")] \
        == ["locky"]
    # a member of the project may not act on a server the admin locked
    member, pw = cloud.make_user("admin")
    mtoken = cloud.token(member, pw, "admin")
    assert fault(act(cloud, mtoken, sid, {"os-stop": None}), 409, "conflictingRequest") == \
        f"Instance {sid} is locked"
    fault(nova(cloud, mtoken, "DELETE", f"/servers/{sid}"), 409, "conflictingRequest")
    cloud.openstack("server", "unlock", "locky")
    assert status(cloud, token, sid, "2.9")["locked"] is False
    r = act(cloud, token, sid, {"rescue": {"adminPass": "s3cret-pass"}})
    assert r.status_code == 200 and r.json() == {"adminPass": "s3cret-pass"}
    wait_status(cloud, token, sid, "RESCUE")
    fault(act(cloud, token, sid, {"rescue": None}), 409, "conflictingRequest")
    cloud.openstack("server", "unrescue", "locky")
    wait_status(cloud, token, sid, "ACTIVE")
    assert act(cloud, token, sid, {"changePassword": {"adminPass": "n3w-pass"}}).status_code == 202
    assert act(cloud, token, sid, {"trigger_crash_dump": None}, "2.17").status_code == 202
    fault(act(cloud, token, sid, {"trigger_crash_dump": None}, "2.16"), 400, "badRequest")
    # the password never reaches logs or events
    assert "n3w-pass" not in (cloud.state_dir / "logs" / "events.jsonl").read_text()
    assert "s3cret-pass" not in (cloud.state_dir / "logs" / "pocketstack.log").read_text()
    assert nova(cloud, token, "GET", f"/servers/{sid}/os-server-password").json() == {"password": ""}
    assert nova(cloud, token, "DELETE", f"/servers/{sid}/os-server-password").status_code == 204
    # admins reset states
    assert act(cloud, token, sid, {"os-resetState": {"state": "error"}}).status_code == 202
    assert status(cloud, token, sid)["status"] == "ERROR"
    fault(act(cloud, token, sid, {"os-resetState": {"state": "bogus"}}), 400, "badRequest")
    fault(act(cloud, mtoken, sid, {"os-resetState": {"state": "active"}}), 403, "forbidden")
    assert act(cloud, token, sid, {"os-resetState": {"state": "active"}}).status_code == 202
    assert status(cloud, token, sid)["status"] == "ACTIVE"
    nova(cloud, token, "DELETE", f"/servers/{sid}")


def test_resize_confirm_and_revert(cloud, image, token):
    server = boot(cloud, token, "sizer", image)
    sid = server["id"]
    cloud.openstack("server", "resize", "--flavor", "m1.small", "--wait", "sizer")
    body = wait_status(cloud, token, sid, "VERIFY_RESIZE", version="2.47")
    assert body["flavor"]["original_name"] == "m1.small"
    fault(act(cloud, token, sid, {"resize": {"flavorRef": "3"}}), 409, "conflictingRequest")
    cloud.openstack("server", "resize", "confirm", "sizer")
    body = wait_status(cloud, token, sid, "ACTIVE", version="2.47")
    assert body["flavor"]["original_name"] == "m1.small"
    fault(act(cloud, token, sid, {"confirmResize": None}), 400, "badRequest")
    fault(act(cloud, token, sid, {"resize": {"flavorRef": "2"}}), 400, "badRequest")  # same flavor
    fault(act(cloud, token, sid, {"resize": {"flavorRef": "nope"}}), 400, "badRequest")
    fault(act(cloud, token, sid, {"resize": {"flavorRef": "1"}}), 400, "badRequest")  # smaller disk
    assert act(cloud, token, sid, {"resize": {"flavorRef": "3"}}).status_code == 202
    wait_status(cloud, token, sid, "VERIFY_RESIZE")
    cloud.openstack("server", "resize", "revert", "sizer")
    body = wait_status(cloud, token, sid, "ACTIVE", version="2.47")
    assert body["flavor"]["original_name"] == "m1.small"
    migrations = nova(cloud, token, "GET", f"/os-migrations?instance_uuid={sid}", "2.23").json()["migrations"]
    assert sorted(m["status"] for m in migrations) == ["confirmed", "reverted"]
    assert {m["migration_type"] for m in migrations} == {"resize"}
    # the hypervisors' usage is back to exactly one m1.small
    hvs = nova(cloud, token, "GET", "/os-hypervisors/detail").json()["hypervisors"]
    assert sum(h["memory_mb_used"] for h in hvs) - 512 * 2 == 2048 or \
        sum(h.get("running_vms", 0) for h in hvs) >= 1
    nova(cloud, token, "DELETE", f"/servers/{sid}")


def test_rebuild_snapshot_shelve(cloud, image, token):
    server = boot(cloud, token, "phoenix", image)
    sid = server["id"]
    other = upload_image(cloud, "other-image")
    cloud.openstack("server", "rebuild", "--image", "other-image", "--wait", "phoenix")
    assert status(cloud, token, sid)["image"]["id"] == other
    fault(act(cloud, token, sid, {"rebuild": {"imageRef": "8e1d2cf4-1a3f-4c5c-9b8c-2a8f8bb4c111"}}),
          400, "badRequest")
    snap = cloud.os_json("server", "image", "create", "--name", "phoenix-snap", "--wait", "phoenix")
    assert snap["status"] == "active"
    shown = cloud.os_json("image", "show", "phoenix-snap")
    assert shown["properties"]["instance_uuid"] == sid
    r = act(cloud, token, sid, {"createImage": {"name": "snap2"}}, "2.45")
    assert r.status_code == 202 and "image_id" in r.json()
    wait_status(cloud, token, sid, "ACTIVE")
    cloud.openstack("server", "shelve", "phoenix")
    body = wait_status(cloud, token, sid, "SHELVED_OFFLOADED", version="2.3")
    assert body["OS-EXT-SRV-ATTR:host"] is None
    shelved = cloud.os_json("image", "list", "--name", "phoenix-shelved")
    assert len(shelved) == 1 and shelved[0]["Status"] == "active"
    fault(act(cloud, token, sid, {"os-start": None}), 409, "conflictingRequest")
    cloud.openstack("server", "unshelve", "phoenix")
    body = wait_status(cloud, token, sid, "ACTIVE", version="2.3")
    assert body["OS-EXT-SRV-ATTR:host"]
    assert cloud.os_json("image", "list", "--name", "phoenix-shelved") == []
    nova(cloud, token, "DELETE", f"/servers/{sid}")


def test_admin_moves_between_hosts(cloud, image, token):
    server = boot(cloud, token, "mover", image, version="2.3")
    sid = server["id"]
    source = server["OS-EXT-SRV-ATTR:host"]
    cloud.openstack("server", "migrate", "--wait", "mover")
    body = wait_status(cloud, token, sid, "VERIFY_RESIZE", version="2.3")
    assert body["OS-EXT-SRV-ATTR:host"] != source
    cloud.openstack("server", "resize", "confirm", "mover")
    body = wait_status(cloud, token, sid, "ACTIVE", version="2.3")
    here = body["OS-EXT-SRV-ATTR:host"]
    assert act(cloud, token, sid, {"os-migrateLive": {"host": None, "block_migration": "auto"}},
               "2.25").status_code == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = status(cloud, token, sid, "2.3")
        if body["OS-EXT-SRV-ATTR:host"] != here and body["OS-EXT-STS:task_state"] is None:
            break
        time.sleep(0.1)
    assert body["OS-EXT-SRV-ATTR:host"] != here and body["status"] == "ACTIVE"
    # evacuation needs the host to be down
    fault(act(cloud, token, sid, {"evacuate": {}}, "2.29"), 400, "badRequest")
    down = body["OS-EXT-SRV-ATTR:host"]
    cloud.openstack("--os-compute-api-version", "2.11", "compute", "service", "set", "--down", down, "nova-compute")
    try:
        r = act(cloud, token, sid, {"evacuate": {}}, "2.29")
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            body = status(cloud, token, sid, "2.3")
            if body["OS-EXT-SRV-ATTR:host"] != down and body["OS-EXT-STS:task_state"] is None:
                break
            time.sleep(0.1)
        assert body["OS-EXT-SRV-ATTR:host"] != down and body["status"] == "ACTIVE"
    finally:
        cloud.openstack("--os-compute-api-version", "2.11", "compute", "service", "set", "--up", down,
                        "nova-compute")
    # members cannot migrate
    member, pw = cloud.make_user("admin")
    mtoken = cloud.token(member, pw, "admin")
    fault(act(cloud, mtoken, sid, {"migrate": None}), 403, "forbidden")
    types = {m["migration_type"] for m in
             nova(cloud, token, "GET", f"/os-migrations?instance_uuid={sid}", "2.23").json()["migrations"]}
    assert types == {"migration", "live-migration", "evacuation"}
    nova(cloud, token, "DELETE", f"/servers/{sid}")


def test_consoles_security_groups_and_volumes(cloud, image, token):
    server = boot(cloud, token, "consoles", image)
    sid = server["id"]
    url = cloud.os_json("console", "url", "show", "--novnc", "consoles")["url"]
    assert "token" in url
    r = nova(cloud, token, "POST", f"/servers/{sid}/remote-consoles", "2.6",
             json={"remote_console": {"protocol": "vnc", "type": "novnc"}})
    assert r.status_code == 200 and r.json()["remote_console"]["protocol"] == "vnc"
    fault(nova(cloud, token, "POST", f"/servers/{sid}/remote-consoles", "2.6",
               json={"remote_console": {"protocol": "vnc", "type": "bogus"}}), 400, "badRequest")
    out = act(cloud, token, sid, {"os-getConsoleOutput": {"length": 2}}).json()["output"]
    assert len(out.split("\n")) == 2
    assert nova(cloud, token, "GET", f"/servers/{sid}/os-volume_attachments").json() == {"volumeAttachments": []}
    fault(nova(cloud, token, "POST", f"/servers/{sid}/os-volume_attachments",
               json={"volumeAttachment": {"volumeId": "8e1d2cf4-1a3f-4c5c-9b8c-2a8f8bb4c111"}}), 404, "itemNotFound")
    cloud.openstack("security", "group", "create", "web")
    cloud.openstack("server", "add", "security", "group", "consoles", "web")
    names = {g["name"] for g in status(cloud, token, sid)["security_groups"]}
    assert names >= {"web"}
    cloud.openstack("server", "remove", "security", "group", "consoles", "web")
    names = {g["name"] for g in status(cloud, token, sid)["security_groups"]}
    assert "web" not in names
    fault(act(cloud, token, sid, {"addSecurityGroup": {"name": "nope-sg"}}), 404, "itemNotFound")
    diag = nova(cloud, token, "GET", f"/servers/{sid}/diagnostics", "2.48").json()
    assert diag["state"] == "running" and diag["num_cpus"] == 1 and diag["driver"] == "libvirt"
    r = nova(cloud, token, "POST", "/os-server-external-events",
             json={"events": [{"name": "network-changed", "server_uuid": sid}]})
    assert r.status_code == 200 and r.json()["events"][0]["code"] == 200
    fault(nova(cloud, token, "POST", "/os-server-external-events",
               json={"events": [{"name": "network-changed", "server_uuid": "8e1d2cf4-1a3f-4c5c-9b8c-2a8f8bb4c111"}]}),
          404, "itemNotFound")
    nova(cloud, token, "DELETE", f"/servers/{sid}")
    wait_status(cloud, token, sid, "DELETED")
    fault(act(cloud, token, sid, {"os-stop": None}), 404, "itemNotFound")
