"""`/v2/images/{id}/members`: sharing an image with other projects."""
from __future__ import annotations

from pocketstack.common.errors import BadRequest
from pocketstack.image import core
from pocketstack.image.api.common import api, session


@api.route("/v2/images/{image_id}/members", "POST")
def add_member(req):
    body = req.json_object()
    if "member" not in body:
        raise BadRequest("Invalid input: the body must be {\"member\": \"<project id>\"}.")
    with session() as sess:
        mem = core.add_member(sess, req.context, req.path_params["image_id"], body["member"])
        return core.render_member(mem)


@api.route("/v2/images/{image_id}/members", "GET")
def list_members(req):
    with session() as sess:
        members = core.list_members(sess, req.context, req.path_params["image_id"])
        return {"members": [core.render_member(x) for x in members], "schema": "/v2/schemas/members"}


@api.route("/v2/images/{image_id}/members/{member_id}", "GET")
def show_member(req):
    with session() as sess:
        mem = core.get_member(sess, req.context, req.path_params["image_id"], req.path_params["member_id"])
        return core.render_member(mem)


@api.route("/v2/images/{image_id}/members/{member_id}", "PUT")
def update_member(req):
    body = req.json_object()
    if "status" not in body:
        raise BadRequest("Invalid input: the body must be {\"status\": \"accepted|rejected|pending\"}.")
    with session() as sess:
        mem = core.update_member(sess, req.context, req.path_params["image_id"], req.path_params["member_id"],
                                 body["status"])
        return core.render_member(mem)


@api.route("/v2/images/{image_id}/members/{member_id}", "DELETE")
def delete_member(req):
    with session() as sess:
        core.delete_member(sess, req.context, req.path_params["image_id"], req.path_params["member_id"])
    return 204, None
