"""Block Storage quotas: limits per project (and per volume type), usage counted live.

Usage is never cached in a table that can drift: it is counted from the volumes,
snapshots and backups rows inside the same transaction that adds the new row. Races
between concurrent creates are closed by `lock_project()`, the first statement of that
transaction: an UPDATE of the project's lock row, which PostgreSQL/MySQL hold as a row
lock and SQLite as its write lock until commit, so the count-check-insert of two
requests for one project can never interleave (20 parallel creates never overshoot).
"""
from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pocketstack.common.errors import ApiError, BadRequest
from pocketstack.volume import models as m

DEFAULTS = {"volumes": 10, "snapshots": 10, "gigabytes": 1000, "backups": 10, "backup_gigabytes": 1000,
            "groups": 10, "per_volume_gigabytes": -1}
PER_TYPE = ("volumes", "snapshots", "gigabytes")


class OverLimit(ApiError):
    code = 413


def lock_project(sess: Session, project_id: str) -> None:
    """Serialise quota-checked writes of one project (see the module docstring)."""
    for _ in range(3):
        done = sess.execute(update(m.QuotaLock).where(m.QuotaLock.project_id == project_id)
                            .values(version=m.QuotaLock.version + 1)).rowcount
        if done:
            return
        try:
            with sess.begin_nested():
                sess.add(m.QuotaLock(project_id=project_id, version=0))
        except IntegrityError:
            continue


def _type_names(sess: Session) -> list[str]:
    return list(sess.execute(select(m.VolumeType.name).order_by(m.VolumeType.name)).scalars())


def defaults(sess: Session) -> dict[str, int]:
    out = dict(DEFAULTS)
    for row in sess.execute(select(m.QuotaClass).where(m.QuotaClass.class_name == "default")).scalars():
        out[row.resource] = row.hard_limit
    for name in _type_names(sess):
        for res in PER_TYPE:
            out.setdefault(f"{res}_{name}", -1)
    return out


def limits(sess: Session, project_id: str) -> dict[str, int]:
    out = defaults(sess)
    for row in sess.execute(select(m.Quota).where(m.Quota.project_id == project_id)).scalars():
        out[row.resource] = row.hard_limit
    return out


def usage(sess: Session, project_id: str) -> dict[str, int]:
    vols = sess.execute(select(func.count(), func.coalesce(func.sum(m.Volume.size), 0))
                        .where(m.Volume.project_id == project_id, m.Volume.consumes_quota.is_(True))).one()
    snaps = sess.execute(select(func.count(), func.coalesce(func.sum(m.Snapshot.size), 0))
                         .where(m.Snapshot.project_id == project_id, m.Snapshot.consumes_quota.is_(True))).one()
    backups = sess.execute(select(func.count(), func.coalesce(func.sum(m.Backup.size), 0))
                           .where(m.Backup.project_id == project_id)).one()
    groups = sess.execute(select(func.count()).select_from(m.Group).where(m.Group.project_id == project_id)).scalar()
    out = {"volumes": vols[0], "gigabytes": int(vols[1]) + int(snaps[1]), "snapshots": snaps[0],
           "backups": backups[0], "backup_gigabytes": int(backups[1]), "groups": groups, "per_volume_gigabytes": 0}
    types = {t.id: t.name for t in sess.execute(select(m.VolumeType)).scalars()}
    for name in types.values():
        for res in PER_TYPE:
            out[f"{res}_{name}"] = 0
    for type_id, count, size in sess.execute(
            select(m.Volume.volume_type_id, func.count(), func.coalesce(func.sum(m.Volume.size), 0))
            .where(m.Volume.project_id == project_id, m.Volume.consumes_quota.is_(True))
            .group_by(m.Volume.volume_type_id)):
        if type_id in types:
            out[f"volumes_{types[type_id]}"] += count
            out[f"gigabytes_{types[type_id]}"] += int(size)
    for type_id, count, size in sess.execute(
            select(m.Snapshot.volume_type_id, func.count(), func.coalesce(func.sum(m.Snapshot.size), 0))
            .where(m.Snapshot.project_id == project_id, m.Snapshot.consumes_quota.is_(True))
            .group_by(m.Snapshot.volume_type_id)):
        if type_id in types:
            out[f"snapshots_{types[type_id]}"] += count
            out[f"gigabytes_{types[type_id]}"] += int(size)
    return out


def check(sess: Session, project_id: str, deltas: dict[str, int], type_name: str | None = None) -> None:
    """Raise Cinder's 413 when adding `deltas` (resource -> amount) would exceed a limit.
    Call after `lock_project()` in the transaction that then adds the rows."""
    lim, used = limits(sess, project_id), usage(sess, project_id)
    wanted = dict(deltas)
    if type_name:
        for res in PER_TYPE:
            if res in deltas:
                wanted[f"{res}_{type_name}"] = deltas[res]
    size = deltas.get("gigabytes", 0)
    per_volume = lim.get("per_volume_gigabytes", -1)
    if "volumes" in deltas and per_volume >= 0 and size > per_volume:
        raise OverLimit(f"VolumeSizeExceedsLimit: Requested volume size {size}G is larger than "
                        f"maximum allowed limit {per_volume}G.")
    for res, delta in wanted.items():
        limit = lim.get(res, -1)
        if delta <= 0 or limit < 0 or used.get(res, 0) + delta <= limit:
            continue
        if res.startswith("gigabytes") or res.startswith("backup_gigabytes"):
            raise OverLimit(f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
                            f"{res} quota. Requested {delta}G, quota is {limit}G and {used.get(res, 0)}G "
                            "has been consumed.")
        noun = {"volumes": "volumes", "snapshots": "snapshots", "backups": "backups"}.get(res.split("_")[0], res)
        kind = {"volumes": "VolumeLimitExceeded", "snapshots": "SnapshotLimitExceeded",
                "backups": "BackupLimitExceeded"}.get(res.split("_")[0], "QuotaError")
        raise OverLimit(f"{kind}: Maximum number of {noun} allowed ({limit}) exceeded for quota '{res}'.")


def update_limits(sess: Session, project_id: str, values: dict, *, class_name: str | None = None) -> None:
    known = defaults(sess)
    for res, raw in values.items():
        if res not in known:
            raise BadRequest(f"Bad key(s) in quota set: {res}")
        try:
            limit = int(raw)
        except (TypeError, ValueError):
            raise BadRequest(f"Quota limit {raw!r} for {res} must be an integer.") from None
        if limit < -1:
            raise BadRequest(f"Quota limit {limit} for {res} must be -1 or greater.")
        if class_name is None and limit >= 0 and res != "per_volume_gigabytes":
            in_use = usage(sess, project_id).get(res, 0)
            if limit < in_use:
                raise BadRequest(f"Quota {res} limit must be equal or greater than existing resources. "
                                 f"Current usage is {in_use} and the requested limit is {limit}.")
        model, keycol, key = ((m.QuotaClass, m.QuotaClass.class_name, class_name) if class_name
                              else (m.Quota, m.Quota.project_id, project_id))
        row = sess.execute(select(model).where(keycol == key, model.resource == res)).scalars().first()
        if row is None:
            row = model(resource=res, hard_limit=limit)
            setattr(row, "class_name" if class_name else "project_id", key)
            sess.add(row)
        else:
            row.hard_limit = limit


def reset(sess: Session, project_id: str) -> None:
    for row in sess.execute(select(m.Quota).where(m.Quota.project_id == project_id)).scalars():
        sess.delete(row)
