"""Attachments: a volume connected to an instance, in both of Cinder's APIs.

The 3.27+ attachments API (create = reserve, update with a connector = connection info,
`os-complete` = attached, delete = detach) is what current Nova uses; the legacy volume
actions (`os-reserve`, `os-attach`, `os-begin_detaching`, `os-detach`,
`os-initialize_connection`, `os-terminate_connection`, ...) what older clients and Tempest's
volume-action tests use. Both keep one table of attachments, and the volume's status and
`attach_status` follow from it: `reserved`/`attaching` -> `in-use` -> `detaching` ->
`available`. A volume that is not multiattach takes one attachment at a time.
"""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.volume import manager, volumes
from pocketstack.volume import models as m


def _live(sess: Session, volume_id: str) -> list[m.Attachment]:
    return list(sess.execute(select(m.Attachment).where(m.Attachment.volume_id == volume_id)
                             .order_by(m.Attachment.created_at)).scalars())


def _emit(event: str, vol: m.Volume, att: m.Attachment | None, ctx) -> None:
    events.emit(f"volume.{event}", {"volume_id": vol.id, "project_id": vol.project_id, "status": vol.status,
                                    "attachment_id": att.id if att else None,
                                    "instance_uuid": att.instance_uuid if att else None}, context=ctx)


def _sync_status(sess: Session, vol: m.Volume) -> None:
    """Derive the volume's status from its attachments (after any change)."""
    atts = _live(sess, vol.id)
    if any(a.attach_status == "attached" for a in atts):
        vol.status, vol.attach_status = "in-use", "attached"
    elif any(a.attach_status == "detaching" for a in atts):
        vol.status, vol.attach_status = "detaching", "attached"
    elif any(a.attach_status == "attaching" for a in atts):
        vol.status, vol.attach_status = "attaching", "attaching"
    elif atts:
        vol.status, vol.attach_status = "reserved", "reserved"
    else:
        vol.status, vol.attach_status = "available", "detached"
    vol.updated_at = utcnow()


def _check_attachable(sess: Session, vol: m.Volume, instance_uuid: str | None) -> None:
    atts = _live(sess, vol.id)
    if vol.status not in ("available", "in-use", "reserved", "downloading") or (
            vol.status in ("in-use", "reserved") and not vol.multiattach):
        raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available or downloading to reserve, "
                         f"but the current status is {vol.status}.")
    if instance_uuid and any(a.instance_uuid == instance_uuid for a in atts):
        raise BadRequest(f"Invalid volume: Volume {vol.id} is already attached to instance {instance_uuid}.")


def _mode(sess: Session, vol: m.Volume, requested: str | None) -> str:
    readonly = volumes.admin_metadata_of(sess, vol.id).get("readonly", "False") == "True"
    mode = requested or ("ro" if readonly else "rw")
    if mode not in ("rw", "ro"):
        raise BadRequest(f"Invalid attach mode {mode!r}: it must be 'rw' or 'ro'.")
    if readonly and mode == "rw":
        raise BadRequest(f"Invalid volume: Volume {vol.id} is read-only and can only be attached in 'ro' mode.")
    return mode


def connection_info(vol: m.Volume, connector: dict | None, mode: str, attachment_id: str) -> dict:
    info = manager.backend().initialize_connection(vol.id, connector or {})
    info.setdefault("data", {})
    info["data"].update({"access_mode": mode, "attachment_id": attachment_id, "volume_id": vol.id,
                         "encrypted": vol.encrypted})
    info["driver_volume_type"] = info.get("driver_volume_type", "file")
    return info


# ---------------------------------------------------------------------------- 3.27+ API
def create(sess: Session, ctx, body: dict) -> m.Attachment:
    volume_id = body.get("volume_uuid")
    instance_uuid = body.get("instance_uuid")
    if not isinstance(volume_id, str) or not volume_id:
        raise BadRequest("Invalid input received: volume_uuid is required.")
    vol = volumes.load(sess, ctx, volume_id, "volume:attachment_create")
    _check_attachable(sess, vol, instance_uuid)
    mode = _mode(sess, vol, body.get("mode"))
    att = m.Attachment(id=str(uuid.uuid4()), volume_id=vol.id, instance_uuid=instance_uuid,
                       attach_mode=mode, attach_status="reserved", created_at=utcnow())
    connector = body.get("connector")
    if connector is not None:
        if not isinstance(connector, dict):
            raise BadRequest("Invalid input received: connector must be an object.")
        att.connector = connector
        att.attached_host = connector.get("host")
        att.mountpoint = connector.get("mountpoint")
        att.connection_info = connection_info(vol, connector, mode, att.id)
        att.attach_status = "attaching"
    sess.add(att)
    sess.flush()
    _sync_status(sess, vol)
    _emit("attach.start", vol, att, ctx)
    return att


