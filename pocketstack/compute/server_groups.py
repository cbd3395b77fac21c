"""Server groups: sets of servers placed with one policy (affinity, anti-affinity, soft-*).

The public Python interface the scheduler and server create use:

- `get_group(ctx, group_id)` -> `GroupInfo` (404 for a group the caller's project cannot see)
- `add_member(group_id, instance_id, ctx=None)` (checks `server_group_members` quota: 403)
- `members(group_id)` -> instance uuids; `remove_instance(instance_id)` when a server is deleted
- `group_of_instance(instance_id)` -> `GroupInfo | None`

`policy` is one of `POLICIES`; `rules` holds `max_server_per_host` for anti-affinity (2.64).
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.common.events import emit
from pocketstack.common.runtime import current
from pocketstack.compute.models import ServerGroup, ServerGroupMember

POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


@dataclass(frozen=True)
class GroupInfo:
    id: str  # the uuid clients see
    name: str
    project_id: str
    user_id: str
    policy: str
    rules: dict = field(default_factory=dict)
    members: tuple = ()
    internal_id: int = 0
    created_at: dt.datetime | None = None

    @property
    def max_server_per_host(self) -> int:
        """How many members anti-affinity allows on one host (1 unless a rule says more)."""
        return int(self.rules.get("max_server_per_host", 1))


class GroupNotFound(NotFound):
    def __init__(self, group_id: str):
        super().__init__(f"Instance group {group_id} could not be found.")


def _session():
    return current().db.session()


def _members(sess, internal_id: int) -> tuple:
    return tuple(sess.scalars(select(ServerGroupMember.instance_uuid)
                              .where(ServerGroupMember.group_id == internal_id)
                              .order_by(ServerGroupMember.instance_uuid)))


def _info(sess, row: ServerGroup) -> GroupInfo:
    return GroupInfo(row.uuid, row.name, row.project_id, row.user_id, row.policy, dict(row.rules or {}),
                     _members(sess, row.id), row.id, row.created_at)


def _visible(ctx, row: ServerGroup) -> bool:
    return ctx is None or ctx.is_admin or row.project_id == ctx.project_id


def get_group(ctx, group_id: str) -> GroupInfo:
    with _session() as sess:
        row = sess.scalar(select(ServerGroup).where(ServerGroup.uuid == str(group_id)))
        if row is None or not _visible(ctx, row):
            raise GroupNotFound(group_id)
        return _info(sess, row)


def list_groups(ctx, *, all_projects: bool = False, project_id: str | None = None,
                limit: int | None = None, offset: int | None = None) -> list[GroupInfo]:
    with _session() as sess:
        q = select(ServerGroup).order_by(ServerGroup.id)
        if not all_projects:
            q = q.where(ServerGroup.project_id == (project_id or ctx.project_id))
        elif project_id:
            q = q.where(ServerGroup.project_id == project_id)
        if offset:
            q = q.offset(offset)
        if limit is not None:
            q = q.limit(limit)
        return [_info(sess, r) for r in sess.scalars(q)]


def create_group(ctx, name: str, policy: str, rules: dict | None = None) -> GroupInfo:
    from pocketstack.compute import quotas

    if policy not in POLICIES:
        raise BadRequest(f"Invalid policy {policy}")
    with _session() as sess:
        quotas.check_server_groups(ctx, ctx.project_id, ctx.user_id, 1)
        row = ServerGroup(uuid=str(uuid.uuid4()), name=name, project_id=ctx.project_id,
                          user_id=ctx.user_id or "", policy=policy, rules=rules or {}, created_at=utcnow())
        sess.add(row)
        sess.flush()
        info = _info(sess, row)
    emit("compute.server_group.create", {"server_group_id": info.id, "name": name, "policy": policy,
                                         "project_id": info.project_id}, context=ctx)
    return info


def delete_group(ctx, group_id: str) -> None:
    with _session() as sess:
        row = sess.scalar(select(ServerGroup).where(ServerGroup.uuid == str(group_id)))
        if row is None or not _visible(ctx, row):
            raise GroupNotFound(group_id)
        sess.execute(delete(ServerGroupMember).where(ServerGroupMember.group_id == row.id))
        sess.delete(row)
    emit("compute.server_group.delete", {"server_group_id": group_id}, context=ctx)


def add_member(group_id: str, instance_id: str, ctx=None) -> None:
    """Record `instance_id` in the group (idempotent), checking the members quota."""
    from pocketstack.compute import quotas

    with _session() as sess:
        row = sess.scalar(select(ServerGroup).where(ServerGroup.uuid == str(group_id)))
        if row is None:
            raise GroupNotFound(group_id)
        if sess.get(ServerGroupMember, (row.id, instance_id)) is not None:
            return
        quotas.check_group_members(ctx, row.project_id, row.id, 1)
        sess.add(ServerGroupMember(group_id=row.id, instance_uuid=instance_id))
    emit("compute.server_group.add_member", {"server_group_id": group_id, "instance_id": instance_id},
         context=ctx)


def members(group_id: str) -> list[str]:
    with _session() as sess:
        row = sess.scalar(select(ServerGroup).where(ServerGroup.uuid == str(group_id)))
        if row is None:
            raise GroupNotFound(group_id)
        return list(_members(sess, row.id))


def group_of_instance(instance_id: str) -> GroupInfo | None:
    with _session() as sess:
        member = sess.scalar(select(ServerGroupMember).where(ServerGroupMember.instance_uuid == instance_id))
        if member is None:
            return None
        return _info(sess, sess.get(ServerGroup, member.group_id))


def remove_instance(instance_id: str) -> None:
    """Drop a deleted server from whatever group it was in."""
    with _session() as sess:
        sess.execute(delete(ServerGroupMember).where(ServerGroupMember.instance_uuid == instance_id))
