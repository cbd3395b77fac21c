"""Compute hosts: the agent that runs on every hypervisor (nova-compute's job).

Each `ComputeHost` owns one virt driver. It registers its service row and compute node
on start, heartbeats (`last_seen_at`), and executes what the RPC interface (`rpc.py`)
asks: build, terminate, power operations, snapshots, moves, consoles, devices. Every
method takes ids (never rows) and reads the server from the database, so the same
class runs in a remote agent process later. State changes are conditional updates
(`expected_task_state`): a server deleted mid-build or mid-reboot is left alone.

The resource tracker lives here too: `claim()` takes a flavor's vCPUs/RAM/disk from a
node with one conditional UPDATE, so concurrent boots can never overcommit a host
beyond its allocation ratios, whichever process or controller runs the scheduler.
"""
from __future__ import annotations

import logging
import threading
import uuid as uuidlib

from sqlalchemy import select, update

from pocketstack.common.db import utcnow
from pocketstack.common.events import emit
from pocketstack.common.runtime import current
from pocketstack.compute import instance_actions
from pocketstack.compute.models import ComputeNode, Instance, InstanceFault, Service
from pocketstack.compute.virt import driver as vd

log = logging.getLogger("pocketstack.compute.hosts")

_hosts: dict[str, "ComputeHost"] = {}
_heartbeat: threading.Event | None = None
CONTROLLER_HOST = "controller"


# ---------------------------------------------------------------------------- configuration
def _conf(key: str) -> str:
    return current().config.get("compute", key)


def _conf_float(key: str, fallback: float) -> float:
    try:
        return float(_conf(key) or fallback)
    except ValueError:
        return fallback


def _patterns(key: str) -> list[str]:
    return [p.strip() for p in _conf(key).split(",") if p.strip()]


def fake_host_names() -> list[str]:
    try:
        count = max(0, int(_conf("fake_hosts") or "1"))
    except ValueError:
        count = 1
    return [f"compute-{i}" for i in range(1, count + 1)]


def configured_hosts() -> list[tuple[str, vd.VirtDriver]]:
    """The hosts this controller runs agents for: `[compute] compute_driver` = fake (N
    simulated hosts) or qemu (this machine, named `[compute] host` or its hostname)."""
    kind = (_conf("compute_driver") or "fake").strip().lower()
    if kind in ("qemu", "kvm", "libvirt"):
        import socket

        from pocketstack.compute.virt import qemu

        name = current().config.get("compute", "host", "") or socket.gethostname()
        return [(name, qemu.from_config(name, current().config))]
    return [(name, _make_driver(name)) for name in fake_host_names()]


def _make_driver(host: str) -> vd.VirtDriver:
    from pocketstack.compute.virt.fake import FakeDriver

    return FakeDriver(host, vcpus=int(_conf("fake_host_vcpus") or 32),
                      memory_mb=int(_conf("fake_host_memory_mb") or 65536),
                      disk_gb=int(_conf("fake_host_disk_gb") or 1024), delay=_conf_float("fake_delay", 0.0),
                      fail_hosts=_patterns("fake_fail_hosts"), fail_names=_patterns("fake_fail_names"))


# ---------------------------------------------------------------------------- lifecycle
def start() -> None:
    """Register the controller's services and every configured host; start heartbeating."""
    global _heartbeat
    if _heartbeat is not None:
        return
    _register_service(CONTROLLER_HOST, "nova-scheduler", "scheduler", "internal")
    _register_service(CONTROLLER_HOST, "nova-conductor", "conductor", "internal")
    for name, driver in configured_hosts():
        host = ComputeHost(name, driver)
        host.register()
        _hosts[name] = host
    if (current().config.getint("pocketstack", "workers") or 1) <= 1:
        recover_interrupted()
        for host in _hosts.values():
            host.sync_power_states()
    if register_tiny_image_wanted():
        threading.Thread(target=_register_tiny_image, name="tiny-image", daemon=True).start()
    _heartbeat = threading.Event()
    interval = max(1.0, _conf_float("report_interval", 10.0))
    threading.Thread(target=_beat, args=(_heartbeat, interval), name="compute-heartbeat", daemon=True).start()


