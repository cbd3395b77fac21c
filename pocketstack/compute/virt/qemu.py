"""The QEMU virt driver: each instance is a daemonised `qemu-system-x86_64`, driven over QMP.

No libvirt (docs/compute-qemu.md says why): the driver builds QEMU's command line from
the instance, starts it with `-daemonize`, and talks to it through the QMP socket in the
instance's directory. Everything about an instance lives in
`<instances_dir>/<uuid>/`:

    spec.json     what to launch (vCPUs, RAM, disks, NICs, attached volumes); rewritten on
                  every device change, so power-on and resume relaunch the same machine
    disk.qcow2    the root disk: a qcow2 overlay on the host's cached base image
    disk.eph0 / disk.swap   the flavor's ephemeral and swap disks (unformatted qcow2)
    config.iso    the config drive (ISO 9660, label config-2) when asked for
    console.log   the serial console (append mode: survives power cycles)
    qemu.pid, qmp.sock    the running QEMU
    vnc.sock      QEMU's VNC server (the graphical console; compute/console.py relays it)
    suspend.state the saved RAM and device state of a suspended guest

Base images are downloaded once per host into `<instances_dir>/_base/<image_id>` and
checked with `qemu-img info` (raw or qcow2 only, no backing or external data file, so
an image can never make QEMU read a host file).

Instances outlive pocketstack: QEMU runs detached, and a new driver finds the live
ones by their pidfile (the pid's command line must carry the instance's uuid) and QMP
socket; an instance whose QEMU is gone reports SHUTDOWN (`list_instances()`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from hashlib import sha1
from pathlib import Path
from typing import Callable, Iterable

from pocketstack.compute.virt import driver as d
from pocketstack.compute.virt import kvm
from pocketstack.compute.virt.qmp import QMPClient, QMPError

log = logging.getLogger("pocketstack.compute.qemu")

GiB = 1 << 30
MAX_CONSOLE_BYTES = 100 * 1024  # what Nova's libvirt driver returns at most
QEMU_IMG = "qemu-img"

# QMP run states -> Nova power states
_POWER = {"running": d.RUNNING, "paused": d.PAUSED, "suspended": d.PAUSED, "prelaunch": d.PAUSED,
          "inmigrate": d.PAUSED, "postmigrate": d.PAUSED, "finish-migrate": d.PAUSED,
          "save-vm": d.PAUSED, "restore-vm": d.PAUSED, "debug": d.PAUSED, "io-error": d.PAUSED,
          "watchdog": d.PAUSED, "colo": d.PAUSED, "shutdown": d.SHUTDOWN,
          "guest-panicked": d.CRASHED, "internal-error": d.CRASHED}

_DRIVERS: dict[str, "QemuDriver"] = {}

ImageLoader = Callable[[str], "tuple[dict, Iterable[bytes]]"]


def _default_image_loader(image_id: str):
    from pocketstack.image import core as image_core

    return image_core.open_image_data(image_id)


def _sanitize_hostname(name: str) -> str:
    host = re.sub(r"[ _]", "-", (name or "").lower())
    host = re.sub(r"[^a-z0-9.-]", "", host).strip(".-")[:63].strip(".-")
    return host or "server"


def _run(cmd: list[str], timeout: float = 120) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise d.DriverError(f"{cmd[0]} is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise d.DriverError(f"{cmd[0]} did not finish within {timeout:.0f} s") from None
    if res.returncode != 0:
        raise d.DriverError(f"{os.path.basename(cmd[0])} failed: {(res.stderr or res.stdout).strip()[-300:]}")
    return res.stdout


def _opt(value) -> str:
    """A value inside QEMU's comma-separated option syntax (a comma is written twice)."""
    return str(value).replace(",", ",,")


def _split_block_devices(bdms) -> tuple[dict | None, list[dict]]:
    """(the boot volume: boot_index 0 with a connection, or None; the other volumes)."""
    boot, others = None, []
    for bdm in bdms or []:
        if not (bdm or {}).get("connection_info"):
            continue  # an image or blank local disk: not a volume
        if str(bdm.get("boot_index")) == "0" and boot is None:
            boot = bdm
        else:
            others.append(bdm)
    return boot, others


def _volume_entry(connection_info: dict, mountpoint: str | None, host: str, volume_id: str | None = None) -> dict:
    """How spec.json keeps one volume: its host path (a file or a block device), a QEMU
    node name derived from its device name, and the serial the guest sees (the volume id)."""
    data = (connection_info or {}).get("data") or {}
    path = data.get("device_path") or data.get("path")
    if not path or not os.path.exists(path):
        raise d.DriverError(f"Volume path {path!r} does not exist on host {host}")
    serial = str(connection_info.get("serial") or data.get("volume_id") or volume_id
                 or sha1(path.encode()).hexdigest())
    key = mountpoint or serial
    return {"node": "vol" + sha1(key.encode()).hexdigest()[:12], "path": path,
            "block": Path(path).is_block_device(), "serial": re.sub(r"[^A-Za-z0-9-]", "", serial)[:20],
            "mountpoint": mountpoint}


def _tap_fds(pid: int | None, devnames: list[str]) -> dict[str, int]:
    """Duplicates, in this process, of QEMU `pid`'s descriptors of the taps `devnames`
    (found by the `iff:` line of /proc/<pid>/fdinfo; pidfd_getfd needs root or ptrace rights)."""
    import ctypes

    if pid is None:
        raise d.DriverError("the source QEMU is not running")
    targets: dict[str, int] = {}
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            m = re.search(r"^iff:\s*(\S+)", info.read_text(), re.M)
        except OSError:
            continue
        if m and m.group(1) in devnames:
            targets.setdefault(m.group(1), int(info.name))
    missing = set(devnames) - set(targets)
    if missing:
        raise d.DriverError(f"the source QEMU holds no tap named {', '.join(sorted(missing))}")
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    out: dict[str, int] = {}
    try:
        for name, target in targets.items():
            fd = libc.syscall(438, pidfd, target, 0)  # pidfd_getfd(2), Linux >= 5.6
            if fd < 0:
                raise d.DriverError(f"cannot share tap {name} with the destination: "
                                    f"{os.strerror(ctypes.get_errno())}")
            out[name] = fd
    except d.DriverError:
        for fd in out.values():
            os.close(fd)
        raise
    finally:
        os.close(pidfd)
    return out


def _vnet_hdr_size(fd: int, size: int | None = None) -> int:
    """A tap's virtio-net header size (TUNGETVNETHDRSZ), set first when `size` is given
    (TUNSETVNETHDRSZ). It belongs to the tap, not to a descriptor: the destination QEMU of a
    live migration sets its default when it starts, under the running source's feet."""
    import fcntl
    import struct

    if size is not None:
        fcntl.ioctl(fd, 0x400454D8, struct.pack("i", size))
    return struct.unpack("i", fcntl.ioctl(fd, 0x800454D7, b"\0" * 4))[0]


def _image_info(path: Path, fmt: str | None = None, shared: bool = False) -> dict:
    cmd = [QEMU_IMG, "info", "--output=json"] + (["-U"] if shared else [])
    if fmt:
        cmd += ["-f", fmt]
    return json.loads(_run(cmd + [str(path)]))


