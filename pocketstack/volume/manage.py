"""Manage / unmanage (admin): adopting backend storage the service does not know, and
forgetting a volume while keeping its data.

`manageable()` lists what the backend holds (`volume-<id>` files or LVs), marking the ones
that already belong to a volume as not safe to manage. `manage()` checks quotas in the
admin's project, adds a `creating` row under a new id and lets the task runner hand the
storage over to it (`backend.manage_existing`, a rename for the file and LVM backends);
a failure leaves `error_managing` (deletable) and the storage where it was. `unmanage()`
removes the row (same state rules as a delete, no snapshots) and leaves the data in the
backend, where `manageable()` lists it again.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from pocketstack.common import events
from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import manager, quotas, types, volumes
from pocketstack.volume import models as m
from pocketstack.volume.backends.base import BackendError

log = logging.getLogger("pocketstack.volume")
GiB = 1 << 30


def _known_ids(sess) -> set[str]:
    return set(sess.execute(select(m.Volume.id)).scalars())


def check_host(host) -> None:
    if not isinstance(host, str) or not host:
        raise BadRequest("Missing required element 'host' in request body.")
    if host.split("#", 1)[0] not in (manager.service_host(), manager.host_name()):
        raise NotFound(f"Service {host} could not be found.")


def manageable(ctx, host) -> list[dict]:
    volumes.enforce(ctx, "volume_extension:list_manageable", ctx.project_id)
    check_host(host)
    with current().db.session() as sess:
        known = _known_ids(sess)
    out = []
    for item in manager.backend().list_manageable():
        owner = item["name"][len("volume-"):] if item["name"].startswith("volume-") else None
        managed = owner in known
        out.append({"reference": {"source-name": item["name"]}, "size": max(1, -(-item["size_bytes"] // GiB)),
                    "safe_to_manage": not managed, "reason_not_safe": "already managed" if managed else None,
                    "cinder_id": owner if managed else None, "extra_info": None})
    return out


def manage(ctx, body: dict) -> str:
    volumes.enforce(ctx, "volume_extension:volume_manage", ctx.project_id)
    check_host(body.get("host"))
    ref = body.get("ref")
    if not isinstance(ref, dict) or not (ref.get("source-name") or ref.get("source-id")):
        raise BadRequest("Manage volume: 'ref' must hold 'source-name' (volume-<id>) or 'source-id'.")
    source = str(ref.get("source-name") or f"volume-{ref.get('source-id')}")
    name = volumes._string(body, "name")
    description = volumes._string(body, "description")
    metadata = volumes.check_metadata(body.get("metadata") or {})
    az = body.get("availability_zone")
    if az is not None and az != manager.availability_zone():
        raise BadRequest(f"Invalid input received: Availability zone '{az}' is invalid.")
    from pocketstack.volume.api.common import bool_param

    # openstackclient sends `"bootable": null` unless --bootable/--non-bootable is given; Cinder's
    # schema would refuse that (so the CLI cannot manage there); we read it as the default.
    bootable = bool_param(body.get("bootable") or False, "bootable")
    found = next((i for i in manager.backend().list_manageable() if i["name"] == source), None)
    if found is None:
        raise BadRequest(f"Manage existing volume failed due to invalid backend reference {ref}: "
                         "no such volume in the backend.")
    size = max(1, -(-found["size_bytes"] // GiB))
    project = ctx.project_id
    volume_id = manager.new_id()
    with current().db.session() as sess:
        if source[len("volume-"):] in _known_ids(sess):
            raise BadRequest(f"Manage existing volume failed: {source} is already managed.")
        vtype = types.get_type(sess, ctx, str(body["volume_type"])) if body.get("volume_type") \
            else types.default_type(sess, project)
        quotas.lock_project(sess, project)
        quotas.check(sess, project, {"volumes": 1, "gigabytes": size}, vtype.name)
        vol = m.Volume(id=volume_id, project_id=project, user_id=ctx.user_id, name=name, description=description,
                       size=size, status="creating", attach_status="detached",
                       availability_zone=manager.availability_zone(), host=manager.pool_host(),
                       volume_type_id=vtype.id, bootable=bootable, created_at=utcnow())
        sess.add(vol)
        sess.flush()
        for key, value in metadata.items():
            sess.add(m.VolumeMetadata(volume_id=volume_id, key=key, value=value))
        volumes.emit("manage_existing.start", vol, ctx, source=source)
    current().tasks.submit("volume.manage", _adopt, volume_id, source, ctx)
    return volume_id


def _adopt(volume_id: str, source: str, ctx) -> None:
    be = manager.backend()
    try:
        size = be.manage_existing(volume_id, source)
    except Exception as exc:
        log.exception("managing %s as volume %s failed", source, volume_id)
        volumes.set_status(volume_id, "error_managing")
        from pocketstack.volume import messages

        messages.record(volume_id, "VOLUME", "VOLUME_001_003", type(exc).__name__)
        return
    location = str(getattr(be, "path", lambda v: v)(volume_id))
    volumes.set_status(volume_id, "available", size=size, provider_location=location, launched_at=utcnow())
    with current().db.session() as sess:
        vol = sess.get(m.Volume, volume_id)
        if vol is not None:
            volumes.emit("manage_existing.end", vol, ctx)


def unmanage(ctx, volume_id: str) -> None:
    with current().db.session() as sess:
        vol = volumes.load(sess, ctx, volume_id, "volume_extension:volume_unmanage")
        attached = sess.execute(select(m.Attachment.id).where(m.Attachment.volume_id == vol.id)).first()
        if vol.status not in volumes.DELETABLE or attached:
            raise volumes.InvalidVolume(f"Invalid volume: Volume status must be available or error to unmanage, "
                                        f"and it must not be attached, but it is {vol.status}.")
        if sess.execute(select(m.Snapshot.id).where(m.Snapshot.volume_id == vol.id)).first():
            raise volumes.InvalidVolume("Invalid volume: Volume cannot have snapshots to be unmanaged.")
        if sess.execute(select(m.Transfer.id).where(m.Transfer.volume_id == vol.id)).first():
            raise volumes.InvalidVolume("Invalid volume: Volume is awaiting a transfer.")
        try:
            manager.backend().unmanage(vol.id)
        except BackendError as exc:
            raise volumes.InvalidVolume(f"Invalid volume: {exc}") from None
        payload = {"volume_id": vol.id, "project_id": vol.project_id, "size": vol.size}
        sess.delete(vol)
        events.emit("volume.unmanage", payload, context=ctx)