def recover_interrupted() -> None:
    """After a restart, work that was in flight in this process is gone (as nova-compute's
    init_host finds it): builds end in ERROR, other task states are cleared, deletions finish."""
    with current().db.session() as sess:
        rows = list(sess.scalars(select(Instance).where(Instance.deleted.is_(False),
                                                        Instance.task_state.is_not(None))))
        for inst in rows:
            if inst.task_state == "deleting":
                release(inst.host, inst.flavor)
                now = utcnow()
                inst.vm_state, inst.task_state, inst.deleted = "deleted", None, True
                inst.deleted_at = inst.terminated_at = inst.updated_at = now
            elif inst.vm_state == "building":
                inst.vm_state, inst.task_state, inst.updated_at = "error", None, utcnow()
                sess.add(InstanceFault(instance_uuid=inst.uuid, code=500, host=inst.host, created_at=utcnow(),
                                       message="Instance build was interrupted by a restart of its host."))
            else:
                inst.task_state, inst.updated_at = None, utcnow()
    if rows:
        log.warning("cleared %d interrupted server operations after a restart", len(rows))
    from pocketstack.compute import servers

    for inst in rows:
        if inst.deleted:
            servers._after_delete(None, inst.uuid)


def register_tiny_image_wanted() -> bool:
    """`[compute] register_tiny_image`: default on with the qemu driver, off with fake."""
    raw = (_conf("register_tiny_image") or "").strip().lower()
    if raw:
        return raw in ("1", "true", "yes", "on")
    return any(not isinstance(h.driver, _fake_driver_class()) for h in _hosts.values())


def _fake_driver_class():
    from pocketstack.compute.virt.fake import FakeDriver

    return FakeDriver


def _register_tiny_image() -> None:
    """Build (cached, ~30 s the first time) and register `pocketstack-tiny`, off the startup path."""
    from pocketstack.compute import tinyimage

    log.info("registering the %s image in the background (a first build takes ~30 s)", tinyimage.IMAGE_NAME)
    try:
        image = tinyimage.register()
    except Exception as exc:  # noqa: BLE001 - a cloud without the test image still works
        log.warning("could not register the %s image: %s", tinyimage.IMAGE_NAME, exc)
        return
    log.info("image %s is %s (%s)", image["name"], image["id"], image["status"])


def stop() -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.set()
        _heartbeat = None
    _hosts.clear()


def _beat(stop_event: threading.Event, interval: float) -> None:
    while not stop_event.wait(interval):
        try:
            names = [CONTROLLER_HOST, *_hosts]
            with current().db.session() as sess:
                sess.execute(update(Service).where(Service.host.in_(names)).values(last_seen_at=utcnow()))
        except Exception:  # the database may be briefly unavailable; try again next time
            log.exception("compute heartbeat failed")


def _register_service(host: str, binary: str, topic: str, zone: str) -> None:
    with current().db.session() as sess:
        row = sess.scalars(select(Service).where(Service.host == host, Service.binary == binary)).first()
        if row is None:
            sess.add(Service(uuid=str(uuidlib.uuid4()), host=host, binary=binary, topic=topic, zone=zone,
                             last_seen_at=utcnow(), created_at=utcnow(), updated_at=utcnow()))
        else:
            row.last_seen_at = utcnow()


def get_host(name: str) -> "ComputeHost":
    host = _hosts.get(name)
    if host is None:
        raise LookupError(f"compute host {name} is not served by this process")
    return host


def host_names() -> list[str]:
    return list(_hosts)


