"""Compute quotas: limits per project (and per user within a project), usage counted live.

As in Nova since Pike there are no reservations: usage is counted from the rows that
exist (instances, key pairs, server groups, group members) at the moment of the check.
To make "count, compare, insert" race-free, `check_and_reserve` first writes the
project's `compute_quota_guard` row inside the caller's transaction: concurrent creates
in one project then queue on that row lock (PostgreSQL/MySQL) or on the database write
lock (SQLite) until the first one commits its new rows, so two creates can never both
see the same free headroom. Callers run the check inside the same `db.session()` block
that inserts the rows (nested sessions join the outer transaction):

    with db.session():
        quotas.check_and_reserve(ctx, project_id, user_id, {"instances": 2, "cores": 2, "ram": 1024})
        ...insert the two instances...

Limits come from the project's (or user's) own rows, else the `default` quota class,
else upstream's defaults (`DEFAULTS`); -1 means unlimited.
"""
from __future__ import annotations

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from pocketstack.common.errors import BadRequest, Forbidden
from pocketstack.common.runtime import current
from pocketstack.compute import models
from pocketstack.compute.models import (KeyPair, Quota, QuotaClass, QuotaGuard, ServerGroup,
                                        ServerGroupMember)

# Upstream's resources, in the order Nova reports them, with its default limits.
DEFAULTS = {
    "instances": 10, "cores": 20, "ram": 51200, "floating_ips": 10, "fixed_ips": -1,
    "metadata_items": 128, "injected_files": 5, "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255, "security_groups": 10, "security_group_rules": 20,
    "key_pairs": 100, "server_groups": 10, "server_group_members": 10,
}
RESOURCES = tuple(DEFAULTS)
# Network resources (proxied to Neutron before 2.36) and file injection (gone at 2.57).
NETWORK_RESOURCES = ("fixed_ips", "floating_ips", "security_group_rules", "security_groups")
INJECTION_RESOURCES = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")
# Which resources are counted per user as well as per project (user quotas apply to them).
COUNTED = ("instances", "cores", "ram", "key_pairs", "server_groups")
MAX_LIMIT = 2147483647


class OverQuota(Forbidden):
    """403 with Nova's message; `overs`, `requested`, `used`, `allowed` say what ran out."""

    def __init__(self, message: str, overs=(), requested=None, used=None, allowed=None):
        super().__init__(message)
        self.overs, self.requested, self.used, self.allowed = list(overs), requested, used, allowed


def _session():
    return current().db.session()


def filtered(resources_at: str) -> tuple[str, ...]:
    """The resources a microversion shows ('2.1'..'2.35' all, 2.36 drops network ones, 2.57
    drops injection ones); `resources_at` is 'all', '2.36' or '2.57'."""
    hidden: tuple = ()
    if resources_at in ("2.36", "2.57"):
        hidden += NETWORK_RESOURCES
    if resources_at == "2.57":
        hidden += INJECTION_RESOURCES
    return tuple(r for r in RESOURCES if r not in hidden)


# ---------------------------------------------------------------------------- limits
def class_limits(class_name: str = "default") -> dict[str, int]:
    with _session() as sess:
        rows = {q.resource: q.hard_limit for q in
                sess.scalars(select(QuotaClass).where(QuotaClass.class_name == class_name))}
    if class_name != "default":
        base = class_limits("default")
        return {r: rows.get(r, base[r]) for r in RESOURCES}
    return {r: rows.get(r, DEFAULTS[r]) for r in RESOURCES}


def project_limits(project_id: str, user_id: str | None = None) -> dict[str, int]:
    """Effective limits: user rows over project rows over the default class."""
    limits = class_limits("default")
    with _session() as sess:
        for q in sess.scalars(select(Quota).where(Quota.project_id == project_id, Quota.user_id == "")):
            if q.resource in limits:
                limits[q.resource] = q.hard_limit
        if user_id:
            for q in sess.scalars(select(Quota).where(Quota.project_id == project_id, Quota.user_id == user_id)):
                if q.resource in limits:
                    limits[q.resource] = q.hard_limit
    return limits


def _instance_model():
    return getattr(models, "Instance", None)


def _live(model):
    """Rows of the instance table that still count (not deleted)."""
    conds = []
    if hasattr(model, "deleted"):
        col = model.deleted
        conds.append(col.is_(False) if isinstance(col.type, models.Boolean) else col == 0)
    if hasattr(model, "deleted_at"):
        conds.append(model.deleted_at.is_(None))
    return conds


