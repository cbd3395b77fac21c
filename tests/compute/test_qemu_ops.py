"""QEMU driver operations on real `pocketstack-tiny` guests: live migration between two
hosts of this machine, boot from volume, the VNC server behind `get_console`.

Driver level, like test_qemu_driver.py's resize test (two QemuDriver hosts in one
process, QEMU's user network so no root is needed). Skipped with the reason when QEMU or
the image build tools are missing.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pocketstack.compute.virt import driver as d
from pocketstack.compute.virt.qemu import QemuDriver
from test_qemu_driver import _gone, _instance, _log_size, _wait_banner, ssh_key, tiny_image  # noqa: F401


@pytest.fixture(scope="module")
def hosts(tiny_image, tmp_path_factory):  # noqa: F811
    def loader(image_id):
        return {"disk_format": "qcow2"}, iter([tiny_image.read_bytes()])

    made = [QemuDriver(f"qemu-ops-{n}", instances_dir=tmp_path_factory.mktemp(f"ops{n}"), image_loader=loader,
                       force_config_drive=True, user_network=True, shutdown_timeout=30) for n in (1, 2)]
    yield made
    for drv in made:
        for uuid_ in list(drv.list_instances()):
            drv._kill(uuid_, graceful=False)


def _ssh(drv: QemuDriver, inst: d.InstanceInfo, key: Path, command: str) -> str:
    port = json.loads((drv.dir / inst.uuid / "spec.json").read_text())["ssh_port"]
    res = subprocess.run(["ssh", "-p", str(port), "-i", str(key), "-o", "StrictHostKeyChecking=no",
                          "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
                          "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "tiny@127.0.0.1", command],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_vnc_server_behind_get_console(hosts):
    drv = hosts[0]
    inst = _instance("vnc")
    drv.spawn(inst)
    try:
        info = drv.get_console(inst, "novnc")
        assert info["port"] is None and info["internal_access_path"] == str(drv.dir / inst.uuid / "vnc.sock")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(info["internal_access_path"])
            assert s.recv(12) == b"RFB 003.008\n"
        with pytest.raises(d.DriverError, match="not supported"):
            drv.get_console(inst, "spice-html5")
        drv.power_off(inst, timeout=0)
        with pytest.raises(d.DriverError, match="not running"):
            drv.get_console(inst, "novnc")
    finally:
        drv.destroy(inst)


def _raw_head(image: Path, tmp: Path) -> bytes:
    out = tmp / "head.raw"
    subprocess.run(["qemu-img", "dd", "-f", "qcow2", "-O", "raw", f"if={image}", f"of={out}", "bs=512", "count=1"],
                   capture_output=True, check=True)
    return out.read_bytes()[:512]


def test_live_migration_keeps_the_guest_running(hosts, ssh_key, tiny_image, tmp_path):  # noqa: F811
    src, dst = hosts
    inst = _instance("Live One", key=ssh_key[1])
    src.spawn(inst)
    try:
        # data on the disk far past the image, written while the guest is off: only the
        # source's overlay has it (the guest's own user cannot write its disk)
        src.power_off(inst, timeout=0)
        overlay = src.dir / inst.uuid / "disk.qcow2"
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 600M 4M", str(overlay)], check=True,
                       capture_output=True)
        src.power_on(inst)
        _wait_banner(src, inst)
        can_ssh = ssh_key[0] is not None and shutil.which("ssh") is not None
        if can_ssh:
            up_before = float(_ssh(src, inst, ssh_key[0], "cut -d' ' -f1 /proc/uptime"))
        mark = _log_size(src, inst)
        src_pid = src.pid_of(inst.uuid)
        started = time.monotonic()
        src.live_migrate(inst, dst.host)
        took = time.monotonic() - started
        print(f"\nlive migration: {took:.1f} s")
        assert _gone(src_pid) and not (src.dir / inst.uuid).exists()
        assert dst.get_info(inst) == d.RUNNING and src.get_info(inst) == d.NOSTATE
        time.sleep(2)
        with open(dst.dir / inst.uuid / "console.log", "rb") as f:  # the log came along, no reboot since
            f.seek(mark)
            after = f.read()
        assert b"SYSLINUX" not in after and b"pocketstack-tiny ready" not in after
        if can_ssh:  # the same guest answers on the destination, its uptime went on
            assert float(_ssh(dst, inst, ssh_key[0], "cut -d' ' -f1 /proc/uptime")) >= up_before + took * 0.5
        # the destination's own disk holds the data (the mirror was drained into it)
        spec = json.loads((dst.dir / inst.uuid / "spec.json").read_text())
        root = next(x for x in spec["disks"] if x["id"] == "root")["path"]
        assert root.startswith(str(dst.dir))
        raw = tmp_path / "root.raw"
        subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", root, str(raw)], check=True)
        with open(raw, "rb") as f:
            f.seek(600 << 20)
            assert f.read(4 << 20) == b"\xab" * (4 << 20)
            f.seek(0)
            assert f.read(512) == _raw_head(tiny_image, tmp_path)  # the rest reads through to the base image
        # and it still reboots there
        mark = _log_size(dst, inst)
        dst.reboot(inst, hard=True)
        _wait_banner(dst, inst, mark)
        with pytest.raises(d.DriverError, match="already on host"):
            dst.live_migrate(inst, dst.host)
        with pytest.raises(d.DriverError, match="not a QEMU host"):
            dst.live_migrate(inst, "elsewhere")
    finally:
        src.destroy(inst)
        dst.destroy(inst)


def test_boot_from_volume(hosts, tiny_image, tmp_path):  # noqa: F811
    drv = hosts[0]
    boot = tmp_path / "volume-boot"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(tiny_image), str(boot)], check=True)
    data = tmp_path / "volume-data"
    with open(data, "wb") as f:
        f.truncate(8 << 20)
    inst = _instance("From Volume", image="")
    inst.block_devices = [
        {"boot_index": 0, "device_name": "/dev/vda", "volume_id": "0b1d-boot", "delete_on_termination": True,
         "connection_info": {"driver_volume_type": "file", "data": {"device_path": str(boot)}}},
        {"boot_index": None, "device_name": "/dev/vdb", "volume_id": "0b1d-data", "delete_on_termination": False,
         "connection_info": {"driver_volume_type": "file", "data": {"device_path": str(data)}}}]
    drv.spawn(inst)
    try:
        out = _wait_banner(drv, inst)
        assert "hostname=from-volume" in out
        assert "16384 512-byte logical blocks" in drv.get_console_output(inst)  # the data volume is there
        spec = json.loads((drv.dir / inst.uuid / "spec.json").read_text())
        assert spec["disks"][0] == {**spec["disks"][0], "id": "root", "path": str(boot), "format": "raw",
                                    "volume": True}
        assert list(spec["volumes"]) == ["/dev/vdb"]
        assert not (drv.dir / inst.uuid / "disk.qcow2").exists()  # no overlay, no base image
        # a snapshot of a volume-backed guest is its volume's content
        snap = drv.snapshot(inst)
        assert snap[:4] == b"QFI\xfb"
    finally:
        drv.destroy(inst)
    # the driver never deletes volumes, whatever delete_on_termination says (the volume service does)
    assert boot.exists() and data.exists() and not (drv.dir / inst.uuid).exists()


def test_boot_from_a_missing_volume_fails_cleanly(hosts, tmp_path):
    drv = hosts[0]
    inst = _instance("no-volume", image="")
    inst.block_devices = [{"boot_index": "0", "device_name": "/dev/vda", "volume_id": "gone",
                           "connection_info": {"driver_volume_type": "file",
                                               "data": {"device_path": str(tmp_path / "absent")}}}]
    with pytest.raises(d.DriverError, match="does not exist"):
        drv.spawn(inst)
    assert not (drv.dir / inst.uuid).exists()
    inst.block_devices = []
    with pytest.raises(d.DriverError, match="neither an image nor a boot volume"):
        drv.spawn(inst)


@pytest.mark.skipif(os.geteuid() != 0, reason="tap interfaces need root")
def test_live_migration_hands_the_tap_over(hosts):
    """A tap takes one owner: the destination QEMU gets a duplicate of the source's tap
    descriptor, and the tap (plugged into nothing here) outlives the source QEMU."""
    src, dst = hosts
    inst = _instance("tap-mover")
    port = str(uuid.uuid4())
    inst.network_info = [{"id": port, "address": "fa:16:3e:00:00:42", "devname": f"tap{port[:11]}", "network": {}}]
    tap = inst.network_info[0]["devname"]
    src.spawn(inst)
    try:
        _wait_banner(src, inst)  # udhcpc gives up without a DHCP server; the guest still boots
        mark = _log_size(src, inst)
        src.live_migrate(inst, dst.host)
        pid = dst.pid_of(inst.uuid)
        held = [p.read_text() for p in Path(f"/proc/{pid}/fdinfo").iterdir()]
        assert any(f"iff:\t{tap}" in text for text in held)
        assert Path(f"/sys/class/net/{tap}").exists() and dst.get_info(inst) == d.RUNNING
        assert json.loads((dst.dir / inst.uuid / "spec.json").read_text())["nics"][0]["devname"] == tap
        with open(dst.dir / inst.uuid / "console.log", "rb") as f:
            f.seek(mark)
            assert b"SYSLINUX" not in f.read()
        # a power cycle on the destination opens the tap by name again
        dst.power_off(inst, timeout=0)
        mark = _log_size(dst, inst)
        dst.power_on(inst)
        _wait_banner(dst, inst, mark)
    finally:
        src.destroy(inst)
        dst.destroy(inst)
