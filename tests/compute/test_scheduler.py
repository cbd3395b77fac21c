"""The scheduler and the fake hosts: parallel boots never overcommit, server-group
(anti-)affinity, "No valid host was found." faults, the fake driver's failure switches
and per-operation delay."""
from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from servers_util import fault, nova, start_cloud, upload_image, wait_status

# two small hosts: 4 m1.tiny each (disk 4 GB, ratio 1.0), so 8 servers fit in all
SMALL = {"fake_hosts": 2, "fake_host_vcpus": 4, "fake_host_memory_mb": 4096, "fake_host_disk_gb": 4}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory, **SMALL, fake_fail_names="doomed-*")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def image(cloud):
    return upload_image(cloud)


@pytest.fixture(scope="module")
def token(cloud):
    cloud.openstack("quota", "set", "--instances", "100", "--cores", "200", "--ram", "1000000", "admin")
    return cloud.token()


def _create(cloud, token, image, name, hints=None, version="2.1"):
    body = {"server": {"name": name, "imageRef": image, "flavorRef": "1"}}
    if hints:
        body["os:scheduler_hints"] = hints
    r = nova(cloud, token, "POST", "/servers", version, json=body)
    assert r.status_code == 202, r.text
    return r.json()["server"]["id"]


def _settle(cloud, token, ids):
    return [wait_status(cloud, token, sid, "ACTIVE", "ERROR", version="2.3") for sid in ids]


def _delete_all(cloud, token, ids):
    for sid in ids:
        nova(cloud, token, "DELETE", f"/servers/{sid}")
    for sid in ids:
        wait_status(cloud, token, sid, "DELETED")


def test_parallel_boots_never_overcommit(cloud, image, token):
    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = list(pool.map(lambda i: _create(cloud, token, image, f"par-{i}"), range(20)))
    servers = _settle(cloud, token, ids)
    active = [s for s in servers if s["status"] == "ACTIVE"]
    errors = [s for s in servers if s["status"] == "ERROR"]
    assert len(active) == 8 and len(errors) == 12
    per_host = {}
    for s in active:
        per_host[s["OS-EXT-SRV-ATTR:host"]] = per_host.get(s["OS-EXT-SRV-ATTR:host"], 0) + 1
    assert per_host == {"compute-1": 4, "compute-2": 4}
    for s in errors:
        assert s["fault"]["message"].startswith("No valid host was found.")
        assert s["fault"]["code"] == 500
    hvs = nova(cloud, token, "GET", "/os-hypervisors/detail").json()["hypervisors"]
    for hv in hvs:
        assert hv["local_gb_used"] <= hv["local_gb"]
    # everything comes back when they go
    _delete_all(cloud, token, ids)
    hvs = nova(cloud, token, "GET", "/os-hypervisors/detail").json()["hypervisors"]
    assert all(hv["local_gb_used"] == 0 and hv["running_vms"] == 0 for hv in hvs), hvs


def test_server_group_policies(cloud, image, token):
    anti = cloud.os_json("server", "group", "create", "--policy", "anti-affinity", "spread")["id"]
    ids = [_create(cloud, token, image, f"anti-{i}", {"group": anti}) for i in range(3)]
    servers = _settle(cloud, token, ids)
    hosts = [s["OS-EXT-SRV-ATTR:host"] for s in servers if s["status"] == "ACTIVE"]
    assert sorted(hosts) == ["compute-1", "compute-2"]
    assert [s["status"] for s in servers].count("ERROR") == 1
    members = cloud.os_json("server", "group", "show", "spread")["members"]
    assert set(ids) <= set(members.split(", ") if isinstance(members, str) else members)
    shown = nova(cloud, token, "GET", f"/servers/{ids[0]}", "2.71").json()["server"]
    assert shown["server_groups"] == [anti]
    _delete_all(cloud, token, ids)

    same = cloud.os_json("server", "group", "create", "--policy", "affinity", "together")["id"]
    ids = [_create(cloud, token, image, f"aff-{i}", {"group": same}) for i in range(3)]
    servers = _settle(cloud, token, ids)
    assert {s["status"] for s in servers} == {"ACTIVE"}
    assert len({s["OS-EXT-SRV-ATTR:host"] for s in servers}) == 1
    _delete_all(cloud, token, ids)

    soft = cloud.os_json("--os-compute-api-version", "2.15", "server", "group", "create", "--policy",
                         "soft-anti-affinity", "softly")["id"]
    ids = [_create(cloud, token, image, f"soft-{i}", {"group": soft}) for i in range(4)]
    servers = _settle(cloud, token, ids)
    assert {s["status"] for s in servers} == {"ACTIVE"}
    assert sorted(s["OS-EXT-SRV-ATTR:host"] for s in servers) == ["compute-1", "compute-1", "compute-2",
                                                                  "compute-2"]
    _delete_all(cloud, token, ids)
    fault(nova(cloud, token, "POST", "/servers", json={"server": {"name": "x", "imageRef": image, "flavorRef": "1"},
                                                       "os:scheduler_hints": {"group": str(uuid.uuid4())}}),
          400, "badRequest")


