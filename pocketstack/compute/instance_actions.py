"""Instance actions and their events (os-instance-actions): the audit trail of a server.

The API records an action per user request (keyed by the request id); the conductor and
the host agents record events under it (`compute_reboot_instance`, ...) with a result of
`Success` or `Error`. A failed event marks its action's message `Error`, as Nova does.
"""
from __future__ import annotations

from sqlalchemy import select

from pocketstack.common.db import utcnow
from pocketstack.common.runtime import current
from pocketstack.compute.models import InstanceAction, InstanceActionEvent


def record(sess, instance_uuid: str, action: str, ctx, request_id: str | None) -> InstanceAction:
    """Start an action in the caller's transaction."""
    row = InstanceAction(instance_uuid=instance_uuid, action=action, request_id=request_id or "req-internal",
                         user_id=getattr(ctx, "user_id", None), project_id=getattr(ctx, "project_id", None),
                         start_time=utcnow(), updated_at=utcnow())
    sess.add(row)
    sess.flush()
    return row


def _action(sess, instance_uuid: str, request_id: str | None) -> InstanceAction | None:
    q = select(InstanceAction).where(InstanceAction.instance_uuid == instance_uuid)
    if request_id:
        q = q.where(InstanceAction.request_id == request_id)
    return sess.scalars(q.order_by(InstanceAction.id.desc()).limit(1)).first()


def event_start(instance_uuid: str, request_id: str | None, event: str, host: str | None = None) -> int | None:
    with current().db.session() as sess:
        action = _action(sess, instance_uuid, request_id)
        if action is None:
            return None
        row = InstanceActionEvent(action_id=action.id, event=event, host=host, start_time=utcnow())
        sess.add(row)
        action.updated_at = utcnow()
        sess.flush()
        return row.id


def event_finish(event_id: int | None, *, error: str | None = None) -> None:
    if event_id is None:
        return
    with current().db.session() as sess:
        row = sess.get(InstanceActionEvent, event_id)
        if row is None:
            return
        now = utcnow()
        row.finish_time = now
        row.result = "Error" if error else "Success"
        if error:
            row.traceback = error
            row.details = error[:255]
        action = sess.get(InstanceAction, row.action_id)
        if action is not None:
            action.updated_at = now
            action.finish_time = now
            if error:
                action.message = "Error"


class Event:
    """`with Event(uuid, request_id, "compute_stop_instance", host):` records start and end."""

    def __init__(self, instance_uuid, request_id, event, host=None):
        self.args = (instance_uuid, request_id, event, host)
        self.id = None

    def __enter__(self):
        self.id = event_start(*self.args)
        return self

    def __exit__(self, exc_type, exc, tb):
        event_finish(self.id, error=(f"{type(exc).__name__}: {exc}" if exc is not None else None))
        return False


def list_actions(sess, instance_uuid: str) -> list[InstanceAction]:
    return list(sess.scalars(select(InstanceAction).where(InstanceAction.instance_uuid == instance_uuid)
                             .order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc())))


def get_action(sess, instance_uuid: str, request_id: str) -> InstanceAction | None:
    return sess.scalars(select(InstanceAction).where(InstanceAction.instance_uuid == instance_uuid,
                                                     InstanceAction.request_id == request_id)).first()


def events_of(sess, action_id: int) -> list[InstanceActionEvent]:
    return list(sess.scalars(select(InstanceActionEvent).where(InstanceActionEvent.action_id == action_id)
                             .order_by(InstanceActionEvent.id)))
