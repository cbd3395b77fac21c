"""The five standard routes of a core resource (list, create incl. bulk, show, update,
delete), shared by networks, subnets, ports and subnet pools.

A resource's logic module provides: `RESOURCE` (body spec), `visible_query(ctx)`,
`get_visible(sess, ctx, id)`, `render_many(sess, rows, ctx)`, `create(sess, ctx, data)`,
`update(sess, ctx, id, data, req)`, `delete(sess, ctx, id, req)`, and optionally
`policy_target(...)`. Every change emits `network.<resource>.created|updated|deleted`
after its transaction commits.

Listing large collections: when every filter is a SQL column filter and every sort key a
plain column attribute (`columns`: attributes rendered exactly as a column, never hidden
by policy), a paged request (`limit`/`marker`) sorted by id only (the default, what
clients page with) is a keyset query (`id > marker ORDER BY id LIMIT n+1`: UUIDs order
alike in every database and in Python); other sorts page a light (id, sort columns)
query with the general path's Python sort. Either way only the page is loaded and
rendered. A `fields=` request naming only such columns is answered from the light query
without rendering. Anything else renders every visible row and filters the dicts (the
general convention). `columns` also lets lists render from plain rows (no ORM objects):
the module's `render_many` must then read rows by attribute only.
"""
from __future__ import annotations

from types import ModuleType

from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api, session


def owner_filters(model) -> dict:
    """`id`, `project_id` and `tenant_id` (the same column) as SQL-side filters."""
    return {"id": model.id, "project_id": model.project_id, "tenant_id": model.project_id}


def standard_columns(model) -> dict[str, tuple]:
    """The standard attributes as `standard_attrs` renders them: attr -> (column, convert)."""
    same = lambda v: v  # noqa: E731
    return {"id": (model.id, same), "name": (model.name, same), "description": (model.description, lambda v: v or ""),
            "project_id": (model.project_id, same), "tenant_id": (model.project_id, same),
            "created_at": (model.created_at, r.fmt_time), "updated_at": (model.updated_at, r.fmt_time),
            "revision_number": (model.revision_number, same)}


def _column_listing(req, module: ModuleType, plural: str, sql_filters: dict, columns: dict[str, tuple]) -> dict | None:
    """The list body computed from column values only (see the module docstring), or None
    when the request needs the general path."""
    query = req.query
    if any(k not in r.LIST_PARAMS and k not in sql_filters for k in query.keys()):
        return None
    if any(k in query for k in ("tags", "tags-any", "not-tags", "not-tags-any")):
        return None
    sort = r.parse_sort(req)
    fields = query.getlist("fields")
    light = bool(fields) and all(f in columns for f in fields)
    if not (light or r.is_paged(req)) or any(k not in columns for k, _ in sort):
        return None
    visible = _sql_where(module.visible_query(req.context), req, sql_filters)
    with session() as sess:
        if not light and all(k == "id" for k, _ in sort):
            page, links = _keyset_page(req, sess, visible, columns["id"][0], bool(sort) and sort[0][1])
        else:
            names = list(dict.fromkeys(["id"] + [k for k, _ in sort] + (fields if light else [])))
            q = visible.with_only_columns(*(columns[n][0] for n in names))
            items = [{n: columns[n][1](v) for n, v in zip(names, row)} for row in sess.execute(q)]
            page, links = r.paginate(req, r.sort_items(items, sort))
        if not light:
            ids = [i["id"] for i in page]
            rows = {}
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                rows.update((x.id, x) for x in sess.execute(_plain(module.visible_query(req.context)).where(
                    columns["id"][0].in_(part))))
            page = module.render_many(sess, [rows[i] for i in ids if i in rows], req.context)
    body: dict = {}
    if links is not None:
        body[f"{plural}_links"] = links
    body[plural] = [r.select_fields(i, fields) for i in page]
    return body


def _keyset_page(req, sess, visible, id_col, desc: bool) -> tuple[list[dict], list[dict] | None]:
    """One page sorted by id, straight from SQL: `limit + 1` rows after (or before) the marker."""
    limit, marker, reverse = r.page_params(req)
    if marker is not None and sess.execute(visible.with_only_columns(id_col).where(id_col == marker)).first() is None:
        raise r.not_found("NotFound", f"Marker {marker} could not be found.")
    backwards = desc != reverse  # walking towards smaller ids
    q = visible.with_only_columns(id_col).order_by(id_col.desc() if backwards else id_col.asc())
    if marker is not None:
        q = q.where(id_col < marker if backwards else id_col > marker)
    if limit is not None:
        q = q.limit(limit + 1)
    ids = [row[0] for row in sess.execute(q)]
    more = limit is not None and len(ids) > limit
    page = [{"id": i} for i in ids[:limit]]
    if reverse:
        page.reverse()
    return page, r.page_links(req, page, more)


def _plain(q):
    """The query's entity columns as plain rows (attribute access, no ORM objects to build)."""
    return q.with_only_columns(*q.selected_columns)


def _sql_where(q, req, sql_filters: dict):
    for param, column in sql_filters.items():
        values = req.query.getlist(param)
        if values:
            q = q.where(column.in_(values))
    return q


def register(module: ModuleType, *, sql_filters: dict | None = None, hooks: dict | None = None,
             show_check=None, columns: dict[str, tuple] | None = None) -> None:
    """`columns` (attr -> (column, convert)) enables the column listing for those attributes."""
    res: r.Resource = module.RESOURCE
    plural, singular = res.plural, res.singular
    sql_filters = sql_filters or {}
    valid = set(res.by_name) | set(sql_filters)

    def list_items(req):
        ctx = req.context
        if columns:
            body = _column_listing(req, module, plural, sql_filters, columns)
            if body is not None:
                return body
        with session() as sess:
            q = _sql_where(module.visible_query(ctx), req, sql_filters)
            rows = list(sess.execute(_plain(q))) if columns else list(sess.scalars(q))
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
