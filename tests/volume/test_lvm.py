"""The `lvm` backend.

1. Everywhere: the backend against a recording LVM runner that keeps LVs as files (the
   commands it issues, thin snapshots, clones, revert by renames, whole-volume writes via
   a temporary LV, manage/unmanage, capacity parsing).
2. Where the kernel has device-mapper (and we are root with lvm2): a real volume group on
   a loop device, driven through a cloud with `[volume] backend = lvm` and the
   `openstack` CLI. Containers without device-mapper skip it with the reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pocketstack.volume.backends.base import BackendError
from pocketstack.volume.backends.lvm import GiB, LvmBackend


class FakeLvm:
    """Just enough of lvm2's commands, with each LV as a sparse file."""

    def __init__(self, root: Path, vg: str, vg_size_gb: int = 10):
        self.root, self.vg, self.vg_size = root, vg, vg_size_gb
        self.calls: list[list[str]] = []
        self.lvs: dict[str, int] = {}

    def file(self, lv: str) -> Path:
        return self.root / lv

    def __call__(self, argv: list[str]) -> str:
        self.calls.append(argv)
        cmd, args = argv[0], argv[1:]
        if cmd == "lvs":
            return "".join(f"  {n} {s}B\n".replace("B", "") for n, s in self.lvs.items())
        if cmd == "vgs":
            return f"  {self.vg_size}.00 {self.vg_size - 1}.50\n"
        if cmd == "lvcreate":
            target = args[-1]
            name = args[args.index("-n") + 1] if "-n" in args else target.split("/")[1]
            if name in self.lvs:
                raise BackendError(f"{name} exists")
            if "-s" in args:
                src = target.split("/")[1]
                if src not in self.lvs:
                    raise BackendError(f"no {src}")
                subprocess.run(["cp", "--sparse=always", str(self.file(src)), str(self.file(name))], check=True)
                self.lvs[name] = self.lvs[src]
            elif "-V" in args:
                size = int(args[args.index("-V") + 1].rstrip("g")) * GiB
                with open(self.file(name), "wb") as fh:
                    fh.truncate(size)
                self.lvs[name] = size
            else:
                self.lvs[name] = 9 * GiB  # the thin pool
            return ""
        if cmd == "lvextend":
            lv = args[-1].split("/")[1]
            size = int(args[args.index("-L") + 1].rstrip("g")) * GiB
            with open(self.file(lv), "r+b") as fh:
                fh.truncate(size)
            self.lvs[lv] = size
            return ""
        if cmd == "lvremove":
            lv = args[-1].split("/")[1]
            self.lvs.pop(lv)
            self.file(lv).unlink(missing_ok=True)
            return ""
        if cmd == "lvrename":
            _, old, new = args
            self.lvs[new] = self.lvs.pop(old)
            os.replace(self.file(old), self.file(new))
            return ""
        raise AssertionError(f"unexpected command {argv}")


@pytest.fixture
def fake(tmp_path):
    runner = FakeLvm(tmp_path, "cinder-volumes")

    class Backend(LvmBackend):
        def _dev(self, lv):
            return runner.file(lv)

    return runner, Backend("cinder-volumes", run=runner, root=tmp_path / "scratch")


def test_thin_volumes_snapshots_clones_and_revert(fake):
    runner, be = fake
    assert be.create_volume("v1", 1).endswith("volume-v1")
    assert ["lvcreate", "--yes", "-T", "-l", "95%FREE", "cinder-volumes/cinder-volumes-pool"] in runner.calls
    assert ["lvcreate", "--yes", "-T", "-V", "1g", "-n", "volume-v1", "cinder-volumes/cinder-volumes-pool"] \
        in runner.calls
    with be.open_volume("v1") as fh:
        fh.write(b"first")
    be.create_snapshot("s1", "v1")
    assert ["lvcreate", "--yes", "-s", "-kn", "-n", "snapshot-s1", "cinder-volumes/volume-v1"] in runner.calls
    with be.open_volume("v1") as fh:
        fh.write(b"later")
    be.clone_volume("v2", "v1", 2)
    assert runner.lvs["volume-v2"] == 2 * GiB and next(be.read_volume("v2"))[:5] == b"later"
    be.volume_from_snapshot("v3", "s1", 1)
    assert next(be.read_volume("v3"))[:5] == b"first"
    be.revert_to_snapshot("v1", "s1")
    assert next(be.read_volume("v1"))[:5] == b"first" and "snapshot-s1" in runner.lvs
    assert not any(n.startswith(("tmp-", "old-")) for n in runner.lvs)
    be.extend_volume("v1", 3)
    assert runner.lvs["volume-v1"] == 3 * GiB
    assert be.initialize_connection("v1", {})["data"]["device_path"].endswith("volume-v1")
    for ident in ("v1", "v2", "v3"):
        be.delete_volume(ident)
    be.delete_snapshot("s1")
    be.delete_volume("gone")  # idempotent
    assert set(runner.lvs) == {"cinder-volumes-pool"}


