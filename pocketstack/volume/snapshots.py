"""Volume snapshots: point-in-time copies kept by the backend (copy-on-write where it can).

A snapshot of an in-use volume needs `force` before 3.66 (Cinder's rule, because the
guest may have unflushed writes); from 3.66 it is allowed and `force` is refused.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import manager, quotas, volumes
from pocketstack.volume import models as m

log = logging.getLogger("pocketstack.volume")
STATUSES = ("creating", "available", "deleting", "error", "error_deleting", "backing-up", "restoring",
            "unmanaging")


def not_found(snapshot_id: str) -> NotFound:
    return NotFound(f"Snapshot {snapshot_id} could not be found.")


def load(sess: Session, ctx, snapshot_id: str, rule: str = "volume:get_snapshot") -> m.Snapshot:
    snap = sess.get(m.Snapshot, snapshot_id) if snapshot_id else None
    if snap is None or (ctx is not None and not ctx.is_admin and snap.project_id != ctx.project_id):
        raise not_found(snapshot_id)
    volumes.enforce(ctx, rule, snap.project_id)
    return snap


def emit(event: str, snap: m.Snapshot, ctx=None) -> None:
    events.emit(f"snapshot.{event}", {"snapshot_id": snap.id, "volume_id": snap.volume_id,
                                      "project_id": snap.project_id, "status": snap.status}, context=ctx)


def metadata_of(sess: Session, ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {i: {} for i in ids}
    if ids:
        for row in sess.execute(select(m.SnapshotMetadata).where(m.SnapshotMetadata.snapshot_id.in_(ids))).scalars():
            out[row.snapshot_id][row.key] = row.value
    return out


def create(ctx, body: dict, *, in_use_allowed: bool) -> str:
    from pocketstack.volume.api.common import bool_param

    volume_id = body.get("volume_id")
    if not isinstance(volume_id, str) or not volume_id:
        raise NotFound(f"Volume {volume_id} could not be found.")  # Cinder looks it up as given
    force = body.get("force", False)
    if in_use_allowed and "force" in body and not bool_param(force, "force"):
        raise BadRequest("Invalid value 'False' for force: force must be true or omitted at this microversion.")
    force = bool_param(force, "force")
    name = volumes._string(body, "name") if "name" in body else volumes._string(body, "display_name")
    description = (volumes._string(body, "description") if "description" in body
                   else volumes._string(body, "display_description"))
    metadata = volumes.check_metadata(body.get("metadata") or {})
    with current().db.session() as sess:
        vol = volumes.load(sess, ctx, volume_id, "volume:create_snapshot")
        if vol.status == "in-use" and not (force or in_use_allowed):
            raise BadRequest("Invalid volume: Volume status must be available to snapshot an attached volume "
                             "without force.")
        if vol.status not in ("available", "in-use"):
            raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available or in-use, "
                             f"but current status is: {vol.status}.")
        vtype = sess.get(m.VolumeType, vol.volume_type_id) if vol.volume_type_id else None
        type_name = vtype.name if vtype else None
        size, project_id, type_id = vol.size, vol.project_id, vol.volume_type_id
    snapshot_id = manager.new_id()
    with current().db.session() as sess:
        quotas.lock_project(sess, project_id)
        quotas.check(sess, project_id, {"snapshots": 1, "gigabytes": size}, type_name)
        snap = m.Snapshot(id=snapshot_id, volume_id=volume_id, project_id=project_id, user_id=ctx.user_id,
                          name=name, description=description, size=size, status="creating", progress="0%",
                          volume_type_id=type_id, created_at=utcnow())
        sess.add(snap)
        sess.flush()
        for key, value in metadata.items():
            sess.add(m.SnapshotMetadata(snapshot_id=snapshot_id, key=key, value=value))
        emit("create.start", snap, ctx)
    current().tasks.submit("snapshot.create", _build, snapshot_id, volume_id, ctx)
    return snapshot_id


def _set(snapshot_id: str, status: str, **fields) -> None:
    with current().db.session() as sess:
        snap = sess.get(m.Snapshot, snapshot_id)
        if snap is None:
            return
        snap.status = status
        for key, value in fields.items():
            setattr(snap, key, value)
        snap.updated_at = utcnow()
        emit("update", snap)


def _build(snapshot_id: str, volume_id: str, ctx) -> None:
    try:
        location = manager.backend().create_snapshot(snapshot_id, volume_id)
    except Exception:
        log.exception("snapshot %s of %s failed", snapshot_id, volume_id)
        _set(snapshot_id, "error")
        from pocketstack.volume import messages

        messages.record(snapshot_id, "VOLUME_SNAPSHOT", "VOLUME_006_001")
        return
    _set(snapshot_id, "available", progress="100%", provider_location=location)


def list_snapshots(sess: Session, ctx, query: dict) -> list[m.Snapshot]:
    volumes.enforce(ctx, "volume:get_all_snapshots", ctx.project_id)
    q = select(m.Snapshot)
    all_tenants = str(query.get("all_tenants", "")).lower() in ("1", "true", "yes", "on", "t")
    if not (ctx.is_admin and all_tenants):
        q = q.where(m.Snapshot.project_id == ctx.project_id)
    for key in ("status", "volume_id", "name", "project_id"):
        if key in query and key and not (key == "project_id" and not ctx.is_admin):
            q = q.where(getattr(m.Snapshot, key) == query[key])
    order = volumes.sort_order(query, m.Snapshot, {"created_at", "updated_at", "id", "name", "size", "status",
                                                   "volume_id", "project_id"})
    return list(sess.execute(q.order_by(*order)).scalars())


def update(sess: Session, ctx, snapshot_id: str, body: dict) -> m.Snapshot:
    snap = load(sess, ctx, snapshot_id, "volume:update_snapshot")
    allowed = {"name", "description", "display_name", "display_description"}
    if not body or set(body) - allowed:
        raise BadRequest("Invalid input: only name and description can be updated.")
    if "name" in body or "display_name" in body:
        snap.name = volumes._string(body, "name") if "name" in body else volumes._string(body, "display_name")
    if "description" in body or "display_description" in body:
        snap.description = (volumes._string(body, "description") if "description" in body
                            else volumes._string(body, "display_description"))
    snap.updated_at = utcnow()
    emit("update", snap, ctx)
    return snap


def delete(ctx, snapshot_id: str, *, force: bool = False) -> None:
    with current().db.session() as sess:
        snap = load(sess, ctx, snapshot_id, "volume_extension:snapshot_admin_actions:force_delete" if force
                    else "volume:delete_snapshot")
        if not force and snap.status not in ("available", "error", "error_deleting"):
            raise BadRequest(f"Invalid snapshot: Snapshot status must be available or error and must not be part "
                             f"of a group, but is {snap.status}.")
        if snap.group_snapshot_id:
            raise BadRequest(f"Invalid snapshot: Snapshot {snap.id} is part of group snapshot "
                             f"{snap.group_snapshot_id}; delete the group snapshot instead.")
        children = sess.execute(select(m.Volume.id).where(m.Volume.snapshot_id == snap.id,
                                                          m.Volume.status == "creating")).first()
        if children:
            raise BadRequest("Invalid snapshot: a volume is being created from it.")
        snap.status = "deleting"
        emit("delete.start", snap, ctx)
    current().tasks.submit("snapshot.delete", _destroy, snapshot_id, ctx)


def _destroy(snapshot_id: str, ctx) -> None:
    try:
        manager.backend().delete_snapshot(snapshot_id)
    except Exception:
        log.exception("deleting snapshot %s failed", snapshot_id)
        _set(snapshot_id, "error_deleting")
        return
    with current().db.session() as sess:
        snap = sess.get(m.Snapshot, snapshot_id)
        if snap is not None:
            payload = {"snapshot_id": snap.id, "volume_id": snap.volume_id, "project_id": snap.project_id}
            sess.delete(snap)
            events.emit("snapshot.delete.end", payload, context=ctx)


def reset_status(sess: Session, ctx, snapshot_id: str, status) -> None:
    snap = load(sess, ctx, snapshot_id, "volume_extension:snapshot_admin_actions:reset_status")
    if status not in STATUSES:
        raise BadRequest(f"Invalid input received: Must specify a valid status, not {status!r}.")
    snap.status = status
    snap.updated_at = utcnow()
    emit("reset_status", snap, ctx)


def replace_metadata(sess: Session, ctx, snapshot_id: str, meta, *, delete_others: bool) -> dict[str, str]:
    snap = load(sess, ctx, snapshot_id, "volume:snapshot_metadata")
    meta = volumes.check_metadata(meta)
    rows = {r.key: r for r in sess.execute(select(m.SnapshotMetadata)
                                           .where(m.SnapshotMetadata.snapshot_id == snap.id)).scalars()}
    if delete_others:
        for key, row in rows.items():
            if key not in meta:
                sess.delete(row)
    for key, value in meta.items():
        if key in rows:
            rows[key].value = value
        else:
            sess.add(m.SnapshotMetadata(snapshot_id=snap.id, key=key, value=value))
    sess.flush()
    return metadata_of(sess, [snap.id])[snap.id]


def delete_metadata_key(sess: Session, ctx, snapshot_id: str, key: str) -> None:
    snap = load(sess, ctx, snapshot_id, "volume:snapshot_metadata")
    row = sess.get(m.SnapshotMetadata, (snap.id, key))
    if row is None:
        raise NotFound(f"Snapshot {snap.id} has no metadata with key {key}.")
    sess.delete(row)


