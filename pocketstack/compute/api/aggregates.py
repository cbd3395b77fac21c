"""os-aggregates: host aggregates (CRUD, add/remove host, set metadata).

Ids are integers in the URL (400 otherwise); `uuid` appears in bodies from 2.41. Create
answers 200 without `hosts`/`metadata`, delete 200 with no body, as Nova does.
"""
from __future__ import annotations

import re

from pocketstack.common.errors import BadRequest
from pocketstack.compute import aggregates
from pocketstack.compute.api import params as p
from pocketstack.compute.api.common import api, at_least

R = "os_compute_api:os-aggregates:"
META_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")


def _view(req, info: aggregates.AggregateInfo, full: bool = True) -> dict:
    out = {"availability_zone": info.availability_zone, "created_at": p.ts(info.created_at),
           "deleted": False, "deleted_at": None, "id": info.id, "name": info.name,
           "updated_at": p.ts(info.updated_at)}
    if full:
        out["hosts"] = list(info.hosts)
        out["metadata"] = dict(info.metadata)
    if at_least(req, "2.41"):
        out["uuid"] = info.uuid
    return out


def _id(req) -> int:
    raw = req.path_params["aggregate_id"]
    if not re.fullmatch(r"-?[0-9]+", raw):
        raise BadRequest("Invalid input received: id must be an integer")
    return int(raw)


def _az(value, path: str = "availability_zone"):
    if value is None:
        return None
    name = p.name(value, path)
    if ":" in name:
        raise p.invalid(path, value, f"'{value}' does not match '^[^:]*$'")
    return name


@api.route("/v2.1/os-aggregates", "GET")
def list_aggregates(req):
    p.authorize(req, R + "index", {})
    p.strict_query(req, (), "2.102")
    return {"aggregates": [_view(req, a) for a in aggregates.list_aggregates()]}


@api.route("/v2.1/os-aggregates", "POST")
def create_aggregate(req):
    p.authorize(req, R + "create", {})
    body = p.body(req, "aggregate", ("name", "availability_zone"), ("name",))
    name = p.name(body["name"])
    az = _az(body.get("availability_zone"))
    info = aggregates.create_aggregate(req.context, name, az)
    return {"aggregate": _view(req, info, full=False)}


@api.route("/v2.1/os-aggregates/{aggregate_id}", "GET")
def show_aggregate(req):
    p.authorize(req, R + "show", {})
    p.strict_query(req, (), "2.102")
    return {"aggregate": _view(req, aggregates.get_aggregate(_id(req)))}


@api.route("/v2.1/os-aggregates/{aggregate_id}", "PUT")
def update_aggregate(req):
    p.authorize(req, R + "update", {})
    body = p.body(req, "aggregate", ("name", "availability_zone"))
    if not body:
        raise p.invalid("aggregate", body, f"{body} is not valid under any of the given schemas")
    agg_id = _id(req)
    name = p.name(body["name"], strip_ok=True).strip() if "name" in body else None
    kwargs = {"az": _az(body["availability_zone"])} if "availability_zone" in body else {}
    return {"aggregate": _view(req, aggregates.update_aggregate(req.context, agg_id, name, **kwargs))}


@api.route("/v2.1/os-aggregates/{aggregate_id}", "DELETE")
def delete_aggregate(req):
    p.authorize(req, R + "delete", {})
    aggregates.delete_aggregate(req.context, _id(req))
    return 200, None


@api.route("/v2.1/os-aggregates/{aggregate_id}/action", "POST")
def aggregate_action(req):
    action, inner = p.action_of(req, ("add_host", "remove_host", "set_metadata"))
    p.authorize(req, R + action, {})
    if action in ("add_host", "remove_host"):
        body = p.body(req, action, ("host",), ("host",))
        host = p.name(body["host"], "host")
        agg_id = _id(req)
        fn = aggregates.add_host if action == "add_host" else aggregates.remove_host
        return {"aggregate": _view(req, fn(req.context, agg_id, host))}
    body = p.body(req, "set_metadata", ("metadata",), ("metadata",))
    meta = body["metadata"]
    if not isinstance(meta, dict):
        raise p.invalid("metadata", meta, f"{meta!r} is not of type 'object'")
    for key, value in meta.items():
        if not META_KEY.match(key):
            raise p.invalid("metadata", meta, f"Additional properties are not allowed ('{key}' was unexpected)")
        if value is not None and (not isinstance(value, str) or len(value) > 255):
            raise p.invalid(f"metadata/{key}", value, f"{value!r} is not of type 'string', 'null'")
    if aggregates.AZ_KEY in meta and meta[aggregates.AZ_KEY] is not None:
        _az(meta[aggregates.AZ_KEY], f"metadata/{aggregates.AZ_KEY}")
    agg_id = _id(req)
    return {"aggregate": _view(req, aggregates.set_metadata(req.context, agg_id, meta))}
