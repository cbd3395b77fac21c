"""`/types/{type_id}/encryption`: Cinder's volume type encryption API (admin)."""
from __future__ import annotations

from pocketstack.common.errors import NotFound
from pocketstack.volume import encryption, types
from pocketstack.volume.api.common import route, session
from pocketstack.volume.volumes import enforce


@route("/types/{type_id}/encryption", "GET")
def show_encryption(req):
    enforce(req.context, "volume_extension:volume_type_encryption:get", req.context.project_id)
    with session() as sess:
        vt = types.get_type(sess, req.context, req.path_params["type_id"])
        return encryption.render(encryption.of(sess, vt.id))


@route("/types/{type_id}/encryption", "POST")
def create_encryption(req):
    body = req.json_object().get("encryption")
    with session() as sess:
        return {"encryption": encryption.create(sess, req.context, req.path_params["type_id"], body)}


@route("/types/{type_id}/encryption/{key}", "GET")
def show_encryption_item(req):
    enforce(req.context, "volume_extension:volume_type_encryption:get", req.context.project_id)
    key = req.path_params["key"]
    with session() as sess:
        vt = types.get_type(sess, req.context, req.path_params["type_id"])
        specs = encryption.render(encryption.of(sess, vt.id))
    if key not in specs:
        raise NotFound(f"Volume type encryption for type {vt.id} does not exist.")
    return {key: specs[key]}


@route("/types/{type_id}/encryption/{encryption_id}", "PUT")
def update_encryption(req):
    body = req.json_object().get("encryption")
    with session() as sess:
        return {"encryption": encryption.update(sess, req.context, req.path_params["type_id"], body)}


@route("/types/{type_id}/encryption/{encryption_id}", "DELETE")
def delete_encryption(req):
    with session() as sess:
        encryption.delete(sess, req.context, req.path_params["type_id"])
    return 202, None