def load(sess: Session, ctx, attachment_id: str) -> tuple[m.Attachment, m.Volume]:
    att = sess.get(m.Attachment, attachment_id) if attachment_id else None
    if att is None:
        raise NotFound(f"Volume attachment {attachment_id} could not be found.")
    try:
        vol = volumes.load(sess, ctx, att.volume_id, "volume:attachment_get")
    except NotFound:
        raise NotFound(f"Volume attachment {attachment_id} could not be found.") from None
    return att, vol


def update(sess: Session, ctx, attachment_id: str, body: dict) -> m.Attachment:
    att, vol = load(sess, ctx, attachment_id)
    volumes.enforce(ctx, "volume:attachment_update", vol.project_id)
    connector = body.get("connector")
    if not isinstance(connector, dict) or not connector:
        raise BadRequest("Invalid input received: Connector is required to update an attachment.")
    att.connector = connector
    att.attached_host = connector.get("host")
    att.mountpoint = connector.get("mountpoint") or att.mountpoint
    att.connection_info = connection_info(vol, connector, att.attach_mode, att.id)
    if att.attach_status == "reserved":
        att.attach_status = "attaching"
    att.updated_at = utcnow()
    _sync_status(sess, vol)
    return att


def complete(sess: Session, ctx, attachment_id: str) -> None:
    att, vol = load(sess, ctx, attachment_id)
    volumes.enforce(ctx, "volume:attachment_complete", vol.project_id)
    att.attach_status = "attached"
    att.attach_time = att.attach_time or utcnow()
    _sync_status(sess, vol)
    _emit("attach.end", vol, att, ctx)


def delete(sess: Session, ctx, attachment_id: str) -> str:
    att, vol = load(sess, ctx, attachment_id)
    volumes.enforce(ctx, "volume:attachment_delete", vol.project_id)
    if att.connector:
        manager.backend().terminate_connection(vol.id, att.connector)
    sess.delete(att)
    sess.flush()
    _sync_status(sess, vol)
    _emit("detach.end", vol, att, ctx)
    return vol.attach_status


def list_attachments(sess: Session, ctx, query: dict) -> list[m.Attachment]:
    q = select(m.Attachment, m.Volume).join(m.Volume, m.Volume.id == m.Attachment.volume_id)
    all_tenants = str(query.get("all_tenants", "")).lower() in ("1", "true", "yes", "on", "t")
    if not (ctx.is_admin and all_tenants):
        q = q.where(m.Volume.project_id == ctx.project_id)
    for key, col in (("volume_id", m.Attachment.volume_id), ("instance_id", m.Attachment.instance_uuid),
                     ("status", m.Attachment.attach_status)):
        if key in query:
            q = q.where(col == query[key])
    return [row[0] for row in sess.execute(q.order_by(m.Attachment.created_at.desc()))]


def render(att: m.Attachment, *, detail: bool = True) -> dict:
    body = {"id": att.id, "status": att.attach_status, "instance": att.instance_uuid, "volume_id": att.volume_id}
    if detail:
        body.update({"attached_at": att.attach_time, "detached_at": att.detach_time, "attach_mode": att.attach_mode,
                     "connection_info": att.connection_info or {}})
    return body


# ---------------------------------------------------------------------------- legacy actions
def reserve(sess: Session, ctx, volume_id: str) -> None:
    vol = volumes.load(sess, ctx, volume_id, "volume_extension:volume_actions:reserve")
    _check_attachable(sess, vol, None)
    vol.status = "attaching"
    vol.updated_at = utcnow()


def unreserve(sess: Session, ctx, volume_id: str) -> None:
    vol = volumes.load(sess, ctx, volume_id, "volume_extension:volume_actions:unreserve")
    if vol.status == "attaching":
        _sync_status(sess, vol)