# ---------------------------------------------------------------------------- resource tracker
def usage_of(flavor: dict) -> tuple[int, int, int]:
    """(vcpus, memory_mb, disk_gb) an instance of `flavor` (a snapshot) takes on a host."""
    disk = int(flavor.get("root_gb", 0)) + int(flavor.get("ephemeral_gb", 0)) + (int(flavor.get("swap", 0)) + 1023) // 1024
    return int(flavor.get("vcpus", 0)), int(flavor.get("memory_mb", 0)), disk


def limits(node: ComputeNode) -> tuple[int, int, int]:
    return (int(node.vcpus * float(node.cpu_allocation_ratio)),
            int(node.memory_mb * float(node.ram_allocation_ratio)),
            int(node.local_gb * float(node.disk_allocation_ratio)))


def claim(node: ComputeNode, flavor: dict) -> bool:
    """Take `flavor`'s resources from `node` atomically; False if they no longer fit."""
    vcpus, ram, disk = usage_of(flavor)
    max_cpu, max_ram, max_disk = limits(node)
    N = ComputeNode
    with current().db.session() as sess:
        res = sess.execute(update(N).where(N.id == node.id, N.vcpus_used <= max_cpu - vcpus,
                                           N.memory_mb_used <= max_ram - ram, N.local_gb_used <= max_disk - disk)
                           .values(vcpus_used=N.vcpus_used + vcpus, memory_mb_used=N.memory_mb_used + ram,
                                   local_gb_used=N.local_gb_used + disk, running_vms=N.running_vms + 1,
                                   updated_at=utcnow()))
        return res.rowcount == 1


def release(host: str | None, flavor: dict | None) -> None:
    """Give back what `claim` took (on delete, failed build, confirmed move...)."""
    if not host or not flavor:
        return
    vcpus, ram, disk = usage_of(flavor)
    N = ComputeNode
    with current().db.session() as sess:
        sess.execute(update(N).where(N.host == host)
                     .values(vcpus_used=N.vcpus_used - vcpus, memory_mb_used=N.memory_mb_used - ram,
                             local_gb_used=N.local_gb_used - disk, running_vms=N.running_vms - 1,
                             updated_at=utcnow()))


# ---------------------------------------------------------------------------- instance helpers
_ANY = object()


def save(instance_uuid: str, expected_task_state=_ANY, *, allow_deleted: bool = False, **values) -> bool:
    """Update a server if it is still in the expected task state (and not deleted)."""
    conds = [Instance.uuid == instance_uuid]
    if not allow_deleted:
        conds.append(Instance.deleted.is_(False))
    if expected_task_state is not _ANY:
        if isinstance(expected_task_state, (list, tuple)):
            none = None in expected_task_state
            vals = [v for v in expected_task_state if v is not None]
            cond = Instance.task_state.in_(vals) if vals else None
            if none:
                cond = Instance.task_state.is_(None) if cond is None else (cond | Instance.task_state.is_(None))
            conds.append(cond)
        elif expected_task_state is None:
            conds.append(Instance.task_state.is_(None))
        else:
            conds.append(Instance.task_state == expected_task_state)
    values.setdefault("updated_at", utcnow())
    with current().db.session() as sess:
        return sess.execute(update(Instance).where(*conds).values(**values)).rowcount == 1


def add_fault(instance_uuid: str, code: int, message: str, details: str | None = None,
              host: str | None = None) -> None:
    with current().db.session() as sess:
        sess.add(InstanceFault(instance_uuid=instance_uuid, code=code, message=message[:255],
                               details=details, host=host, created_at=utcnow()))


def instance_info(inst: Instance, **extra) -> vd.InstanceInfo:
    nw = []
    try:
        from pocketstack.network import core as net

        if hasattr(net, "get_instance_nw_info"):
            nw = net.get_instance_nw_info(inst.uuid)
    except Exception:  # noqa: BLE001 - no network service: a guest without vifs
        nw = []
    if "block_devices" not in extra:  # the connected volumes, root (boot_index 0) first
        from pocketstack.compute import block_device

        extra["block_devices"] = block_device.block_devices(inst.uuid)
    return vd.InstanceInfo(uuid=inst.uuid, name=f"instance-{inst.id:08x}", display_name=inst.display_name,
                           flavor=dict(inst.flavor or {}), image_ref=inst.image_ref, key_data=inst.key_data,
                           user_data=inst.user_data, network_info=nw, metadata=dict(inst.meta or {}),
                           config_drive=bool(inst.config_drive), metadata_view=_metadata_view(inst, nw, extra),
                           image_meta={k[6:]: v for k, v in (inst.system_metadata or {}).items()
                                       if k.startswith("image_")}, **extra)


