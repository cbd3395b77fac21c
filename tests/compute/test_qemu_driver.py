"""The QEMU virt driver against real QEMU guests booting the `pocketstack-tiny` image.

Driver level: no cloud, the image loader reads the built image from the cache. One guest
boots once for the module and goes through pause, reboots, power cycle, suspend, volume
hot-plug; a second boots from its snapshot. Every wait is bounded. Skipped with the
reason when QEMU or the image build tools are missing.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pocketstack.compute import tinyimage
from pocketstack.compute.virt import driver as d
from pocketstack.compute.virt import kvm
from pocketstack.compute.virt.qemu import QemuDriver

BOOT_TIMEOUT = 150  # seconds for the tiny image to print its banner (TCG on a busy 2-core machine)
READY = "=== " + tinyimage.BANNER
HAVE_QEMU = shutil.which("qemu-system-x86_64") is not None and shutil.which("qemu-img") is not None

needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="qemu-system-x86_64 / qemu-img not installed "
                                                      "(tools/install-system-deps.sh installs them)")


# ---------------------------------------------------------------------------- the KVM probe
def _fake_qemu(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_probe_payload_is_a_boot_sector():
    p = kvm.probe_payload()
    assert len(p) == 512 and p[-2:] == b"\x55\xaa"


def test_kvm_probe_falls_back_to_tcg_when_a_guest_hangs(tmp_path, monkeypatch):
    dev = tmp_path / "kvm"
    dev.write_bytes(b"")
    monkeypatch.setattr(kvm, "KVM_DEVICE", str(dev))
    monkeypatch.setattr(kvm, "QEMU", _fake_qemu(tmp_path, "exec sleep 30"))
    monkeypatch.setenv("POCKETSTACK_CACHE_DIR", str(tmp_path / "cache"))
    kvm.reset_memo()
    start = time.monotonic()
    acc = kvm.detect(use_cache=False, timeout=1.5)
    assert time.monotonic() - start < 10
    assert acc.name == "tcg" and "hangs" in acc.reason and not acc.is_kvm
    # the result is cached for this boot
    cached = json.loads((tmp_path / "cache" / "kvm-probe.json").read_text())
    assert cached["name"] == "tcg" and cached["boot_id"] == acc.boot_id
    kvm.reset_memo()
    monkeypatch.setattr(kvm, "QEMU", _fake_qemu(tmp_path, "exit 1"))  # would fail differently
    assert kvm.detect().reason == acc.reason  # read from the per-boot cache, no new probe
    kvm.reset_memo()


def test_kvm_probe_needs_the_marker_and_exit_code(tmp_path, monkeypatch):
    dev = tmp_path / "kvm"
    dev.write_bytes(b"")
    monkeypatch.setattr(kvm, "KVM_DEVICE", str(dev))
    monkeypatch.setattr(kvm, "QEMU", _fake_qemu(tmp_path, "echo KVMOK; exit 0"))  # wrong exit code
    ok, reason, _ = kvm.run_probe("kvm", timeout=5)
    assert not ok and "exit 0" in reason
    monkeypatch.setattr(kvm, "QEMU", _fake_qemu(tmp_path, f"echo KVMOK; exit {kvm.EXPECTED_EXIT}"))
    assert kvm.run_probe("kvm", timeout=5)[0]
    monkeypatch.setattr(kvm, "KVM_DEVICE", str(tmp_path / "absent"))
    ok, reason, _ = kvm.run_probe("kvm", timeout=5)
    assert not ok and "missing" in reason


def test_kvm_forced_by_configuration():
    assert kvm.detect("tcg").name == "tcg"
    assert kvm.detect("kvm").name == "kvm"


@needs_qemu
def test_probe_payload_runs_under_tcg():
    """The payload itself is sound: under TCG it prints the marker and exits as expected."""
    ok, reason, took = kvm.run_probe("tcg", timeout=20)
    assert ok, reason


# ---------------------------------------------------------------------------- real guests
@pytest.fixture(scope="module")
def tiny_image():
    if not HAVE_QEMU:
        pytest.skip("qemu-system-x86_64 / qemu-img not installed")
    missing = tinyimage.missing_tools()
    if missing:
        pytest.skip("cannot build pocketstack-tiny here, missing: " + ", ".join(missing))
    try:
        return tinyimage.build()
    except tinyimage.BuildError as exc:
        pytest.skip(f"cannot build pocketstack-tiny here: {exc}")


@pytest.fixture(scope="module")
def qdriver(tiny_image, tmp_path_factory):
    images: dict[str, tuple[dict, Path]] = {"tiny": ({"disk_format": "qcow2"}, tiny_image)}

    def loader(image_id):
        meta, path = images[image_id]
        return meta, iter([path.read_bytes()])

    drv = QemuDriver("qemu-test", instances_dir=tmp_path_factory.mktemp("instances"), image_loader=loader,
                     force_config_drive=True, user_network=True, shutdown_timeout=60)
    drv.test_images = images
    yield drv
    for uuid_ in list(drv.list_instances()):
        drv._kill(uuid_, graceful=False)


def _instance(name: str, image: str = "tiny", key: str | None = None) -> d.InstanceInfo:
    u = str(uuid.uuid4())
    return d.InstanceInfo(uuid=u, name=f"instance-{abs(hash(u)) % 0xffff:08x}", display_name=name,
                          flavor={"vcpus": 1, "memory_mb": 256, "root_gb": 1, "ephemeral_gb": 0, "swap": 0},
                          image_ref=image, key_data=key)


def _gone(pid: int) -> bool:
    """The process ended (a zombie waiting for init to reap it counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _log_size(drv: QemuDriver, inst: d.InstanceInfo) -> int:
    try:
        return (drv.dir / inst.uuid / "console.log").stat().st_size
    except OSError:
        return 0


def _wait_banner(drv: QemuDriver, inst: d.InstanceInfo, since: int = 0, timeout: float = BOOT_TIMEOUT) -> str:
    """Wait for a banner written after byte `since` of the console log (console output is
    only the last 100 KiB, so counting banners there stops working after a few boots)."""
    path = drv.dir / inst.uuid / "console.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                f.seek(since)
                out = f.read().decode("utf-8", errors="replace")
        except OSError:
            out = ""
        if READY in out:
            return out
        if drv.pid_of(inst.uuid) is None:
            break
        time.sleep(0.5)
    raise AssertionError(f"no banner after byte {since} within {timeout} s; console tail:\n"
                         f"{drv.get_console_output(inst)[-3000:]}")


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1vBq2xYnAqHn2pS5TkvfJ6bZJ7zF2cB6hQy6N1ePk0 test@pocketstack"


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory):
    if shutil.which("ssh-keygen") is None:
        return None, KEY
    path = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test@pocketstack", "-f", str(path)],
                   check=True)
    return path, path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def guest(qdriver, ssh_key):
    inst = _instance("Tiny One", key=ssh_key[1])
    start = time.monotonic()
    qdriver.spawn(inst)
    _wait_banner(qdriver, inst)
    inst.boot_seconds = time.monotonic() - start
    print(f"\npocketstack-tiny boot to banner: {inst.boot_seconds:.1f} s ({qdriver.accel.name})")
    yield inst
    qdriver.destroy(inst)


