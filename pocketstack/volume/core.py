"""The Block Storage service's public Python interface, for other services.

Compute attaches and detaches volumes through these calls (never the volume tables):

    get_volume(ctx, volume_id) -> dict                    # id, status, size, multiattach, ...
    attach(ctx, volume_id, instance_uuid, host, mountpoint, mode=None)
        -> {"attachment_id", "connection_info"}           # reserve + connect + complete
    detach(ctx, attachment_id) -> None
    delete_volume(ctx, volume_id) -> None                 # delete_on_termination

`ctx` is the caller's auth context (policy and project visibility apply as in the API);
`None` means the service itself. Errors are the volume service's `ApiError`s (404 for a
volume the caller cannot see, 400 for one in the wrong state), which the calling API
renders in its own error format.
"""
from __future__ import annotations

from pocketstack.common.runtime import current
from pocketstack.volume import attachments, volumes


def get_volume(ctx, volume_id: str) -> dict:
    with current().db.session() as sess:
        vol = volumes.load(sess, ctx, volume_id)
        return {"id": vol.id, "status": vol.status, "size": vol.size, "multiattach": vol.multiattach,
                "attach_status": vol.attach_status, "bootable": vol.bootable, "project_id": vol.project_id,
                "availability_zone": vol.availability_zone}


def attach(ctx, volume_id: str, instance_uuid: str, host: str | None, mountpoint: str,
           mode: str | None = None) -> dict:
    """Reserve, connect and complete an attachment in one transaction (all or nothing)."""
    connector = {"host": host or "", "mountpoint": mountpoint, "instance": instance_uuid}
    with current().db.session() as sess:
        body = {"volume_uuid": volume_id, "instance_uuid": instance_uuid, "connector": connector}
        if mode:
            body["mode"] = mode
        att = attachments.create(sess, ctx, body)
        attachments.complete(sess, ctx, att.id)
        return {"attachment_id": att.id, "connection_info": att.connection_info}


def detach(ctx, attachment_id: str) -> None:
    with current().db.session() as sess:
        attachments.delete(sess, ctx, attachment_id)


def delete_volume(ctx, volume_id: str) -> None:
    volumes.delete(ctx, volume_id)
