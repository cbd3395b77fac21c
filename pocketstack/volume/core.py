"""The Block Storage service's public Python interface, for other services.

Compute attaches, detaches, boots from and snapshots volumes through these calls (never
the volume tables):

    get_volume(ctx, volume_id) -> dict                    # id, status, size, multiattach, bootable,
                                                          # volume_image_metadata, attachments, ...
    get_snapshot(ctx, snapshot_id) -> dict                # id, status, size, volume_id
    create_volume(ctx, size, *, name, image_id=None, snapshot_id=None, description=None) -> str
    wait_for_volume(volume_id, timeout) -> dict           # until available (VolumeNotReady otherwise)
    wait_for_snapshot(snapshot_id, timeout) -> dict
    create_snapshot(ctx, volume_id, name, description=None, force=True) -> str
    delete_snapshot(ctx, snapshot_id) -> None
    attach(ctx, volume_id, instance_uuid, host, mountpoint, mode=None)
        -> {"attachment_id", "connection_info"}           # reserve + connect + complete
    reserve(ctx, volume_id, instance_uuid) -> attachment_id      # boot: the volume is `reserved`
    connect(attachment_id, host, mountpoint) -> connection_info  # ... then `in-use` on that host
    disconnect(attachment_id) -> None                     # back to `reserved` (shelve offload)
    connection_info(attachment_id) -> dict | None         # what the host was given
    detach(ctx, attachment_id) -> None
    delete_volume(ctx, volume_id) -> None                 # delete_on_termination
    reimage(volume_id, image_id) -> None                  # rebuild of a volume-backed server (2.93)

`ctx` is the caller's auth context (policy and project visibility apply as in the API);
`None` means the service itself. Errors are the volume service's `ApiError`s (404 for a
volume the caller cannot see, 400 for one in the wrong state), which the calling API
renders in its own error format. `connection_info` is the backend's answer for the host,
e.g. `{"driver_volume_type": "file", "data": {"device_path": ..., "format": "raw", ...}}`.
"""
from __future__ import annotations

import time

from sqlalchemy import select

from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import current
from pocketstack.volume import attachments, snapshots, volumes
from pocketstack.volume import models as m


class VolumeNotReady(ApiError):
    """A volume (or snapshot) ended in an error state or did not become available in time."""

    code = 500


def _volume_dict(sess, vol: m.Volume) -> dict:
    return {"id": vol.id, "name": vol.name, "description": vol.description, "status": vol.status,
            "size": vol.size, "multiattach": vol.multiattach, "attach_status": vol.attach_status,
            "bootable": vol.bootable, "project_id": vol.project_id, "availability_zone": vol.availability_zone,
            "volume_image_metadata": volumes.image_metadata_of(sess, [vol.id]).get(vol.id, {}),
            "attachments": [{"attachment_id": a.id, "server_id": a.instance_uuid}
                            for a in volumes.attachments_of(sess, [vol.id])[vol.id]]}


def get_volume(ctx, volume_id: str) -> dict:
    with current().db.session() as sess:
        return _volume_dict(sess, volumes.load(sess, ctx, volume_id))


def get_snapshot(ctx, snapshot_id: str) -> dict:
    with current().db.session() as sess:
        snap = snapshots.load(sess, ctx, snapshot_id)
        return {"id": snap.id, "status": snap.status, "size": snap.size, "volume_id": snap.volume_id,
                "project_id": snap.project_id}


def create_volume(ctx, size: int | None, *, name: str = "", image_id: str | None = None,
                  snapshot_id: str | None = None, description: str | None = None) -> str:
    """A new volume (asynchronous: `creating`, then `available` or `error`), as the API makes it.
    One from a snapshot inherits its source volume's image metadata and bootable flag."""
    body: dict = {"name": name}
    if size is not None:
        body["size"] = size
    if description is not None:
        body["description"] = description
    if image_id:
        body["imageRef"] = image_id
    if snapshot_id:
        body["snapshot_id"] = snapshot_id
    volume_id = volumes.create(ctx, body)
    if snapshot_id:
        with current().db.session() as sess:
            snap = sess.get(m.Snapshot, snapshot_id)
            source = sess.get(m.Volume, snap.volume_id) if snap is not None else None
            vol = sess.get(m.Volume, volume_id)
            if source is not None and vol is not None:
                vol.bootable = vol.bootable or source.bootable
                have = volumes.image_metadata_of(sess, [volume_id]).get(volume_id, {})
                for key, value in volumes.image_metadata_of(sess, [source.id]).get(source.id, {}).items():
                    if key not in have:
                        sess.add(m.VolumeImageMetadata(volume_id=volume_id, key=key, value=value))
    return volume_id