def test_boot_reads_the_config_drive_and_dhcp(qdriver, guest):
    out = qdriver.get_console_output(guest)
    line = next(line for line in out.splitlines() if READY in line)
    assert "hostname=tiny-one" in line
    assert "keys=1" in line and "metadata=config-drive" in line
    assert "ip=10.0.2.15" in line  # udhcpc got a lease (QEMU user network in this test)
    assert "ssh host key" in out  # dropbear is running
    assert qdriver.get_info(guest) == d.RUNNING
    assert guest.boot_seconds < BOOT_TIMEOUT


def test_ssh_with_the_key_and_no_password(qdriver, guest, ssh_key):
    if ssh_key[0] is None or shutil.which("ssh") is None:
        pytest.skip("no ssh / ssh-keygen client on this machine")
    port = json.loads((qdriver.dir / guest.uuid / "spec.json").read_text())["ssh_port"]
    base = ["ssh", "-p", str(port), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"]
    res = subprocess.run(base + ["-i", str(ssh_key[0]), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                                 "tiny@127.0.0.1", "hostname; id -u"],
                         capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["tiny-one", "1000"]
    # password login is off: without the key nothing gets in
    res = subprocess.run(base + ["-o", "BatchMode=yes", "-o", "PubkeyAuthentication=no",
                                 "-o", "PreferredAuthentications=password,keyboard-interactive",
                                 "tiny@127.0.0.1", "true"],
                         capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert res.returncode != 0 and "Permission denied" in res.stderr


def test_resources_and_usage(qdriver, guest):
    res = qdriver.get_available_resources()
    assert res.hypervisor_type in ("QEMU", "KVM") and res.vcpus >= 1 and res.memory_mb > 0 and res.local_gb > 0
    assert res.cpu_info["accel"] == qdriver.accel.name and res.hypervisor_version > 1000000
    usage = qdriver.get_instance_usage(guest)
    assert usage["cpu_time_ns"] > 0 and usage["memory_rss_mb"] > 0 and usage["memory_mb"] == 256
    assert any(v["read_bytes"] > 0 for v in usage["disks"].values())


def test_pause_unpause(qdriver, guest):
    qdriver.pause(guest)
    assert qdriver.get_info(guest) == d.PAUSED
    qdriver.unpause(guest)
    assert qdriver.get_info(guest) == d.RUNNING


def test_soft_and_hard_reboot(qdriver, guest):
    mark = _log_size(qdriver, guest)
    qdriver.reboot(guest, hard=False)
    out = _wait_banner(qdriver, guest, mark)
    assert "tiny-init: shutting down" in out  # the guest shut down cleanly on the ACPI button
    mark = _log_size(qdriver, guest)
    qdriver.reboot(guest, hard=True)
    out = _wait_banner(qdriver, guest, mark)
    assert "tiny-init: shutting down" not in out  # a reset, not a shutdown
    assert qdriver.get_info(guest) == d.RUNNING


def test_power_off_and_on(qdriver, guest):
    pid = qdriver.pid_of(guest.uuid)
    qdriver.power_off(guest)
    assert qdriver.get_info(guest) == d.SHUTDOWN
    assert qdriver.pid_of(guest.uuid) is None and _gone(pid)
    mark = _log_size(qdriver, guest)
    qdriver.power_on(guest)
    _wait_banner(qdriver, guest, mark)
    assert qdriver.get_info(guest) == d.RUNNING


def test_a_new_driver_reattaches_to_running_guests(qdriver, guest):
    again = QemuDriver("qemu-test", instances_dir=qdriver.dir, image_loader=qdriver.image_loader,
                       accel=qdriver.accel.name)
    assert again.list_instances()[guest.uuid] == d.RUNNING
    again.pause(guest)
    assert qdriver.get_info(guest) == d.PAUSED
    again.unpause(guest)


def test_suspend_and_resume(qdriver, guest):
    qdriver.suspend(guest)
    assert qdriver.get_info(guest) == d.SUSPENDED
    assert qdriver.pid_of(guest.uuid) is None
    assert (qdriver.dir / guest.uuid / "suspend.state").stat().st_size > 1 << 20
    mark = _log_size(qdriver, guest)
    qdriver.resume(guest)
    assert qdriver.get_info(guest) == d.RUNNING
    assert not (qdriver.dir / guest.uuid / "suspend.state").exists()
    time.sleep(1)
    with open(qdriver.dir / guest.uuid / "console.log", "rb") as f:
        f.seek(mark)
        assert b"SYSLINUX" not in f.read()  # resumed, not rebooted


def test_volume_hotplug(qdriver, guest, tmp_path):
    vol = tmp_path / "volume-1"
    with open(vol, "wb") as f:
        f.truncate(8 << 20)
    info = {"driver_volume_type": "file", "serial": "0b5e4a52-volume", "data": {"device_path": str(vol)}}
    before = qdriver.get_console_output(guest)
    qdriver.attach_volume(guest, info, "/dev/vdc")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = qdriver.get_console_output(guest)[len(before):]
        if "16384 512-byte logical blocks" in new:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the guest kernel never saw the hot-plugged disk:\n" + new[-2000:])
    assert "/dev/vdc" in json.loads((qdriver.dir / guest.uuid / "spec.json").read_text())["volumes"]
    qdriver.detach_volume(guest, info, "/dev/vdc")
    assert json.loads((qdriver.dir / guest.uuid / "spec.json").read_text())["volumes"] == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="tap interfaces need root")
def test_interface_hotplug(qdriver, guest):
    """A port's tap is opened (created) by QEMU on attach, counted in usage, gone on detach.
    The tap is plugged into nothing: no host interface, address or route is touched."""
    port = str(uuid.uuid4())
    vif = {"id": port, "address": "fa:16:3e:12:34:56", "devname": f"tap{port[:11]}", "network": {}}
    qdriver.attach_interface(guest, vif)
    try:
        assert Path(f"/sys/class/net/{vif['devname']}").exists()
        spec = json.loads((qdriver.dir / guest.uuid / "spec.json").read_text())
        assert [n["mac"] for n in spec["nics"]] == [vif["address"]]
        assert vif["devname"] in qdriver.get_instance_usage(guest)["nics"]
    finally:
        qdriver.detach_interface(guest, vif)
    assert json.loads((qdriver.dir / guest.uuid / "spec.json").read_text())["nics"] == []
    deadline = time.monotonic() + 10
    while Path(f"/sys/class/net/{vif['devname']}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/sys/class/net/{vif['devname']}").exists()


def test_dead_qemu_shows_shutoff_and_starts_again(qdriver, guest):
    pid = qdriver.pid_of(guest.uuid)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while qdriver.pid_of(guest.uuid) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert qdriver.get_info(guest) == d.SHUTDOWN
    assert qdriver.list_instances()[guest.uuid] == d.SHUTDOWN
    mark = _log_size(qdriver, guest)
    qdriver.power_on(guest)
    _wait_banner(qdriver, guest, mark)


def test_rescue_and_unrescue(qdriver, guest):
    mark = _log_size(qdriver, guest)
    qdriver.rescue(guest, "tiny")
    out = _wait_banner(qdriver, guest, mark)
    spec = json.loads((qdriver.dir / guest.uuid / "spec.json").read_text())
    assert [x["id"] for x in spec["rescue"]["disks"]][:2] == ["rescue", "root"]
    assert "[vdb]" in out  # the guest's own disk is the second one
    mark = _log_size(qdriver, guest)
    qdriver.unrescue(guest)
    _wait_banner(qdriver, guest, mark)
    assert not (qdriver.dir / guest.uuid / "disk.rescue").exists()
    assert "rescue" not in json.loads((qdriver.dir / guest.uuid / "spec.json").read_text())


def _qemu_memory_mb(drv: QemuDriver, inst: d.InstanceInfo) -> int:
    with drv._qmp(inst.uuid) as q:
        return q.execute("query-memory-size-summary")["base-memory"] // (1 << 20)


def test_resize_to_another_host_and_revert(qdriver, guest, tmp_path):
    other = QemuDriver("qemu-test-2", instances_dir=tmp_path / "host2", image_loader=qdriver.image_loader,
                       accel=qdriver.accel.name, user_network=True)
    old_flavor = dict(guest.flavor)
    try:
        qdriver.migrate_disk_and_power_off(guest, "qemu-test-2")
        assert qdriver.pid_of(guest.uuid) is None and not (qdriver.dir / guest.uuid).exists()
        guest.flavor = {**old_flavor, "memory_mb": 320, "root_gb": 2}
        mark = _log_size(other, guest)  # the console log was copied to the destination
        assert mark > 0
        other.finish_migration(guest)
        out = _wait_banner(other, guest, mark)
        assert "hostname=tiny-one" in out  # the config drive came along (rebuilt)
        assert _qemu_memory_mb(other, guest) == 320
        root = other.dir / guest.uuid / "disk.qcow2"
        assert json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(root)], check=True,
                                         capture_output=True, text=True).stdout)["virtual-size"] == 2 << 30
        # revert: the destination's copy goes, the source's comes back with the old flavor
        other.destroy(guest)
        guest.flavor = old_flavor
        mark = (qdriver.dir / f"{guest.uuid}_resize" / "console.log").stat().st_size  # the log coming back
        qdriver.finish_revert_migration(guest)
        assert qdriver.get_info(guest) == d.RUNNING and _qemu_memory_mb(qdriver, guest) == 256
        assert not (qdriver.dir / f"{guest.uuid}_resize").exists()
        _wait_banner(qdriver, guest, mark)
    finally:
        guest.flavor = old_flavor
        other.destroy(guest)  # whatever happened, no QEMU is left on the second host


