"""Volume type encryption specs (`/types/{id}/encryption`, admin): provider, cipher, key
size and control location, as Cinder stores them for a key manager and the compute host.

The specs can be created, shown, updated and deleted only while no volume uses the type
(Cinder's rule). Creating a volume of an encrypted type needs a key manager (Barbican) to
hold its key; pocketstack has none yet, so such a create, or a retype to or from an
encrypted type, is refused with a 400 that says so instead of making a volume that claims
to be encrypted and is not.
"""
from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.volume import models as m
from pocketstack.volume import types
from pocketstack.volume.volumes import enforce

LOCATIONS = ("front-end", "back-end")
FIELDS = ("provider", "cipher", "key_size", "control_location")


def of(sess: Session, type_id: str) -> m.VolumeTypeEncryption | None:
    return sess.get(m.VolumeTypeEncryption, type_id) if type_id else None


def render(enc: m.VolumeTypeEncryption | None) -> dict:
    if enc is None:
        return {}
    return {"volume_type_id": enc.volume_type_id, "encryption_id": enc.encryption_id, "provider": enc.provider,
            "cipher": enc.cipher, "key_size": enc.key_size, "control_location": enc.control_location,
            "deleted": False, "created_at": enc.created_at, "updated_at": enc.updated_at, "deleted_at": None}


def _in_use(sess: Session, type_id: str, what: str) -> None:
    if sess.execute(select(m.Volume.id).where(m.Volume.volume_type_id == type_id)).first():
        raise BadRequest(f"Cannot {what} encryption specs. Volume type in use.")


def _check(body, required: bool) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("Missing required element 'encryption' in request body.")
    out = {}
    for key in ("provider", "control_location") if required else ():
        if key not in body:
            raise BadRequest(f"Invalid input for field/attribute encryption. '{key}' is a required property")
    if "provider" in body:
        if not isinstance(body["provider"], str) or len(body["provider"]) > 255:
            raise BadRequest("Invalid input for field/attribute provider: a string of at most 255 characters.")
        out["provider"] = body["provider"]
    if "control_location" in body:
        if body["control_location"] not in LOCATIONS:
            raise BadRequest(f"Invalid input for field/attribute control_location. Value: "
                             f"{body['control_location']}. It is not one of {list(LOCATIONS)}.")
        out["control_location"] = body["control_location"]
    if "cipher" in body:
        if body["cipher"] is not None and (not isinstance(body["cipher"], str) or len(body["cipher"]) > 255):
            raise BadRequest("Invalid input for field/attribute cipher: a string of at most 255 characters.")
        out["cipher"] = body["cipher"]
    if "key_size" in body:
        size = body["key_size"]
        try:
            size = None if size is None else int(size)
        except (TypeError, ValueError):
            raise BadRequest(f"Invalid input for field/attribute key_size. Value: {size}.") from None
        if size is not None and size < 0 or isinstance(body["key_size"], bool):
            raise BadRequest(f"Invalid input for field/attribute key_size. Value: {body['key_size']}.")
        out["key_size"] = size
    return out


def create(sess: Session, ctx, type_id: str, body) -> dict:
    enforce(ctx, "volume_extension:volume_type_encryption:create", ctx.project_id)
    specs = _check(body, True)
    _in_use(sess, type_id, "create")
    vt = types.get_type(sess, ctx, type_id)
    if of(sess, vt.id) is not None:
        raise BadRequest(f"Volume type encryption for type {vt.id} already exists.")
    enc = m.VolumeTypeEncryption(volume_type_id=vt.id, encryption_id=str(uuid.uuid4()),
                                 control_location=specs.get("control_location", "front-end"),
                                 provider=specs["provider"], cipher=specs.get("cipher"),
                                 key_size=specs.get("key_size"), created_at=utcnow())
    sess.add(enc)
    events.emit("volume_type_encryption.create", {"type_id": vt.id, "specs": specs}, context=ctx)
    return {**specs, "volume_type_id": vt.id, "encryption_id": enc.encryption_id}


def update(sess: Session, ctx, type_id: str, body) -> dict:
    enforce(ctx, "volume_extension:volume_type_encryption:update", ctx.project_id)
    specs = _check(body, False)
    vt = types.get_type(sess, ctx, type_id)
    _in_use(sess, vt.id, "update")
    enc = of(sess, vt.id)
    if enc is None:
        raise NotFound(f"Volume type encryption for type {vt.id} does not exist.")
    for key, value in specs.items():
        setattr(enc, key, value)
    enc.updated_at = utcnow()
    events.emit("volume_type_encryption.update", {"type_id": vt.id}, context=ctx)
    return specs


def delete(sess: Session, ctx, type_id: str) -> None:
    enforce(ctx, "volume_extension:volume_type_encryption:delete", ctx.project_id)
    vt = types.get_type(sess, ctx, type_id)
    _in_use(sess, vt.id, "delete")
    enc = of(sess, vt.id)
    if enc is None:
        raise NotFound(f"Volume type encryption for type {vt.id} does not exist.")
    sess.delete(enc)
    events.emit("volume_type_encryption.delete", {"type_id": vt.id}, context=ctx)


def refuse_encrypted(sess: Session, type_id: str | None, what: str = "create a volume") -> None:
    """Volumes of an encrypted type need a key manager, which this cloud does not have."""
    if of(sess, type_id) is not None:
        raise BadRequest(f"Invalid volume type: cannot {what} of an encrypted volume type: encryption keys "
                         "need a key manager (Barbican), and none is configured in this cloud.")
