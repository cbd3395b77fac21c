"""The tags API of every taggable resource: `/v2.0/<collection>/{id}/tags[/{tag}]`.

Resources register themselves with `resource.register_tags`; replacing, adding or removing
tags bumps the resource's revision_number and emits `network.<resource>.tags.updated`.
"""
from __future__ import annotations

from pocketstack.common.errors import NotFound
from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api, session


def _lookup(req):
    plural = req.path_params["collection"]
    tt = r.TAG_TARGETS.get(plural)
    if tt is None:
        raise NotFound("The resource could not be found.")
    return tt


def _rule(tt, verb: str) -> str:
    """`<verb>_<resource>:tags`, or the resource's own get/update rule when a resource type
    registered no tag rules."""
    from pocketstack.common.runtime import current

    name = f"{verb}_{tt.singular}:tags"
    enforcer = current().enforcer
    if name in enforcer.defaults or name in enforcer.overrides:
        return name
    return f"{'get' if verb == 'get' else 'update'}_{tt.singular}"


def _changed(tt, row, tags, ctx):
    r.emit(tt.singular, "tags.updated", {"id": row.id, "tags": tags}, ctx)


@api.route("/v2.0/{collection}/{rid}/tags", "GET")
def list_tags(req):
    tt = _lookup(req)
    ctx = req.context
    with session() as sess:
        row = tt.load(sess, ctx, req.path_params["rid"])
        r.enforce(ctx, _rule(tt, "get"), tt.target(sess, row))
        return {"tags": sorted(r.load_tags(sess, tt.resource_type, [row.id])[row.id])}


@api.route("/v2.0/{collection}/{rid}/tags/{tag}", "GET")
def check_tag(req):
    tt = _lookup(req)
    ctx = req.context
    with session() as sess:
        row = tt.load(sess, ctx, req.path_params["rid"])
        r.enforce(ctx, _rule(tt, "get"), tt.target(sess, row))
        tag = req.path_params["tag"]
        if tag not in r.load_tags(sess, tt.resource_type, [row.id])[row.id]:
            raise _tag_not_found(tag, tt, row.id)
    return 204, None


def _tag_not_found(tag, tt, rid):
    return r.neutron_error(404, "TagNotFound", f"Tag {tag} could not be found for {tt.singular} {rid}.")


@api.route("/v2.0/{collection}/{rid}/tags", "PUT")
def replace_tags(req):
    tt = _lookup(req)
    ctx = req.context
    body = req.json
    if not isinstance(body, dict) or not isinstance(body.get("tags"), list):
        raise r.BadRequest("Invalid input for tags. Reason: 'tags' must be a list.")
    with session() as sess:
        row = tt.load(sess, ctx, req.path_params["rid"])
        r.enforce(ctx, _rule(tt, "update"), tt.target(sess, row))
        tags = r.set_tags(sess, tt.resource_type, row, body["tags"])
    _changed(tt, row, tags, ctx)
    return {"tags": tags}


@api.route("/v2.0/{collection}/{rid}/tags/{tag}", "PUT")
def add_tag(req):
    tt = _lookup(req)
    ctx = req.context
    with session() as sess:
        row = tt.load(sess, ctx, req.path_params["rid"])
        r.enforce(ctx, _rule(tt, "update"), tt.target(sess, row))
        have = r.load_tags(sess, tt.resource_type, [row.id])[row.id]
        tags = r.set_tags(sess, tt.resource_type, row, have + [req.path_params["tag"]])
    _changed(tt, row, tags, ctx)
    return 201, None


@api.route("/v2.0/{collection}/{rid}/tags", "DELETE")
def delete_all_tags(req):
    tt = _lookup(req)
    ctx = req.context
    with session() as sess:
        row = tt.load(sess, ctx, req.path_params["rid"])
        r.enforce(ctx, _rule(tt, "delete"), tt.target(sess, row))
        r.set_tags(sess, tt.resource_type, row, [])
    _changed(tt, row, [], ctx)
    return 204, None


@api.route("/v2.0/{collection}/{rid}/tags/{tag}", "DELETE")
def delete_tag(req):
    tt = _lookup(req)
    ctx = req.context
    tag = req.path_params["tag"]
    with session() as sess:
        row = tt.load(sess, ctx, req.path_params["rid"])
        r.enforce(ctx, _rule(tt, "delete"), tt.target(sess, row))
        have = r.load_tags(sess, tt.resource_type, [row.id])[row.id]
        if tag not in have:
            raise _tag_not_found(tag, tt, row.id)
        tags = r.set_tags(sess, tt.resource_type, row, [t for t in have if t != tag])
    _changed(tt, row, tags, ctx)
    return 204, None
