"""Generic volume groups (3.13+) and group snapshots (3.14+).

A group has a group type and a list of volume types; volumes of those types join it when
created with `group_id` or by `add_volumes`, and leave by `remove_volumes`. While a volume
belongs to a group it cannot be deleted on its own (as Cinder): the group is deleted with
`delete-volumes`, or the volume is removed first. A group snapshot snapshots every member
volume at once (each snapshot carries `group_snapshot_id` and is deleted with the group
snapshot); `create-from-src` builds a new group whose volumes are copies of a group
snapshot's snapshots or of a source group's volumes. States follow Cinder: `creating` ->
`available` | `error`, `updating`, `deleting`; the work runs on the task runner.
"""
from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import group_types, manager, quotas, snapshots, types, volumes
from pocketstack.volume import models as m

log = logging.getLogger("pocketstack.volume")
GROUP_STATUSES = ("creating", "available", "updating", "in-use", "deleting", "deleted", "error",
                  "error_deleting")
SNAPSHOT_STATUSES = ("creating", "available", "deleting", "error", "error_deleting")
MEMBER_STATUSES = ("available", "in-use")


def _visible(ctx, project_id: str) -> bool:
    return ctx is None or ctx.is_admin or project_id == ctx.project_id


def load(sess: Session, ctx, group_id: str, rule: str = "group:get") -> m.Group:
    grp = sess.get(m.Group, group_id) if group_id else None
    if grp is None or not _visible(ctx, grp.project_id):
        raise NotFound(f"Group {group_id} could not be found.")
    volumes.enforce(ctx, rule, grp.project_id)
    return grp


def load_snapshot(sess: Session, ctx, gs_id: str, rule: str = "group:get_group_snapshot") -> m.GroupSnapshot:
    gs = sess.get(m.GroupSnapshot, gs_id) if gs_id else None
    if gs is None or not _visible(ctx, gs.project_id):
        raise NotFound(f"GroupSnapshot {gs_id} could not be found.")
    volumes.enforce(ctx, rule, gs.project_id)
    return gs


def volume_types_of(sess: Session, group_id: str) -> list[str]:
    return list(sess.execute(select(m.GroupVolumeType.volume_type_id).where(m.GroupVolumeType.group_id == group_id)
                             .order_by(m.GroupVolumeType.position)).scalars())


def members(sess: Session, group_id: str) -> list[m.Volume]:
    return list(sess.execute(select(m.Volume).where(m.Volume.group_id == group_id)
                             .order_by(m.Volume.created_at, m.Volume.id)).scalars())


def _emit(event: str, grp, ctx=None) -> None:
    events.emit(f"group.{event}", {"group_id": grp.id, "project_id": grp.project_id, "status": grp.status},
                context=ctx)


def _set(model, ident: str, status: str) -> None:
    with current().db.session() as sess:
        row = sess.get(model, ident)
        if row is not None:
            row.status, row.updated_at = status, utcnow()


def _text(body: dict, key: str) -> str | None:
    return volumes._string(body, key)


# ---------------------------------------------------------------------------- groups
def _new_group(sess, ctx, *, name, description, group_type_id, volume_type_ids, status="creating",
               group_snapshot_id=None, source_group_id=None) -> m.Group:
    quotas.lock_project(sess, ctx.project_id)
    quotas.check(sess, ctx.project_id, {"groups": 1})
    grp = m.Group(id=manager.new_id(), project_id=ctx.project_id, user_id=ctx.user_id, name=name,
                  description=description, status=status, availability_zone=manager.availability_zone(),
                  group_type_id=group_type_id, group_snapshot_id=group_snapshot_id,
                  source_group_id=source_group_id, created_at=utcnow())
    sess.add(grp)
    sess.flush()
    for pos, type_id in enumerate(volume_type_ids):
        sess.add(m.GroupVolumeType(group_id=grp.id, volume_type_id=type_id, position=pos))
    _emit("create.start", grp, ctx)
    return grp


def create(ctx, body: dict) -> str:
    volumes.enforce(ctx, "group:create", ctx.project_id)
    if not body.get("group_type"):
        raise BadRequest("Missing required element 'group_type' in request body.")
    vtypes = body.get("volume_types")
    if not isinstance(vtypes, list) or not vtypes:
        raise BadRequest("Missing required element 'volume_types' in request body.")
    az = body.get("availability_zone")
    if az is not None and az != manager.availability_zone():
        raise BadRequest(f"Invalid input received: Availability zone '{az}' is invalid.")
    name, description = _text(body, "name"), _text(body, "description")
    with current().db.session() as sess:
        gt = group_types.get(sess, ctx, str(body["group_type"]))
        type_ids = []
        for ref in vtypes:
            vt = types.get_type(sess, ctx, str(ref))
            if vt.id not in type_ids:
                type_ids.append(vt.id)
        grp = _new_group(sess, ctx, name=name, description=description, group_type_id=gt.id,
                         volume_type_ids=type_ids)
        group_id = grp.id
    current().tasks.submit("group.create", _created, group_id)
    return group_id


