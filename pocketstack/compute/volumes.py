"""Compute's side of volume attachments: block device mappings in step with the volume service.

`attach` asks the volume service (its public interface, `pocketstack.volume.core`) for an
attachment, has the instance's host plug the disk in through the virt driver, and records
a block device mapping; `detach` undoes the three in reverse. A failure in the driver
step releases the volume's attachment again, so the two services never disagree. When a
server is deleted, `detach_all` detaches every volume (and deletes those marked
`delete_on_termination`, a volume-backed server's root volume included). Boot from volume
lives in `block_device.py`.
"""
from __future__ import annotations

import logging
import re
import uuid

from sqlalchemy import select

from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.common.runtime import current
from pocketstack.compute import rpc
from pocketstack.compute.block_device import volume_core as _volume_core
from pocketstack.compute.models import BlockDeviceMapping, Instance

log = logging.getLogger("pocketstack.compute")
DEVICE = re.compile(r"^/dev/[a-z]+[a-z0-9]*$")


def _used_devices(sess, instance_uuid: str) -> set[str]:
    rows = sess.scalars(select(BlockDeviceMapping.device_name).where(
        BlockDeviceMapping.instance_uuid == instance_uuid))
    return {r for r in rows if r} | {"/dev/vda"}


def _next_device(used: set[str]) -> str:
    for letter in "bcdefghijklmnopqrstuvwxyz":
        if f"/dev/vd{letter}" not in used:
            return f"/dev/vd{letter}"
    raise BadRequest("No free disk device names for prefix 'vd'")


def attach(ctx, inst: Instance, volume_id: str, *, device: str | None = None, tag: str | None = None,
           delete_on_termination: bool = False) -> BlockDeviceMapping:
    core = _volume_core()
    if core is None:
        raise NotFound(f"Volume {volume_id} could not be found.")
    if device is not None and (not isinstance(device, str) or not DEVICE.match(device)):
        raise BadRequest(f"The supplied device path ({device}) is invalid.")
    with current().db.session() as sess:
        existing = sess.scalars(select(BlockDeviceMapping).where(
            BlockDeviceMapping.instance_uuid == inst.uuid, BlockDeviceMapping.volume_id == volume_id)).first()
        if existing is not None:
            raise BadRequest(f"Invalid volume: volume {volume_id} already attached")
        used = _used_devices(sess, inst.uuid)
    if device in used:
        raise BadRequest(f"The supplied device path ({device}) is in use.")
    device = device or _next_device(used)
    try:
        core.get_volume(ctx, volume_id)
    except NotFound:
        raise NotFound(f"Volume {volume_id} could not be found.") from None
    info = core.attach(ctx, volume_id, inst.uuid, inst.host, device)
    try:
        if inst.host:
            rpc.call(inst.host, "attach_volume", instance_uuid=inst.uuid,
                     connection_info=info["connection_info"], mountpoint=device)
    except Exception:
        log.exception("attaching volume %s to %s failed in the driver", volume_id, inst.uuid)
        core.detach(None, info["attachment_id"])
        raise Conflict(f"Failed to attach volume {volume_id} to server {inst.uuid}.") from None
    bdm = BlockDeviceMapping(uuid=str(uuid.uuid4()), instance_uuid=inst.uuid, source_type="volume",
                             destination_type="volume", device_name=device, device_type="disk",
                             disk_bus="virtio", volume_id=volume_id, attachment_id=info["attachment_id"],
                             tag=tag, delete_on_termination=bool(delete_on_termination))
    with current().db.session() as sess:
        sess.add(bdm)
    return bdm


def detach(ctx, inst: Instance, volume_id: str) -> None:
    with current().db.session() as sess:
        bdm = sess.scalars(select(BlockDeviceMapping).where(
            BlockDeviceMapping.instance_uuid == inst.uuid, BlockDeviceMapping.volume_id == volume_id,
            BlockDeviceMapping.destination_type == "volume")).first()
        if bdm is None:
            raise NotFound(f"Volume {volume_id} is not attached to server {inst.uuid}.")
        if bdm.boot_index == 0:
            raise BadRequest("Cannot detach a root device volume")
    _release(ctx, inst, bdm)


def _release(ctx, inst: Instance | None, bdm: BlockDeviceMapping, *, deleting: bool = False) -> None:
    core = _volume_core()
    if not deleting and inst is not None and inst.host and bdm.attachment_id:  # a deleted guest is gone
        try:
            rpc.call(inst.host, "detach_volume", instance_uuid=inst.uuid, connection_info={},
                     mountpoint=bdm.device_name)
        except Exception:  # the guest or its host is gone: the volume is still released
            log.warning("driver detach of %s from %s failed; releasing the volume anyway",
                        bdm.volume_id, inst.uuid, exc_info=True)
    if core is not None and bdm.attachment_id:
        try:
            core.detach(None, bdm.attachment_id)
        except NotFound:
            pass
    if core is not None and deleting and bdm.delete_on_termination and bdm.volume_id:
        try:
            core.delete_volume(None, bdm.volume_id)
        except NotFound:
            pass
        except Exception:
            log.exception("deleting volume %s with its server failed", bdm.volume_id)
    with current().db.session() as sess:
        row = sess.get(BlockDeviceMapping, bdm.id)
        if row is not None:
            sess.delete(row)


def detach_all(ctx, instance_uuid: str) -> None:
    """Every attached volume of a deleted server: detached (and deleted if so marked)."""
    with current().db.session() as sess:
        inst = sess.scalars(select(Instance).where(Instance.uuid == instance_uuid)).first()
        bdms = list(sess.scalars(select(BlockDeviceMapping).where(
            BlockDeviceMapping.instance_uuid == instance_uuid, BlockDeviceMapping.destination_type == "volume",
            BlockDeviceMapping.volume_id.is_not(None))))
    for bdm in bdms:
        try:
            _release(ctx, inst, bdm, deleting=True)
        except Exception:
            log.exception("detaching volume %s from deleted server %s failed", bdm.volume_id, instance_uuid)