def _metadata_view(inst: Instance, nw: list, extra: dict):
    """What the metadata service and a config drive tell the guest about itself."""
    try:
        import base64

        from pocketstack.compute import metadata

        user_data = base64.b64decode(inst.user_data) if inst.user_data else None
        return metadata.InstanceView(
            uuid=inst.uuid, name=inst.display_name, hostname=inst.hostname, project_id=inst.project_id,
            availability_zone=inst.availability_zone, launch_index=inst.launch_index,
            reservation_id=inst.reservation_id, flavor_name=(inst.flavor or {}).get("name", ""),
            image_ref=inst.image_ref, key_name=inst.key_name, key_data=inst.key_data, metadata=dict(inst.meta or {}),
            user_data=user_data, admin_pass=extra.get("admin_password"),
            security_groups=list(inst.security_groups or []), vifs=nw)
    except Exception:  # noqa: BLE001 - drivers without a config drive do without
        log.debug("no metadata view for %s", inst.uuid, exc_info=True)
        return None


def load(instance_uuid: str) -> Instance | None:
    with current().db.session() as sess:
        return sess.scalars(select(Instance).where(Instance.uuid == instance_uuid)).first()


def notify(inst_uuid: str, event: str, **extra) -> None:
    inst = load(inst_uuid)
    payload = {"instance_id": inst_uuid, **extra}
    if inst is not None:
        payload.update(state=inst.vm_state, task_state=inst.task_state, power_state=inst.power_state,
                       host=inst.host, tenant_id=inst.project_id, user_id=inst.user_id,
                       display_name=inst.display_name)
    emit(f"compute.instance.{event}", payload)


# ---------------------------------------------------------------------------- vif plugging
def _dataplane():
    """The network dataplane when it builds host devices (None for the noop backend or
    without a network service): ports are plugged through it before QEMU opens their taps."""
    try:
        from pocketstack.network import backends
    except ImportError:
        return None
    dp = backends.get_dataplane()
    return None if getattr(dp.backend, "name", "noop") == "noop" else dp


def plug_vifs(network_info: list[dict]) -> list[dict]:
    """Plug every vif's port (idempotent) and copy the answer (tap, bridge, mtu) into the
    vif dicts the driver gets (`devname`, `network.bridge`, `network.mtu`)."""
    dp = _dataplane()
    if dp is None:
        return network_info
    out = []
    for vif in network_info:
        try:
            info = dp.plug(vif["id"])
        except Exception as exc:  # noqa: BLE001 - the build fails with a fault, the conductor reschedules
            raise vd.DriverError(f"Failed to plug vif {vif['id']}: {exc}") from None
        network = dict(vif.get("network") or {}, bridge=info.get("bridge"))
        if info.get("mtu"):
            network["mtu"] = info["mtu"]
        out.append(dict(vif, devname=info.get("tap") or vif.get("devname"), network=network))
    return out


def unplug_vifs(port_ids: list[str]) -> None:
    dp = _dataplane()
    for port_id in port_ids if dp is not None else ():
        try:
            dp.unplug(port_id)
        except Exception:  # noqa: BLE001 - the dataplane's reconcile removes it later
            log.exception("unplugging port %s failed", port_id)


