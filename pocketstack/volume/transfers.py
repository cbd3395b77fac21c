"""Volume transfers: handing a volume (and its snapshots) to another project.

The owner creates a transfer of an `available` volume, which becomes `awaiting-transfer`,
and receives an auth key once; only a random salt and the SHA-256 of salt + key are
stored, and the key is never logged or put in an event. Anyone who knows the transfer id
and the key can accept it into their own project: the receiver's quotas are checked
under its quota lock, then the volume and (unless `no_snapshots`, 3.55) its snapshots
change project in one transaction, and the transfer is gone. Deleting the transfer gives
the volume back its `available` status.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.db import utcnow
from pocketstack.common.errors import ApiError, BadRequest, NotFound
from pocketstack.common.runtime import current
from pocketstack.volume import manager, quotas, volumes
from pocketstack.volume import models as m

KEY_BYTES = 8  # 16 hex characters, as Cinder's keys


class InvalidTransfer(ApiError):
    code = 400


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256((salt + key).encode()).hexdigest()


def not_found(transfer_id: str) -> NotFound:
    return NotFound(f"Transfer {transfer_id} could not be found.")


def load(sess: Session, ctx, transfer_id: str, rule: str = "volume:get_transfer") -> m.Transfer:
    tr = sess.get(m.Transfer, transfer_id) if transfer_id else None
    if tr is None or (ctx is not None and not ctx.is_admin and tr.source_project_id != ctx.project_id):
        raise not_found(transfer_id)
    volumes.enforce(ctx, rule, tr.source_project_id)
    if rule != "volume:delete_transfer" and sess.get(m.Volume, tr.volume_id) is None:
        raise not_found(transfer_id)
    return tr


def emit(event: str, tr: m.Transfer, ctx=None, **extra) -> None:
    events.emit(f"transfer.{event}", {"transfer_id": tr.id, "volume_id": tr.volume_id,
                                      "source_project_id": tr.source_project_id, **extra}, context=ctx)


def create(ctx, body: dict, *, no_snapshots_allowed: bool) -> tuple[str, str]:
    """Returns (transfer id, auth key): the key is shown once, in the create response."""
    from pocketstack.volume.api.common import bool_param

    if not isinstance(body, dict):
        raise BadRequest("Invalid input: 'transfer' must be an object.")
    volume_id = body.get("volume_id")
    if not isinstance(volume_id, str) or not volume_id:
        raise BadRequest("Invalid input for field/attribute volume_id: it is required.")
    name = volumes._string(body, "name")
    no_snapshots = bool_param(body.get("no_snapshots", False), "no_snapshots") if no_snapshots_allowed else False
    with current().db.session() as sess:
        vol = volumes.load(sess, ctx, volume_id, "volume:create_transfer")
        if vol.status != "available":
            raise volumes.InvalidVolume(f"Invalid volume: status must be available, but is {vol.status}.")
        if vol.encrypted:
            raise volumes.InvalidVolume("Invalid volume: encrypted volumes cannot be transferred.")
        if sess.execute(select(m.Backup.id).where(m.Backup.volume_id == vol.id,
                                                  m.Backup.status.in_(("creating", "restoring")))).first():
            raise volumes.InvalidVolume("Invalid volume: a backup of it is in progress.")
        if not no_snapshots:
            busy = [s.id for s in sess.execute(select(m.Snapshot).where(m.Snapshot.volume_id == vol.id)).scalars()
                    if s.status != "available"]
            if busy:
                raise volumes.InvalidVolume("Invalid volume: its snapshots must be available to transfer them.")
        key = secrets.token_hex(KEY_BYTES)
        salt = secrets.token_hex(8)
        tr = m.Transfer(id=manager.new_id(), volume_id=vol.id, name=name, salt=salt, crypt_hash=_hash(salt, key),
                        no_snapshots=no_snapshots, source_project_id=vol.project_id, created_at=utcnow())
        sess.add(tr)
        vol.status = "awaiting-transfer"
        vol.updated_at = utcnow()
        sess.flush()
        volumes.emit("update", vol, ctx)
        emit("create", tr, ctx)
        return tr.id, key


def list_transfers(sess: Session, ctx, query: dict) -> list[m.Transfer]:
    volumes.enforce(ctx, "volume:get_all_transfers", ctx.project_id)
    # A transfer whose volume was force-deleted meanwhile is hidden (it can never be accepted).
    q = select(m.Transfer).where(m.Transfer.volume_id.in_(select(m.Volume.id)))
    all_tenants = str(query.get("all_tenants", "")).lower() in ("1", "true", "yes", "on", "t")
    if not (ctx.is_admin and all_tenants):
        q = q.where(m.Transfer.source_project_id == ctx.project_id)
    for key in ("name", "volume_id"):
        if key in query:
            q = q.where(getattr(m.Transfer, key) == query[key])
    return list(sess.execute(q.order_by(m.Transfer.created_at.desc(), m.Transfer.id)).scalars())


def delete(sess: Session, ctx, transfer_id: str) -> None:
    tr = load(sess, ctx, transfer_id, "volume:delete_transfer")
    vol = sess.get(m.Volume, tr.volume_id)
    if vol is not None and vol.status == "awaiting-transfer":
        vol.status = "available"
        vol.updated_at = utcnow()
        volumes.emit("update", vol, ctx)
    emit("delete", tr, ctx)
    sess.delete(tr)


def accept(ctx, transfer_id: str, auth_key) -> m.Transfer:
    """Move the volume (and its snapshots) into the caller's project; returns the transfer
    as it was (the row is gone afterwards)."""
    if not isinstance(auth_key, str) or not auth_key:
        raise BadRequest("Invalid input: auth_key is required to accept a transfer.")
    receiver = ctx.project_id
    volumes.enforce(ctx, "volume:accept_transfer", receiver)
    with current().db.session() as sess:
        tr = sess.get(m.Transfer, transfer_id) if transfer_id else None
        if tr is None:
            raise not_found(transfer_id)
        if not hmac.compare_digest(tr.crypt_hash, _hash(tr.salt, auth_key)):
            raise InvalidTransfer(f"Invalid auth key: Attempt to transfer {transfer_id} with invalid auth key.")
        vol = sess.get(m.Volume, tr.volume_id)
        if vol is None:
            raise volumes.not_found(tr.volume_id)
        if vol.status != "awaiting-transfer":
            raise volumes.InvalidVolume(f"Invalid volume: Transfer {transfer_id} Volume {vol.id} status must be "
                                        f"awaiting-transfer, but is {vol.status}.")
        snaps = [] if tr.no_snapshots else list(sess.execute(
            select(m.Snapshot).where(m.Snapshot.volume_id == vol.id)).scalars())
        vtype = sess.get(m.VolumeType, vol.volume_type_id) if vol.volume_type_id else None
        type_name = vtype.name if vtype else None
        # Lock both projects in a fixed order, so two crossing transfers cannot deadlock.
        for project in sorted({receiver, vol.project_id}):
            quotas.lock_project(sess, project)
        if receiver != vol.project_id:
            quotas.check(sess, receiver, {"volumes": 1, "gigabytes": vol.size}, type_name)
            if snaps:
                quotas.check(sess, receiver, {"snapshots": len(snaps), "gigabytes": vol.size +
                                              sum(s.size for s in snaps)}, type_name)
        donor = vol.project_id
        vol.project_id = receiver
        vol.user_id = ctx.user_id
        vol.status = "available"
        vol.updated_at = utcnow()
        for snap in snaps:
            snap.project_id = receiver
            snap.user_id = ctx.user_id
            snap.updated_at = utcnow()
        done = m.Transfer(id=tr.id, volume_id=tr.volume_id, name=tr.name, salt="", crypt_hash="",
                          no_snapshots=tr.no_snapshots, source_project_id=donor, created_at=tr.created_at)
        sess.delete(tr)
        volumes.emit("update", vol, ctx)
        emit("accept", done, ctx, destination_project_id=receiver, snapshots=[s.id for s in snaps])
        return done
