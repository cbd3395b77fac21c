"""`/types` (volume types, extra specs, access) and `/qos-specs`."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.volume import models as m
from pocketstack.volume import types
from pocketstack.volume.api.common import body_of, route, session
from pocketstack.volume.volumes import enforce


def _admin(req, rule: str = "volume_extension:types_manage") -> None:
    enforce(req.context, rule, req.context.project_id)


@route("/types", "GET")
def list_types(req):
    with session() as sess:
        return {"volume_types": [types.render(sess, req.context, t)
                                 for t in types.list_types(sess, req.context, req.query.get("is_public"))]}


@route("/types/default", "GET")
def default_type(req):
    with session() as sess:
        return {"volume_type": types.render(sess, req.context, types.default_type(sess, req.context.project_id))}


@route("/types", "POST")
def create_type(req):
    _admin(req)
    body = body_of(req, "volume_type")
    with session() as sess:
        vt = types.create(sess, req.context, body)
        return {"volume_type": types.render(sess, req.context, vt, manage="create")}


@route("/types/{type_id}", "GET")
def show_type(req):
    with session() as sess:
        return {"volume_type": types.render(sess, req.context, types.get_type(sess, req.context,
                                                                              req.path_params["type_id"]))}


@route("/types/{type_id}", "PUT")
def update_type(req):
    _admin(req)
    body = body_of(req, "volume_type")
    with session() as sess:
        vt = types.update(sess, req.context, req.path_params["type_id"], body)
        return {"volume_type": types.render(sess, req.context, vt, manage="update")}


@route("/types/{type_id}", "DELETE")
def delete_type(req):
    _admin(req)
    with session() as sess:
        types.delete_type(sess, req.context, req.path_params["type_id"])
    return 202, None


@route("/types/{type_id}/extra_specs", "GET")
def list_specs(req):
    with session() as sess:
        vt = types.get_type(sess, req.context, req.path_params["type_id"])
        return {"extra_specs": types.specs_of(sess, vt.id)}


@route("/types/{type_id}/extra_specs", "POST")
def create_specs(req):
    _admin(req, "volume_extension:types_extra_specs:create")
    specs = req.json_object().get("extra_specs")
    if not isinstance(specs, dict) or not specs:
        raise BadRequest("Missing required element 'extra_specs' in request body.")
    with session() as sess:
        return {"extra_specs": types.set_specs(sess, req.context, req.path_params["type_id"], specs)}


@route("/types/{type_id}/extra_specs/{key}", "GET")
def show_spec(req):
    with session() as sess:
        vt = types.get_type(sess, req.context, req.path_params["type_id"])
        specs, key = types.specs_of(sess, vt.id), req.path_params["key"]
        if key not in specs:
            raise NotFound(f"Volume Type {vt.id} has no extra specs with key {key}.")
        return {key: specs[key]}


@route("/types/{type_id}/extra_specs/{key}", "PUT")
def update_spec(req):
    _admin(req, "volume_extension:types_extra_specs:update")
    body, key = req.json_object(), req.path_params["key"]
    if key not in body:
        raise BadRequest("Request body and URI mismatch")
    if len(body) > 1:
        raise BadRequest("Request body contains too many items")
    with session() as sess:
        return types.set_specs(sess, req.context, req.path_params["type_id"], body)


@route("/types/{type_id}/extra_specs/{key}", "DELETE")
def delete_spec(req):
    _admin(req, "volume_extension:types_extra_specs:delete")
    with session() as sess:
        types.delete_spec(sess, req.context, req.path_params["type_id"], req.path_params["key"])
    return 202, None


@route("/types/{type_id}/os-volume-type-access", "GET")
def list_access(req):
    _admin(req, "volume_extension:volume_type_access:addProjectAccess")
    with session() as sess:
        return {"volume_type_access": types.access_list(sess, req.context, req.path_params["type_id"])}


@route("/types/{type_id}/action", "POST")
def type_action(req):
    body = req.json_object()
    type_id = req.path_params["type_id"]
    if "addProjectAccess" in body:
        _admin(req, "volume_extension:volume_type_access:addProjectAccess")
        args = body["addProjectAccess"] or {}
        with session() as sess:
            types.add_access(sess, req.context, type_id, args.get("project") if isinstance(args, dict) else None)
    elif "removeProjectAccess" in body:
        _admin(req, "volume_extension:volume_type_access:removeProjectAccess")
        args = body["removeProjectAccess"] or {}
        with session() as sess:
            types.remove_access(sess, req.context, type_id, args.get("project") if isinstance(args, dict) else None)
    else:
        raise BadRequest("Invalid request body: no known action.")
    return 202, None


# ---------------------------------------------------------------------------- QoS specs
def _render_qos(q: m.QosSpecs) -> dict:
    return {"id": q.id, "name": q.name, "consumer": q.consumer, "specs": q.specs}


def _qos(sess, qos_id: str) -> m.QosSpecs:
    q = sess.get(m.QosSpecs, qos_id)
    if q is None:
        raise NotFound(f"QoS Specs {qos_id} could not be found.")
    return q


@route("/qos-specs", "GET")
def list_qos(req):
    _admin(req, "volume_extension:qos_specs_manage:get_all")
    with session() as sess:
        return {"qos_specs": [_render_qos(q) for q in sess.execute(select(m.QosSpecs)
                                                                   .order_by(m.QosSpecs.created_at)).scalars()]}


@route("/qos-specs", "POST")
def create_qos(req):
    _admin(req, "volume_extension:qos_specs_manage:create")
    body = dict(body_of(req, "qos_specs"))
    name = body.pop("name", None)
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("Please specify a name for QoS specs.")
    consumer = body.pop("consumer", "back-end")
    if consumer not in ("front-end", "back-end", "both"):
        raise BadRequest(f"Invalid consumer {consumer!r}: it must be front-end, back-end or both.")
    specs = {str(k): str(v) for k, v in body.items()}
    with session() as sess:
        if sess.execute(select(m.QosSpecs).where(m.QosSpecs.name == name)).scalars().first():
            raise Conflict(f"QoS Specs {name} already exists.")
        q = m.QosSpecs(id=str(uuid.uuid4()), name=name, consumer=consumer, specs=specs)
        sess.add(q)
        return {"qos_specs": _render_qos(q), "links": []}


@route("/qos-specs/{qos_id}", "GET")
def show_qos(req):
    _admin(req, "volume_extension:qos_specs_manage:get")
    with session() as sess:
        return {"qos_specs": _render_qos(_qos(sess, req.path_params["qos_id"])), "links": []}


@route("/qos-specs/{qos_id}", "PUT")
def update_qos(req):
    _admin(req, "volume_extension:qos_specs_manage:update")
    body = body_of(req, "qos_specs")
    with session() as sess:
        q = _qos(sess, req.path_params["qos_id"])
        specs = dict(q.specs)
        for key, value in body.items():
            if key == "consumer":
                q.consumer = str(value)
            else:
                specs[str(key)] = str(value)
        q.specs = specs
        return {"qos_specs": {k: str(v) for k, v in body.items()}}


@route("/qos-specs/{qos_id}", "DELETE")
def delete_qos(req):
    _admin(req, "volume_extension:qos_specs_manage:delete")
    force = req.query.get("force", "false").lower() in ("true", "1")
    with session() as sess:
        q = _qos(sess, req.path_params["qos_id"])
        users = list(sess.execute(select(m.VolumeType).where(m.VolumeType.qos_specs_id == q.id)).scalars())
        if users and not force:
            raise BadRequest(f"QoS Specs {q.id} is still associated with entities.")
        for vt in users:
            vt.qos_specs_id = None
        sess.delete(q)
    return 202, None


@route("/qos-specs/{qos_id}/associations", "GET")
def qos_associations(req):
    _admin(req, "volume_extension:qos_specs_manage:get")
    with session() as sess:
        q = _qos(sess, req.path_params["qos_id"])
        return {"qos_associations": [{"association_type": "volume_type", "name": vt.name, "id": vt.id}
                                     for vt in sess.execute(select(m.VolumeType)
                                                            .where(m.VolumeType.qos_specs_id == q.id)).scalars()]}


@route("/qos-specs/{qos_id}/associate", "GET")
def qos_associate(req):
    _admin(req, "volume_extension:qos_specs_manage:update")
    with session() as sess:
        q = _qos(sess, req.path_params["qos_id"])
        vt = types.get_type(sess, req.context, req.query.get("vol_type_id", ""))
        if vt.qos_specs_id and vt.qos_specs_id != q.id:
            raise BadRequest(f"Volume type {vt.id} is already associated with another QoS specs.")
        vt.qos_specs_id = q.id
    return 202, None


@route("/qos-specs/{qos_id}/disassociate", "GET")
def qos_disassociate(req):
    _admin(req, "volume_extension:qos_specs_manage:update")
    with session() as sess:
        q = _qos(sess, req.path_params["qos_id"])
        vt = types.get_type(sess, req.context, req.query.get("vol_type_id", ""))
        if vt.qos_specs_id == q.id:
            vt.qos_specs_id = None
    return 202, None


@route("/qos-specs/{qos_id}/disassociate_all", "GET")
def qos_disassociate_all(req):
    _admin(req, "volume_extension:qos_specs_manage:update")
    with session() as sess:
        q = _qos(sess, req.path_params["qos_id"])
        for vt in sess.execute(select(m.VolumeType).where(m.VolumeType.qos_specs_id == q.id)).scalars():
            vt.qos_specs_id = None
    return 202, None


@route("/qos-specs/{qos_id}/delete_keys", "PUT")
def qos_delete_keys(req):
    _admin(req, "volume_extension:qos_specs_manage:update")
    keys = req.json_object().get("keys")
    if not isinstance(keys, list):
        raise BadRequest("Missing required element 'keys' in request body.")
    with session() as sess:
        q = _qos(sess, req.path_params["qos_id"])
        specs = dict(q.specs)
        for key in keys:
            if key not in specs:
                raise NotFound(f"QoS spec {key} could not be found on QoS specs {q.id}.")
            specs.pop(key)
        q.specs = specs
    return 202, None


# ---------------------------------------------------------------------------- default types (3.62)
def _default_view(row: m.ProjectDefaultType) -> dict:
    return {"project_id": row.project_id, "volume_type_id": row.volume_type_id}


def _need_3_62(req) -> None:
    from pocketstack.volume.api.common import at_least

    if not at_least(req, "3.62"):
        raise NotFound("The resource could not be found.")


@route("/default-types/{project}", "PUT")
def set_default_type(req):
    """A project's own default volume type: used by its creates without a type and by
    `GET /types/default` in that project."""
    _need_3_62(req)
    project = req.path_params["project"]
    enforce(req.context, "volume_extension:default_set_or_update", project)
    ref = body_of(req, "default_type").get("volume_type")
    if not isinstance(ref, str) or not ref:
        raise BadRequest("Invalid input for field/attribute volume_type: it is required.")
    with session() as sess:
        try:
            vt = types.get_type(sess, req.context, ref)
        except NotFound as exc:
            raise BadRequest(exc.message) from None
        row = sess.get(m.ProjectDefaultType, project)
        if row is None:
            row = m.ProjectDefaultType(project_id=project, volume_type_id=vt.id)
            sess.add(row)
        row.volume_type_id = vt.id
        sess.flush()
        return {"default_type": _default_view(row)}


@route("/default-types/{project}", "GET")
def show_default_type(req):
    _need_3_62(req)
    project = req.path_params["project"]
    enforce(req.context, "volume_extension:default_get", project)
    with session() as sess:
        row = sess.get(m.ProjectDefaultType, project)
        if row is None:
            raise NotFound(f"Default type for project {project} could not be found.")
        return {"default_type": _default_view(row)}


@route("/default-types", "GET")
def list_default_types(req):
    _need_3_62(req)
    enforce(req.context, "volume_extension:default_get_all", req.context.project_id)
    with session() as sess:
        return {"default_types": [_default_view(r) for r in sess.execute(
            select(m.ProjectDefaultType).order_by(m.ProjectDefaultType.project_id)).scalars()]}


@route("/default-types/{project}", "DELETE")
def unset_default_type(req):
    _need_3_62(req)
    project = req.path_params["project"]
    enforce(req.context, "volume_extension:default_unset", project)
    with session() as sess:
        row = sess.get(m.ProjectDefaultType, project)
        if row is not None:
            sess.delete(row)
    return 204, None