def attach(sess: Session, ctx, volume_id: str, body: dict) -> None:
    vol = volumes.load(sess, ctx, volume_id, "volume_extension:volume_actions:attach")
    instance_uuid, host_name = body.get("instance_uuid"), body.get("host_name")
    mountpoint = body.get("mountpoint")
    if not instance_uuid and not host_name:
        raise BadRequest("Invalid request to attach volume to an invalid target.")
    if not mountpoint or not isinstance(mountpoint, str):
        raise BadRequest("Must specify the mountpoint.")
    if instance_uuid:
        try:
            uuid.UUID(str(instance_uuid))
        except ValueError:
            raise BadRequest(f"Invalid UUID {instance_uuid!r}.") from None
    if vol.status not in ("attaching", "available", "reserved") and not (vol.multiattach and vol.status == "in-use"):
        raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available or attaching to attach, "
                         f"but the current status is {vol.status}.")
    mode = _mode(sess, vol, body.get("mode"))
    reserved = [a for a in _live(sess, vol.id) if a.attach_status == "reserved" and
                a.instance_uuid in (None, instance_uuid)]
    att = reserved[0] if reserved else m.Attachment(id=str(uuid.uuid4()), volume_id=vol.id, created_at=utcnow())
    att.instance_uuid, att.attached_host, att.mountpoint = instance_uuid, host_name, mountpoint
    att.attach_mode, att.attach_status, att.attach_time = mode, "attached", utcnow()
    if not reserved:
        sess.add(att)
    sess.flush()
    _sync_status(sess, vol)
    row = sess.get(m.VolumeAdminMetadata, (vol.id, "attached_mode"))
    if row is None:
        sess.add(m.VolumeAdminMetadata(volume_id=vol.id, key="attached_mode", value=mode))
    else:
        row.value = mode
    _emit("attach.end", vol, att, ctx)


def begin_detaching(sess: Session, ctx, volume_id: str) -> None:
    vol = volumes.load(sess, ctx, volume_id, "volume_extension:volume_actions:begin_detaching")
    if vol.status != "in-use" or vol.attach_status != "attached":
        raise BadRequest(f"Invalid volume: Unable to detach volume. Volume status must be 'in-use' and "
                         f"attach_status must be 'attached' to detach, but is {vol.status}/{vol.attach_status}.")
    vol.status = "detaching"
    vol.updated_at = utcnow()


def roll_detaching(sess: Session, ctx, volume_id: str) -> None:
    vol = volumes.load(sess, ctx, volume_id, "volume_extension:volume_actions:roll_detaching")
    if vol.status == "detaching":
        _sync_status(sess, vol)


def detach(sess: Session, ctx, volume_id: str, attachment_id: str | None, *, force: bool = False) -> None:
    rule = "volume_extension:volume_admin_actions:force_detach" if force else \
        "volume_extension:volume_actions:detach"
    vol = volumes.load(sess, ctx, volume_id, rule)
    atts = _live(sess, vol.id)
    if attachment_id:
        atts = [a for a in atts if a.id == attachment_id]
        if not atts:
            raise NotFound(f"Volume attachment {attachment_id} could not be found.")
    elif len(atts) > 1:
        raise BadRequest("Invalid volume: the volume has several attachments; name one with attachment_id.")
    if not atts:
        # As Cinder's manager: detaching a volume that has no attachment left just settles it
        # as available (a retried or cleanup detach succeeds), unless it is busy elsewhere.
        if vol.status == "maintenance" or (not force and vol.status in manager.TRANSIENT_VOLUME):
            raise BadRequest(f"Invalid volume: Volume {vol.id} is {vol.status}, it cannot be detached.")
        _sync_status(sess, vol)
        return
    for att in atts:
        att.detach_time = utcnow()
        sess.delete(att)
    sess.flush()
    _sync_status(sess, vol)
    meta = sess.get(m.VolumeAdminMetadata, (vol.id, "attached_mode"))
    if meta is not None and vol.attach_status == "detached":
        sess.delete(meta)
    _emit("detach.end", vol, atts[0], ctx)


def initialize_connection(sess: Session, ctx, volume_id: str, connector) -> dict:
    vol = volumes.load(sess, ctx, volume_id, "volume_extension:volume_actions:initialize_connection")
    if not isinstance(connector, dict):
        raise BadRequest("Must specify 'connector'.")
    mode = _mode(sess, vol, None)
    return connection_info(vol, connector, mode, "")


def terminate_connection(sess: Session, ctx, volume_id: str, connector) -> None:
    vol = volumes.load(sess, ctx, volume_id, "volume_extension:volume_actions:terminate_connection")
    if not isinstance(connector, dict):
        raise BadRequest("Must specify 'connector'.")
    manager.backend().terminate_connection(vol.id, connector)
