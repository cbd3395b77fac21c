"""Discovery (`/v2/info/import`, `/v2/info/stores`, `/v2/info/usage`), per-store delete and tasks."""
from __future__ import annotations

from sqlalchemy import func, select

from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.image import core
from pocketstack.image import models as m
from pocketstack.image.api.common import api, session


@api.route("/v2/info/import", "GET")
def info_import(req):
    req.context
    return {"import-methods": {"description": "Import methods available.", "type": "array",
                               "value": core.enabled_import_methods()}}


def _stores(detail: bool) -> list[dict]:
    be = core.backend()
    out = []
    for store in be.stores.values():
        item = {**store.info()}
        if store is be.default:
            item["default"] = True
        if detail:
            item["type"] = store.id if store.id in ("file", "swift", "rbd", "cinder", "http", "s3") else "other"
            item["properties"] = {}
        out.append(item)
    return out


@api.route("/v2/info/stores", "GET")
def info_stores(req):
    req.context
    return {"stores": _stores(False)}


@api.route("/v2/info/stores/detail", "GET")
def info_stores_detail(req):
    ctx = req.context
    core.enforce(ctx, "stores_info_detail", {"project_id": ctx.project_id})
    return {"stores": _stores(True)}


@api.route("/v2/info/usage", "GET")
def info_usage(req):
    ctx = req.context
    project = ctx.project_id
    with session() as sess:
        count = sess.execute(select(func.count()).select_from(m.Image).where(m.Image.owner == project)).scalar()
        size = sess.execute(select(func.coalesce(func.sum(m.Image.size), 0))
                            .where(m.Image.owner == project)).scalar() or 0
        uploading = sess.execute(select(func.count()).select_from(m.Image).where(
            m.Image.owner == project, m.Image.status.in_(("saving", "uploading", "importing")))).scalar()
    size_total = core.conf_int("image", "image_size_total")
    return {"usage": {
        "image_size_total": {"limit": size_total, "usage": int(size) // (1 << 20)},
        "image_count_total": {"limit": core.conf_int("image", "image_count_total"), "usage": count},
        "image_stage_total": {"limit": -1, "usage": 0},
        "image_count_uploading": {"limit": -1, "usage": uploading},
    }}


@api.route("/v2/stores/{store_id}/{image_id}", "DELETE")
def delete_from_store(req):
    ctx = req.context
    store_id, image_id = req.path_params["store_id"], req.path_params["image_id"]
    be = core.backend()
    if store_id not in be.stores:
        raise NotFound(f"Unknown store {store_id}.")
    with session() as sess:
        img, member = core.load(sess, image_id, ctx)
        core.enforce(ctx, "delete_image_location", core.target_for(img, member))
        if img.status != "active":
            raise Conflict("It's not allowed to remove image data from store if image status is not 'active'")
        locs = core.locations_of(sess, [img.id])[img.id]
        mine = [loc for loc in locs if loc.store == store_id]
        if not mine:
            raise NotFound(f"Image {img.id} is not in store {store_id}.")
        if len(mine) == len(locs):
            raise Conflict("Cannot delete the last location of an image.")
        urls = [loc.url for loc in mine]
        for loc in mine:
            sess.delete(loc)
    for url in urls:
        be.store(store_id).delete(url)
    return 204, None


# ---------------------------------------------------------------------------- tasks
@api.route("/v2/tasks", "GET")
def list_tasks(req):
    ctx = req.context
    core.enforce(ctx, "get_tasks", {"project_id": ctx.project_id})
    with session() as sess:
        rows = sess.execute(select(m.ImageTask).order_by(m.ImageTask.created_at.desc())).scalars()
        return {"tasks": [core.render_task(t) for t in rows], "schema": "/v2/schemas/tasks",
                "first": "/v2/tasks"}


@api.route("/v2/tasks/{task_id}", "GET")
def show_task(req):
    ctx = req.context
    core.enforce(ctx, "get_task", {"project_id": ctx.project_id})
    with session() as sess:
        task = sess.get(m.ImageTask, req.path_params["task_id"])
        if task is None:
            raise NotFound(f"Task with the given id {req.path_params['task_id']} not found")
        return core.render_task(task)


@api.route("/v2/tasks", "POST")
def create_task(req):
    ctx = req.context
    core.enforce(ctx, "add_task", {"project_id": ctx.project_id})
    body = req.json_object()
    task_type = body.get("type")
    if task_type != "import":
        raise BadRequest(f"Invalid type value: {task_type}")
    # The legacy `import` task fetches `import_from` over HTTP: superseded by the interoperable
    # import (web-download), which has the allow-list; refuse rather than fetch anything.
    raise BadRequest("The legacy import task is not supported; use the interoperable image import "
                     "(POST /v2/images/{image_id}/import).")
