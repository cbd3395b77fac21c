"""Snapshot manage / unmanage (admin), Cinder's `os-snapshot-manage` and 3.8's
`/manageable_snapshots`: adopt a snapshot the backend holds (`snapshot-<id>` files or LVs)
as a snapshot of an existing volume, and forget one while keeping its data.

Unmanage removes the row (the snapshot must be available or error, not part of a group
snapshot, no volume being made from it); the data stays and the manageable listing shows
it as safe to manage. Manage checks the volume (visible, available or in-use) and the
snapshot quotas, adds a `creating` row under a new id and lets the task runner rename the
data to `snapshot-<new id>`; a failure leaves `error` and the data where it was.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

from pocketstack.common import events
from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest
from pocketstack.common.runtime import current
from pocketstack.volume import manage, manager, quotas, snapshots, volumes
from pocketstack.volume import models as m

log = logging.getLogger("pocketstack.volume")


def manageable(ctx, host) -> list[dict]:
    volumes.enforce(ctx, "snapshot_extension:list_manageable", ctx.project_id)
    manage.check_host(host)
    with current().db.session() as sess:
        known = set(sess.execute(select(m.Snapshot.id)).scalars())
    out = []
    for item in manager.backend().list_manageable_snapshots():
        owner = item["name"][len("snapshot-"):]
        managed = owner in known
        out.append({"reference": {"source-name": item["name"]}, "size": max(1, -(-item["size_bytes"] // manage.GiB)),
                    "safe_to_manage": not managed, "reason_not_safe": "already managed" if managed else None,
                    "cinder_id": owner if managed else None, "extra_info": None, "source_reference": None})
    return out


def manage_snapshot(ctx, body: dict) -> str:
    volumes.enforce(ctx, "snapshot_extension:snapshot_manage", ctx.project_id)
    ref = body.get("ref")
    if not isinstance(ref, dict) or not (ref.get("source-name") or ref.get("source-id")):
        raise BadRequest("Manage snapshot: 'ref' must hold 'source-name' (snapshot-<id>) or 'source-id'.")
    source = str(ref.get("source-name") or f"snapshot-{ref.get('source-id')}")
    if not body.get("volume_id"):
        raise BadRequest("Missing required element 'volume_id' in request body.")
    name, description = volumes._string(body, "name"), volumes._string(body, "description")
    metadata = volumes.check_metadata(body.get("metadata") or {})
    with current().db.session() as sess:
        volumes.load(sess, ctx, str(body["volume_id"]))  # 404 first, as Cinder
    found = next((i for i in manager.backend().list_manageable_snapshots() if i["name"] == source), None)
    if found is None:
        raise BadRequest(f"Manage existing snapshot failed due to invalid backend reference {ref}: "
                         "no such snapshot in the backend.")
    size = max(1, -(-found["size_bytes"] // manage.GiB))
    snapshot_id = manager.new_id()
    with current().db.session() as sess:
        vol = volumes.load(sess, ctx, str(body["volume_id"]))
        if vol.status not in ("available", "in-use"):
            raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available or in-use, "
                             f"but current status is: {vol.status}.")
        if source[len("snapshot-"):] in set(sess.execute(select(m.Snapshot.id)).scalars()):
            raise BadRequest(f"Manage existing snapshot failed: {source} is already managed.")
        vtype = sess.get(m.VolumeType, vol.volume_type_id) if vol.volume_type_id else None
        quotas.lock_project(sess, vol.project_id)
        quotas.check(sess, vol.project_id, {"snapshots": 1, "gigabytes": size}, vtype.name if vtype else None)
        snap = m.Snapshot(id=snapshot_id, volume_id=vol.id, project_id=vol.project_id, user_id=ctx.user_id,
                          name=name, description=description, size=size, status="creating", progress="0%",
                          volume_type_id=vol.volume_type_id, created_at=utcnow())
        sess.add(snap)
        sess.flush()
        for key, value in metadata.items():
            sess.add(m.SnapshotMetadata(snapshot_id=snapshot_id, key=key, value=value))
        snapshots.emit("manage_existing.start", snap, ctx)
    current().tasks.submit("snapshot.manage", _adopt, snapshot_id, source)
    return snapshot_id


def _adopt(snapshot_id: str, source: str) -> None:
    be = manager.backend()
    try:
        size = be.manage_existing_snapshot(snapshot_id, source)
    except Exception:
        log.exception("managing %s as snapshot %s failed", source, snapshot_id)
        snapshots._set(snapshot_id, "error")
        return
    snapshots._set(snapshot_id, "available", size=size, progress="100%")


def unmanage(ctx, snapshot_id: str) -> None:
    with current().db.session() as sess:
        snap = snapshots.load(sess, ctx, snapshot_id, "snapshot_extension:snapshot_unmanage")
        if snap.status not in ("available", "error"):
            raise BadRequest(f"Invalid snapshot: Snapshot status must be available or error to unmanage, "
                             f"but is {snap.status}.")
        if snap.group_snapshot_id:
            raise BadRequest("Invalid snapshot: a snapshot of a group snapshot cannot be unmanaged.")
        if sess.execute(select(m.Volume.id).where(m.Volume.snapshot_id == snap.id,
                                                  m.Volume.status == "creating")).first():
            raise BadRequest("Invalid snapshot: a volume is being created from it.")
        payload = {"snapshot_id": snap.id, "volume_id": snap.volume_id, "project_id": snap.project_id}
        sess.delete(snap)
        events.emit("snapshot.unmanage", payload, context=ctx)