def from_config(host: str, config, state_dir: str | Path | None = None) -> "QemuDriver":
    """The driver as `[compute]` configures it (the host agent's one-line wiring):

    instances_path (default <state_dir>/instances/<host>), qemu_accel (auto|kvm|tcg),
    force_config_drive (false), qemu_user_network (false: no vifs means no NIC),
    shutdown_timeout (60 s, clean shutdown before a hard power-off), qemu_binary."""
    def get(key: str, default: str) -> str:
        return (config.get("compute", key, default) or default).strip()

    def flag(key: str) -> bool:
        return get(key, "false").lower() in ("1", "true", "yes", "on")

    base = Path(state_dir) if state_dir else Path(getattr(config, "state_dir", "."))
    return QemuDriver(host, instances_dir=get("instances_path", str(base / "instances" / host)),
                      accel=get("qemu_accel", "auto"), qemu=get("qemu_binary", kvm.QEMU),
                      force_config_drive=flag("force_config_drive"), user_network=flag("qemu_user_network"),
                      shutdown_timeout=float(get("shutdown_timeout", "60")))


class QemuDriver(d.VirtDriver):
    console_types = ("novnc",)  # QEMU's VNC server on vnc.sock, relayed by compute/console.py
    snapshot_format = "qcow2"

    def __init__(self, host: str, *, instances_dir: str | Path, accel: str | None = None,
                 qemu: str = kvm.QEMU, image_loader: ImageLoader | None = None,
                 force_config_drive: bool = False, user_network: bool = False,
                 shutdown_timeout: float = 60.0, boot_timeout: float = 30.0):
        super().__init__(host)
        self.dir = Path(instances_dir)
        self.base_dir = self.dir / "_base"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.qemu = qemu
        self._accel_choice = accel
        self._accel: kvm.Accel | None = None
        self.image_loader = image_loader or _default_image_loader
        self.force_config_drive = force_config_drive
        self.user_network = user_network  # no vifs: QEMU user-mode NIC (DHCP 10.0.2.x), for dev/tests
        self.shutdown_timeout = shutdown_timeout
        self.boot_timeout = boot_timeout
        self._locks: dict[str, threading.RLock] = {}
        self._locks_lock = threading.Lock()
        self._base_lock = threading.Lock()
        _DRIVERS[host] = self  # the QEMU hosts of this machine, for resize/migration

    # ------------------------------------------------------------------ helpers
    @property
    def accel(self) -> kvm.Accel:
        if self._accel is None:
            self._accel = kvm.detect(self._accel_choice)
        return self._accel

    def _lock(self, uuid: str) -> threading.RLock:
        with self._locks_lock:
            return self._locks.setdefault(uuid, threading.RLock())

    def _idir(self, uuid: str) -> Path:
        if not re.fullmatch(r"[0-9a-fA-F-]{1,64}", uuid or ""):
            raise d.DriverError(f"bad instance uuid {uuid!r}")
        return self.dir / uuid

    def _spec(self, uuid: str) -> dict:
        try:
            return json.loads((self._idir(uuid) / "spec.json").read_text())
        except (OSError, ValueError):
            raise d.DriverError(f"Instance {uuid} has no disks on host {self.host}") from None

    def _save_spec(self, uuid: str, spec: dict) -> None:
        path = self._idir(uuid) / "spec.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec, indent=1))
        os.replace(tmp, path)

    def pid_of(self, uuid: str) -> int | None:
        """The live QEMU of `uuid`, or None (a stale pidfile or a reused pid does not count)."""
        try:
            pid = int((self._idir(uuid) / "qemu.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        if uuid.encode() not in cmdline:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except (OSError, IndexError):
            return None
        return pid

    def _qmp(self, uuid: str, timeout: float = 10.0) -> QMPClient:
        sock = self._idir(uuid) / "qmp.sock"
        if len(str(sock)) < 100:
            return QMPClient(str(sock), timeout).connect()
        # a unix socket path must be < 108 bytes: reach a deep one through a directory fd
        fd = os.open(sock.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return QMPClient(f"/proc/self/fd/{fd}/qmp.sock", timeout).connect()
        finally:
            os.close(fd)

    def _status(self, uuid: str) -> str | None:
        if self.pid_of(uuid) is None:
            return None
        try:
            with self._qmp(uuid) as q:
                return q.execute("query-status")["status"]
        except QMPError:
            return None

    def _wait_status(self, uuid: str, wanted: set[str], timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            st = self._status(uuid)
            if st in wanted or st is None or time.monotonic() >= deadline:
                return st
            time.sleep(0.2)

    def _kill(self, uuid: str, graceful: bool = True) -> None:
        """Make the QEMU of `uuid` go away (QMP quit, then SIGTERM, then SIGKILL)."""
        pid = self.pid_of(uuid)
        if pid is None:
            return
        if graceful:
            try:
                with self._qmp(uuid, 5) as q:
                    q.execute("quit", allow_close=True)
            except QMPError:
                pass
        for sig, wait in ((None, 5.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if sig is not None:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.pid_of(uuid) is not None:
                time.sleep(0.05)
            if self.pid_of(uuid) is None:
                break
        for name in ("qemu.pid", "qmp.sock"):
            try:
                (self._idir(uuid) / name).unlink()
            except OSError:
                pass

    # ------------------------------------------------------------------ the host
    def qemu_version(self) -> int:
        try:
            out = _run([self.qemu, "--version"], timeout=10)
        except d.DriverError:
            return 0
        m = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
        return int(m.group(1)) * 1000000 + int(m.group(2)) * 1000 + int(m.group(3)) if m else 0

    def get_available_resources(self) -> d.HostResources:
        mem_kb = 0
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    mem_kb = int(line.split()[1])
        except OSError:
            pass
        cpus = os.cpu_count() or 1
        model, vendor, flags = "", "", []
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = val.strip()
                elif key == "vendor_id" and not vendor:
                    vendor = val.strip()
                elif key == "flags" and not flags:
                    flags = val.split()
        except OSError:
            pass
        acc = self.accel
        return d.HostResources(
            hypervisor_type="KVM" if acc.is_kvm else "QEMU", hypervisor_hostname=self.host,
            vcpus=cpus, memory_mb=mem_kb // 1024, local_gb=shutil.disk_usage(self.dir).total // GiB,
            hypervisor_version=self.qemu_version(),
            cpu_info={"arch": os.uname().machine, "model": model, "vendor": vendor,
                      "topology": {"sockets": 1, "cores": cpus, "threads": 1}, "features": flags,
                      "accel": acc.name, "accel_reason": acc.reason})

    def uptime(self) -> str:
        try:
            up = int(float(Path("/proc/uptime").read_text().split()[0]))
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        except OSError:
            up, load = 0, "0.00, 0.00, 0.00"
        return (f" {time.strftime('%H:%M:%S', time.gmtime())} up {up // 86400} days, "
                f"{(up % 86400) // 3600}:{(up % 3600) // 60:02d},  0 users,  load average: {load}")

    def list_instances(self) -> dict[str, int]:
        """Every instance with a directory here and its power state (for reconciling on start)."""
        out = {}
        for p in sorted(self.dir.iterdir()):
            if p.is_dir() and not p.name.endswith("_resize") and (p / "spec.json").exists():
                out[p.name] = self._power_state(p.name)
        return out

    # ------------------------------------------------------------------ images and disks
    def _base_image(self, image_id: str) -> tuple[Path, str]:
        """The host's cached copy of `image_id` (downloaded once) and its format."""
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", image_id or ""):
            raise d.DriverError(f"bad image id {image_id!r}")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        path = self.base_dir / image_id
        meta_path = self.base_dir / f"{image_id}.json"
        with self._base_lock:
            if path.exists() and meta_path.exists():
                return path, json.loads(meta_path.read_text())["format"]
            try:
                meta, chunks = self.image_loader(image_id)
            except Exception as exc:  # noqa: BLE001 - the image service's error becomes the fault
                raise d.DriverError(f"Image {image_id} could not be downloaded: {exc}") from None
            tmp = self.base_dir / f".{image_id}.part"
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
            declared = (meta or {}).get("disk_format") or "raw"
            fmt = declared if declared in ("raw", "qcow2") else None
            try:
                info = _image_info(tmp, fmt or declared)
            except d.DriverError as exc:
                tmp.unlink(missing_ok=True)
                raise d.DriverError(f"Image {image_id} is not a valid {declared} image: {exc}") from None
            if info.get("backing-filename") or (info.get("format-specific", {}).get("data", {}) or {}).get("data-file"):
                tmp.unlink(missing_ok=True)
                raise d.DriverError(f"Image {image_id} refers to other files (backing or data file); refused")
            if fmt is None:  # vmdk, vdi, vhd...: converted once to qcow2
                conv = tmp.with_suffix(".qcow2")
                _run([QEMU_IMG, "convert", "-f", declared, "-O", "qcow2", str(tmp), str(conv)], timeout=600)
                tmp.unlink()
                conv.rename(tmp)
                fmt = "qcow2"
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
            meta_path.write_text(json.dumps({"format": fmt, "virtual_size": info.get("virtual-size", 0)}))
            return path, fmt

    def _virtual_size(self, path: Path, fmt: str, shared: bool = False) -> int:
        return int(_image_info(path, fmt, shared).get("virtual-size", 0))

    # ------------------------------------------------------------------ the command line
    def _command(self, uuid: str, spec: dict, incoming: str | None = None, paused: bool = False) -> list[str]:
        idir = self._idir(uuid)
        acc = self.accel
        cmd = [self.qemu, "-name", f"guest={_opt(spec['name'])},debug-threads=on", "-uuid", uuid,
               "-machine", f"pc,accel={acc.name}", "-m", str(spec["memory_mb"]),
               "-smp", str(spec["vcpus"]), "-nodefaults", "-no-user-config", "-display", "none",
               "-no-shutdown", "-daemonize", "-pidfile", str(idir / "qemu.pid"),
               "-qmp", "unix:qmp.sock,server=on,wait=off",  # relative to the instance dir (cwd)
               "-chardev", f"file,id=serial0,path={_opt(idir / 'console.log')},append=on",
               "-serial", "chardev:serial0", "-D", str(idir / "qemu.log"),
               "-device", "virtio-rng-pci,id=rng0",
               # the graphical console: a VGA card and QEMU's VNC server on a unix socket in
               # the instance directory (no TCP port; the console proxy relays it)
               "-device", "VGA,id=video0", "-vnc", "unix:vnc.sock"]
        if acc.is_kvm and acc.cpu:
            cmd += ["-cpu", acc.cpu]  # what the KVM probe ran with (`host` unless it failed)
        for i, disk in enumerate(spec["disks"]):
            ro = bool(disk.get("readonly"))
            proto = "host_device" if disk.get("block") else "file"
            cmd += ["-blockdev", json.dumps({"driver": disk["format"], "node-name": disk["id"], "read-only": ro,
                                             "file": {"driver": proto, "filename": disk["path"], "read-only": ro}}),
                    "-device", f"virtio-blk-pci,drive={disk['id']},id={disk['id']}-dev"
                               + (",bootindex=0" if i == 0 else "")
                               + (f",serial={disk['serial']}" if disk.get("serial") else "")]
        for vol in spec.get("volumes", {}).values():
            cmd += ["-blockdev", self._volume_blockdev_arg(vol),
                    "-device", f"virtio-blk-pci,drive={vol['node']},id={vol['node']}-dev,serial={vol['serial']}"]
        for nic in spec.get("nics", []):
            # a live migration's destination shares the source's tap through a descriptor
            tap = f"fd={nic['fd']}" if nic.get("fd") is not None else f"ifname={nic['devname']},script=no,downscript=no"
            cmd += ["-netdev", f"tap,id={nic['id']},{tap}",
                    "-device", f"virtio-net-pci,netdev={nic['id']},id={nic['id']}-dev,mac={nic['mac']}"]
        if not spec.get("nics") and spec.get("user_network"):
            fwd = f",hostfwd=tcp:127.0.0.1:{spec['ssh_port']}-:22" if spec.get("ssh_port") else ""
            cmd += ["-netdev", f"user,id=usernet0{fwd}", "-device", "virtio-net-pci,netdev=usernet0,id=usernet0-dev"]
        if incoming:
            cmd += ["-incoming", incoming]
        if paused:
            cmd.append("-S")
        return cmd

    @staticmethod
    def _volume_blockdev_arg(vol: dict) -> str:
        return json.dumps(QemuDriver._volume_blockdev(vol))

    @staticmethod
    def _volume_blockdev(vol: dict) -> dict:
        kind = "host_device" if vol.get("block") else "file"
        return {"driver": "raw", "node-name": vol["node"], "file": {"driver": kind, "filename": vol["path"]}}

    def _launch(self, uuid: str, spec: dict, incoming: str | None = None, paused: bool = False) -> None:
        spec = spec.get("rescue") or spec  # a rescued guest boots its rescue disk until unrescue
        cmd = self._command(uuid, spec, incoming, paused)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=self.boot_timeout,
                             stdin=subprocess.DEVNULL, cwd=self._idir(uuid),
                             pass_fds=[n["fd"] for n in spec.get("nics", []) if n.get("fd") is not None])
        if res.returncode != 0:
            why = (res.stderr or res.stdout).strip()
            if not why:
                try:
                    why = (self._idir(uuid) / "qemu.log").read_text().strip()
                except OSError:
                    why = ""
            raise d.DriverError(f"QEMU did not start (exit {res.returncode}): {why[-300:]}")
        if self.pid_of(uuid) is None:
            raise d.DriverError("QEMU exited right after starting")
        self._plug_vifs(spec)

    def _plug_vifs(self, spec: dict) -> None:
        """Put each tap QEMU created into its network's bridge, when the network said which."""
        for nic in spec.get("nics", []):
            bridge = nic.get("bridge")
            if not bridge or not Path(f"/sys/class/net/{bridge}").exists():
                continue
            if Path(f"/sys/class/net/{nic['devname']}/master").exists():
                continue
            subprocess.run(["ip", "link", "set", nic["devname"], "master", bridge, "up"], capture_output=True)

    # ------------------------------------------------------------------ lifecycle
    def _instance_view(self, instance: d.InstanceInfo):
        from pocketstack.compute import metadata

        view = getattr(instance, "metadata_view", None)
        if view is not None:
            return view
        md = instance.metadata or {}
        return metadata.InstanceView(
            uuid=instance.uuid, name=instance.display_name,
            hostname=_sanitize_hostname(getattr(instance, "hostname", None) or instance.display_name),
            project_id=getattr(instance, "project_id", "") or "", image_ref=instance.image_ref,
            key_name=getattr(instance, "key_name", None) or ("key" if instance.key_data else None),
            key_data=instance.key_data, metadata=md,
            user_data=(instance.user_data.encode() if isinstance(instance.user_data, str)
                       else instance.user_data),
            admin_pass=instance.admin_password, vifs=list(instance.network_info or []),
            flavor_name=(instance.flavor or {}).get("name", ""))

    def _wants_config_drive(self, instance: d.InstanceInfo) -> bool:
        if getattr(instance, "config_drive", False):
            return True
        meta = instance.image_meta or {}
        if (meta.get("properties") or meta).get("img_config_drive") == "mandatory":
            return True
        return self.force_config_drive

    def spawn(self, instance: d.InstanceInfo) -> None:
        with self._lock(instance.uuid):
            idir = self._idir(instance.uuid)
            if self.pid_of(instance.uuid) is not None:
                raise d.DriverError(f"Instance {instance.uuid} is already running on {self.host}")
            idir.mkdir(parents=True, exist_ok=True)
            try:
                spec = self._create_disks(instance, idir)
                self._save_spec(instance.uuid, spec)
                self._launch(instance.uuid, spec)
            except d.DriverError:
                self._kill(instance.uuid, graceful=False)
                shutil.rmtree(idir, ignore_errors=True)
                raise
            except Exception as exc:  # noqa: BLE001 - anything else still ends as a clean fault
                self._kill(instance.uuid, graceful=False)
                shutil.rmtree(idir, ignore_errors=True)
                raise d.DriverError(f"Build of instance {instance.uuid} failed: {exc}") from exc

    def _create_disks(self, instance: d.InstanceInfo, idir: Path, image_ref: str | None = None) -> dict:
        flavor = instance.flavor or {}
        ram = int(flavor.get("memory_mb", flavor.get("ram", 512)) or 512)
        vcpus = int(flavor.get("vcpus", 1) or 1)
        root_gb = int(flavor.get("root_gb", flavor.get("disk", 0)) or 0)
        eph_gb = int(flavor.get("ephemeral_gb", flavor.get("ephemeral", 0)) or 0)
        swap_mb = int(flavor.get("swap", 0) or 0)
        disks = []
        image_ref = image_ref or instance.image_ref
        boot_volume, other_volumes = _split_block_devices(instance.block_devices)
        if boot_volume is not None:  # boot from volume: the volume is the root disk, no overlay
            vol = _volume_entry(boot_volume["connection_info"], boot_volume.get("device_name") or "/dev/vda",
                                self.host)
            disks.append({"id": "root", "path": vol["path"], "format": "raw", "block": vol["block"],
                          "volume": True, "serial": vol["serial"]})
        elif not image_ref:
            raise d.DriverError(f"Instance {instance.uuid} has neither an image nor a boot volume")
        else:
            base, fmt = self._base_image(image_ref)
            vsize = self._virtual_size(base, fmt)
            size = max(vsize, root_gb * GiB)
            if root_gb and root_gb * GiB < vsize:
                raise d.DriverError(f"Flavor's disk is too small for requested image. Flavor disk is "
                                    f"{root_gb * GiB} bytes, image is {vsize} bytes.")
            root = idir / "disk.qcow2"
            root.unlink(missing_ok=True)
            _run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", fmt, "-b", str(base), str(root), str(size)])
            disks.append({"id": "root", "path": str(root), "format": "qcow2"})
        if eph_gb:
            eph = idir / "disk.eph0"
            _run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(eph), f"{eph_gb}G"])
            disks.append({"id": "eph0", "path": str(eph), "format": "qcow2"})
        if swap_mb:
            swap = idir / "disk.swap"
            _run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(swap), f"{swap_mb}M"])
            disks.append({"id": "swap", "path": str(swap), "format": "qcow2"})
        if self._wants_config_drive(instance):
            from pocketstack.compute import configdrive

            iso = configdrive.build_iso(configdrive.files_for(self._instance_view(instance)), idir / "config.iso")
            disks.append({"id": "config", "path": str(iso), "format": "raw", "readonly": True})
        nics = []
        for n, vif in enumerate(instance.network_info or []):
            devname = vif.get("devname") or f"tap{vif['id'][:11]}"
            nics.append({"id": f"net{n}", "devname": devname[:15], "mac": vif.get("address"),
                         "bridge": (vif.get("network") or {}).get("bridge"), "vif_id": vif.get("id")})
        volumes = {}
        for bdm in other_volumes:  # the server's other volumes, attached from the start
            key = bdm.get("device_name") or bdm.get("volume_id") or f"/dev/vd{chr(ord('b') + len(volumes))}"
            volumes[key] = _volume_entry(bdm["connection_info"], key, self.host, bdm.get("volume_id"))
        spec = {"uuid": instance.uuid, "name": instance.name, "vcpus": vcpus, "memory_mb": ram,
                "image_ref": image_ref or "", "disks": disks, "nics": nics, "volumes": volumes,
                "user_network": self.user_network and not nics}
        if spec["user_network"]:  # the guest's SSH on a loopback port of the host (dev/tests only)
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                spec["ssh_port"] = s.getsockname()[1]
        return spec

    def destroy(self, instance: d.InstanceInfo) -> None:
        with self._lock(instance.uuid):
            self._kill(instance.uuid, graceful=False)
            shutil.rmtree(self._idir(instance.uuid), ignore_errors=True)

    def _clean_shutdown(self, uuid: str, timeout: float) -> bool:
        """ACPI power button; True when the guest shut down within `timeout`."""
        try:
            with self._qmp(uuid) as q:
                q.execute("system_powerdown")
        except QMPError:
            return False
        return self._wait_status(uuid, {"shutdown"}, timeout) in ("shutdown", None)

    def reboot(self, instance: d.InstanceInfo, hard: bool) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            spec = self._spec(uuid)
            if self.pid_of(uuid) is None:
                (self._idir(uuid) / "suspend.state").unlink(missing_ok=True)
                self._launch(uuid, spec)
                return
            if not hard and self._status(uuid) == "running":
                if not self._clean_shutdown(uuid, self.shutdown_timeout):
                    log.warning("instance %s ignored the soft reboot; resetting it", uuid)
            if self.pid_of(uuid) is None:
                self._launch(uuid, spec)
                return
            with self._qmp(uuid) as q:
                q.execute("system_reset")
                if q.execute("query-status")["status"] != "running":
                    q.execute("cont")

    def power_off(self, instance: d.InstanceInfo, timeout: float | None = None) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            self._spec(uuid)
            if self.pid_of(uuid) is None:
                return
            if self._status(uuid) == "running":
                self._clean_shutdown(uuid, self.shutdown_timeout if timeout is None else timeout)
            self._kill(uuid)

    def power_on(self, instance: d.InstanceInfo) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            spec = self._spec(uuid)
            st = self._status(uuid)
            if st is None:
                (self._idir(uuid) / "suspend.state").unlink(missing_ok=True)
                self._launch(uuid, spec)
            elif st != "running":
                with self._qmp(uuid) as q:
                    if st == "shutdown":
                        q.execute("system_reset")
                    q.execute("cont")

    def pause(self, instance: d.InstanceInfo) -> None:
        self._simple_qmp(instance, "stop")

    def unpause(self, instance: d.InstanceInfo) -> None:
        self._simple_qmp(instance, "cont")

    def _simple_qmp(self, instance: d.InstanceInfo, command: str, arguments: dict | None = None):
        with self._lock(instance.uuid):
            if self.pid_of(instance.uuid) is None:
                raise d.DriverError(f"Instance {instance.uuid} is not running")
            try:
                with self._qmp(instance.uuid) as q:
                    return q.execute(command, arguments)
            except QMPError as exc:
                raise d.DriverError(str(exc)) from None

    def suspend(self, instance: d.InstanceInfo) -> None:
        """Save RAM and device state to `suspend.state` (a migration to a file), then stop QEMU."""
        uuid = instance.uuid
        with self._lock(uuid):
            if self.pid_of(uuid) is None:
                raise d.DriverError(f"Instance {uuid} is not running")
            state = self._idir(uuid) / "suspend.state"
            tmp = state.with_suffix(".part")
            with self._qmp(uuid) as q:
                q.execute("stop")
                q.execute("migrate", {"uri": f"exec:cat > {shlex.quote(str(tmp))}"})
                deadline = time.monotonic() + 300
                while True:
                    st = q.execute("query-migrate").get("status")
                    if st == "completed":
                        break
                    if st in ("failed", "cancelled") or time.monotonic() > deadline:
                        q.execute("cont")
                        tmp.unlink(missing_ok=True)
                        raise d.DriverError(f"Saving the state of {uuid} failed ({st})")
                    time.sleep(0.1)
            os.replace(tmp, state)
            self._kill(uuid)

    def resume(self, instance: d.InstanceInfo) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            spec = self._spec(uuid)
            state = self._idir(uuid) / "suspend.state"
            if self.pid_of(uuid) is not None:
                with self._qmp(uuid) as q:
                    q.execute("cont")
                return
            if not state.exists():
                self._launch(uuid, spec)
                return
            self._launch(uuid, spec, incoming=f"exec:cat {shlex.quote(str(state))}")
            st = self._wait_status(uuid, {"running", "paused", "postmigrate"}, 120)
            deadline = time.monotonic() + 120
            while st == "inmigrate" and time.monotonic() < deadline:
                time.sleep(0.2)
                st = self._status(uuid)
            if st is None:
                raise d.DriverError(f"Restoring the state of {uuid} failed")
            if st != "running":
                with self._qmp(uuid) as q:
                    q.execute("cont")
            state.unlink(missing_ok=True)

    def rebuild(self, instance: d.InstanceInfo) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            old = self._spec(uuid)
            self._kill(uuid)
            idir = self._idir(uuid)
            for p in ("disk.qcow2", "disk.eph0", "disk.swap", "config.iso", "suspend.state", "disk.rescue"):
                (idir / p).unlink(missing_ok=True)
            spec = self._create_disks(instance, idir)
            spec["volumes"] = old.get("volumes", {})
            self._save_spec(uuid, spec)
            self._launch(uuid, spec)

    def snapshot(self, instance: d.InstanceInfo) -> bytes:
        return self.snapshot_to_file(instance, self._idir(instance.uuid) / "snapshot.qcow2", keep=False)

    def snapshot_to_file(self, instance: d.InstanceInfo, dest: Path, keep: bool = True) -> bytes | Path:
        """The root disk flattened into a standalone qcow2 (the guest is paused while it is
        copied: stopping QEMU flushes its caches, so the file is consistent)."""
        uuid = instance.uuid
        with self._lock(uuid):
            disk = next(x for x in self._spec(uuid)["disks"] if x["id"] == "root")
            root, fmt = disk["path"], disk["format"]
            was_running = self._status(uuid) == "running"
            if was_running:
                with self._qmp(uuid) as q:
                    q.execute("stop")
            try:
                tmp = dest.with_name(f".{dest.name}.part")
                _run([QEMU_IMG, "convert", "-U", "-f", fmt, "-O", "qcow2", root, str(tmp)], timeout=1800)
                os.replace(tmp, dest)
            finally:
                if was_running:
                    with self._qmp(uuid) as q:
                        q.execute("cont")
            if keep:
                return dest
            try:
                return dest.read_bytes()
            finally:
                dest.unlink(missing_ok=True)

    # ------------------------------------------------------------------ rescue and moves
    def _unsupported(self, what: str):
        raise d.DriverError(f"{what} is not supported by the QEMU driver yet")

    def rescue(self, instance: d.InstanceInfo, rescue_image_ref: str) -> None:
        """Boot a rescue disk (an overlay of `rescue_image_ref`) first, the guest's own disks
        after it (as Nova's libvirt rescue); `unrescue` boots the guest's disks again."""
        uuid = instance.uuid
        with self._lock(uuid):
            spec = self._spec(uuid)
            if spec.get("rescue"):
                raise d.DriverError(f"Instance {uuid} is already rescued")
            idir = self._idir(uuid)
            base, fmt = self._base_image(rescue_image_ref or spec["image_ref"])
            rdisk = idir / "disk.rescue"
            _run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", fmt, "-b", str(base), str(rdisk)])
            rescue = {k: v for k, v in spec.items() if k != "rescue"}
            rescue["disks"] = [{"id": "rescue", "path": str(rdisk), "format": "qcow2"}] + spec["disks"]
            self._kill(uuid)
            (idir / "suspend.state").unlink(missing_ok=True)
            spec["rescue"] = rescue
            self._save_spec(uuid, spec)
            try:
                self._launch(uuid, spec)
            except d.DriverError:
                del spec["rescue"]
                self._save_spec(uuid, spec)
                rdisk.unlink(missing_ok=True)
                raise

    def unrescue(self, instance: d.InstanceInfo) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            spec = self._spec(uuid)
            self._kill(uuid)
            spec.pop("rescue", None)
            self._save_spec(uuid, spec)
            (self._idir(uuid) / "disk.rescue").unlink(missing_ok=True)
            self._launch(uuid, spec)

    # Resize and cold migration between the QEMU hosts of this machine (or to the same host).
    # The conductor calls: source.migrate_disk_and_power_off -> dest.finish_migration (new
    # flavor) -> source.confirm_migration, or dest.destroy + source.finish_revert_migration.
    # The source keeps its directory as `<uuid>_resize` until confirm/revert, outside what
    # `destroy` removes, so a same-host revert finds it intact.
    def _saved_dir(self, uuid: str) -> Path:
        return self.dir / f"{self._idir(uuid).name}_resize"

    def migrate_disk_and_power_off(self, instance: d.InstanceInfo, dest_host: str) -> None:
        uuid = instance.uuid
        dest = _DRIVERS.get(dest_host)
        if dest is None:
            raise d.DriverError(f"Host {dest_host} is not a QEMU host of this machine; "
                                "migrating between machines is not supported yet")
        with self._lock(uuid):
            spec = self._spec(uuid)
            if spec.get("rescue"):
                raise d.DriverError(f"Instance {uuid} is rescued")
            if self.pid_of(uuid) is not None:
                if self._status(uuid) == "running":
                    self._clean_shutdown(uuid, self.shutdown_timeout)
                self._kill(uuid)
            saved = self._saved_dir(uuid)
            shutil.rmtree(saved, ignore_errors=True)
            os.rename(self._idir(uuid), saved)
        try:
            dest._receive(uuid, saved, spec)
        except Exception as exc:
            with self._lock(uuid):  # back as it was: the source's disks, powered off
                shutil.rmtree(dest._idir(uuid), ignore_errors=True)
                shutil.rmtree(self._idir(uuid), ignore_errors=True)
                os.rename(saved, self._idir(uuid))
            raise d.DriverError(f"Copying the disks of {uuid} to {dest_host} failed: {exc}") from None

    def _receive(self, uuid: str, src: Path, spec: dict) -> None:
        """Copy a powered-off instance's disks from `src` into this host (its base image from
        this host's cache, the overlay rebased onto it)."""
        with self._lock(uuid):
            idir = self._idir(uuid)
            shutil.rmtree(idir, ignore_errors=True)
            idir.mkdir(parents=True)
            disks = []
            for disk in spec["disks"]:
                if disk["id"] == "config":
                    continue  # rebuilt by finish_migration
                if disk.get("volume"):  # a boot volume stays where it is (this machine)
                    disks.append(disk)
                    continue
                target = idir / Path(disk["path"]).name
                shutil.copyfile(src / Path(disk["path"]).name, target)
                if disk["id"] == "root":
                    base, fmt = self._base_image(spec["image_ref"])
                    _run([QEMU_IMG, "rebase", "-u", "-f", "qcow2", "-F", fmt, "-b", str(base), str(target)])
                disks.append({**disk, "path": str(target)})
            if (src / "console.log").exists():
                shutil.copyfile(src / "console.log", idir / "console.log")
            new = {**spec, "disks": disks, "migrating": True,
                   "had_config_drive": any(x["id"] == "config" for x in spec["disks"])}
            self._save_spec(uuid, new)

    def finish_migration(self, instance: d.InstanceInfo) -> None:
        """Boot the received disks with `instance.flavor` (the new one): RAM and vCPUs
        changed, the root disk grown (never shrunk), ephemeral grown, config drive rebuilt."""
        uuid = instance.uuid
        with self._lock(uuid):
            spec = self._spec(uuid)
            idir = self._idir(uuid)
            flavor = instance.flavor or {}
            spec["memory_mb"] = int(flavor.get("memory_mb", flavor.get("ram", spec["memory_mb"])) or spec["memory_mb"])
            spec["vcpus"] = int(flavor.get("vcpus", spec["vcpus"]) or spec["vcpus"])
            root_gb = int(flavor.get("root_gb", flavor.get("disk", 0)) or 0)
            eph_gb = int(flavor.get("ephemeral_gb", flavor.get("ephemeral", 0)) or 0)
            for disk in spec["disks"]:
                if disk.get("volume"):
                    continue  # a boot volume's size is the volume service's business
                want = root_gb * GiB if disk["id"] == "root" else eph_gb * GiB if disk["id"] == "eph0" else 0
                if want and want > self._virtual_size(Path(disk["path"]), disk["format"]):
                    _run([QEMU_IMG, "resize", "-q", "-f", disk["format"], disk["path"], str(want)])
            if spec.pop("had_config_drive", False) or self._wants_config_drive(instance):
                from pocketstack.compute import configdrive

                iso = configdrive.build_iso(configdrive.files_for(self._instance_view(instance)),
                                            idir / "config.iso")
                spec["disks"].append({"id": "config", "path": str(iso), "format": "raw", "readonly": True})
            if instance.network_info:
                spec["nics"] = [{"id": f"net{n}", "devname": (v.get("devname") or f"tap{v['id'][:11]}")[:15],
                                 "mac": v.get("address"), "bridge": (v.get("network") or {}).get("bridge"),
                                 "vif_id": v.get("id")} for n, v in enumerate(instance.network_info)]
            spec.pop("migrating", None)
            self._save_spec(uuid, spec)
            self._launch(uuid, spec)

    def confirm_migration(self, instance: d.InstanceInfo) -> None:
        shutil.rmtree(self._saved_dir(instance.uuid), ignore_errors=True)

    def finish_revert_migration(self, instance: d.InstanceInfo) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            saved = self._saved_dir(uuid)
            if not saved.exists():
                raise d.DriverError(f"Instance {uuid} has nothing to revert to on {self.host}")
            self._kill(uuid, graceful=False)
            shutil.rmtree(self._idir(uuid), ignore_errors=True)
            os.rename(saved, self._idir(uuid))
            self._launch(uuid, self._spec(uuid))

    # Live migration between the QEMU hosts of this machine, the way libvirt does
    # non-shared-storage migration: the destination QEMU starts paused with `-incoming` and
    # an NBD server exporting its new (empty) disks; the source mirrors each local disk into
    # it (`blockdev-mirror`, write-blocking so the copies never fall behind), then migrates
    # RAM and devices; the mirrors are cancelled (drained) once the source has stopped, and
    # the destination resumes. Volumes (and a boot volume) are files of this machine: both
    # QEMUs open them, the destination only once the source has let go (QEMU's inactive
    # images during an incoming migration).
    def live_migrate(self, instance: d.InstanceInfo, dest_host: str, timeout: float = 600.0) -> None:
        uuid = instance.uuid
        dest = _DRIVERS.get(dest_host)
        if dest is None:
            raise d.DriverError(f"Host {dest_host} is not a QEMU host of this machine; "
                                "live migration between machines is not supported yet")
        if dest is self or dest.dir == self.dir:
            raise d.DriverError(f"Instance {uuid} is already on host {dest_host}")
        with self._lock(uuid):
            spec = self._spec(uuid)
            if spec.get("rescue"):
                raise d.DriverError(f"Instance {uuid} is rescued")
            status = self._status(uuid)
            if status not in ("running", "paused"):
                raise d.DriverError(f"Instance {uuid} is not running (QEMU state {status})")
            work = Path(tempfile.mkdtemp(prefix="ps-mig-"))  # short unix socket paths
            mirrored = [x["id"] for x in spec["disks"] if x["id"] != "config" and not x.get("volume")]
            try:
                dest._prepare_incoming(uuid, self._idir(uuid), spec, work, mirrored, self.pid_of(uuid))
                try:
                    self._mirror_and_migrate(uuid, work, mirrored, timeout)
                except BaseException:
                    dest._kill(uuid, graceful=False)
                    shutil.rmtree(dest._idir(uuid), ignore_errors=True)
                    raise
                dest._finish_incoming(uuid, resume=status == "running")
            finally:
                shutil.rmtree(work, ignore_errors=True)
            self._kill(uuid)
            shutil.rmtree(self._idir(uuid), ignore_errors=True)

    def _prepare_incoming(self, uuid: str, src: Path, spec: dict, work: Path, mirrored: list[str],
                          src_pid: int | None = None) -> None:
        """Disks to receive into, then QEMU paused, listening on `work/mig.sock`, with an NBD
        server on `work/nbd.sock` exporting each disk in `mirrored` (writable). The NICs' taps
        are the source's: a tap takes one owner, so the destination gets a duplicate of the
        source QEMU's descriptor of each (pidfd_getfd) and keeps it when the source quits."""
        with self._lock(uuid):
            if self.pid_of(uuid) is not None:
                raise d.DriverError(f"Instance {uuid} is already running on {self.host}")
            idir = self._idir(uuid)
            shutil.rmtree(idir, ignore_errors=True)
            idir.mkdir(parents=True)
            disks = []
            for disk in spec["disks"]:
                if disk.get("volume"):
                    disks.append(disk)
                    continue
                target = idir / Path(disk["path"]).name
                if disk["id"] == "config":
                    shutil.copyfile(disk["path"], target)  # read-only: a copy is exact
                else:
                    size = str(self._virtual_size(Path(disk["path"]), disk["format"], shared=True))
                    backing = []
                    if disk["id"] == "root" and spec.get("image_ref"):
                        base, fmt = self._base_image(spec["image_ref"])
                        backing = ["-F", fmt, "-b", str(base)]
                    _run([QEMU_IMG, "create", "-q", "-f", disk["format"], *backing, str(target), size])
                disks.append({**disk, "path": str(target)})
            try:
                shutil.copyfile(src / "console.log", idir / "console.log")
            except OSError:
                pass
            new = {**spec, "disks": disks}
            if new.get("ssh_port"):  # the source still holds its forwarded port
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    new["ssh_port"] = s.getsockname()[1]
            self._save_spec(uuid, new)
            fds: dict[str, int] = {}
            try:
                if new.get("nics"):
                    fds = _tap_fds(src_pid, [n["devname"] for n in new["nics"]])
                launch = {**new, "nics": [{**n, "fd": fds[n["devname"]]} for n in new.get("nics", [])]}
                hdr = {name: _vnet_hdr_size(fd) for name, fd in fds.items()}
                self._launch(uuid, launch, incoming=f"unix:{work / 'mig.sock'}", paused=True)
                for name, fd in fds.items():  # QEMU resets it on start: the source still needs its own
                    _vnet_hdr_size(fd, hdr[name])
                with self._qmp(uuid) as q:
                    q.execute("nbd-server-start", {"addr": {"type": "unix", "data": {"path": str(work / "nbd.sock")}}})
                    for node in mirrored:
                        q.execute("block-export-add", {"type": "nbd", "id": f"exp-{node}", "node-name": node,
                                                       "name": node, "writable": True})
            except (d.DriverError, QMPError) as exc:
                self._kill(uuid, graceful=False)
                shutil.rmtree(idir, ignore_errors=True)
                raise d.DriverError(f"The destination {self.host} could not prepare for {uuid}: {exc}") from None
            finally:
                for fd in fds.values():
                    os.close(fd)  # QEMU has its own copies now

    def _mirror_and_migrate(self, uuid: str, work: Path, mirrored: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._qmp(uuid, 30) as q:
            try:
                for node in mirrored:
                    q.execute("blockdev-add", {"driver": "nbd", "node-name": f"mig-{node}", "export": node,
                                               "server": {"type": "unix", "path": str(work / "nbd.sock")}})
                    q.execute("blockdev-mirror", {"job-id": f"mirror-{node}", "device": node,
                                                  "target": f"mig-{node}", "sync": "top",
                                                  "copy-mode": "write-blocking"})
                pending = {f"mirror-{node}" for node in mirrored}
                while pending:
                    ev = q.wait_event("BLOCK_JOB_READY", max(0.1, deadline - time.monotonic()),
                                      lambda e: e.get("data", {}).get("device") in pending)
                    if ev is None:
                        raise d.DriverError(f"Copying the disks of {uuid} did not finish in time")
                    pending.discard(ev["data"]["device"])
                q.execute("migrate-set-parameters", {"max-bandwidth": 4 << 30, "downtime-limit": 500})
                q.execute("migrate", {"uri": f"unix:{work / 'mig.sock'}"})
                while True:
                    info = q.execute("query-migrate")
                    st = info.get("status")
                    if st == "completed":
                        break
                    if st in ("failed", "cancelled") or time.monotonic() > deadline:
                        if st not in ("failed", "cancelled"):
                            q.execute("migrate_cancel")
                        raise d.DriverError(f"Live migration of {uuid} failed ({st}: "
                                            f"{info.get('error-desc', 'timed out')})")
                    time.sleep(0.02)
            except QMPError as exc:
                self._abort_mirrors(q, mirrored)
                raise d.DriverError(f"Live migration of {uuid} failed: {exc}") from None
            except d.DriverError:
                self._abort_mirrors(q, mirrored)
                raise
            # the source is stopped now: drain and end each mirror (no pivot)
            for node in mirrored:
                q.execute("block-job-cancel", {"device": f"mirror-{node}"})
            pending = {f"mirror-{node}" for node in mirrored}
            while pending:
                ev = q.wait_event("BLOCK_JOB_COMPLETED", 60, lambda e: e.get("data", {}).get("device") in pending)
                if ev is None:
                    raise d.DriverError(f"The disk copies of {uuid} did not settle")
                pending.discard(ev["data"]["device"])

    @staticmethod
    def _abort_mirrors(q: QMPClient, mirrored: list[str]) -> None:
        """After a failed attempt the source keeps its own disks (QEMU itself resumes a guest
        whose migration failed)."""
        for node in mirrored:
            try:
                q.execute("block-job-cancel", {"device": f"mirror-{node}", "force": True})
                q.wait_event("BLOCK_JOB_CANCELLED", 30, lambda e, n=node: e["data"].get("device") == f"mirror-{n}")
            except QMPError:
                pass
            try:
                q.execute("blockdev-del", {"node-name": f"mig-{node}"})
            except QMPError:
                pass

    def _finish_incoming(self, uuid: str, resume: bool) -> None:
        """The RAM has arrived: stop the NBD server and run the guest (polled closely: the
        guest is stopped on both sides meanwhile)."""
        with self._lock(uuid):
            try:
                with self._qmp(uuid) as q:
                    deadline = time.monotonic() + 60
                    st = q.execute("query-status")["status"]
                    while st == "inmigrate" and time.monotonic() < deadline:
                        time.sleep(0.01)
                        st = q.execute("query-status")["status"]
                    if st == "inmigrate":
                        raise d.DriverError(f"The destination {self.host} did not receive {uuid}")
                    q.execute("nbd-server-stop")
                    if resume:
                        q.execute("cont")
            except QMPError as exc:
                raise d.DriverError(f"The destination {self.host} did not receive {uuid}: {exc}") from None

    # ------------------------------------------------------------------ devices
    def _device_del(self, uuid: str, dev_id: str, timeout: float = 30.0) -> None:
        with self._qmp(uuid, timeout + 5) as q:
            try:
                q.execute("device_del", {"id": dev_id})
            except QMPError as exc:
                if exc.error_class == "DeviceNotFound":
                    return
                raise d.DriverError(str(exc)) from None
            ev = q.wait_event("DEVICE_DELETED", timeout, lambda e: e.get("data", {}).get("device") == dev_id)
            if ev is None:
                raise d.DriverError(f"The guest did not release device {dev_id} within {timeout:.0f} s")

    def attach_volume(self, instance: d.InstanceInfo, connection_info: dict, mountpoint: str) -> None:
        uuid = instance.uuid
        vol = _volume_entry(connection_info, mountpoint, self.host)
        with self._lock(uuid):
            spec = self._spec(uuid)
            key = mountpoint or vol["serial"]
            if key in spec["volumes"]:
                raise d.DriverError(f"Device {key} is already in use on instance {uuid}")
            if self.pid_of(uuid) is not None:
                try:
                    with self._qmp(uuid) as q:
                        q.execute("blockdev-add", self._volume_blockdev(vol))
                        try:
                            q.execute("device_add", {"driver": "virtio-blk-pci", "drive": vol["node"],
                                                     "id": vol["node"] + "-dev", "serial": vol["serial"]})
                        except QMPError:
                            q.execute("blockdev-del", {"node-name": vol["node"]})
                            raise
                except QMPError as exc:
                    raise d.DriverError(f"Attaching the volume failed: {exc}") from None
            spec["volumes"][key] = vol
            self._save_spec(uuid, spec)

    def detach_volume(self, instance: d.InstanceInfo, connection_info: dict, mountpoint: str) -> None:
        uuid = instance.uuid
        data = (connection_info or {}).get("data") or {}
        with self._lock(uuid):
            spec = self._spec(uuid)
            key = mountpoint if mountpoint in spec["volumes"] else next(
                (k for k, v in spec["volumes"].items() if v["path"] == data.get("device_path")), None)
            if key is None:
                return
            vol = spec["volumes"][key]
            if self.pid_of(uuid) is not None:
                self._device_del(uuid, vol["node"] + "-dev")
                try:
                    with self._qmp(uuid) as q:
                        q.execute("blockdev-del", {"node-name": vol["node"]})
                except QMPError as exc:
                    log.warning("blockdev-del %s on %s: %s", vol["node"], uuid, exc)
            del spec["volumes"][key]
            self._save_spec(uuid, spec)

    def attach_interface(self, instance: d.InstanceInfo, vif: dict) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            spec = self._spec(uuid)
            used = {n["id"] for n in spec["nics"]}
            nid = next(f"net{i}" for i in range(64) if f"net{i}" not in used)
            nic = {"id": nid, "devname": (vif.get("devname") or f"tap{vif['id'][:11]}")[:15],
                   "mac": vif.get("address"), "bridge": (vif.get("network") or {}).get("bridge"),
                   "vif_id": vif.get("id")}
            if self.pid_of(uuid) is not None:
                try:
                    with self._qmp(uuid) as q:
                        q.execute("netdev_add", {"type": "tap", "id": nid, "ifname": nic["devname"],
                                                 "script": "no", "downscript": "no"})
                        q.execute("device_add", {"driver": "virtio-net-pci", "netdev": nid,
                                                 "id": nid + "-dev", "mac": nic["mac"]})
                except QMPError as exc:
                    raise d.DriverError(f"Attaching the interface failed: {exc}") from None
                self._plug_vifs({"nics": [nic]})
            spec["nics"].append(nic)
            self._save_spec(uuid, spec)

    def detach_interface(self, instance: d.InstanceInfo, vif: dict) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            spec = self._spec(uuid)
            nic = next((n for n in spec["nics"] if n.get("vif_id") == vif.get("id")
                        or n["mac"] == vif.get("address")), None)
            if nic is None:
                return
            if self.pid_of(uuid) is not None:
                self._device_del(uuid, nic["id"] + "-dev")
                try:
                    with self._qmp(uuid) as q:
                        q.execute("netdev_del", {"id": nic["id"]})
                except QMPError as exc:
                    log.warning("netdev_del %s on %s: %s", nic["id"], uuid, exc)
            spec["nics"].remove(nic)
            self._save_spec(uuid, spec)

    # ------------------------------------------------------------------ inspection
    def _power_state(self, uuid: str) -> int:
        idir = self._idir(uuid)
        if not (idir / "spec.json").exists():
            return d.NOSTATE
        if self.pid_of(uuid) is None:
            return d.SUSPENDED if (idir / "suspend.state").exists() else d.SHUTDOWN
        try:
            with self._qmp(uuid) as q:
                st = q.execute("query-status")["status"]
        except QMPError:  # alive but not answering: unknown, not "off"
            return d.SHUTDOWN if self.pid_of(uuid) is None else d.NOSTATE
        return _POWER.get(st, d.NOSTATE)

    def get_info(self, instance: d.InstanceInfo) -> int:
        return self._power_state(instance.uuid)

    def get_console_output(self, instance: d.InstanceInfo) -> str:
        path = self._idir(instance.uuid) / "console.log"
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - MAX_CONSOLE_BYTES))
                data = f.read()
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace")

    def get_console(self, instance: d.InstanceInfo, console_type: str) -> dict:
        """Where the console proxy connects: QEMU's VNC server on `vnc.sock` (a unix socket,
        `internal_access_path`; `port` is None). Guests started before VNC was enabled have none."""
        if console_type not in self.console_types:
            raise d.DriverError(f"Console type {console_type} is not supported by the QEMU driver")
        uuid = instance.uuid
        sock = self._idir(uuid) / "vnc.sock"
        if self.pid_of(uuid) is None:
            raise d.DriverError(f"Instance {uuid} is not running")
        if not sock.exists():
            raise d.DriverError(f"Instance {uuid} has no VNC server (started before consoles were enabled: "
                                "power it off and on)")
        return {"host": self.host, "port": None, "internal_access_path": str(sock)}

    def inject_nmi(self, instance: d.InstanceInfo) -> None:
        self._simple_qmp(instance, "inject-nmi")

    def set_admin_password(self, instance: d.InstanceInfo, password: str) -> None:
        raise d.DriverError("Setting the admin password needs a guest agent; not supported by the QEMU driver")

    def get_instance_usage(self, instance: d.InstanceInfo) -> dict:
        """What telemetry polls: CPU time, memory, disk and NIC counters of a running guest."""
        uuid = instance.uuid
        out = {"uuid": uuid, "power_state": self._power_state(uuid), "cpu_time_ns": 0, "memory_rss_mb": 0,
               "memory_mb": 0, "disks": {}, "nics": {}}
        pid = self.pid_of(uuid)
        if pid is None:
            return out
        try:
            spec = self._spec(uuid)
            out["memory_mb"] = spec["memory_mb"]
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            out["cpu_time_ns"] = (int(fields[11]) + int(fields[12])) * 1_000_000_000 // ticks
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out["memory_rss_mb"] = int(line.split()[1]) // 1024
        except (OSError, IndexError, ValueError):
            pass
        try:
            with self._qmp(uuid) as q:
                for dev in q.execute("query-blockstats", {"query-nodes": False}):
                    name = dev.get("qdev") or dev.get("device") or dev.get("node-name") or ""
                    st = dev.get("stats", {})
                    out["disks"][name.split("/")[-1] if "/" in name else name] = {
                        "read_bytes": st.get("rd_bytes", 0), "write_bytes": st.get("wr_bytes", 0),
                        "read_requests": st.get("rd_operations", 0), "write_requests": st.get("wr_operations", 0)}
        except QMPError:
            pass
        for nic in self._spec(uuid).get("nics", []):
            base = Path(f"/sys/class/net/{nic['devname']}/statistics")
            try:
                # the tap's rx is what the guest sent
                out["nics"][nic["devname"]] = {"tx_bytes": int((base / "rx_bytes").read_text()),
                                               "rx_bytes": int((base / "tx_bytes").read_text()),
                                               "tx_packets": int((base / "rx_packets").read_text()),
                                               "rx_packets": int((base / "tx_packets").read_text())}
            except OSError:
                continue
        return out