def usage(project_id: str, user_id: str | None = None) -> dict[str, int]:
    """In-use counts of the counted resources (per user when `user_id` is given)."""
    out = {"instances": 0, "cores": 0, "ram": 0, "key_pairs": 0, "server_groups": 0,
           "server_group_members": 0}
    with _session() as sess:
        inst = _instance_model()
        if inst is not None:
            conds = [inst.project_id == project_id, *_live(inst)]
            if user_id:
                conds.append(inst.user_id == user_id)
            vcpus = getattr(inst, "vcpus", None)
            ram = getattr(inst, "memory_mb", None)
            cols = [func.count()]
            cols.append(func.coalesce(func.sum(vcpus), 0) if vcpus is not None else func.count() * 0)
            cols.append(func.coalesce(func.sum(ram), 0) if ram is not None else func.count() * 0)
            n, c, r = sess.execute(select(*cols).select_from(inst).where(*conds)).one()
            out.update(instances=int(n), cores=int(c or 0), ram=int(r or 0))
        if user_id:
            out["key_pairs"] = sess.scalar(select(func.count()).select_from(KeyPair)
                                           .where(KeyPair.user_id == user_id)) or 0
        gq = select(func.count()).select_from(ServerGroup).where(ServerGroup.project_id == project_id)
        if user_id:
            gq = gq.where(ServerGroup.user_id == user_id)
        out["server_groups"] = sess.scalar(gq) or 0
    return out


def _guard(sess, project_id: str) -> None:
    """Take the project's quota lock for the rest of the caller's transaction."""
    done = sess.execute(update(QuotaGuard).where(QuotaGuard.project_id == project_id)
                        .values(generation=QuotaGuard.generation + 1)).rowcount
    if not done:
        try:
            with sess.begin_nested():
                sess.add(QuotaGuard(project_id=project_id, generation=1))
        except IntegrityError:  # created concurrently: lock the now-existing row
            sess.execute(update(QuotaGuard).where(QuotaGuard.project_id == project_id)
                         .values(generation=QuotaGuard.generation + 1))


def check_and_reserve(ctx, project_id: str, user_id: str | None, deltas: dict[str, int]) -> None:
    """Raise `OverQuota` unless `deltas` (e.g. {"instances": 1, "cores": 2, "ram": 512}) fit
    under both the project's and the user's limits. Call it inside the transaction that will
    insert the new rows; it serialises concurrent callers of the same project."""
    deltas = {k: int(v) for k, v in deltas.items() if v}
    if not deltas:
        return
    with _session() as sess:
        _guard(sess, project_id)
        scopes = [(project_limits(project_id), usage(project_id))]
        if user_id:
            scopes.append((project_limits(project_id, user_id), usage(project_id, user_id)))
        overs, used, allowed = [], {}, {}
        for limits, in_use in scopes:
            for res, delta in deltas.items():
                limit = limits.get(res, -1)
                if limit < 0 or delta <= 0:
                    continue
                if in_use.get(res, 0) + delta > limit and res not in overs:
                    overs.append(res)
                    used[res], allowed[res] = in_use.get(res, 0), limit
        if overs:
            overs.sort()
            names = ", ".join(overs)
            req = ", ".join(str(deltas[r]) for r in overs)
            u = ", ".join(str(used[r]) for r in overs)
            a = ", ".join(str(allowed[r]) for r in overs)
            raise OverQuota(f"Quota exceeded for {names}: Requested {req}, but already used {u} "
                            f"of {a} {names}", overs, deltas, used, allowed)


