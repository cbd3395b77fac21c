"""User messages (Cinder 3.3+): the reason an asynchronous request failed, for its project.

Event ids and texts are Cinder's (`VOLUME_001_001` "schedule allocate volume", ...), so
scripts that match on them keep working. Messages expire after `[DEFAULT]
message_ttl` seconds (30 days by default) and are pruned when listed.
"""
from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pocketstack.common.db import utcnow
from pocketstack.common.errors import NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import models as m

EVENTS = {
    "VOLUME_001_001": "schedule allocate volume:An unknown error occurred.",
    "VOLUME_001_002": "copy image to volume:An unknown error occurred.",
    "VOLUME_001_003": "create volume from backend storage:An unknown error occurred.",
    "VOLUME_004_001": "attach volume:An unknown error occurred.",
    "VOLUME_005_001": "extend volume:An unknown error occurred.",
    "VOLUME_006_001": "create snapshot:An unknown error occurred.",
    "VOLUME_007_001": "delete volume:An unknown error occurred.",
    "VOLUME_008_001": "backup volume:An unknown error occurred.",
}


def record(resource_uuid: str, resource_type: str, event_id: str, detail: str = "") -> None:
    rt = current()
    ttl = int(rt.config.get("DEFAULT", "message_ttl", "2592000") or 2592000)
    with rt.db.session() as sess:
        project = None
        if resource_type == "VOLUME":
            vol = sess.get(m.Volume, resource_uuid)
            project = vol.project_id if vol else None
        elif resource_type == "VOLUME_SNAPSHOT":
            snap = sess.get(m.Snapshot, resource_uuid)
            project = snap.project_id if snap else None
        elif resource_type == "VOLUME_BACKUP":
            backup = sess.get(m.Backup, resource_uuid)
            project = backup.project_id if backup else None
        if project is None:
            return
        sess.add(m.Message(id=str(uuid.uuid4()), project_id=project, resource_type=resource_type,
                           resource_uuid=resource_uuid, event_id=event_id, message_level="ERROR",
                           user_message=EVENTS.get(event_id, "An unknown error occurred."),
                           created_at=utcnow(), expires_at=utcnow() + dt.timedelta(seconds=ttl)))


def render(msg: m.Message) -> dict:
    return {"id": msg.id, "resource_type": msg.resource_type, "resource_uuid": msg.resource_uuid,
            "request_id": msg.request_id or "", "event_id": msg.event_id, "message_level": msg.message_level,
            "user_message": msg.user_message, "created_at": msg.created_at, "guaranteed_until": msg.expires_at,
            "links": []}


def list_messages(sess: Session, ctx) -> list[m.Message]:
    sess.execute(delete(m.Message).where(m.Message.expires_at < utcnow()))
    q = select(m.Message).order_by(m.Message.created_at.desc())
    if not ctx.is_admin:
        q = q.where(m.Message.project_id == ctx.project_id)
    return list(sess.execute(q).scalars())


def get(sess: Session, ctx, message_id: str) -> m.Message:
    msg = sess.get(m.Message, message_id)
    if msg is None or (not ctx.is_admin and msg.project_id != ctx.project_id):
        raise NotFound(f"Message {message_id} could not be found.")
    return msg
