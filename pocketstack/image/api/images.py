"""`/v2/images`: create, list, show, JSON-patch update, delete, tags, deactivate/reactivate."""
from __future__ import annotations

from urllib.parse import urlencode

from pocketstack.common.errors import BadRequest, NotFound, UnsupportedMediaType
from pocketstack.image import core
from pocketstack.image.api.common import api, service_url, session

PATCH_V21 = "application/openstack-images-v2.1-json-patch"
PATCH_V20 = "application/openstack-images-v2.0-json-patch"


def _image_headers() -> dict:
    methods = core.enabled_import_methods()
    headers = {}
    if methods:
        headers["OpenStack-image-import-methods"] = ",".join(methods)
    headers["OpenStack-image-store-ids"] = ",".join(core.backend().stores)
    return headers


@api.route("/v2/images", "POST")
def create_image(req):
    ctx = req.context
    with session() as sess:
        img = core.create(sess, ctx, req.json)
        body = core.render_one(sess, img, ctx)
    return 201, body, {"Location": f"{service_url(req)}/v2/images/{img.id}", **_image_headers()}


# ---------------------------------------------------------------------------- list
_SPECIAL = {"limit", "marker", "sort_key", "sort_dir", "sort", "visibility", "member_status", "tag",
            "os_hidden"}


def parse_list_query(req) -> core.ListQuery:
    q = core.ListQuery()
    query = req.query
    default = core.conf_int("image", "limit_param_default")
    maximum = core.conf_int("image", "api_limit_max")
    raw = query.get("limit")
    if raw is not None:
        try:
            limit = int(raw)
        except ValueError:
            raise BadRequest("limit param must be an integer") from None
        if limit < 0:
            raise BadRequest("limit param must be positive")
        q.limit = min(limit, maximum)
    else:
        q.limit = min(default, maximum)
    q.marker = query.get("marker") or None
    visibility = query.get("visibility")
    if visibility is not None:
        if visibility not in core.VISIBILITIES + ["all"]:
            raise BadRequest(f"Invalid visibility value: {visibility}")
        q.visibility = visibility
    member_status = query.get("member_status")
    if member_status is not None:
        if member_status not in core.MEMBER_STATUSES + ["all"]:
            raise BadRequest(f"Invalid status value: {member_status}")
        q.member_status = member_status
    hidden = query.get("os_hidden")
    if hidden is not None:
        q.os_hidden = core._parse_bool(hidden, "os_hidden")
    q.tags = [t for t in query.getlist("tag")]
    q.sort = _parse_sort(query)
    for name, value in query.multi_items():
        if name in _SPECIAL:
            continue
        q.filters.setdefault(name, []).append(value)
    return q


def _parse_sort(query) -> list[tuple[str, str]]:
    sort = query.get("sort")
    keys, dirs = query.getlist("sort_key"), query.getlist("sort_dir")
    if sort is not None:
        if keys or dirs:
            raise BadRequest("The 'sort' argument is not supported with 'sort_key' or 'sort_dir'.")
        out = []
        for item in sort.split(","):
            key, _, direction = item.strip().partition(":")
            _check_sort_key(key)
            direction = direction or "desc"
            _check_sort_dir(direction)
            out.append((key, direction))
        return out
    keys = [k for item in keys for k in item.split(",")] or ["created_at"]
    dirs = [d for item in dirs for d in item.split(",")]
    for key in keys:
        _check_sort_key(key)
    for direction in dirs:
        _check_sort_dir(direction)
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise BadRequest("Number of sort dirs does not match the number of sort keys")
    if not dirs:
        dirs = ["desc"] * len(keys)
    elif len(dirs) == 1:
        dirs = dirs * len(keys)
    return list(zip(keys, dirs))


def _check_sort_key(key: str) -> None:
    if key not in core.SORT_KEYS:
        raise BadRequest(f"Invalid sort key: {key}. It must be one of the following: "
                         f"{', '.join(core.SORT_KEYS)}.")


def _check_sort_dir(direction: str) -> None:
    if direction not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {direction}")


@api.route("/v2/images", "GET")
def list_images(req):
    ctx = req.context
    core.enforce(ctx, "get_images", {"project_id": ctx.project_id, "owner": ctx.project_id})
    q = parse_list_query(req)
    with session() as sess:
        images, next_marker = core.list_images(sess, ctx, q)
    params = [(k, v) for k, v in req.query.multi_items() if k != "marker"]
    body = {"images": images, "schema": "/v2/schemas/images",
            "first": "/v2/images" + (f"?{urlencode(params)}" if params else "")}
    if next_marker:
        body["next"] = "/v2/images?" + urlencode(params + [("marker", next_marker)])
    return body