def test_resize_on_the_same_host_and_confirm(qdriver, guest):
    qdriver.migrate_disk_and_power_off(guest, "qemu-test")
    assert (qdriver.dir / f"{guest.uuid}_resize").exists()
    assert guest.uuid not in qdriver.list_instances() or qdriver.get_info(guest) == d.SHUTDOWN
    mark = (qdriver.dir / f"{guest.uuid}_resize" / "console.log").stat().st_size  # copied along
    guest.flavor = {**guest.flavor, "vcpus": 2}
    qdriver.finish_migration(guest)
    _wait_banner(qdriver, guest, mark)
    with qdriver._qmp(guest.uuid) as q:
        assert len(q.execute("query-cpus-fast")) == 2
    qdriver.confirm_migration(guest)
    assert not (qdriver.dir / f"{guest.uuid}_resize").exists()
    assert qdriver.get_info(guest) == d.RUNNING


def test_snapshot_boots(qdriver, guest, tmp_path):
    data = qdriver.snapshot(guest)
    assert qdriver.get_info(guest) == d.RUNNING  # paused only while copying
    snap = tmp_path / "snap.qcow2"
    snap.write_bytes(data)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(snap)], check=True,
                                     capture_output=True, text=True).stdout)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    qdriver.test_images["snap"] = ({"disk_format": "qcow2"}, snap)
    child = _instance("From Snapshot", image="snap")
    qdriver.spawn(child)
    try:
        out = _wait_banner(qdriver, child)
        assert "hostname=from-snapshot" in out
    finally:
        qdriver.destroy(child)
    assert qdriver.pid_of(child.uuid) is None


