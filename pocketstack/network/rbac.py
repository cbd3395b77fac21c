"""RBAC policies: share a network with one project or all (`access_as_shared`), or let
them use it as an external network (`access_as_external`).

What a grant does is read elsewhere: networks.py shows granted networks to the target
project and lets it attach ports; routers and floating IPs accept a network as external
for a project when `external_for` says so. Here: validation, ownership (only admins
manage policies on networks they do not own, as upstream), wildcards (`*`, admins only by
policy) mirrored in the network's `shared` / `router:external` flags, and the in-use
checks: a project losing shared access may not keep ports on the network, a network
losing external access may not keep router gateways or floating IPs of other projects
(409 RbacPolicyInUse).

    create_policy(ctx, data) / update_policy(ctx, id, changes) / delete_policy(ctx, id)
    get_policy(ctx, id) / list_policies(ctx)
    external_for(sess, network, project_id) -> bool
"""
from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pocketstack.common.context import AuthContext
from pocketstack.common.runtime import current
from pocketstack.network import models as m
from pocketstack.network.api import resource as r

OBJECT_TYPES = ("network",)
ACTIONS = {"network": ("access_as_external", "access_as_shared")}
SHARED, EXTERNAL = "access_as_shared", "access_as_external"

r.register_quota_resource("rbac_policy", 10, lambda sess, pid: sess.scalar(
    select(func.count()).select_from(m.RbacPolicy).where(m.RbacPolicy.project_id == pid)))


def session():
    return current().db.session()


def policy_not_found(id_: str, object_type: str = "network"):
    return r.not_found("RbacPolicyNotFound", f"RBAC policy of type {object_type} with ID {id_} not found")


def render(row: m.RbacPolicy) -> dict:
    return {"id": row.id, "project_id": row.project_id, "tenant_id": row.project_id,
            "object_type": row.object_type, "object_id": row.object_id, "action": row.action,
            "target_tenant": row.target_project, "target_project": row.target_project}


def _target(row_or_data) -> dict:
    get = row_or_data.get if isinstance(row_or_data, dict) else (lambda k: getattr(row_or_data, k))
    project = get("project_id")
    target = get("target_project") if not isinstance(row_or_data, dict) else get("target_tenant")
    return {"project_id": project, "tenant_id": project, "target_tenant": target, "target_project": target,
            "object_id": get("object_id"), "action": get("action")}


def external_for(sess, network: m.Network, project_id: str | None) -> bool:
    """Whether `project_id` may use `network` as an external network."""
    if network.external:
        return True
    return sess.scalar(select(func.count()).select_from(m.RbacPolicy).where(
        m.RbacPolicy.object_type == "network", m.RbacPolicy.object_id == network.id,
        m.RbacPolicy.action == EXTERNAL, m.RbacPolicy.target_project.in_([project_id or "", "*"]))) > 0


def load(sess, ctx: AuthContext | None, id_: str) -> m.RbacPolicy:
    row = sess.get(m.RbacPolicy, id_)
    if row is None or not (ctx is None or r.is_admin(ctx) or row.project_id == ctx.project_id):
        raise policy_not_found(id_)
    return row


def list_policies(ctx: AuthContext | None) -> list[dict]:
    with session() as sess:
        q = select(m.RbacPolicy).order_by(m.RbacPolicy.id)
        if ctx is not None and not r.is_admin(ctx):
            q = q.where(m.RbacPolicy.project_id == ctx.project_id)
        return [render(x) for x in sess.scalars(q)]


def get_policy(ctx: AuthContext | None, id_: str) -> dict:
    with session() as sess:
        row = load(sess, ctx, id_)
        r.enforce(ctx, "get_rbac_policy", _target(row))
        return render(row)


def _network(sess, ctx, net_id: str) -> m.Network:
    from pocketstack.network import networks

    net = networks.get_visible(sess, ctx, net_id)
    if ctx is not None and not r.is_admin(ctx) and net.project_id != ctx.project_id:
        raise r.InvalidInput("Only admins can manipulate policies on networks they do not own")
    return net