def max_instances_allowed(ctx, project_id: str, user_id: str | None, per_instance: dict[str, int],
                          wanted: int) -> int:
    """How many of `wanted` instances (each using `per_instance`) fit now (for min/max_count)."""
    fit = wanted
    for uid in (None, user_id) if user_id else (None,):
        limits, in_use = project_limits(project_id, uid), usage(project_id, uid)
        for res, each in {"instances": 1, **per_instance}.items():
            limit = limits.get(res, -1)
            if limit < 0 or each <= 0:
                continue
            fit = min(fit, max(0, (limit - in_use.get(res, 0)) // each))
    return fit


def check_keypairs(ctx, user_id: str, delta: int = 1) -> None:
    """Key pairs are counted per user against the caller's project's key_pairs limit."""
    project_id = getattr(ctx, "project_id", None) or ""
    limit = project_limits(project_id, user_id).get("key_pairs", -1) if project_id else DEFAULTS["key_pairs"]
    if limit < 0:
        return
    with _session() as sess:
        if project_id:
            _guard(sess, project_id)  # concurrent imports by one user queue here
        count = sess.scalar(select(func.count()).select_from(KeyPair).where(KeyPair.user_id == user_id)) or 0
    if count + delta > limit:
        raise OverQuota("Quota exceeded, too many key pairs.", ["key_pairs"])


def check_server_groups(ctx, project_id: str, user_id: str | None, delta: int = 1) -> None:
    with _session() as sess:
        _guard(sess, project_id)
    try:
        check_and_reserve(ctx, project_id, user_id, {"server_groups": delta})
    except OverQuota:
        raise OverQuota("Quota exceeded, too many server groups.", ["server_groups"]) from None


def check_group_members(ctx, project_id: str, group_id: int, delta: int) -> None:
    """Members of one server group, against server_group_members (403 as Nova's create)."""
    limit = project_limits(project_id).get("server_group_members", -1)
    if limit < 0:
        return
    with _session() as sess:
        _guard(sess, project_id)
        count = sess.scalar(select(func.count()).select_from(ServerGroupMember)
                            .where(ServerGroupMember.group_id == group_id)) or 0
    if count + delta > limit:
        raise OverQuota("Quota exceeded, too many servers in group", ["server_group_members"])


def limits(ctx, project_id: str, user_id: str | None = None) -> dict:
    """The absolute limits and usage `/limits` reports (all of them; the API filters by
    microversion). Security-group and floating-IP usage are zero here: they live in the
    network service, whose quotas govern them."""
    lim = project_limits(project_id, user_id)
    used = usage(project_id)
    return {
        "maxServerMeta": lim["metadata_items"], "maxImageMeta": lim["metadata_items"],
        "maxPersonality": lim["injected_files"], "maxPersonalitySize": lim["injected_file_content_bytes"],
        "maxTotalKeypairs": lim["key_pairs"], "maxServerGroups": lim["server_groups"],
        "maxServerGroupMembers": lim["server_group_members"], "maxTotalInstances": lim["instances"],
        "maxTotalCores": lim["cores"], "maxTotalRAMSize": lim["ram"],
        "maxSecurityGroups": lim["security_groups"], "maxSecurityGroupRules": lim["security_group_rules"],
        "maxTotalFloatingIps": lim["floating_ips"],
        "totalInstancesUsed": used["instances"], "totalCoresUsed": used["cores"], "totalRAMUsed": used["ram"],
        "totalServerGroupsUsed": used["server_groups"], "totalSecurityGroupsUsed": 0,
        "totalFloatingIpsUsed": 0,
    }


# ---------------------------------------------------------------------------- updates
def settable(project_id: str, user_id: str | None = None) -> dict[str, tuple[int, int]]:
    """(minimum, maximum) a new limit may take without `force`: not below what is in use
    (for a project, not below any of its users' limits); a user's not above the project's."""
    out = {}
    in_use = usage(project_id, user_id)
    proj = project_limits(project_id)
    with _session() as sess:
        user_rows = list(sess.scalars(select(Quota).where(Quota.project_id == project_id, Quota.user_id != "")))
    for res in RESOURCES:
        minimum = in_use.get(res, 0) if res in COUNTED else 0
        maximum = -1
        if user_id:
            maximum = proj[res]
        else:
            for q in user_rows:
                if q.resource == res and q.hard_limit > minimum:
                    minimum = q.hard_limit
        out[res] = (minimum, maximum)
    return out


def set_limits(ctx, project_id: str, values: dict[str, int], user_id: str | None = None,
               force: bool = False) -> None:
    from pocketstack.common.events import emit

    if not force:
        bounds = settable(project_id, user_id)
        for res, value in values.items():
            lo, hi = bounds[res]
            inf = lambda v: float("inf") if v == -1 else v  # noqa: E731
            if inf(value) < inf(lo):
                raise BadRequest(f"Quota limit {value} for {res} must be greater than or equal to "
                                 f"already used and reserved {lo}.")
            if inf(value) > inf(hi):
                raise BadRequest(f"Quota limit {value} for {res} must be less than or equal to {hi}.")
    with _session() as sess:
        for res, value in values.items():
            row = sess.scalar(select(Quota).where(Quota.project_id == project_id,
                                                  Quota.user_id == (user_id or ""), Quota.resource == res))
            if row is None:
                sess.add(Quota(project_id=project_id, user_id=user_id or "", resource=res, hard_limit=value))
            else:
                row.hard_limit = value
    emit("compute.quota.update", {"project_id": project_id, "user_id": user_id, "quotas": values}, context=ctx)


def delete_limits(ctx, project_id: str, user_id: str | None = None) -> None:
    from pocketstack.common.events import emit

    with _session() as sess:
        q = delete(Quota).where(Quota.project_id == project_id)
        if user_id:
            q = q.where(Quota.user_id == user_id)
        sess.execute(q)
    emit("compute.quota.delete", {"project_id": project_id, "user_id": user_id}, context=ctx)


def set_class_limits(ctx, class_name: str, values: dict[str, int]) -> None:
    from pocketstack.common.events import emit

    with _session() as sess:
        for res, value in values.items():
            row = sess.scalar(select(QuotaClass).where(QuotaClass.class_name == class_name,
                                                       QuotaClass.resource == res))
            if row is None:
                sess.add(QuotaClass(class_name=class_name, resource=res, hard_limit=value))
            else:
                row.hard_limit = value
    emit("compute.quota_class.update", {"class_name": class_name, "quotas": values}, context=ctx)


def ensure_default_class() -> None:
    """Write upstream's defaults as the `default` class once, so operators see and edit them."""
    try:
        with _session() as sess:
            have = set(sess.scalars(select(QuotaClass.resource).where(QuotaClass.class_name == "default")))
            for res, value in DEFAULTS.items():
                if res not in have:
                    sess.add(QuotaClass(class_name="default", resource=res, hard_limit=value))
    except IntegrityError:
        pass