def _wait(load, what: str, object_id: str, timeout: float, transient: tuple[str, ...]) -> dict:
    """Poll until `available`; anything else than a transient status ends it with Nova's
    VolumeNotCreated message (seconds waited, attempts, the status it ended in)."""
    start = time.monotonic()
    delay, attempts = 0.05, 0
    while True:
        attempts += 1
        with current().db.session() as sess:
            found = load(sess)
        status = found["status"] if found is not None else "deleted"
        if status == "available":
            return found
        waited = time.monotonic() - start
        if status not in transient or waited >= timeout:
            raise VolumeNotReady(f"{what} {object_id} did not finish being created even after we waited "
                                 f"{int(waited)} seconds or {attempts} attempts. And its status is {status}.")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def wait_for_volume(volume_id: str, timeout: float = 180.0) -> dict:
    def load(sess):
        vol = sess.get(m.Volume, volume_id)
        return _volume_dict(sess, vol) if vol is not None else None

    return _wait(load, "Volume", volume_id, timeout, ("creating", "downloading"))


def wait_for_snapshot(snapshot_id: str, timeout: float = 180.0) -> dict:
    def load(sess):
        snap = sess.get(m.Snapshot, snapshot_id)
        return {"id": snap.id, "status": snap.status, "size": snap.size} if snap is not None else None

    return _wait(load, "Snapshot", snapshot_id, timeout, ("creating",))


def create_snapshot(ctx, volume_id: str, name: str, description: str | None = None, *, force: bool = True) -> str:
    body = {"volume_id": volume_id, "name": name, "force": force}
    if description is not None:
        body["description"] = description
    return snapshots.create(ctx, body, in_use_allowed=False)


def delete_snapshot(ctx, snapshot_id: str) -> None:
    snapshots.delete(ctx, snapshot_id, force=True)


def attach(ctx, volume_id: str, instance_uuid: str, host: str | None, mountpoint: str,
           mode: str | None = None) -> dict:
    """Reserve, connect and complete an attachment in one transaction (all or nothing)."""
    connector = {"host": host or "", "mountpoint": mountpoint, "instance": instance_uuid}
    with current().db.session() as sess:
        body = {"volume_uuid": volume_id, "instance_uuid": instance_uuid, "connector": connector}
        if mode:
            body["mode"] = mode
        att = attachments.create(sess, ctx, body)
        attachments.complete(sess, ctx, att.id)
        return {"attachment_id": att.id, "connection_info": att.connection_info}


def reserve(ctx, volume_id: str, instance_uuid: str) -> str:
    """An attachment without a host yet (the volume is `reserved` for this server)."""
    with current().db.session() as sess:
        return attachments.create(sess, ctx, {"volume_uuid": volume_id, "instance_uuid": instance_uuid}).id


def connect(attachment_id: str, host: str | None, mountpoint: str) -> dict:
    """Give a reserved attachment its host and complete it: the volume is `in-use`."""
    with current().db.session() as sess:
        att, _vol = attachments.load(sess, None, attachment_id)
        connector = {"host": host or "", "mountpoint": mountpoint, "instance": att.instance_uuid}
        att = attachments.update(sess, None, attachment_id, {"connector": connector})
        attachments.complete(sess, None, attachment_id)
        return dict(att.connection_info or {})


def disconnect(attachment_id: str) -> None:
    """The host lets go of the volume, the server keeps it (`reserved`), as for shelve offload."""
    with current().db.session() as sess:
        att, vol = attachments.load(sess, None, attachment_id)
        if att.connector:
            from pocketstack.volume import manager

            manager.backend().terminate_connection(vol.id, att.connector)
        att.connector, att.connection_info, att.attached_host = None, None, None
        att.attach_status = "reserved"
        attachments._sync_status(sess, vol)


def connection_info(attachment_id: str) -> dict | None:
    with current().db.session() as sess:
        att = sess.get(m.Attachment, attachment_id) if attachment_id else None
        return dict(att.connection_info) if att is not None and att.connection_info else None