def create_policy(ctx: AuthContext | None, data: dict) -> dict:
    """`data`: object_type, object_id, action, target_tenant, project_id (parsed body)."""
    object_type, action = data["object_type"], data["action"]
    if action not in ACTIONS[object_type]:
        raise r.InvalidInput(f"Invalid action {action} for object type {object_type}. Valid actions: "
                             f"{', '.join(ACTIONS[object_type])}")
    target = _target(data)
    r.enforce(ctx, "create_rbac_policy", target)
    r.enforce_attrs(ctx, "create_rbac_policy", target, {"target_tenant"})
    with session() as sess:
        net = _network(sess, ctx, data["object_id"])
        r.check_quota(sess, data["project_id"], "rbac_policy", 1)
        row = m.RbacPolicy(id=str(uuid.uuid4()), project_id=data["project_id"], object_type=object_type,
                           object_id=net.id, action=action, target_project=data["target_tenant"])
        try:
            with sess.begin_nested():
                sess.add(row)
                sess.flush()
        except IntegrityError:
            raise r.neutron_error(409, "DuplicateRbacPolicy", "An RBAC policy already exists with those values.") \
                from None
        if row.target_project == "*":
            _sync_flags(sess, net, action)
        body = render(row)
    r.emit("rbac_policy", "created", {"id": row.id, "object_id": row.object_id, "action": action,
                                      "target_project": row.target_project}, ctx)
    return body


def update_policy(ctx: AuthContext | None, id_: str, changes: dict) -> dict:
    with session() as sess:
        row = load(sess, ctx, id_)
        target = _target(row)
        r.enforce(ctx, "update_rbac_policy", target)
        new_target = changes.get("target_tenant", row.target_project)
        old_target = row.target_project
        r.enforce_attrs(ctx, "update_rbac_policy", {**target, "target_tenant": new_target,
                                                    "target_project": new_target}, set(changes))
        net = _network(sess, ctx, row.object_id)
        if new_target != row.target_project:
            _check_losing(sess, net, row, new_target)
            row.target_project = new_target
            try:
                with sess.begin_nested():
                    sess.flush()
            except IntegrityError:
                raise r.neutron_error(409, "DuplicateRbacPolicy",
                                      "An RBAC policy already exists with those values.") from None
            if "*" in (old_target, new_target):
                _sync_flags(sess, net, row.action)
        body = render(row)
    r.emit("rbac_policy", "updated", {"id": id_, "target_project": body["target_project"]}, ctx)
    return body


def delete_policy(ctx: AuthContext | None, id_: str) -> None:
    with session() as sess:
        row = load(sess, ctx, id_)
        r.enforce(ctx, "delete_rbac_policy", _target(row))
        net = sess.get(m.Network, row.object_id)
        if net is not None:
            _check_losing(sess, net, row, None)
        sess.delete(row)
        sess.flush()
        if net is not None and row.target_project == "*":
            _sync_flags(sess, net, row.action)
        payload = {"id": id_, "object_id": row.object_id, "action": row.action}
    r.emit("rbac_policy", "deleted", payload, ctx)


# ---------------------------------------------------------------------------- in-use checks and flags
def _granted(sess, net: m.Network, action: str, project: str, without: m.RbacPolicy) -> bool:
    """Whether `project` keeps `action` on `net` once `without` is gone."""
    if project == net.project_id:
        return True
    return sess.scalar(select(func.count()).select_from(m.RbacPolicy).where(
        m.RbacPolicy.object_type == "network", m.RbacPolicy.object_id == net.id, m.RbacPolicy.action == action,
        m.RbacPolicy.target_project.in_([project, "*"]), m.RbacPolicy.id != without.id)) > 0


def _check_losing(sess, net: m.Network, row: m.RbacPolicy, new_target: str | None) -> None:
    """The projects `row` granted (every non-owner for `*`) may not keep dependent objects:
    ports on a shared network, router gateways or floating IPs on an external one."""
    old = row.target_project
    if old == net.project_id or new_target == "*":
        return
    if row.action == SHARED:
        users = set(sess.scalars(select(m.Port.project_id).where(m.Port.network_id == net.id)))
    else:
        users = set(sess.scalars(select(m.Router.project_id).where(m.Router.gw_network_id == net.id)))
        users |= set(sess.scalars(select(m.FloatingIP.project_id).where(m.FloatingIP.floating_network_id == net.id)))
    users -= {net.project_id, ""}
    for project in (users if old == "*" else users & {old}):
        if not _granted(sess, net, row.action, project, row):
            _in_use(row)


def _in_use(row: m.RbacPolicy):
    raise r.neutron_error(409, "RbacPolicyInUse", f"RBAC policy on object {row.object_id} cannot be removed "
                          "because other objects depend on it.\nDetails: the project still uses the network.")


def _sync_flags(sess, net: m.Network, action: str) -> None:
    """A `*` grant is what `shared` / `router:external` mean for everybody: creating the
    first one sets the flag, deleting the last one clears it."""
    wild = sess.scalar(select(func.count()).select_from(m.RbacPolicy).where(
        m.RbacPolicy.object_type == "network", m.RbacPolicy.object_id == net.id, m.RbacPolicy.action == action,
        m.RbacPolicy.target_project == "*")) > 0
    column = "shared" if action == SHARED else "external"
    if getattr(net, column) != wild:
        setattr(net, column, wild)
        r.bump_revision(net)
        sess.flush()