# ---------------------------------------------------------------------------- the agent
# simple operations: (driver method, expected task_state, final values)
SIMPLE_OPS = {
    "reboot_soft": ("reboot", "reboot_started", {"vm_state": "active", "power_state": vd.RUNNING}),
    "reboot_hard": ("reboot", "reboot_started_hard", {"vm_state": "active", "power_state": vd.RUNNING}),
    "stop": ("power_off", "powering-off", {"vm_state": "stopped", "power_state": vd.SHUTDOWN}),
    "start": ("power_on", "powering-on", {"vm_state": "active", "power_state": vd.RUNNING}),
    "pause": ("pause", "pausing", {"vm_state": "paused", "power_state": vd.PAUSED}),
    "unpause": ("unpause", "unpausing", {"vm_state": "active", "power_state": vd.RUNNING}),
    "suspend": ("suspend", "suspending", {"vm_state": "suspended", "power_state": vd.SUSPENDED}),
    "resume": ("resume", "resuming", {"vm_state": "active", "power_state": vd.RUNNING}),
    "unrescue": ("unrescue", "unrescuing", {"vm_state": "active", "power_state": vd.RUNNING}),
}
# the simple operations that may (re)start the guest's QEMU: its taps must exist first
PLUGGING_OPS = {"reboot_soft", "reboot_hard", "start", "resume", "unrescue"}
EVENT_NAMES = {"reboot_soft": "reboot", "reboot_hard": "reboot", "stop": "stop", "start": "start",
               "pause": "pause", "unpause": "unpause", "suspend": "suspend", "resume": "resume",
               "unrescue": "unrescue"}