def _created(group_id: str) -> None:
    _set(m.Group, group_id, "available")


def create_from_source(ctx, body: dict) -> str:
    volumes.enforce(ctx, "group:create", ctx.project_id)
    gs_id, src_id = body.get("group_snapshot_id"), body.get("source_group_id")
    if bool(gs_id) == bool(src_id):
        raise BadRequest("Invalid input received: either 'group_snapshot_id' or 'source_group_id' must be "
                         "provided to create a group from a source.")
    name, description = _text(body, "name"), _text(body, "description")
    with current().db.session() as sess:
        if gs_id:
            gs = load_snapshot(sess, ctx, gs_id)
            if gs.status != "available":
                raise BadRequest(f"Invalid GroupSnapshot: Group snapshot status must be available, not {gs.status}.")
            source = load(sess, ctx, gs.group_id)
            copies = [{"snapshot_id": s.id, "volume_type": s.volume_type_id, "size": s.size}
                      for s in sess.execute(select(m.Snapshot).where(m.Snapshot.group_snapshot_id == gs.id)
                                            .order_by(m.Snapshot.created_at, m.Snapshot.id)).scalars()]
        else:
            source = load(sess, ctx, src_id)
            if source.status != "available":
                raise BadRequest(f"Invalid Group: Source group status must be available, not {source.status}.")
            copies = [{"source_volid": v.id, "volume_type": v.volume_type_id, "size": v.size}
                      for v in members(sess, source.id)]
        grp = _new_group(sess, ctx, name=name, description=description, group_type_id=source.group_type_id,
                         volume_type_ids=volume_types_of(sess, source.id), group_snapshot_id=gs_id,
                         source_group_id=src_id)
        group_id = grp.id
    builds: list = []
    try:
        for copy in copies:
            volumes.create(ctx, {**copy, "group_id": group_id}, group_statuses=("creating",), later=builds)
    except Exception:
        _set(m.Group, group_id, "error")
        raise
    current().tasks.submit("group.create", _build_members, group_id, builds)
    return group_id


def _build_members(group_id: str, builds: list) -> None:
    """One task copies every member (never a task waiting on others: the pool is small);
    the group is available once all are, in error if one failed."""
    for build in builds:
        build()
    with current().db.session() as sess:
        states = {v.status for v in members(sess, group_id)}
    _set(m.Group, group_id, "error" if states - {"available"} else "available")


def update(ctx, group_id: str, body: dict) -> None:
    keys = {"name", "description", "add_volumes", "remove_volumes"}
    if not body or not (keys & set(body)) or set(body) - keys:
        raise BadRequest("Name, description, add_volumes, and remove_volumes can not be all empty in the "
                         "request body.")
    add = _ids(body.get("add_volumes"))
    remove = _ids(body.get("remove_volumes"))
    with current().db.session() as sess:
        grp = load(sess, ctx, group_id, "group:update")
        if (add or remove) and grp.status != "available":
            raise BadRequest(f"Invalid Group: Group status must be available to update volumes, "
                             f"but current status is: {grp.status}.")
        allowed_types = set(volume_types_of(sess, grp.id))
        for vid in add:
            vol = sess.get(m.Volume, vid)
            if vol is None or vol.project_id != grp.project_id:
                raise BadRequest(f"Invalid volume: Cannot add volume {vid} to group {grp.id} because the volume "
                                 "cannot be found.")
            if vol.group_id and vol.group_id != grp.id:
                raise BadRequest(f"Invalid volume: Volume {vid} is already in a group.")
            if vol.volume_type_id not in allowed_types:
                raise BadRequest(f"Invalid volume: Cannot add volume {vid} to group {grp.id} because its volume "
                                 "type is not supported by the group.")
            if vol.status not in MEMBER_STATUSES:
                raise BadRequest(f"Invalid volume: Cannot add volume {vid} to group {grp.id} because the volume "
                                 f"is in an invalid state: {vol.status}.")
        for vid in remove:
            vol = sess.get(m.Volume, vid)
            if vol is None or vol.group_id != grp.id:
                raise BadRequest(f"Invalid volume: Cannot remove volume {vid} from group {grp.id} because it "
                                 "is not in the group.")
            if vol.status not in MEMBER_STATUSES + ("error", "error_deleting"):
                raise BadRequest(f"Invalid volume: Cannot remove volume {vid} from group {grp.id} because the "
                                 f"volume is in an invalid state: {vol.status}.")
        if "name" in body:
            grp.name = _text(body, "name")
        if "description" in body:
            grp.description = _text(body, "description")
        for vid in add:
            sess.get(m.Volume, vid).group_id = grp.id
        for vid in remove:
            sess.get(m.Volume, vid).group_id = None
        grp.updated_at = utcnow()
        if add or remove:
            grp.status = "updating"  # as Cinder: the manager settles it
        _emit("update", grp, ctx)
    if add or remove:
        current().tasks.submit("group.update", _created, group_id)