def test_whole_volume_writes_replace_by_rename_and_manage(fake):
    runner, be = fake
    be.create_volume("v1", 1)
    with be.open_volume("v1") as fh:
        fh.write(b"old data")
    assert be.write_volume("v1", [b"new", bytes(1 << 20), b"tail"], 1) == 3 + (1 << 20) + 4
    data = next(be.read_volume("v1", chunk_size=2 << 20))
    assert data[:3] == b"new" and data[(1 << 20) + 3:(1 << 20) + 7] == b"tail"
    assert runner.file("volume-v1").stat().st_size == GiB
    with pytest.raises(BackendError):  # too big (zero chunks are skipped, not written): the volume is untouched
        be.write_volume("v1", [b"x"] + [bytes(1 << 20)] * 1024, 1)
    assert next(be.read_volume("v1"))[:3] == b"new"
    assert not any(n.startswith("tmp-") for n in runner.lvs)
    assert [x["name"] for x in be.list_manageable()] == ["volume-v1"]
    assert be.manage_existing("v9", "volume-v1") == 1 and "volume-v9" in runner.lvs
    with pytest.raises(BackendError):
        be.manage_existing("v10", "volume-none")
    caps = be.capabilities()
    assert caps["total_capacity_gb"] == 10.0 and caps["free_capacity_gb"] == 9.5
    assert caps["thin_provisioning_support"] is True and caps["provisioned_capacity_gb"] == 1.0
    with pytest.raises(BackendError):
        be.create_volume("../etc", 1)


# ---------------------------------------------------------------------------- real LVM
def _lvm_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root (losetup, pvcreate, vgcreate)"
    for tool in ("losetup", "pvcreate", "vgcreate", "lvcreate"):
        if not shutil.which(tool):
            return f"{tool} is not installed (tools/install-system-deps.sh installs lvm2)"
    if not Path("/dev/mapper/control").exists():
        return ("the kernel has no device-mapper here (no /dev/mapper/control, as in most containers): "
                "LVM cannot activate logical volumes")
    return None


@pytest.fixture(scope="module")
def lvm_vg(tmp_path_factory):
    reason = _lvm_unavailable()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("lvm")
    image = work / "pv.img"
    with open(image, "wb") as fh:
        fh.truncate(4 * GiB)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if loop.returncode != 0:
        pytest.skip(f"cannot attach a loop device: {loop.stderr.strip()}")
    dev = loop.stdout.strip()
    vg = "pocketstack-test-" + uuid.uuid4().hex[:6]
    env = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}
    try:
        for argv in (["pvcreate", "-y", dev], ["vgcreate", vg, dev], ["lvcreate", "--yes", "-T", "-L", "1g",
                                                                     f"{vg}/probe-pool"]):
            res = subprocess.run(argv, capture_output=True, text=True, env=env)
            if res.returncode != 0:
                lines = [x.strip() for x in res.stderr.splitlines() if x.strip()]
                why = next((x for x in lines if "not detected" in x or "device-mapper" in x), lines[-1:] or ["?"])
                pytest.skip(f"LVM cannot work here ({argv[0]} failed: {why}); the file-backed unit tests above "
                            "cover the backend's logic")
        subprocess.run(["lvremove", "-f", f"{vg}/probe-pool"], capture_output=True, env=env)
        yield vg
    finally:
        subprocess.run(["vgremove", "-f", vg], capture_output=True, env=env)
        subprocess.run(["pvremove", "-y", dev], capture_output=True, env=env)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_real_volume_group_on_a_loop_device(lvm_vg, tmp_path_factory):
    from tests.conftest import Cloud
    from tests.volume.test_volumes import Api

    cloud = Cloud(tmp_path_factory.mktemp("lvm-cloud"),
                  config={("pocketstack", "enabled_services"): "identity,image,volume",
                          ("volume", "backend"): "lvm", ("volume", "volume_group"): lvm_vg})
    cloud.start()
    try:
        api = Api(cloud)

        def wait(path, key, status="available"):
            end = time.monotonic() + 60
            while (body := api("GET", path).json()[key])["status"] != status:
                assert not body["status"].startswith("error") and time.monotonic() < end, body
                time.sleep(0.3)
            return body

        vol = cloud.os_json("volume", "create", "--size", "1", "lv1")
        shown = wait(f"/volumes/{vol['id']}", "volume")
        assert shown["os-vol-host-attr:host"].endswith("#lvm")
        dev = Path("/dev") / lvm_vg / f"volume-{vol['id']}"
        with open(dev, "r+b") as fh:
            fh.write(b"on a real thin LV")
        snap = cloud.os_json("volume", "snapshot", "create", "--volume", vol["id"], "lv-snap")
        wait(f"/snapshots/{snap['id']}", "snapshot")
        clone = cloud.os_json("volume", "create", "--snapshot", snap["id"], "--size", "2", "lv-clone")
        wait(f"/volumes/{clone['id']}", "volume")
        with open(Path("/dev") / lvm_vg / f"volume-{clone['id']}", "rb") as fh:
            assert fh.read(17) == b"on a real thin LV"
        backup = cloud.os_json("volume", "backup", "create", vol["id"])
        wait(f"/backups/{backup['id']}", "backup")
        out = cloud.os_json("volume", "backup", "restore", backup["id"], "lv-restored")
        wait(f"/volumes/{out['volume_id']}", "volume")
        with open(Path("/dev") / lvm_vg / f"volume-{out['volume_id']}", "rb") as fh:
            assert fh.read(17) == b"on a real thin LV"
        conn = api("POST", f"/volumes/{vol['id']}/action",
                   {"os-initialize_connection": {"connector": {"host": "here"}}}).json()["connection_info"]
        assert conn["data"]["device_path"] == str(dev)
        pools = api("GET", "/scheduler-stats/get_pools?detail=true").json()["pools"]
        assert pools[0]["capabilities"]["thin_provisioning_support"] is True
        cloud.openstack("volume", "backup", "delete", backup["id"])
        cloud.openstack("volume", "delete", "--purge", vol["id"], clone["id"], out["volume_id"])
    finally:
        cloud.stop()