class ComputeHost:
    def __init__(self, name: str, driver: vd.VirtDriver):
        self.name = name
        self.driver = driver

    # -- registration ------------------------------------------------------------
    def register(self) -> None:
        rt = current()
        _register_service(self.name, "nova-compute", "compute",
                          rt.config.get("compute", "default_availability_zone") or "nova")
        res = self.driver.get_available_resources()
        ratios = {k: _conf_float(f"{k}_allocation_ratio", d)
                  for k, d in (("cpu", 16.0), ("ram", 1.5), ("disk", 1.0))}
        with rt.db.session() as sess:
            node = sess.scalars(select(ComputeNode).where(ComputeNode.hypervisor_hostname ==
                                                          res.hypervisor_hostname)).first()
            if node is None:
                node = ComputeNode(uuid=str(uuidlib.uuid4()), host=self.name,
                                   hypervisor_hostname=res.hypervisor_hostname, vcpus_used=0, memory_mb_used=0,
                                   local_gb_used=0, running_vms=0, created_at=utcnow(), started_at=utcnow())
                sess.add(node)
            node.hypervisor_type = res.hypervisor_type
            node.hypervisor_version = res.hypervisor_version
            node.host_ip = res.host_ip
            node.vcpus, node.memory_mb, node.local_gb = res.vcpus, res.memory_mb, res.local_gb
            node.cpu_info = res.cpu_info
            node.cpu_allocation_ratio = ratios["cpu"]
            node.ram_allocation_ratio = ratios["ram"]
            node.disk_allocation_ratio = ratios["disk"]
            node.started_at = utcnow()
            node.updated_at = utcnow()
            node.state = "up"

    def _plugged(self, inst: Instance, **extra) -> vd.InstanceInfo:
        """`instance_info` with the ports plugged: for every operation that may start QEMU."""
        info = instance_info(inst, **extra)
        info.network_info = plug_vifs(info.network_info)
        return info

    def sync_power_states(self) -> None:
        """On start, align the database with what the hypervisor really runs (Nova's
        `_sync_power_states`): a server whose guest died is SHUTOFF (vm_state stopped);
        guests the database does not know are logged, never killed. Plugs the ports of the
        known guests again, so the dataplane serves their networks after a restart."""
        lister = getattr(self.driver, "list_instances", None)
        if lister is None:  # the fake driver keeps nothing across restarts
            return
        try:
            found = lister()
        except Exception:  # noqa: BLE001
            log.exception("listing the instances of %s failed", self.name)
            return
        with current().db.session() as sess:
            rows = list(sess.scalars(select(Instance).where(Instance.host == self.name,
                                                            Instance.deleted.is_(False))))
            known = {i.uuid for i in rows}
            for inst in rows:
                state = found.get(inst.uuid)
                if state is None:
                    if inst.vm_state not in ("building", "error", "shelved_offloaded"):
                        log.warning("server %s has no guest on %s", inst.uuid, self.name)
                        inst.power_state = vd.NOSTATE
                    continue
                if state != inst.power_state:
                    log.info("server %s: power state %s in the database, %s on %s", inst.uuid,
                             inst.power_state, state, self.name)
                    inst.power_state = state
                if inst.vm_state in ("active", "paused", "rescued") and state in (vd.SHUTDOWN, vd.CRASHED):
                    log.warning("server %s: its guest is gone (QEMU not running); now SHUTOFF", inst.uuid)
                    inst.vm_state, inst.task_state = "stopped", None
                inst.updated_at = utcnow()
        for uuid in sorted(set(found) - known):
            log.warning("unknown guest %s on %s (no server in the database); left running", uuid, self.name)
        for inst in rows:
            if inst.uuid in found:
                try:
                    plug_vifs(instance_info(inst).network_info)
                except vd.DriverError as exc:
                    log.warning("re-plugging the ports of %s failed: %s", inst.uuid, exc)

    def host_info(self) -> dict:
        res = self.driver.get_available_resources()
        return {"host": self.name, "hypervisor_type": res.hypervisor_type, "vcpus": res.vcpus,
                "memory_mb": res.memory_mb, "local_gb": res.local_gb, "uptime": self.driver.uptime()}

    # -- build / terminate ---------------------------------------------------------
    def build_and_run_instance(self, instance_uuid: str, request_id: str | None = None,
                               admin_password: str | None = None) -> None:
        """Spawn on this host; raises `vd.DriverError` for the conductor to reschedule."""
        inst = load(instance_uuid)
        if inst is None or inst.deleted:
            return
        with instance_actions.Event(instance_uuid, request_id, "compute_build_and_run_instance", self.name):
            if not save(instance_uuid, "block_device_mapping", task_state="spawning"):
                return
            self.driver.spawn(self._plugged(inst, admin_password=admin_password))
        save(instance_uuid, "spawning", vm_state="active", task_state=None, power_state=vd.RUNNING,
             launched_at=utcnow(), progress=100)

    def terminate_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        inst = load(instance_uuid)
        if inst is None:
            return
        with instance_actions.Event(instance_uuid, request_id, "compute_terminate_instance", self.name):
            if inst.vm_state == "resized":
                _confirm_resize_on_deleting(inst)
            info = instance_info(inst)
            try:
                self.driver.destroy(info)
            except vd.DriverError:
                log.warning("destroying %s failed on %s; deleting anyway", instance_uuid, self.name)
            unplug_vifs([v["id"] for v in info.network_info])

    # -- power operations ------------------------------------------------------------
    def run_simple(self, op: str, instance_uuid: str, request_id: str | None = None) -> None:
        method, expected, final = SIMPLE_OPS[op]
        inst = load(instance_uuid)
        if inst is None or inst.deleted:
            return
        try:
            with instance_actions.Event(instance_uuid, request_id, f"compute_{EVENT_NAMES[op]}_instance",
                                        self.name):
                info = self._plugged(inst) if op in PLUGGING_OPS else instance_info(inst)
                if op == "reboot_soft" or op == "reboot_hard":
                    self.driver.reboot(info, hard=(op == "reboot_hard"))
                else:
                    getattr(self.driver, method)(info)
        except vd.DriverError as exc:
            save(instance_uuid, expected, task_state=None)
            add_fault(instance_uuid, 500, str(exc), host=self.name)
            return
        save(instance_uuid, expected, task_state=None, **final)
        notify(instance_uuid, f"{EVENT_NAMES[op]}.end")

    def rescue_instance(self, instance_uuid: str, request_id: str | None = None,
                        rescue_image_ref: str | None = None) -> None:
        inst = load(instance_uuid)
        if inst is None or inst.deleted:
            return
        try:
            with instance_actions.Event(instance_uuid, request_id, "compute_rescue_instance", self.name):
                self.driver.rescue(self._plugged(inst), rescue_image_ref or inst.image_ref)
        except vd.DriverError:
            save(instance_uuid, "rescuing", task_state=None)
            return
        save(instance_uuid, "rescuing", task_state=None, vm_state="rescued", power_state=vd.RUNNING)
        notify(instance_uuid, "rescue.end")

    def set_admin_password(self, instance_uuid: str, request_id: str | None, password: str) -> None:
        inst = load(instance_uuid)
        if inst is None:
            return
        with instance_actions.Event(instance_uuid, request_id, "compute_set_admin_password", self.name):
            self.driver.set_admin_password(instance_info(inst), password)

    def trigger_crash_dump(self, instance_uuid: str, request_id: str | None = None) -> None:
        inst = load(instance_uuid)
        if inst is None:
            return
        with instance_actions.Event(instance_uuid, request_id, "compute_trigger_crash_dump", self.name):
            self.driver.inject_nmi(instance_info(inst))

    # -- images ------------------------------------------------------------------------
    def snapshot_instance(self, instance_uuid: str, request_id: str | None, image_id: str,
                          expected_task_state: str = "image_snapshot", final: dict | None = None,
                          rotation: int | None = None, backup_type: str | None = None) -> None:
        """Copy the root disk into the (already created, queued) image `image_id`."""
        from pocketstack.image import core as image_core

        inst = load(instance_uuid)
        if inst is None:
            return
        try:
            with instance_actions.Event(instance_uuid, request_id, "compute_snapshot_instance", self.name):
                save(instance_uuid, expected_task_state, task_state="image_pending_upload")
                data = self.driver.snapshot(instance_info(inst))
                save(instance_uuid, "image_pending_upload", task_state="image_uploading")
                image_core.upload(None, image_id, iter([data]), len(data))
        except Exception as exc:  # noqa: BLE001 - the image is left queued/killed, the server unharmed
            log.warning("snapshot of %s into %s failed: %s", instance_uuid, image_id, exc)
            try:
                image_core.delete_image(None, image_id)  # no half-made snapshot stays behind
            except Exception:  # noqa: BLE001
                log.exception("deleting the failed snapshot %s failed", image_id)
            save(instance_uuid, ["image_pending_upload", "image_uploading", expected_task_state],
                 task_state=None, **(final or {}))
            return
        save(instance_uuid, ["image_uploading", "image_pending_upload"], task_state=None, **(final or {}))
        notify(instance_uuid, "snapshot.end", image_id=image_id)
        if rotation is not None:
            rotate_backups(instance_uuid, backup_type or "", rotation)

    def upload_snapshot(self, instance_uuid: str, image_id: str) -> None:
        """The root disk into a queued image, without touching the server's state (shelve)."""
        from pocketstack.image import core as image_core

        inst = load(instance_uuid)
        data = self.driver.snapshot(instance_info(inst))
        image_core.upload(None, image_id, iter([data]), len(data))

    # -- consoles and inspection -----------------------------------------------------
    def get_console_output(self, instance_uuid: str) -> str:
        inst = load(instance_uuid)
        return self.driver.get_console_output(instance_info(inst))

    def get_console(self, instance_uuid: str, console_type: str) -> dict:
        inst = load(instance_uuid)
        return self.driver.get_console(instance_info(inst), console_type)

    def get_info(self, instance_uuid: str) -> int:
        inst = load(instance_uuid)
        return self.driver.get_info(instance_info(inst))

    # -- moves (the conductor drives the sequence; each host does its half) ------------
    def migrate_disk_and_power_off(self, instance_uuid: str, dest_host: str) -> None:
        inst = load(instance_uuid)
        self.driver.migrate_disk_and_power_off(instance_info(inst), dest_host)

    def finish_migration(self, instance_uuid: str) -> None:
        inst = load(instance_uuid)
        self.driver.finish_migration(self._plugged(inst))

    def finish_revert_migration(self, instance_uuid: str) -> None:
        inst = load(instance_uuid)
        self.driver.finish_revert_migration(self._plugged(inst))

    def confirm_migration(self, instance_uuid: str) -> None:
        inst = load(instance_uuid)
        self.driver.confirm_migration(instance_info(inst))

    def live_migrate(self, instance_uuid: str, dest_host: str) -> None:
        inst = load(instance_uuid)
        self.driver.live_migrate(instance_info(inst), dest_host)

    def spawn_rebuilt(self, instance_uuid: str) -> None:
        inst = load(instance_uuid)
        self.driver.rebuild(self._plugged(inst))

    def spawn_plain(self, instance_uuid: str) -> None:
        inst = load(instance_uuid)
        self.driver.spawn(self._plugged(inst))

    def power_off_plain(self, instance_uuid: str) -> None:
        inst = load(instance_uuid)
        self.driver.power_off(instance_info(inst))

    def power_on_plain(self, instance_uuid: str) -> None:
        inst = load(instance_uuid)
        self.driver.power_on(self._plugged(inst))

    def destroy_plain(self, instance_uuid: str) -> None:
        inst = load(instance_uuid)
        info = instance_info(inst)
        self.driver.destroy(info)
        unplug_vifs([v["id"] for v in info.network_info])

    # -- devices -------------------------------------------------------------------------
    def attach_interface(self, instance_uuid: str, vif: dict) -> None:
        inst = load(instance_uuid)
        [vif] = plug_vifs([vif])
        self.driver.attach_interface(instance_info(inst), vif)

    def detach_interface(self, instance_uuid: str, vif: dict) -> None:
        inst = load(instance_uuid)
        self.driver.detach_interface(instance_info(inst), vif)
        unplug_vifs([vif["id"]])

    def attach_volume(self, instance_uuid: str, connection_info: dict, mountpoint: str) -> None:
        inst = load(instance_uuid)
        self.driver.attach_volume(instance_info(inst), connection_info, mountpoint)

    def detach_volume(self, instance_uuid: str, connection_info: dict, mountpoint: str) -> None:
        inst = load(instance_uuid)
        self.driver.detach_volume(instance_info(inst), connection_info, mountpoint)


