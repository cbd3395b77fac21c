"""Manage / unmanage (admin) through `openstack volume delete --remote` / `openstack volume
create --remote-source`, python-cinderclient and raw HTTP: the data survives the round
trip, the manageable listings, refusals, and policy."""
from __future__ import annotations

import hashlib
import time

import pytest

from tests.conftest import Cloud
from tests.volume.test_volumes import Api, project_user


@pytest.fixture(scope="module")
def mcloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("manage"), config={("pocketstack", "enabled_services"): "identity,image,volume"})
    c.start()
    yield c
    c.stop()


def wait_api(api, path: str, status: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        body = api("GET", path).json()["volume"]
        if body["status"] == status:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{path} not {status}: {body['status']}")


def data_file(cloud, volume_id: str):
    return cloud.state_dir / "volume" / "file" / f"volume-{volume_id}"


def test_unmanage_then_manage_keeps_the_data_cli(mcloud):
    api = Api(mcloud)
    vol = api("POST", "/volumes", {"volume": {"size": 1, "name": "keep"}}).json()["volume"]
    wait_api(api, f"/volumes/{vol['id']}", "available")
    with open(data_file(mcloud, vol["id"]), "r+b") as fh:
        fh.write(b"precious data" * 1000)
    before = hashlib.sha256(data_file(mcloud, vol["id"]).read_bytes()).hexdigest()
    host = api("GET", f"/volumes/{vol['id']}").json()["volume"]["os-vol-host-attr:host"]

    mcloud.openstack("volume", "delete", "--remote", vol["id"])
    assert api("GET", f"/volumes/{vol['id']}").status_code == 404
    assert data_file(mcloud, vol["id"]).exists()  # forgotten, not deleted
    listed = api("GET", f"/manageable_volumes/detail?host={host}", version="3.8").json()["manageable-volumes"]
    entry = next(x for x in listed if x["reference"]["source-name"] == f"volume-{vol['id']}")
    assert entry["safe_to_manage"] is True and entry["size"] == 1 and entry["cinder_id"] is None
    assert api("GET", f"/manageable_volumes?host={host}").status_code == 404  # 3.8+

    # `openstack volume create --remote-source` (openstacksdk) asks for microversion 3.71
    # whatever the server's maximum; the manage API itself is the same at 3.8: raw HTTP here.
    r = api("POST", "/manageable_volumes", {"volume": {"host": host, "name": "adopted",
                                                       "ref": {"source-name": f"volume-{vol['id']}"}}},
            version="3.8")
    assert r.status_code == 202, r.text
    out = r.json()["volume"]
    assert out["status"] in ("creating", "available")
    adopted = wait_api(api, f"/volumes/{out['id']}", "available")
    assert adopted["size"] == 1 and adopted["name"] == "adopted" and out["id"] != vol["id"]
    assert hashlib.sha256(data_file(mcloud, out["id"]).read_bytes()).hexdigest() == before
    assert not data_file(mcloud, vol["id"]).exists()
    listed = api("GET", f"/manageable_volumes/detail?host={host}", version="3.8").json()["manageable-volumes"]
    entry = next(x for x in listed if x["reference"]["source-name"] == f"volume-{out['id']}")
    assert entry["safe_to_manage"] is False and entry["cinder_id"] == out["id"]
    # managing something already managed, or missing, or elsewhere: refused
    cases = [({"host": host, "ref": {"source-name": f"volume-{out['id']}"}}, 400),
             ({"host": host, "ref": {"source-name": "volume-nope"}}, 400),
             ({"host": host, "ref": {}}, 400), ({"ref": {"source-name": "x"}}, 400),
             ({"host": "elsewhere@lvm#lvm", "ref": {"source-name": f"volume-{out['id']}"}}, 404)]
    for body, status in cases:
        r = api("POST", "/os-volume-manage", {"volume": body})
        assert r.status_code == status, (body, r.text)
        assert next(iter(r.json())) in ("badRequest", "itemNotFound")
    api("DELETE", f"/volumes/{out['id']}")


def test_unmanage_refusals_policy_and_cinderclient(mcloud):
    api = Api(mcloud)
    user, pw = project_user(mcloud, "mg-member")
    member = Api(mcloud, user, pw, "mg-member")
    vol = member("POST", "/volumes", {"volume": {"size": 1, "name": "m"}}).json()["volume"]
    wait_api(member, f"/volumes/{vol['id']}", "available")
    host = api("GET", f"/volumes/{vol['id']}").json()["volume"]["os-vol-host-attr:host"]
    assert member("POST", f"/volumes/{vol['id']}/action", {"os-unmanage": {}}).status_code == 403
    assert member("POST", "/os-volume-manage", {"volume": {"host": host, "ref": {"source-name": "x"}}}
                  ).status_code == 403
    assert member("GET", f"/manageable_volumes?host={host}", version="3.8").status_code == 403
    snap = member("POST", "/snapshots", {"snapshot": {"volume_id": vol["id"]}}).json()["snapshot"]
    end = time.monotonic() + 30
    while member("GET", f"/snapshots/{snap['id']}").json()["snapshot"]["status"] != "available":
        assert time.monotonic() < end
        time.sleep(0.2)
    r = api("POST", f"/volumes/{vol['id']}/action", {"os-unmanage": {}})
    assert r.status_code == 400 and "snapshots" in r.json()["badRequest"]["message"]
    member("DELETE", f"/snapshots/{snap['id']}")
    while member("GET", f"/snapshots/{snap['id']}").status_code != 404:
        assert time.monotonic() < end + 30
        time.sleep(0.2)

    from cinderclient import client as cinder_client
    from keystoneauth1 import loading, session as ks_session

    auth = loading.get_plugin_loader("password").load_from_options(
        auth_url=mcloud.auth_url, username="admin", password=mcloud.admin_password, project_name="admin",
        user_domain_name="Default", project_domain_name="Default")
    cinder = cinder_client.Client("3.8", session=ks_session.Session(auth=auth))
    cinder.volumes.unmanage(vol["id"])
    names = [m.reference["source-name"] for m in cinder.volumes.list_manageable(host, detailed=False)]
    assert f"volume-{vol['id']}" in names
    adopted = cinder.volumes.manage(host, {"source-name": f"volume-{vol['id']}"}, name="back",
                                    metadata={"via": "cinderclient"})
    end = time.monotonic() + 30
    while cinder.volumes.get(adopted.id).status != "available":
        assert time.monotonic() < end
        time.sleep(0.2)
    got = cinder.volumes.get(adopted.id)
    assert got.name == "back" and got.metadata == {"via": "cinderclient"} and got.size == 1
    cinder.volumes.delete(adopted.id)


def test_cli_remote_source_manage_and_remote_delete(mcloud):
    """`openstack volume create --remote-source` (openstacksdk's manage_volume, which asks for
    microversion 3.71) adopts an unmanaged volume; `openstack volume delete --remote` forgets it."""
    api = Api(mcloud)
    vol = mcloud.os_json("volume", "create", "--size", "1", "cli-src")
    wait_api(api, f"/volumes/{vol['id']}", "available")
    with open(data_file(mcloud, vol["id"]), "r+b") as fh:
        fh.write(b"cli round trip" * 500)
    digest = hashlib.sha256(data_file(mcloud, vol["id"]).read_bytes()).hexdigest()
    host = api("GET", f"/volumes/{vol['id']}").json()["volume"]["os-vol-host-attr:host"]
    mcloud.openstack("volume", "delete", "--remote", vol["id"])
    assert api("GET", f"/volumes/{vol['id']}").status_code == 404

    out = mcloud.os_json("volume", "create", "--remote-source", f"source-name=volume-{vol['id']}",
                         "--host", host, "--description", "adopted by the CLI", "--property", "k=v", "cli-adopted")
    assert out["name"] == "cli-adopted" and out["id"] != vol["id"]
    got = wait_api(api, f"/volumes/{out['id']}", "available")
    assert got["size"] == 1 and got["description"] == "adopted by the CLI" and got["metadata"] == {"k": "v"}
    assert hashlib.sha256(data_file(mcloud, out["id"]).read_bytes()).hexdigest() == digest
    shown = mcloud.os_json("volume", "show", out["id"])
    assert shown["status"] == "available" and shown["name"] == "cli-adopted"
    # a reference the backend does not hold, and a host that is not ours: the CLI reports the API's error
    err = mcloud.openstack_fails("volume", "create", "--remote-source", "source-name=volume-missing",
                                 "--host", host, "nothing")
    assert "invalid backend reference" in err
    err = mcloud.openstack_fails("volume", "create", "--remote-source", f"source-name=volume-{out['id']}",
                                 "--host", "elsewhere@lvm#lvm", "nothing")
    assert "could not be found" in err

    mcloud.openstack("volume", "delete", "--remote", out["id"])
    assert api("GET", f"/volumes/{out['id']}").status_code == 404
    assert data_file(mcloud, out["id"]).exists()
    names = [x["reference"]["source-name"] for x in
             api("GET", f"/manageable_volumes?host={host}", version="3.8").json()["manageable-volumes"]]
    assert f"volume-{out['id']}" in names


def test_snapshot_unmanage_manage_keeps_the_data(mcloud):
    """Snapshot `os-unmanage` and `os-snapshot-manage` / `manageable_snapshots` (3.8): the data
    survives under the new id; refusals and policy."""
    api = Api(mcloud)
    vol = api("POST", "/volumes", {"volume": {"size": 1, "name": "snapsrc"}}).json()["volume"]
    host = wait_api(api, f"/volumes/{vol['id']}", "available") and \
        api("GET", f"/volumes/{vol['id']}").json()["volume"]["os-vol-host-attr:host"]
    snap = mcloud.os_json("volume", "snapshot", "create", "--volume", vol["id"], "s1")
    end = time.monotonic() + 30
    while api("GET", f"/snapshots/{snap['id']}").json()["snapshot"]["status"] != "available":
        assert time.monotonic() < end
        time.sleep(0.2)
    path = mcloud.state_dir / "volume" / "file" / f"snapshot-{snap['id']}"
    with open(path, "r+b") as fh:
        fh.write(b"snapshot bytes" * 100)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    user, pw = project_user(mcloud, "snapmg-member")
    member = Api(mcloud, user, pw, "snapmg-member")
    assert member("POST", "/os-snapshot-manage", {"snapshot": {"volume_id": vol["id"], "ref": {"source-name": "x"}}}
                  ).status_code == 403

    assert api("POST", f"/snapshots/{snap['id']}/action", {"os-unmanage": {}}).status_code == 202
    assert api("GET", f"/snapshots/{snap['id']}").status_code == 404 and path.exists()
    listed = api("GET", f"/manageable_snapshots/detail?host={host}", version="3.8").json()["manageable-snapshots"]
    entry = next(x for x in listed if x["reference"]["source-name"] == f"snapshot-{snap['id']}")
    assert entry["safe_to_manage"] is True and entry["size"] == 1
    assert api("GET", f"/manageable_snapshots?host={host}").status_code == 404  # 3.8+

    body = {"snapshot": {"volume_id": vol["id"], "ref": {"source-name": f"snapshot-{snap['id']}"},
                         "name": "adopted", "description": "back again", "metadata": {"k": "v"}}}
    r = api("POST", "/os-snapshot-manage", body)
    assert r.status_code == 202, r.text
    new = r.json()["snapshot"]
    assert new["id"] != snap["id"] and new["volume_id"] == vol["id"] and new["metadata"] == {"k": "v"}
    end = time.monotonic() + 30
    while (got := api("GET", f"/snapshots/{new['id']}").json()["snapshot"])["status"] != "available":
        assert time.monotonic() < end
        time.sleep(0.2)
    assert got["size"] == 1 and got["name"] == "adopted" and got["description"] == "back again"
    new_path = mcloud.state_dir / "volume" / "file" / f"snapshot-{new['id']}"
    assert hashlib.sha256(new_path.read_bytes()).hexdigest() == before and not path.exists()
    # again, missing, no volume: refused
    for bad, status in ((body, 400), ({**body["snapshot"], "ref": {"source-name": "snapshot-nope"}}, 400),
                        ({"ref": {"source-name": f"snapshot-{new['id']}"}}, 400),
                        ({**body["snapshot"], "volume_id": "nope"}, 404)):
        r = api("POST", "/manageable_snapshots", {"snapshot": bad.get("snapshot", bad)}, version="3.8")
        assert r.status_code == status, (bad, r.text)
    # the adopted snapshot is a real one: a volume made from it has its bytes
    clone = api("POST", "/volumes", {"volume": {"snapshot_id": new["id"]}}).json()["volume"]
    wait_api(api, f"/volumes/{clone['id']}", "available")
    with open(data_file(mcloud, clone["id"]), "rb") as fh:
        assert fh.read(1400) == b"snapshot bytes" * 100
    api("DELETE", f"/volumes/{clone['id']}")
    api("DELETE", f"/snapshots/{new['id']}")
