"""The fake virt driver: simulated hypervisors that keep guests' state in memory.

Deterministic (console output depends only on the server), optionally slow
(`[compute] fake_delay` seconds per operation, so users' tests can watch BUILD before
ACTIVE) and optionally failing: `[compute] fake_fail_hosts` (hosts whose builds fail)
and `[compute] fake_fail_names` (shell patterns of server names whose builds fail),
for users testing their own error handling. Like a real hypervisor it refuses to spawn a
guest without a root disk (no image and no connected boot volume in `block_devices`).
"""
from __future__ import annotations

import fnmatch
import hashlib
import threading
import time

from pocketstack.compute.virt import driver as d

_START = time.time()


class FakeDriver(d.VirtDriver):
    console_types = ("novnc", "xvpvnc", "spice-html5", "rdp-html5", "serial", "webmks")
    snapshot_format = "raw"

    def __init__(self, host: str, *, vcpus: int, memory_mb: int, disk_gb: int, delay: float = 0.0,
                 fail_hosts: list[str] | None = None, fail_names: list[str] | None = None):
        super().__init__(host)
        self.vcpus, self.memory_mb, self.disk_gb = vcpus, memory_mb, disk_gb
        self.delay = delay
        self.fail_hosts = fail_hosts or []
        self.fail_names = fail_names or []
        self._guests: dict[str, int] = {}
        self._lock = threading.Lock()

    def _wait(self) -> None:
        if self.delay > 0:
            time.sleep(self.delay)

    def _set(self, instance: d.InstanceInfo, state: int) -> None:
        with self._lock:
            self._guests[instance.uuid] = state

    def get_available_resources(self) -> d.HostResources:
        return d.HostResources(hypervisor_type="fake", hypervisor_hostname=self.host, vcpus=self.vcpus,
                               memory_mb=self.memory_mb, local_gb=self.disk_gb, hypervisor_version=1000,
                               cpu_info={"arch": "x86_64", "model": "fake", "vendor": "pocketstack",
                                         "topology": {"cores": self.vcpus, "threads": 1, "sockets": 1},
                                         "features": []})

    def uptime(self) -> str:
        up = int(time.time() - _START)
        return (f" {time.strftime('%H:%M:%S', time.gmtime())} up {up // 86400} days, "
                f"{(up % 86400) // 3600}:{(up % 3600) // 60:02d},  0 users,  load average: 0.00, 0.00, 0.00")

    def spawn(self, instance):
        self._wait()
        if any(fnmatch.fnmatchcase(self.host, p) for p in self.fail_hosts):
            raise d.DriverError(f"Simulated failure on fake host {self.host}")
        if any(fnmatch.fnmatchcase(instance.display_name or "", p) for p in self.fail_names):
            raise d.DriverError(f"Simulated build failure for server {instance.display_name!r}")
        self._check_root_disk(instance)
        self._set(instance, d.RUNNING)

    @staticmethod
    def _check_root_disk(instance) -> None:
        """As a real hypervisor: a guest needs an image or a connected boot volume."""
        if instance.image_ref:
            return
        root = next((b for b in instance.block_devices if b.get("boot_index") == 0), None)
        if root is None or not (root.get("connection_info") or {}).get("driver_volume_type"):
            raise d.DriverError(f"Server {instance.uuid} has neither an image nor a connected boot volume")

    def destroy(self, instance):
        self._wait()
        with self._lock:
            self._guests.pop(instance.uuid, None)

    def reboot(self, instance, hard):
        self._wait()
        self._set(instance, d.RUNNING)

    def power_off(self, instance):
        self._wait()
        self._set(instance, d.SHUTDOWN)

    def power_on(self, instance):
        self._wait()
        self._set(instance, d.RUNNING)

    def pause(self, instance):
        self._wait()
        self._set(instance, d.PAUSED)

    def unpause(self, instance):
        self._wait()
        self._set(instance, d.RUNNING)

    def suspend(self, instance):
        self._wait()
        self._set(instance, d.SUSPENDED)

    def resume(self, instance):
        self._wait()
        self._set(instance, d.RUNNING)

    def rescue(self, instance, rescue_image_ref):
        self._wait()
        self._set(instance, d.RUNNING)

    def unrescue(self, instance):
        self._wait()
        self._set(instance, d.RUNNING)

    def snapshot(self, instance):
        self._wait()
        # a small, deterministic "disk": enough for the image service to store and checksum
        return (f"pocketstack fake disk of {instance.uuid} from image {instance.image_ref}\n").encode()

    def rebuild(self, instance):
        self._wait()
        self._set(instance, d.RUNNING)

    def migrate_disk_and_power_off(self, instance, dest_host):
        self._wait()
        with self._lock:
            self._guests.pop(instance.uuid, None)

    def finish_migration(self, instance):
        self._wait()
        self._set(instance, d.RUNNING)

    def finish_revert_migration(self, instance):
        self._wait()
        self._set(instance, d.RUNNING)

    def confirm_migration(self, instance):
        with self._lock:
            self._guests.pop(instance.uuid, None)

    def live_migrate(self, instance, dest_host):
        self._wait()
        with self._lock:
            self._guests.pop(instance.uuid, None)

    def attach_interface(self, instance, vif):
        self._wait()

    def detach_interface(self, instance, vif):
        self._wait()

    def attach_volume(self, instance, connection_info, mountpoint):
        self._wait()

    def detach_volume(self, instance, connection_info, mountpoint):
        self._wait()

    def get_info(self, instance):
        with self._lock:
            return self._guests.get(instance.uuid, d.NOSTATE)

    def get_console_output(self, instance):
        seed = hashlib.sha256(instance.uuid.encode()).hexdigest()[:12]
        lines = [
            f"[    0.000000] Linux version 6.1.0-fake (pocketstack fake driver) #{seed}",
            f"[    0.000000] Command line: root=/dev/vda1 console=ttyS0",
            f"[    0.420000] virtio_net virtio0: registered",
            f"[    1.000000] cloud-init: instance {instance.uuid} on host {self.host}",
            f"[    1.100000] cloud-init: hostname {instance.display_name}",
        ]
        for vif in instance.network_info or []:
            for subnet in vif.get("network", {}).get("subnets", []):
                for ip in subnet.get("ips", []):
                    lines.append(f"[    1.200000] cloud-init: {vif.get('address', '')} has address {ip.get('address')}")
        if instance.key_data:
            fp = hashlib.md5(instance.key_data.encode()).hexdigest()  # noqa: S324 (display only)
            lines.append(f"[    1.300000] cloud-init: authorized key {fp}")
        lines.append(f"{instance.display_name} login: ")
        return "\n".join(lines) + "\n"

    def get_console(self, instance, console_type):
        return {"host": "127.0.0.1", "port": 5900 + (hash(instance.uuid) % 100),
                "internal_access_path": None}

    def inject_nmi(self, instance):
        self._wait()

    def set_admin_password(self, instance, password):
        self._wait()
