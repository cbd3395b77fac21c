"""The virt driver interface: everything a compute host asks of its hypervisor.

Written with a real QEMU/KVM (libvirt) driver in mind: every method receives a plain
`InstanceInfo` (the host agent's copy of the server's row: uuid, name, flavor, image,
key, user data, network info) and never touches the database, so a driver runs
unchanged inside a remote agent process. Methods block until the hypervisor is done
(the host agent runs them off the API threads) and raise `DriverError` with a message
fit for the server's `fault`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# power states, as Nova numbers them (`OS-EXT-STS:power_state`)
NOSTATE, RUNNING, PAUSED, SHUTDOWN, CRASHED, SUSPENDED = 0, 1, 3, 4, 6, 7


class DriverError(Exception):
    """A hypervisor operation failed; `message` ends up in the server's fault."""


@dataclass
class InstanceInfo:
    uuid: str
    name: str               # the hypervisor-side name, `instance-%08x`
    display_name: str
    flavor: dict            # {"vcpus", "ram", "disk", "ephemeral", "swap", "extra_specs", ...}
    image_ref: str = ""
    image_meta: dict = field(default_factory=dict)
    key_data: str | None = None
    user_data: str | None = None
    admin_password: str | None = None
    network_info: list = field(default_factory=list)
    # the volumes connected to this host, the boot volume (boot_index 0) first: dicts
    # {"boot_index": int | None, "device_name": "/dev/vdX", "volume_id": str,
    #  "connection_info": what volume.core gave this host, e.g. {"driver_volume_type": "file",
    #  "data": {"device_path": ..., "format": "raw", ...}}, "delete_on_termination": bool}.
    # A boot_index-0 entry is the root disk, whatever `image_ref` says (a server booted from a
    # volume-backed server's snapshot image has both; `image_ref` is "" otherwise).
    block_devices: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    config_drive: bool = False
    metadata_view: object = None  # compute.metadata.InstanceView: what the config drive carries


@dataclass
class HostResources:
    """What a host offers; the resource tracker reports it as the compute node."""

    hypervisor_type: str
    hypervisor_hostname: str
    vcpus: int
    memory_mb: int
    local_gb: int
    hypervisor_version: int = 1000
    host_ip: str = "127.0.0.1"
    cpu_info: dict = field(default_factory=dict)


class VirtDriver:
    """One hypervisor on one host. Console types are the `type`s `get_console` accepts."""

    console_types: tuple[str, ...] = ()
    snapshot_format: str = "qcow2"  # the disk_format of what `snapshot()` returns

    def __init__(self, host: str):
        self.host = host

    # -- the host ------------------------------------------------------------------
    def get_available_resources(self) -> HostResources:
        raise NotImplementedError

    def uptime(self) -> str:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------
    def spawn(self, instance: InstanceInfo) -> None:
        """Create and boot the guest (disks from the image, config drive, vifs plugged)."""
        raise NotImplementedError

    def destroy(self, instance: InstanceInfo) -> None:
        """Stop the guest and delete its disks; a guest that is already gone is fine."""
        raise NotImplementedError

    def reboot(self, instance: InstanceInfo, hard: bool) -> None:
        raise NotImplementedError

    def power_off(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def power_on(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def pause(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def unpause(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def suspend(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def resume(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def rescue(self, instance: InstanceInfo, rescue_image_ref: str) -> None:
        raise NotImplementedError

    def unrescue(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def snapshot(self, instance: InstanceInfo) -> bytes:
        """The root disk's content, uploaded by the agent into the image service."""
        raise NotImplementedError

    def rebuild(self, instance: InstanceInfo) -> None:
        """Re-create the root disk from `instance.image_ref` and boot again."""
        raise NotImplementedError

    # -- moves: resize/migrate copy disks to the destination, then spawn there --------
    def migrate_disk_and_power_off(self, instance: InstanceInfo, dest_host: str) -> None:
        raise NotImplementedError

    def finish_migration(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def finish_revert_migration(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def confirm_migration(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def live_migrate(self, instance: InstanceInfo, dest_host: str) -> None:
        raise NotImplementedError

    # -- devices -----------------------------------------------------------------
    def attach_interface(self, instance: InstanceInfo, vif: dict) -> None:
        raise NotImplementedError

    def detach_interface(self, instance: InstanceInfo, vif: dict) -> None:
        raise NotImplementedError

    def attach_volume(self, instance: InstanceInfo, connection_info: dict, mountpoint: str) -> None:
        raise NotImplementedError

    def detach_volume(self, instance: InstanceInfo, connection_info: dict, mountpoint: str) -> None:
        raise NotImplementedError

    # -- inspection ----------------------------------------------------------------
    def get_info(self, instance: InstanceInfo) -> int:
        """The guest's power state (one of the constants above)."""
        raise NotImplementedError

    def get_console_output(self, instance: InstanceInfo) -> str:
        raise NotImplementedError

    def get_console(self, instance: InstanceInfo, console_type: str) -> dict:
        """{"host", "port", "internal_access_path"?}: where the console proxy connects."""
        raise NotImplementedError

    def inject_nmi(self, instance: InstanceInfo) -> None:
        raise NotImplementedError

    def set_admin_password(self, instance: InstanceInfo, password: str) -> None:
        raise NotImplementedError
