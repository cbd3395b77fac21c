"""Server lists paged in SQL and rendered in batches: every sort order and filter pages to the
same sequence the unpaged list has, markers are checked against the filters, and a detail
page (batched addresses, security groups, volumes, faults) says what `show` says per server."""
from __future__ import annotations

import pytest

from servers_util import boot, fault, nova, start_cloud, upload_image, wait_status


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory, fake_hosts=2)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def token(cloud):
    return cloud.token()


@pytest.fixture(scope="module")
def servers(cloud, token):
    """Seven servers: some with a key pair and some on a network with two security groups."""
    image = upload_image(cloud)
    cloud.openstack("keypair", "create", "k1")
    net = cloud.os_json("network", "create", "lnet")["id"]
    cloud.openstack("subnet", "create", "--network", "lnet", "--subnet-range", "10.9.0.0/24", "lsub")
    cloud.openstack("security group", "create", "web")
    ids = []
    for i in range(7):
        server = {"key_name": "k1"} if i % 3 == 0 else {}
        if i % 2:
            server.update(networks=[{"uuid": net}], security_groups=[{"name": "default"}, {"name": "web"}])
        else:
            server["networks"] = "none"
        body = boot(cloud, token, f"ls-{i}", image=image, version="2.37", wait=False, server=server)
        ids.append(body["id"])
    for sid in ids:
        wait_status(cloud, token, sid, "ACTIVE")
    nova(cloud, token, "POST", f"/servers/{ids[2]}/action", json={"os-stop": None})
    wait_status(cloud, token, ids[2], "SHUTOFF")
    return ids


def walk(cloud, token, query: str, limit: int, version: str = "2.1", path: str = "/servers") -> list[str]:
    seen, url = [], f"{path}?limit={limit}&{query}"
    while url:
        body = nova(cloud, token, "GET", url, version).json()
        seen += [s["id"] for s in body["servers"]]
        links = body.get("servers_links")
        url = links[0]["href"].split("/compute/v2.1", 1)[1] if links else None
        assert len(seen) < 100
    return seen


@pytest.mark.parametrize("query", [
    "", "sort_key=display_name&sort_dir=asc", "sort_key=key_name&sort_dir=asc", "sort_key=key_name&sort_dir=desc",
    "sort_key=key_name&sort_dir=asc&sort_key=display_name&sort_dir=desc", "sort_key=vm_state&sort_key=uuid",
    "status=ACTIVE", "status=SHUTOFF&status=ACTIVE&sort_key=display_name", "name=ls-[135]",
])
def test_pages_equal_the_whole_list(cloud, token, servers, query):
    whole = [s["id"] for s in nova(cloud, token, "GET", f"/servers?{query}").json()["servers"]]
    assert whole and set(whole) <= set(servers)
    for limit in (1, 2, 3):
        assert walk(cloud, token, query, limit) == whole
    assert walk(cloud, token, query, 2, path="/servers/detail") == whole


def test_sort_orders_and_status(cloud, token, servers):
    detail = nova(cloud, token, "GET", "/servers/detail?sort_key=key_name&sort_dir=asc"
                                       "&sort_key=display_name&sort_dir=asc").json()["servers"]
    # a missing key sorts first ascending, as in the unpaged Python order before
    assert [s["name"] for s in detail] == ["ls-1", "ls-2", "ls-4", "ls-5", "ls-0", "ls-3", "ls-6"]
    desc = nova(cloud, token, "GET", "/servers?sort_key=key_name&sort_dir=desc&sort_key=display_name"
                                     "&sort_dir=asc").json()["servers"]
    assert [s["name"] for s in desc] == ["ls-0", "ls-3", "ls-6", "ls-1", "ls-2", "ls-4", "ls-5"]
    default = [s["name"] for s in nova(cloud, token, "GET", "/servers").json()["servers"]]
    assert default == [f"ls-{i}" for i in range(6, -1, -1)]  # newest first
    shutoff = nova(cloud, token, "GET", "/servers?status=SHUTOFF").json()["servers"]
    assert [s["id"] for s in shutoff] == [servers[2]]
    assert len(nova(cloud, token, "GET", "/servers?status=active").json()["servers"]) == 6
    assert nova(cloud, token, "GET", "/servers?status=REBOOT").json() == {"servers": []}


def test_markers(cloud, token, servers):
    # a marker outside the filtered list is Nova's 400, as before
    fault(nova(cloud, token, "GET", f"/servers?status=SHUTOFF&marker={servers[0]}"), 400, "badRequest")
    fault(nova(cloud, token, "GET", f"/servers?name=ls-1&marker={servers[0]}"), 400, "badRequest")
    fault(nova(cloud, token, "GET", "/servers/detail?marker=" + "x" * 80), 400, "badRequest")
    last = nova(cloud, token, "GET", f"/servers?marker={servers[0]}").json()
    assert last == {"servers": []}
    r = nova(cloud, token, "GET", "/servers?limit=0").json()
    assert r == {"servers": []}
    fault(nova(cloud, token, "GET", "/servers?limit=-2"), 400, "badRequest")


@pytest.mark.parametrize("version", ["2.1", "2.16", "2.47", "2.98", "2.104"])
def test_detail_matches_show(cloud, token, servers, version):
    detail = nova(cloud, token, "GET", "/servers/detail", version).json()["servers"]
    assert len(detail) == 7
    for listed in detail:
        shown = nova(cloud, token, "GET", f"/servers/{listed['id']}", version).json()["server"]
        shown.pop("server_groups", None)
        assert listed == shown
    wired = {s["name"]: s for s in detail}
    assert wired["ls-1"]["addresses"]["lnet"][0]["addr"].startswith("10.9.0.")
    assert sorted(g["name"] for g in wired["ls-3"]["security_groups"]) == ["default", "web"]
    assert wired["ls-0"]["addresses"] == {}
    assert wired["ls-0"]["key_name"] == "k1"
