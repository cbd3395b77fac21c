"""What the last Tempest run found missing: os-instance_usage_audit_log (novaclient and raw),
microversions 2.101-2.104 (the version document, pinned-AZ updates, the strict server
query strings), the os-volumes / os-snapshots proxies (checked against the volume service's
own client) and os-assisted-volume-snapshots, with Nova's errors."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import pytest

from conftest import BIN
from servers_util import boot, fault, nova, start_cloud, upload_image


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory, fake_hosts=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def token(cloud):
    return cloud.token()


@pytest.fixture(scope="module")
def member_token(cloud):
    cloud.openstack("project", "create", "--domain", "default", "gap-proj")
    user, pw = cloud.make_user("gap-proj")
    return cloud.token(user, pw, "gap-proj")


def _last_month(now: dt.datetime) -> tuple[str, str]:
    end = dt.datetime(now.year, now.month, 1)
    begin = dt.datetime(end.year - 1, 12, 1) if end.month == 1 else dt.datetime(end.year, end.month - 1, 1)
    return str(begin), str(end)


def test_usage_audit_log(cloud, token, member_token):
    body = nova(cloud, token, "GET", "/os-instance_usage_audit_log").json()["instance_usage_audit_logs"]
    begin, end = _last_month(dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    assert body == {"period_beginning": begin, "period_ending": end, "num_hosts": 2, "num_hosts_done": 0,
                    "num_hosts_running": 0, "num_hosts_not_run": 2, "hosts_not_run": ["compute-1", "compute-2"],
                    "total_instances": 0, "total_errors": 0, "overall_status": "0 of 2 hosts done. 0 errors.",
                    "log": {}}
    # a disabled compute service still counts (it can have servers)
    cloud.openstack("compute", "service", "set", "--disable", "compute-2", "nova-compute")
    # before a time: the last month completed before it (the year boundary too; a month's
    # first instant has not completed that month)
    for before, period in (("2026-01-15 10:00:00", ("2025-12-01 00:00:00", "2026-01-01 00:00:00")),
                           ("2026-03-01 00:00:00.000000", ("2026-01-01 00:00:00", "2026-02-01 00:00:00")),
                           ("2026-03-01 00:00:01", ("2026-02-01 00:00:00", "2026-03-01 00:00:00"))):
        r = nova(cloud, token, "GET", f"/os-instance_usage_audit_log/{before}")
        log = r.json()["instance_usage_audit_log"]
        assert (log["period_beginning"], log["period_ending"]) == period
        assert log["num_hosts"] == 2
    cloud.openstack("compute", "service", "set", "--enable", "compute-2", "nova-compute")
    msg = fault(nova(cloud, token, "GET", "/os-instance_usage_audit_log/invalid_time"), 400, "badRequest")
    assert msg == "Invalid timestamp for date invalid_time"
    fault(nova(cloud, member_token, "GET", "/os-instance_usage_audit_log"), 403, "forbidden")
    fault(nova(cloud, member_token, "GET", "/os-instance_usage_audit_log/2026-01-01 00:00:00"), 403, "forbidden")
    # novaclient's command reads the same thing
    env = cloud.admin_env()
    out = subprocess.run([str(BIN / "nova"), "instance-usage-audit-log", "--before", "2026-01-15 10:00:00"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert "2025-12-01 00:00:00" in out and "compute-1" in out and "0 of 2 hosts done. 0 errors." in out


def test_version_document_serves_2_104(cloud, token):
    versions = nova(cloud, token, "GET", "/").json()["version"]
    assert versions["version"] == "2.104"
    r = nova(cloud, token, "GET", "/servers", "latest")
    assert r.headers["OpenStack-API-Version"] == "compute 2.104"
    r = nova(cloud, token, "GET", "/servers", "2.105")
    assert r.status_code == 406 and "maximum is 2.104" in r.text


def test_pinned_availability_zone_update(cloud, token):
    image = upload_image(cloud)
    pinned = boot(cloud, token, "pin-1", image=image, version="2.96", server={"availability_zone": "nova"})
    path = f"/servers/{pinned['id']}"
    assert nova(cloud, token, "GET", path, "2.96").json()["server"]["pinned_availability_zone"] == "nova"

    def put(az, version="2.104"):
        return nova(cloud, token, "PUT", path, version, json={"server": {"pinned_availability_zone": az}})

    # before 2.104 the key is not part of the update schema
    fault(put(None, "2.103"), 400, "badRequest")
    # a pinned server cannot move to another pin directly
    msg = fault(put("elsewhere"), 409, "conflictingRequest")
    assert "Unpin first" in msg
    r = put(None)
    assert r.status_code == 200 and r.json()["server"]["pinned_availability_zone"] is None
    assert nova(cloud, token, "GET", path, "2.104").json()["server"]["pinned_availability_zone"] is None
    assert put(None).json()["server"]["pinned_availability_zone"] is None  # already unpinned: no-op
    msg = fault(put("elsewhere"), 409, "conflictingRequest")
    assert msg == "Server can only be pinned to its current availability zone 'nova', but 'elsewhere' was requested."
    assert put("nova").json()["server"]["pinned_availability_zone"] == "nova"
    assert put("nova").json()["server"]["pinned_availability_zone"] == "nova"  # same zone: no-op
    assert nova(cloud, token, "GET", path, "2.104").json()["server"]["pinned_availability_zone"] == "nova"
    fault(put(""), 400, "badRequest")
    fault(put(7), 400, "badRequest")
    # the openstack CLI (an older microversion) still shows it
    shown = cloud.os_json("server", "show", "--os-compute-api-version", "2.96", pinned["id"])
    assert shown["pinned_availability_zone"] == "nova"


def test_strict_server_query_strings(cloud, token):
    fault(nova(cloud, token, "GET", "/servers?bogus=1", "2.75"), 400, "badRequest")
    assert nova(cloud, token, "GET", "/servers?bogus=1", "2.74").status_code == 200
    assert nova(cloud, token, "GET", "/servers/detail?limit=1&name=x&tags=a", "2.75").status_code == 200
    any_id = nova(cloud, token, "GET", "/servers").json()["servers"][0]["id"]
    fault(nova(cloud, token, "GET", f"/servers/{any_id}?x=1", "2.102"), 400, "badRequest")
    assert nova(cloud, token, "GET", f"/servers/{any_id}?x=1", "2.101").status_code == 200


def _wait_volume(cloud, volume_id: str, status: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while True:
        vol = cloud.os_json("volume", "show", volume_id)
        if vol["status"] == status or time.monotonic() > end:
            assert vol["status"] == status, vol
            return vol
        time.sleep(0.2)


def test_volume_and_snapshot_proxies(cloud, token, member_token):
    r = nova(cloud, token, "POST", "/os-volumes", "2.35", json={"volume": {
        "size": 1, "display_name": "pv", "display_description": "via nova", "metadata": {"k": "v"}}})
    assert r.status_code == 200, r.text
    vol = r.json()["volume"]
    assert r.headers["Location"].endswith(f"/os-volumes/{vol['id']}")
    assert (vol["displayName"], vol["displayDescription"], vol["size"], vol["metadata"]) == ("pv", "via nova", 1,
                                                                                            {"k": "v"})
    assert vol["attachments"] == [{}] and vol["availabilityZone"] and vol["createdAt"]
    # the volume service's own client sees the same volume
    shown = _wait_volume(cloud, vol["id"], "available")
    assert shown["name"] == "pv" and shown["size"] == 1
    again = nova(cloud, token, "GET", f"/os-volumes/{vol['id']}", "2.35").json()["volume"]
    assert again["status"] == "available"
    r2 = nova(cloud, token, "POST", "/os-volumes", "2.1", json={"volume": {"size": "1", "display_name": "pv2"}})
    second = r2.json()["volume"]["id"]
    _wait_volume(cloud, second, "available")
    full = [v["id"] for v in nova(cloud, token, "GET", "/os-volumes/detail", "2.35").json()["volumes"]]
    assert set(full) == {vol["id"], second}
    paged = nova(cloud, token, "GET", "/os-volumes?offset=1&limit=1", "2.35").json()["volumes"]
    assert [v["id"] for v in paged] == full[1:2]
    fault(nova(cloud, token, "GET", "/os-volumes?limit=-1", "2.35"), 400, "badRequest")
    # another project sees none of them; 2.36 removed the proxy
    assert nova(cloud, member_token, "GET", "/os-volumes", "2.35").json() == {"volumes": []}
    fault(nova(cloud, member_token, "GET", f"/os-volumes/{vol['id']}", "2.35"), 404, "itemNotFound")
    fault(nova(cloud, token, "GET", "/os-volumes", "2.36"), 404, "itemNotFound")
    for bad in ({}, {"size": 0}, {"size": "#$%"}, {"size": 1, "bogus": 1}):
        fault(nova(cloud, token, "POST", "/os-volumes", "2.35", json={"volume": bad}), 400, "badRequest")
    # snapshots
    r = nova(cloud, token, "POST", "/os-snapshots", "2.35", json={"snapshot": {
        "volume_id": vol["id"], "display_name": "ps", "force": "true"}})
    assert r.status_code == 200, r.text
    snap = r.json()["snapshot"]
    assert (snap["volumeId"], snap["displayName"], snap["size"]) == (vol["id"], "ps", 1)
    listed = nova(cloud, token, "GET", "/os-snapshots/detail", "2.35").json()["snapshots"]
    assert [s["id"] for s in listed] == [snap["id"]]
    assert cloud.os_json("volume", "snapshot", "show", snap["id"])["name"] == "ps"
    fault(nova(cloud, token, "POST", "/os-snapshots", "2.35", json={"snapshot": {"display_name": "x"}}),
          400, "badRequest")
    _wait_proxy(cloud, token, f"/os-snapshots/{snap['id']}", "snapshot")
    assert nova(cloud, token, "DELETE", f"/os-snapshots/{snap['id']}", "2.35").status_code == 202
    end = time.monotonic() + 30
    while nova(cloud, token, "GET", f"/os-snapshots/{snap['id']}", "2.35").status_code != 404:
        assert time.monotonic() < end
        time.sleep(0.2)
    assert nova(cloud, token, "DELETE", f"/os-volumes/{second}", "2.35").status_code == 202
    fault(nova(cloud, token, "DELETE", f"/os-volumes/{second}x", "2.35"), 404, "itemNotFound")
    for method in ("GET", "DELETE"):  # no id at all
        fault(nova(cloud, token, method, "/os-volumes/", "2.35"), 404, "itemNotFound")


def _wait_proxy(cloud, token, path: str, key: str) -> None:
    end = time.monotonic() + 30
    while nova(cloud, token, "GET", path, "2.35").json()[key]["status"] != "available":
        assert time.monotonic() < end
        time.sleep(0.2)


def test_member_uses_the_proxies(cloud, member_token):
    vol = nova(cloud, member_token, "POST", "/os-volumes", "2.35", json={"volume": {"size": 1}}).json()["volume"]
    _wait_proxy(cloud, member_token, f"/os-volumes/{vol['id']}", "volume")
    r = nova(cloud, member_token, "POST", "/os-snapshots", "2.35", json={"snapshot": {"volume_id": vol["id"]}})
    assert r.status_code == 200, r.text
    snap = r.json()["snapshot"]["id"]
    _wait_proxy(cloud, member_token, f"/os-snapshots/{snap}", "snapshot")
    # a member deletes its own snapshot without the volume service's force-delete (admin) policy
    assert nova(cloud, member_token, "DELETE", f"/os-snapshots/{snap}", "2.35").status_code == 202


def test_assisted_volume_snapshots(cloud, token):
    cloud.openstack("role", "create", "--or-show", "service")
    cloud.openstack("role", "add", "--user", "admin", "--project", "admin", "service")
    service_token = cloud.token()
    image = upload_image(cloud, "avs-img")
    server = boot(cloud, token, "avs", image=image, version="2.37")
    vol = cloud.os_json("volume", "create", "--size", "1", "avs-vol")["id"]
    _wait_volume(cloud, vol, "available")
    body = {"snapshot": {"volume_id": vol, "create_info": {"snapshot_id": "s1", "type": "qcow2",
                                                           "new_file": "new_file", "id": "s1"}}}
    # not attached: Nova's 400
    msg = fault(nova(cloud, service_token, "POST", "/os-assisted-volume-snapshots", json=body), 400, "badRequest")
    assert msg == f"No volume Block Device Mapping with id {vol}."
    cloud.openstack("server", "add", "volume", server["id"], vol)
    _wait_volume(cloud, vol, "in-use")
    r = nova(cloud, service_token, "POST", "/os-assisted-volume-snapshots", json=body)
    assert r.status_code == 200 and r.json() == {"snapshot": {"id": "s1", "volumeId": vol}}
    delete_info = json.dumps({"volume_id": vol})
    r = nova(cloud, service_token, "DELETE", "/os-assisted-volume-snapshots/s1", params={"delete_info": delete_info})
    assert r.status_code == 204
    fault(nova(cloud, service_token, "DELETE", "/os-assisted-volume-snapshots/s1"), 400, "badRequest")
    fault(nova(cloud, service_token, "DELETE", "/os-assisted-volume-snapshots/s1",
               params={"delete_info": "{nope"}), 400, "badRequest")
    body["snapshot"]["create_info"]["type"] = "raw"
    fault(nova(cloud, service_token, "POST", "/os-assisted-volume-snapshots", json=body), 400, "badRequest")
    # the service role only (Nova's default): a project member is refused
    cloud.openstack("project", "create", "--domain", "default", "avs-proj")
    user, pw = cloud.make_user("avs-proj")
    fault(nova(cloud, cloud.token(user, pw, "avs-proj"), "POST", "/os-assisted-volume-snapshots", json=body),
          403, "forbidden")