def _ids(value) -> list[str]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise BadRequest("Invalid input: add_volumes and remove_volumes are comma-separated volume ids.")
    return [v.strip() for v in value.split(",") if v.strip()]


def delete(ctx, group_id: str, delete_volumes: bool) -> None:
    with current().db.session() as sess:
        grp = load(sess, ctx, group_id, "group:delete")
        vols = members(sess, grp.id)
        if grp.status not in ("available", "error", "error_deleting") and not (
                grp.status in ("creating", "updating") and not vols):
            raise BadRequest(f"Invalid Group: Group status must be available or error, but current status "
                             f"is: {grp.status}.")
        if sess.execute(select(m.GroupSnapshot.id).where(m.GroupSnapshot.group_id == grp.id)).first():
            raise BadRequest("Invalid Group: Group has existing snapshots.")
        if vols and not delete_volumes:
            raise BadRequest("Invalid Group: Group has existing volumes; delete them with delete-volumes.")
        for vol in vols:
            attached = sess.execute(select(m.Attachment.id).where(m.Attachment.volume_id == vol.id)).first()
            if attached or vol.status in ("in-use", "attaching", "detaching"):
                raise BadRequest(f"Invalid Group: Volume {vol.id} in group {grp.id} is attached. Need to detach "
                                 "first.")
            if sess.execute(select(m.Snapshot.id).where(m.Snapshot.volume_id == vol.id)).first():
                raise BadRequest(f"Invalid Group: Volume {vol.id} in group {grp.id} has snapshots.")
            if vol.status not in volumes.DELETABLE:
                raise BadRequest(f"Invalid Group: Volume {vol.id} is {vol.status}; it cannot be deleted.")
        grp.status = "deleting"
        _emit("delete.start", grp, ctx)
        for vol in vols:
            vol.status = "deleting"
        vol_ids = [v.id for v in vols]
    current().tasks.submit("group.delete", _destroy, group_id, vol_ids, ctx)


def _destroy(group_id: str, vol_ids: list[str], ctx) -> None:
    for vid in vol_ids:
        volumes._destroy(vid, [], ctx)  # the volume's own delete: backend, row, events
    with current().db.session() as sess:
        grp = sess.get(m.Group, group_id)
        if grp is None:
            return
        if any(sess.get(m.Volume, vid) is not None for vid in vol_ids):  # one failed
            grp.status = "error_deleting"
            return
        payload = {"group_id": grp.id, "project_id": grp.project_id}
        sess.delete(grp)
        events.emit("group.delete.end", payload, context=ctx)


def reset_status(sess: Session, ctx, group_id: str, status) -> None:
    grp = load(sess, ctx, group_id, "group:reset_status")
    if status not in GROUP_STATUSES:
        raise BadRequest(f"Invalid input received: Must specify a valid status, not {status!r}.")
    grp.status, grp.updated_at = status, utcnow()
    _emit("reset_status", grp, ctx)


def list_groups(sess: Session, ctx, query: dict, model=m.Group, rule="group:get_all") -> list:
    volumes.enforce(ctx, rule, ctx.project_id)
    q = select(model)
    all_tenants = str(query.get("all_tenants", "")).lower() in ("1", "true", "yes", "on", "t")
    project = query.get("project_id") if ctx.is_admin else None
    if project:
        q = q.where(model.project_id == project)
    elif not (ctx.is_admin and all_tenants):
        q = q.where(model.project_id == ctx.project_id)
    for key in ("name", "status", "group_id", "group_type_id"):
        if query.get(key) and hasattr(model, key):
            q = q.where(getattr(model, key) == query[key])
    order = volumes.sort_order(query, model, {"id", "name", "status", "created_at", "project_id"})
    return list(sess.execute(q.order_by(*order)).scalars())