def _confirm_resize_on_deleting(inst: Instance) -> None:
    """Deleting a RESIZED server confirms the resize on the source first (Nova's
    `_confirm_resize_on_deleting`), so the source host drops the guest it kept for a revert."""
    from pocketstack.compute import rpc
    from pocketstack.compute.models import Migration

    with current().db.session() as sess:
        mig = sess.scalars(select(Migration).where(Migration.instance_uuid == inst.uuid,
                                                   Migration.status == "finished")
                           .order_by(Migration.id.desc())).first()
        source = mig.source_compute if mig is not None else None
    if not source:
        return
    try:
        rpc.call(source, "confirm_migration", instance_uuid=inst.uuid)
    except Exception:  # noqa: BLE001 - the delete goes on; the leftovers are logged
        log.exception("confirming the resize of %s on %s before deleting it failed", inst.uuid, source)


def rotate_backups(instance_uuid: str, backup_type: str, rotation: int) -> None:
    """createBackup's rotation: keep the newest `rotation` backups of this type, delete the rest."""
    from pocketstack.image import core as image_core

    q = image_core.ListQuery(filters={"instance_uuid": [instance_uuid], "image_type": ["backup"],
                                      "backup_type": [backup_type]}, visibility="all", os_hidden=None)
    with current().db.session() as sess:
        images, _ = image_core.list_images(sess, None, q)
    for img in images[rotation:]:  # newest first
        try:
            image_core.delete_image(None, img["id"])
        except Exception:  # noqa: BLE001
            log.exception("rotating out backup %s failed", img["id"])