def detach(ctx, attachment_id: str) -> None:
    with current().db.session() as sess:
        attachments.delete(sess, ctx, attachment_id)


def delete_volume(ctx, volume_id: str) -> None:
    volumes.delete(ctx, volume_id)


def reimage(volume_id: str, image_id: str) -> None:
    """Write `image_id` over the volume (Cinder's os-reimage, for Nova's 2.93 rebuild of a
    volume-backed server): `downloading` meanwhile, then back to its status with the new
    image metadata; a failed copy leaves `error`."""
    from pocketstack.common.errors import BadRequest
    from pocketstack.image import core as image_core

    image = image_core.get_image(image_id)
    image_gb = max(1, -(-int(image.get("size") or 0) // (1 << 30)), int(image.get("min_disk") or 0))
    with current().db.session() as sess:
        vol = sess.get(m.Volume, volume_id)
        if vol is None:
            raise volumes.not_found(volume_id)
        if image_gb > vol.size:
            raise BadRequest(f"Invalid input received: Image {image_id} needs {image_gb}GB and does not fit in "
                             f"volume {volume_id} of {vol.size}GB.")
        previous, size = vol.status, vol.size
    volumes.set_status(volume_id, "downloading")
    try:
        volumes._copy_image(volume_id, image_id, size)
    except Exception as exc:
        volumes.set_status(volume_id, "error")
        raise VolumeNotReady(f"Reimaging volume {volume_id} failed: {exc}") from None
    with current().db.session() as sess:
        for row in sess.scalars(select(m.VolumeImageMetadata).where(m.VolumeImageMetadata.volume_id == volume_id)):
            sess.delete(row)
        sess.flush()
        for key, value in volumes._image_properties(image).items():
            sess.add(m.VolumeImageMetadata(volume_id=volume_id, key=key, value=value))
    volumes.set_status(volume_id, previous)



# ---------------------------------------------------------------------------- Nova's ≤2.35 proxies
def create_volume_as_requested(ctx, body: dict) -> str:
    """A volume from a Cinder create body (name, description, size, snapshot_id, volume_type,
    metadata, availability_zone): what Nova's os-volumes proxy asks for. Asynchronous."""
    return volumes.create(ctx, body)


def delete_snapshot_as_requested(ctx, snapshot_id: str) -> None:
    """Delete a snapshot as the caller's own API request would (no force, policy applies)."""
    snapshots.delete(ctx, snapshot_id)


def describe_volumes(ctx, volume_id: str | None = None) -> list[dict]:
    """The volumes the caller sees (or the one `volume_id`, 404 otherwise) in the volume API's order, with
    their type name, metadata and attachments (server and mountpoint): one query each."""
    with current().db.session() as sess:
        if volume_id is not None:
            rows = [volumes.load(sess, ctx, volume_id)]
        else:
            rows = volumes.list_volumes(sess, ctx, {})
        ids = [v.id for v in rows]
        meta = volumes.metadata_of(sess, ids)
        attached = volumes.attachments_of(sess, ids)
        type_ids = {v.volume_type_id for v in rows if v.volume_type_id}
        types = {t.id: t.name for t in sess.scalars(select(m.VolumeType).where(m.VolumeType.id.in_(type_ids)))} \
            if type_ids else {}
        return [{"id": v.id, "name": v.name, "description": v.description, "status": v.status, "size": v.size,
                 "availability_zone": v.availability_zone, "created_at": v.created_at,
                 "attach_status": v.attach_status, "snapshot_id": v.snapshot_id,
                 "volume_type": types.get(v.volume_type_id), "metadata": meta.get(v.id, {}),
                 "attachments": [{"server_id": a.instance_uuid, "mountpoint": a.mountpoint}
                                 for a in attached.get(v.id, []) if a.instance_uuid]}
                for v in rows]


def describe_snapshots(ctx, snapshot_id: str | None = None) -> list[dict]:
    """The snapshots the caller sees (or the one `snapshot_id`, 404 otherwise), in the API's order."""
    with current().db.session() as sess:
        if snapshot_id is not None:
            rows = [snapshots.load(sess, ctx, snapshot_id)]
        else:
            rows = snapshots.list_snapshots(sess, ctx, {})
        return [{"id": s.id, "volume_id": s.volume_id, "status": s.status, "size": s.size,
                 "created_at": s.created_at, "name": s.name, "description": s.description} for s in rows]