def test_forced_host_and_different_host(cloud, image, token):
    sid = _create(cloud, token, image, "pinned", None)
    r = nova(cloud, token, "POST", "/servers", "2.74", json={"server": {
        "name": "on-2", "imageRef": image, "flavorRef": "1", "networks": "none", "host": "compute-2"}})
    assert r.status_code == 202, r.text
    pinned = r.json()["server"]["id"]
    first = wait_status(cloud, token, sid, "ACTIVE", version="2.3")
    assert wait_status(cloud, token, pinned, "ACTIVE", version="2.3")["OS-EXT-SRV-ATTR:host"] == "compute-2"
    other = _create(cloud, token, image, "apart", {"different_host": [sid]})
    assert wait_status(cloud, token, other, "ACTIVE", version="2.3")["OS-EXT-SRV-ATTR:host"] != \
        first["OS-EXT-SRV-ATTR:host"]
    fault(nova(cloud, token, "POST", "/servers", "2.74", json={"server": {
        "name": "x", "imageRef": image, "flavorRef": "1", "networks": "none", "host": "nowhere"}}), 400, "badRequest")
    _delete_all(cloud, token, [sid, pinned, other])


def test_failure_switch_by_name(cloud, image, token):
    sid = _create(cloud, token, image, "doomed-1")
    server = wait_status(cloud, token, sid, "ERROR", version="2.3")
    assert server["fault"]["message"].startswith("Exceeded maximum number of retries")
    actions = nova(cloud, token, "GET", f"/servers/{sid}/os-instance-actions").json()["instanceActions"]
    events = nova(cloud, token, "GET", f"/servers/{sid}/os-instance-actions/{actions[0]['request_id']}",
                  "2.51").json()["instanceAction"]["events"]
    builds = [e for e in events if e["event"] == "compute_build_and_run_instance"]
    assert len(builds) == 2 and {e["result"] for e in builds} == {"Error"}  # tried both hosts
    _delete_all(cloud, token, [sid])


@pytest.fixture(scope="module")
def slow_cloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory, fake_hosts=2, fake_fail_hosts="compute-1", fake_delay="0.5")
    yield c
    c.stop()


def test_failing_host_reschedules_and_delay_shows_build(slow_cloud):
    cloud = slow_cloud
    image = upload_image(cloud)
    token = cloud.token()
    ids = [_create(cloud, token, image, f"slow-{i}") for i in range(3)]
    assert nova(cloud, token, "GET", f"/servers/{ids[0]}").json()["server"]["status"] == "BUILD"
    started = time.monotonic()
    servers = _settle(cloud, token, ids)
    assert time.monotonic() - started > 0.4
    assert {s["status"] for s in servers} == {"ACTIVE"}
    assert {s["OS-EXT-SRV-ATTR:host"] for s in servers} == {"compute-2"}
    # the guide's CLI waits through BUILD too
    out = cloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", image, "--nic", "none", "--wait",
                        "cli-slow")
    assert out["status"] == "ACTIVE"
    _delete_all(cloud, token, ids + [out["id"]])