# ---------------------------------------------------------------------------- group snapshots
def create_snapshot(ctx, body: dict) -> str:
    group_id = body.get("group_id")
    if not isinstance(group_id, str) or not group_id:
        raise BadRequest("Missing required element 'group_id' in request body.")
    name, description = _text(body, "name"), _text(body, "description")
    with current().db.session() as sess:
        grp = load(sess, ctx, group_id, "group:create_group_snapshot")
        if grp.status != "available":
            raise BadRequest(f"Invalid Group: Group status must be available, but current status is: "
                             f"{grp.status}.")
        vols = members(sess, grp.id)
        bad = [v.id for v in vols if v.status not in MEMBER_STATUSES]
        if bad:
            raise BadRequest(f"Invalid volume: Volumes {', '.join(bad)} must be available or in-use to be "
                             "snapshotted.")
        quotas.lock_project(sess, grp.project_id)
        quotas.check(sess, grp.project_id, {"snapshots": len(vols), "gigabytes": sum(v.size for v in vols)})
        gs = m.GroupSnapshot(id=manager.new_id(), group_id=grp.id, project_id=grp.project_id,
                             user_id=ctx.user_id, name=name, description=description, status="creating",
                             group_type_id=grp.group_type_id, created_at=utcnow())
        sess.add(gs)
        pairs = []
        for vol in vols:
            snap = m.Snapshot(id=manager.new_id(), volume_id=vol.id, project_id=vol.project_id,
                              user_id=ctx.user_id, name=f"snapshot-{gs.id}" if not name else name,
                              description=description, size=vol.size, status="creating", progress="0%",
                              volume_type_id=vol.volume_type_id, group_snapshot_id=gs.id, created_at=utcnow())
            sess.add(snap)
            pairs.append((snap.id, vol.id))
        gs_id = gs.id
        events.emit("group_snapshot.create.start", {"group_snapshot_id": gs_id, "group_id": grp.id}, context=ctx)
    current().tasks.submit("group_snapshot.create", _snap_all, gs_id, pairs)
    return gs_id


def _snap_all(gs_id: str, pairs: list[tuple[str, str]]) -> None:
    be = manager.backend()
    ok = True
    for snap_id, vol_id in pairs:
        try:
            location = be.create_snapshot(snap_id, vol_id)
        except Exception:
            log.exception("snapshot %s of %s in group snapshot %s failed", snap_id, vol_id, gs_id)
            snapshots._set(snap_id, "error")
            ok = False
            continue
        snapshots._set(snap_id, "available", progress="100%", provider_location=location)
    _set(m.GroupSnapshot, gs_id, "available" if ok else "error")


def delete_snapshot(ctx, gs_id: str) -> None:
    with current().db.session() as sess:
        gs = load_snapshot(sess, ctx, gs_id, "group:delete_group_snapshot")
        if gs.status not in ("available", "error", "error_deleting"):
            raise BadRequest(f"Invalid GroupSnapshot: Group snapshot status must be available or error, but "
                             f"current status is: {gs.status}.")
        in_use = sess.execute(select(func.count()).select_from(m.Volume).where(
            m.Volume.snapshot_id.in_(select(m.Snapshot.id).where(m.Snapshot.group_snapshot_id == gs.id)),
            m.Volume.status == "creating")).scalar()
        if in_use:
            raise BadRequest("Invalid GroupSnapshot: volumes are being created from it.")
        gs.status = "deleting"
        snaps = list(sess.execute(select(m.Snapshot).where(m.Snapshot.group_snapshot_id == gs.id)).scalars())
        for snap in snaps:
            snap.status = "deleting"
        snap_ids = [s.id for s in snaps]
    current().tasks.submit("group_snapshot.delete", _unsnap_all, gs_id, snap_ids, ctx)


def _unsnap_all(gs_id: str, snap_ids: list[str], ctx) -> None:
    for snap_id in snap_ids:
        snapshots._destroy(snap_id, ctx)  # the snapshot's own delete: backend, row, events
    with current().db.session() as sess:
        gs = sess.get(m.GroupSnapshot, gs_id)
        if gs is None:
            return
        if any(sess.get(m.Snapshot, sid) is not None for sid in snap_ids):  # one failed
            gs.status = "error_deleting"
            return
        sess.delete(gs)
        events.emit("group_snapshot.delete.end", {"group_snapshot_id": gs_id}, context=ctx)


def reset_snapshot_status(sess: Session, ctx, gs_id: str, status) -> None:
    gs = load_snapshot(sess, ctx, gs_id, "group:reset_group_snapshot_status")
    if status not in SNAPSHOT_STATUSES:
        raise BadRequest(f"Invalid input received: Must specify a valid status, not {status!r}.")
    gs.status, gs.updated_at = status, utcnow()
