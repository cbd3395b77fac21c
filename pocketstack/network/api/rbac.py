"""`/v2.0/rbac-policies`: HTTP <-> Neutron JSON only (logic in network/rbac.py)."""
from __future__ import annotations

import uuid

from pocketstack.network import rbac
from pocketstack.network.api import resource as r
from pocketstack.network.api.common import api


def _object_type(value):
    if not isinstance(value, str) or value.strip().lower() not in rbac.OBJECT_TYPES:
        raise r.Invalid(f"'{value}' is not a valid RBAC object type")
    return value.strip().lower()


def _target_project(value):
    if value == "*":
        return value
    try:
        uuid.UUID(str(value))
    except ValueError:
        raise r.Invalid(f"'{value}' is not a valid target project ID; expected a UUID or '*'") from None
    return str(value)


POLICY = r.Resource("rbac_policy", "rbac_policies", [
    r.Attr("object_type", required=True, validate=_object_type),
    r.Attr("object_id", required=True, validate=r.v_uuid),
    r.Attr("action", required=True, validate=r.v_string(255)),
    r.Attr("target_tenant", put=True, required=True, validate=_target_project),
], named=False)

r.register_extension("rbac-policies", "RBAC Policies", "Allows creation and modification of policies that control "
                     "tenant access to resources.", "2015-06-17T12:15:12-00:00")


def _body(req):
    """Neutron accepts `target_project` as well as `target_tenant`."""
    body = req.json
    if isinstance(body, dict) and isinstance(body.get("rbac_policy"), dict):
        inner = dict(body["rbac_policy"])
        if "target_project" in inner:
            value = inner.pop("target_project")
            inner.setdefault("target_tenant", value)
        body = {"rbac_policy": inner}
    return body


@api.route("/v2.0/rbac-policies", "GET")
def list_policies(req):
    return r.list_response(req, "rbac_policies", rbac.list_policies(req.context))


@api.route("/v2.0/rbac-policies", "POST")
def create_policy(req):
    ctx = req.context
    data = POLICY.parse_create(_body(req), ctx)
    return 201, {"rbac_policy": rbac.create_policy(ctx, data)}


@api.route("/v2.0/rbac-policies/{id}", "GET")
def show_policy(req):
    return r.show_response(req, "rbac_policy", rbac.get_policy(req.context, req.path_params["id"]))


@api.route("/v2.0/rbac-policies/{id}", "PUT")
def update_policy(req):
    changes = POLICY.parse_update(_body(req))
    return {"rbac_policy": rbac.update_policy(req.context, req.path_params["id"], changes)}


@api.route("/v2.0/rbac-policies/{id}", "DELETE")
def delete_policy(req):
    rbac.delete_policy(req.context, req.path_params["id"])
    return 204, None