def test_destroy_leaves_nothing(qdriver):
    inst = _instance("short-lived")
    qdriver.spawn(inst)
    pid = qdriver.pid_of(inst.uuid)
    assert pid and qdriver.get_info(inst) in (d.RUNNING, d.PAUSED)
    qdriver.destroy(inst)
    assert _gone(pid)
    assert not (qdriver.dir / inst.uuid).exists()
    assert qdriver.get_info(inst) == d.NOSTATE
    qdriver.destroy(inst)  # already gone: fine


def test_bad_image_fails_cleanly(qdriver, tmp_path):
    bad = tmp_path / "evil.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", str(bad)],
                   check=True)
    qdriver.test_images["evil"] = ({"disk_format": "qcow2"}, bad)
    inst = _instance("evil", image="evil")
    with pytest.raises(d.DriverError, match="refers to other files"):
        qdriver.spawn(inst)
    assert not (qdriver.dir / inst.uuid).exists()


def test_registered_image_feeds_the_driver_cache(tiny_image, tmp_path):
    """`pocketstack image build-tiny`'s registration, then the driver's default loader
    (the image service in-process) fills the host's base-image cache from it."""
    from pocketstack import server
    from pocketstack.common.config import Config
    from pocketstack.common.runtime import set_current

    cfg = Config.load(tmp_path / "state")
    cfg.override("pocketstack", "enabled_services", "identity,image")
    rt = server.build_runtime(cfg)
    try:
        server.initialise(rt, "secret-pw")
        image = tinyimage.register(tiny_image)
        assert (image["name"], image["visibility"], image["status"]) == ("pocketstack-tiny", "public", "active")
        assert tinyimage.register(tiny_image)["id"] == image["id"]  # registered once
        drv = QemuDriver("qemu-test", instances_dir=tmp_path / "instances", accel="tcg")
        path, fmt = drv._base_image(image["id"])
        assert fmt == "qcow2" and path.read_bytes() == tiny_image.read_bytes()
        assert drv._base_image(image["id"]) == (path, fmt)  # cached
    finally:
        rt.db.dispose()
        set_current(None)


def test_cli_build_tiny_no_register(tiny_image):
    import sys

    cli = Path(sys.executable).parent / "pocketstack"
    res = subprocess.run([str(cli), "image", "build-tiny", "--no-register"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"image file: {tiny_image}"
