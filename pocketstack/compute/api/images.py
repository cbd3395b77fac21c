"""The legacy image proxy (`/images`, up to microversion 2.35): the image service's images
in Nova's shape, through `pocketstack.image.core` with the caller's visibility.

From 2.36 on these URLs are 404, as upstream (clients talk to the image service).
"""
from __future__ import annotations

from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.compute.api.common import api, at_least, session
from pocketstack.compute.api.servers import base

_STATUS = {"active": ("ACTIVE", 100), "queued": ("SAVING", 25), "saving": ("SAVING", 50),
           "uploading": ("SAVING", 25), "importing": ("SAVING", 50), "deleted": ("DELETED", 0),
           "pending_delete": ("DELETED", 0), "killed": ("ERROR", 0), "deactivated": ("UNKNOWN", 0)}
_CORE = {"id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
         "os_hash_value", "owner", "size", "virtual_size", "container_format", "disk_format", "min_disk",
         "min_ram", "created_at", "updated_at", "tags", "self", "file", "schema", "stores", "locations",
         "direct_url"}


def _proxy_only(req) -> None:
    if at_least(req, "2.36"):
        raise NotFound("The resource could not be found.")


def _core():
    from pocketstack.image import core

    return core


def _nova_image(req, img: dict, detail: bool = True) -> dict:
    b = base(req)
    root = b.rsplit("/compute", 1)[0]
    links = [{"rel": "self", "href": f"{b}/v2.1/images/{img['id']}"},
             {"rel": "bookmark", "href": f"{b}/images/{img['id']}"},
             {"rel": "alternate", "type": "application/vnd.openstack.image",
              "href": f"{root}/image/images/{img['id']}"}]
    if not detail:
        return {"id": img["id"], "name": img["name"], "links": links}
    status, progress = _STATUS.get(img["status"], ("UNKNOWN", 0))
    meta = {k: v for k, v in img.items() if k not in _CORE}
    body = {"id": img["id"], "name": img["name"], "minRam": img.get("min_ram") or 0,
            "minDisk": img.get("min_disk") or 0, "metadata": meta, "created": img["created_at"],
            "updated": img["updated_at"], "status": status, "progress": progress, "links": links,
            "OS-EXT-IMG-SIZE:size": img.get("size") or 0}
    if meta.get("instance_uuid"):
        sid = meta["instance_uuid"]
        body["server"] = {"id": sid, "links": [{"rel": "self", "href": f"{b}/v2.1/servers/{sid}"},
                                               {"rel": "bookmark", "href": f"{b}/servers/{sid}"}]}
    return body


def _show(req, image_id: str) -> dict:
    core = _core()
    with session() as sess:
        try:
            img, _ = core.load(sess, image_id, req.context)
        except NotFound:
            raise NotFound("Image not found.") from None
        return core.render_one(sess, img, req.context)


def _list(req) -> list[dict]:
    core = _core()
    q = core.ListQuery()
    qp = req.query
    if qp.get("name"):
        q.filters["name"] = [qp["name"]]
    if qp.get("status"):
        q.filters["status"] = [qp["status"].lower()]
    if qp.get("limit"):
        try:
            q.limit = int(qp["limit"])
        except ValueError:
            raise BadRequest("limit param must be an integer") from None
    q.marker = qp.get("marker")
    with session() as sess:
        images, _next = core.list_images(sess, req.context, q)
    if qp.get("server"):
        server = qp["server"].rstrip("/").rsplit("/", 1)[-1]
        images = [i for i in images if i.get("instance_uuid") == server]
    if qp.get("type"):
        images = [i for i in images if i.get("image_type") == qp["type"]]
    for key, field in (("minRam", "min_ram"), ("minDisk", "min_disk")):
        if qp.get(key):
            try:
                floor = int(qp[key])
            except ValueError:
                raise BadRequest(f"{key} must be an integer") from None
            images = [i for i in images if (i.get(field) or 0) >= floor]
    if qp.get("changes-since"):
        since = qp["changes-since"].replace(" ", "+")
        images = [i for i in images if (i.get("updated_at") or "") >= since[:19]]
    return images


@api.route("/v2.1/images", "GET")
def list_images(req):
    _proxy_only(req)
    return {"images": [_nova_image(req, i, detail=False) for i in _list(req)]}


@api.route("/v2.1/images/detail", "GET")
def list_images_detail(req):
    _proxy_only(req)
    return {"images": [_nova_image(req, i) for i in _list(req)]}


@api.route("/v2.1/images/{image_id}", "GET")
def show_image(req):
    _proxy_only(req)
    return {"image": _nova_image(req, _show(req, req.path_params["image_id"]))}


@api.route("/v2.1/images/", "DELETE")
def delete_image_without_id(req):
    _proxy_only(req)
    raise NotFound("Image not found.")


@api.route("/v2.1/images/{image_id}", "DELETE")
def delete_image(req):
    _proxy_only(req)
    _show(req, req.path_params["image_id"])
    _core().delete_image(req.context, req.path_params["image_id"])
    return 204, None


@api.route("/v2.1/images/{image_id}/metadata", "GET")
def image_metadata(req):
    _proxy_only(req)
    return {"metadata": _nova_image(req, _show(req, req.path_params["image_id"]))["metadata"]}


@api.route("/v2.1/images/{image_id}/metadata/{key}", "GET")
def image_metadata_item(req):
    _proxy_only(req)
    meta = _nova_image(req, _show(req, req.path_params["image_id"]))["metadata"]
    key = req.path_params["key"]
    if key not in meta:
        raise NotFound("Metadata item was not found")
    return {"meta": {key: meta[key]}}


def _set_props(req, values: dict, remove: list[str] | None = None, replace: bool = False) -> dict:
    core = _core()
    image_id = req.path_params["image_id"]
    current = _nova_image(req, _show(req, image_id))["metadata"]
    changes = []
    if replace:
        for k in current:
            if k not in values:
                changes.append(core.Change("remove", [k]))
    for k in remove or []:
        if k not in current:
            raise NotFound("Metadata item was not found")
        changes.append(core.Change("remove", [k]))
    for k, v in values.items():
        if not isinstance(v, str):
            raise BadRequest(f"Invalid metadata value for {k}")
        changes.append(core.Change("replace" if k in current else "add", [k], v))
    with session() as sess:
        core.patch_image(sess, req.context, image_id, changes)
    return _nova_image(req, _show(req, image_id))["metadata"]


@api.route("/v2.1/images/{image_id}/metadata", "POST")
def update_image_metadata(req):
    _proxy_only(req)
    meta = req.json_object("metadata")
    return {"metadata": _set_props(req, meta)}


@api.route("/v2.1/images/{image_id}/metadata", "PUT")
def replace_image_metadata(req):
    _proxy_only(req)
    meta = req.json_object("metadata")
    return {"metadata": _set_props(req, meta, replace=True)}


@api.route("/v2.1/images/{image_id}/metadata/{key}", "PUT")
def set_image_metadata_item(req):
    _proxy_only(req)
    meta = req.json_object("meta")
    key = req.path_params["key"]
    if list(meta) != [key]:
        raise BadRequest("Request body and URI mismatch")
    _set_props(req, meta)
    return {"meta": meta}


@api.route("/v2.1/images/{image_id}/metadata/{key}", "DELETE")
def delete_image_metadata_item(req):
    _proxy_only(req)
    _set_props(req, {}, remove=[req.path_params["key"]])
    return 204, None