# ---------------------------------------------------------------------------- one image
@api.route("/v2/images/", ["GET", "DELETE", "PATCH"])
def no_image_id(req):
    raise NotFound("The resource could not be found.")


@api.route("/v2/images/{image_id}", "GET")
def show_image(req):
    ctx = req.context
    with session() as sess:
        img, member = core.load(sess, req.path_params["image_id"], ctx)
        core.enforce(ctx, "get_image", core.target_for(img, member))
        return core.render_one(sess, img, ctx)


@api.route("/v2/images/{image_id}", "PATCH")
def update_image(req):
    ctx = req.context
    ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in (PATCH_V21, PATCH_V20):
        raise UnsupportedMediaType(f"Unsupported Content-Type {ctype or '(none)'}; use {PATCH_V21}",
                                   headers={"Accept-Patch": f"{PATCH_V21}, {PATCH_V20}"})
    changes = parse_patch(req.json, strict_add=(ctype == PATCH_V20))
    with session() as sess:
        img = core.patch_image(sess, ctx, req.path_params["image_id"], changes)
        return core.render_one(sess, img, ctx)


def _bad_patch(msg: str) -> BadRequest:
    return BadRequest(f"Invalid JSON-patch document: {msg}")


def parse_patch(doc, strict_add: bool = False) -> list[core.Change]:
    """Both patch dialects: v2.1 `{"op": "replace", "path": "/name", "value": ...}` and v2.0
    `{"replace": "/name", "value": ...}` (Tempest's)."""
    if not isinstance(doc, list):
        raise _bad_patch("the body must be a JSON array of operations")
    out = []
    for item in doc:
        if not isinstance(item, dict):
            raise _bad_patch("each operation must be a JSON object")
        if "op" in item:
            op, path = item.get("op"), item.get("path")
        else:
            ops = [k for k in ("add", "replace", "remove") if k in item]
            if len(ops) != 1:
                raise _bad_patch("each operation needs exactly one of 'op', 'add', 'replace', 'remove'")
            op, path = ops[0], item[ops[0]]
        if op not in ("add", "replace", "remove"):
            raise _bad_patch(f"unsupported operation {op!r} (use add, replace or remove)")
        if not isinstance(path, str) or not path.startswith("/") or path == "/":
            raise _bad_patch(f"invalid path {path!r}: it must be a JSON pointer such as '/name'")
        if op != "remove" and "value" not in item:
            raise _bad_patch(f"operation '{op}' needs a 'value'")
        if op == "remove" and "value" in item:
            raise _bad_patch("operation 'remove' takes no 'value'")
        allowed = {"op", "path", "value", op}
        extra = set(item) - allowed
        if extra:
            raise _bad_patch(f"unexpected member(s) {', '.join(sorted(extra))}")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
        if any(p == "" for p in parts[:1]):
            raise _bad_patch(f"invalid path {path!r}")
        out.append(core.Change(op=op, path=parts, value=item.get("value"), strict_add=strict_add))
    return out


@api.route("/v2/images/{image_id}", "DELETE")
def delete_image(req):
    core.delete_image(req.context, req.path_params["image_id"])
    return 204, None


@api.route("/v2/images/{image_id}/actions/deactivate", "POST")
def deactivate(req):
    with session() as sess:
        core.deactivate(sess, req.context, req.path_params["image_id"])
    return 204, None


@api.route("/v2/images/{image_id}/actions/reactivate", "POST")
def reactivate(req):
    with session() as sess:
        core.reactivate(sess, req.context, req.path_params["image_id"])
    return 204, None


# ---------------------------------------------------------------------------- tags
@api.route("/v2/images/{image_id}/tags/{tag:path}", "PUT")
def add_tag(req):
    with session() as sess:
        core.add_tag(sess, req.context, req.path_params["image_id"], req.path_params["tag"])
    return 204, None


@api.route("/v2/images/{image_id}/tags/{tag:path}", "DELETE")
def delete_tag(req):
    with session() as sess:
        core.delete_tag(sess, req.context, req.path_params["image_id"], req.path_params["tag"])
    return 204, None


@api.route("/v2/images/{image_id}/tasks", "GET")
def image_tasks(req):
    with session() as sess:
        return {"tasks": core.image_tasks(sess, req.context, req.path_params["image_id"])}
