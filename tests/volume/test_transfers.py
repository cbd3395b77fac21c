"""Volume transfers between projects through `openstack volume transfer request ...`
(openstacksdk, the 3.55 `/volume-transfers` API), python-cinderclient (the older
`/os-volume-transfer` API) and raw HTTP: auth keys, snapshots moving along (or not, with
`no_snapshots`), the receiver's quotas, isolation, and keys never written anywhere."""
from __future__ import annotations

import time

import pytest

from tests.conftest import Cloud
from tests.volume.test_volumes import Api, project_user


@pytest.fixture(scope="module")
def tcloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("transfer"),
              config={("pocketstack", "enabled_services"): "identity,image,volume"})
    c.start()
    yield c
    c.stop()


def wait_api(api, path: str, key: str, status: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        body = api("GET", path).json()[key]
        if body["status"] == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{path} not {status}: {body['status']}")


@pytest.fixture(scope="module")
def people(tcloud):
    giver, gpw = project_user(tcloud, "tr-giver")
    taker, tpw = project_user(tcloud, "tr-taker")
    return {"giver": (giver, gpw, "tr-giver"), "taker": (taker, tpw, "tr-taker"),
            "giver_id": tcloud.os_json("project", "show", "tr-giver")["id"],
            "taker_id": tcloud.os_json("project", "show", "tr-taker")["id"]}


def test_cli_transfer_with_snapshots_and_wrong_key(tcloud, people):
    genv, tenv = tcloud.env_for(*people["giver"]), tcloud.env_for(*people["taker"])
    g, t = Api(tcloud, *people["giver"]), Api(tcloud, *people["taker"])
    vol = g("POST", "/volumes", {"volume": {"size": 1, "name": "gift"}}).json()["volume"]
    wait_api(g, f"/volumes/{vol['id']}", "volume", "available")
    snap = g("POST", "/snapshots", {"snapshot": {"volume_id": vol["id"], "name": "gift-snap"}}).json()["snapshot"]
    wait_api(g, f"/snapshots/{snap['id']}", "snapshot", "available")

    tr = tcloud.os_json("volume", "transfer", "request", "create", "--name", "gift-tr", vol["id"], env=genv)
    key = tr["auth_key"]
    assert len(key) == 16 and tr["volume_id"] == vol["id"] and tr["name"] == "gift-tr"
    assert g("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "awaiting-transfer"
    listed = tcloud.os_json("volume", "transfer", "request", "list", env=genv)
    assert [x["ID"] for x in listed] == [tr["id"]]
    shown = tcloud.os_json("volume", "transfer", "request", "show", tr["id"], env=genv)
    assert "auth_key" not in shown and shown["volume_id"] == vol["id"]
    # awaiting transfer: the volume cannot be deleted; others cannot see the transfer
    assert g("DELETE", f"/volumes/{vol['id']}").status_code == 400
    assert t("GET", f"/os-volume-transfer/{tr['id']}").status_code == 404
    assert t("DELETE", f"/os-volume-transfer/{tr['id']}").status_code == 404
    assert t("GET", "/os-volume-transfer").json()["transfers"] == []
    # a wrong key: 400, nothing changes
    r = t("POST", f"/os-volume-transfer/{tr['id']}/accept", {"accept": {"auth_key": "0" * 16}})
    assert r.status_code == 400 and "Invalid auth key" in r.json()["badRequest"]["message"]
    assert g("GET", f"/volumes/{vol['id']}").status_code == 200

    out = tcloud.os_json("volume", "transfer", "request", "accept", "--auth-key", key, tr["id"], env=tenv)
    assert out["volume_id"] == vol["id"]
    moved = t("GET", f"/volumes/{vol['id']}").json()["volume"]
    assert moved["status"] == "available" and moved["os-vol-tenant-attr:tenant_id"] == people["taker_id"]
    assert t("GET", f"/snapshots/{snap['id']}").json()["snapshot"]["volume_id"] == vol["id"]
    assert g("GET", f"/volumes/{vol['id']}").status_code == 404
    assert g("GET", f"/snapshots/{snap['id']}").status_code == 404
    assert g("GET", f"/os-volume-transfer/{tr['id']}").status_code == 404  # used up
    usage = t("GET", "/limits").json()["limits"]["absolute"]
    assert usage["totalVolumesUsed"] == 1 and usage["totalSnapshotsUsed"] == 1
    # the key was shown once and written nowhere
    for path in (tcloud.state_dir / "logs").rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace"), path
    assert key not in (tcloud.state_dir / "up.out").read_text(errors="replace")
    t("DELETE", f"/volumes/{vol['id']}?cascade=true")


def test_no_snapshots_receiver_quota_and_delete_3_55(tcloud, people):
    g, t = Api(tcloud, *people["giver"]), Api(tcloud, *people["taker"])
    admin = Api(tcloud)
    vol = g("POST", "/volumes", {"volume": {"size": 2, "name": "half"}}).json()["volume"]
    wait_api(g, f"/volumes/{vol['id']}", "volume", "available")
    snap = g("POST", "/snapshots", {"snapshot": {"volume_id": vol["id"]}}).json()["snapshot"]
    wait_api(g, f"/snapshots/{snap['id']}", "snapshot", "available")
    assert g("POST", "/volume-transfers", {"transfer": {"volume_id": vol["id"]}}).status_code == 404  # < 3.55
    r = g("POST", "/volume-transfers", {"transfer": {"volume_id": vol["id"], "no_snapshots": True}},
          version="3.57")
    assert r.status_code == 202, r.text
    tr = r.json()["transfer"]
    assert tr["no_snapshots"] is True and tr["source_project_id"] == people["giver_id"]
    assert tr["accepted"] is False and tr["destination_project_id"] is None
    assert g("POST", "/volume-transfers", {"transfer": {"volume_id": vol["id"]}},
             version="3.55").status_code == 400  # already awaiting transfer
    detail = g("GET", "/volume-transfers/detail", version="3.57").json()["transfers"]
    assert [x["id"] for x in detail] == [tr["id"]] and detail[0]["no_snapshots"] is True
    # the receiver's quota is checked
    admin("PUT", f"/os-quota-sets/{people['taker_id']}", {"quota_set": {"gigabytes": 1}})
    r = t("POST", f"/volume-transfers/{tr['id']}/accept", {"accept": {"auth_key": tr["auth_key"]}}, version="3.55")
    assert r.status_code == 413 and "gigabytes" in r.json()["overLimit"]["message"]
    assert g("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "awaiting-transfer"
    admin("PUT", f"/os-quota-sets/{people['taker_id']}", {"quota_set": {"gigabytes": 1000}})
    # delete the transfer: the volume is available again; then transfer it for real
    assert g("DELETE", f"/volume-transfers/{tr['id']}", version="3.55").status_code == 202
    assert g("GET", f"/volumes/{vol['id']}").json()["volume"]["status"] == "available"
    tr = g("POST", "/volume-transfers", {"transfer": {"volume_id": vol["id"], "no_snapshots": True}},
           version="3.55").json()["transfer"]
    r = t("POST", f"/volume-transfers/{tr['id']}/accept", {"accept": {"auth_key": tr["auth_key"]}}, version="3.55")
    assert r.status_code == 202 and set(r.json()["transfer"]) == {"id", "name", "volume_id", "links"}
    assert t("GET", f"/volumes/{vol['id']}").status_code == 200
    assert g("GET", f"/snapshots/{snap['id']}").json()["snapshot"]["volume_id"] == vol["id"]  # stayed behind
    g("DELETE", f"/snapshots/{snap['id']}")
    # bad input
    for body in ({"transfer": {}}, {"transfer": {"volume_id": "nope"}}, {"nothing": 1}):
        r = g("POST", "/os-volume-transfer", body)
        assert r.status_code in (400, 404) and next(iter(r.json())) in ("badRequest", "itemNotFound"), r.text
    assert t("POST", "/os-volume-transfer/nope/accept", {"accept": {"auth_key": "x"}}).status_code == 404
    assert t("POST", f"/os-volume-transfer/{tr['id']}/accept", {"accept": {}}).status_code in (400, 404)
    reader, rpw = project_user(tcloud, "tr-giver", role="reader")
    rd = Api(tcloud, reader, rpw, "tr-giver")
    other = g("POST", "/volumes", {"volume": {"size": 1}}).json()["volume"]
    wait_api(g, f"/volumes/{other['id']}", "volume", "available")
    assert rd("POST", "/os-volume-transfer", {"transfer": {"volume_id": other["id"]}}).status_code == 403
    g("DELETE", f"/volumes/{other['id']}")
    t("DELETE", f"/volumes/{vol['id']}")


def test_cinderclient_transfer(tcloud, people):
    from cinderclient import client as cinder_client
    from keystoneauth1 import loading, session as ks_session

    def client(user, pw, project):
        auth = loading.get_plugin_loader("password").load_from_options(
            auth_url=tcloud.auth_url, username=user, password=pw, project_name=project,
            user_domain_name="Default", project_domain_name="Default")
        return cinder_client.Client("3.0", session=ks_session.Session(auth=auth))

    giver, taker = client(*people["giver"]), client(*people["taker"])
    vol = giver.volumes.create(1, name="cc-gift")
    end = time.monotonic() + 30
    while giver.volumes.get(vol.id).status != "available":
        assert time.monotonic() < end
        time.sleep(0.2)
    tr = giver.transfers.create(vol.id, name="cc")
    assert tr.auth_key and tr.volume_id == vol.id
    assert [x.id for x in giver.transfers.list()] == [tr.id]
    assert giver.transfers.get(tr.id).name == "cc"
    accepted = taker.transfers.accept(tr.id, tr.auth_key)
    assert accepted.volume_id == vol.id
    assert taker.volumes.get(vol.id).status == "available"
    taker.volumes.delete(vol.id)


def test_transfer_list_pagination_3_59(tcloud):
    api = Api(tcloud, "admin")
    made = []
    for name in ("pg-b", "pg-a", "pg-c"):
        vol = api("POST", "/volumes", {"volume": {"size": 1, "name": name}}).json()["volume"]
        wait_api(api, f"/volumes/{vol['id']}", "volume", "available")
        made.append(api("POST", "/volume-transfers", {"transfer": {"volume_id": vol["id"], "name": name}},
                        version="3.55").json()["transfer"])
    names = [t["name"] for t in api("GET", "/volume-transfers?sort=name:asc", version="3.59").json()["transfers"]]
    assert names == ["pg-a", "pg-b", "pg-c"]
    page = api("GET", "/volume-transfers/detail?sort=name:desc&limit=2", version="3.59").json()
    assert [t["name"] for t in page["transfers"]] == ["pg-c", "pg-b"] and page["transfers_links"]
    rest = api("GET", f"/volume-transfers?sort=name:desc&limit=2&marker={page['transfers'][-1]['id']}",
               version="3.59").json()
    assert [t["name"] for t in rest["transfers"]] == ["pg-a"] and "transfers_links" not in rest
    assert len(api("GET", "/volume-transfers?limit=1", version="3.58").json()["transfers"]) == 3  # before 3.59
    assert api("GET", "/volume-transfers?marker=nope", version="3.59").status_code == 404
    assert api("GET", "/volume-transfers?sort=bogus:asc", version="3.59").status_code == 400
    for tr in made:
        api("DELETE", f"/volume-transfers/{tr['id']}", version="3.55")
        api("DELETE", f"/volumes/{tr['volume_id']}")
