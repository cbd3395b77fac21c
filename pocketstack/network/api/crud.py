"""The five standard routes of a core resource (list, create incl. bulk, show, update,
delete), shared by networks, subnets, ports and subnet pools.

A resource's logic module provides: `RESOURCE` (body spec), `visible_query(ctx)`,
`get_visible(sess, ctx, id)`, `render_many(sess, rows, ctx)`, `create(sess, ctx, data)`,
`update(sess, ctx, id, data, req)`, `delete(sess, ctx, id, req)`, and optionally
`policy_target(...)`. Every change emits `network.<resource>.created|updated|deleted`
after its transaction commits.
"""
from __future__ import annotations

from types import ModuleType

from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api, session


def owner_filters(model) -> dict:
    """`id`, `project_id` and `tenant_id` (the same column) as SQL-side filters."""
    return {"id": model.id, "project_id": model.project_id, "tenant_id": model.project_id}


def register(module: ModuleType, *, sql_filters: dict | None = None, hooks: dict | None = None,
             show_check=None) -> None:
    res: r.Resource = module.RESOURCE
    plural, singular = res.plural, res.singular
    sql_filters = sql_filters or {}
    valid = set(res.by_name) | set(sql_filters)

    def list_items(req):
        ctx = req.context
        with session() as sess:
            q = module.visible_query(ctx)
            for param, column in sql_filters.items():
                values = req.query.getlist(param)
                if values:
                    q = q.where(column.in_(values))
            rows = list(sess.scalars(q))
            items = module.render_many(sess, rows, ctx)
        return r.list_response(req, plural, items, hooks=hooks, valid_filters=valid)

    def create_items(req):
        ctx = req.context
        body = req.json
        bulk = isinstance(body, dict) and plural in body and singular not in body
        if bulk:
            if not isinstance(body[plural], list) or not body[plural]:
                raise r.BadRequest(f"Resources required")
            entries = [{singular: e} for e in body[plural]]
        else:
            entries = [body]
        with session() as sess:
            rows = [module.create(sess, ctx, res.parse_create(e, ctx)) for e in entries]
            items = module.render_many(sess, rows, ctx)
        for item in items:
            r.emit(singular, "created", {"id": item["id"], "name": item.get("name"),
                                         "project_id": item.get("project_id")}, ctx)
        if bulk:
            return 201, {plural: items}
        return 201, {singular: items[0]}

    def show_item(req):
        ctx = req.context
        with session() as sess:
            row = module.get_visible(sess, ctx, req.path_params["id"])
            if show_check is not None:
                show_check(sess, ctx, row)
            item = module.render_many(sess, [row], ctx)[0]
        return r.show_response(req, singular, item)

    def update_item(req):
        ctx = req.context
        data = res.parse_update(req.json)
        with session() as sess:
            row = module.update(sess, ctx, req.path_params["id"], data, req)
            item = module.render_many(sess, [row], ctx)[0]
        r.emit(singular, "updated", {"id": item["id"], "changes": sorted(data)}, ctx)
        return {singular: item}

    def delete_item(req):
        ctx = req.context
        with session() as sess:
            row = module.delete(sess, ctx, req.path_params["id"], req)
            payload = {"id": row.id, "project_id": getattr(row, "project_id", None)}
        r.emit(singular, "deleted", payload, ctx)
        return 204, None

    for fn, name in ((list_items, "list"), (create_items, "create"), (show_item, "show"), (update_item, "update"),
                     (delete_item, "delete")):
        fn.__name__ = f"{name}_{plural}"
    api.route(f"/v2.0/{plural}", "GET")(list_items)
    api.route(f"/v2.0/{plural}", "POST")(create_items)
    api.route(f"/v2.0/{plural}/{{id}}", "GET")(show_item)
    api.route(f"/v2.0/{plural}/{{id}}", "PUT")(update_item)
    api.route(f"/v2.0/{plural}/{{id}}", "DELETE")(delete_item)
