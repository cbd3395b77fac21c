"""The metadata API (Nova's nova-api-metadata), mounted at `/metadata`.

What a guest reaches as http://169.254.169.254/: the dataplane's metadata proxy (the
real network backend) forwards the request with `X-Instance-ID`, `X-Tenant-ID` and
`X-Instance-ID-Signature` = hex HMAC-SHA256 of the instance id under the shared secret
(`[neutron] metadata_proxy_shared_secret`), exactly as Neutron's metadata agent does for
Nova; requests without a valid signature are refused. Bodies are plain text (listings,
EC2 leaves) or JSON files, as upstream serves them.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Callable

from starlette.requests import Request
from starlette.responses import Response

from pocketstack.common.errors import ApiError, BadRequest, Conflict, Forbidden, MethodNotAllowed, NotFound
from pocketstack.common.web import Api
from pocketstack.compute import metadata as md

MAX_PASSWORD = 256


def render_error(err: ApiError, request: Request | None) -> Response:
    return Response(f"{err.code} {err.title}\n\n{err.message}\n", status_code=err.code,
                    headers=dict(err.headers), media_type="text/plain; charset=UTF-8")


api = Api("metadata", max_body=4096, error_renderer=render_error)

# Set by the compute service: instance id -> InstanceView (None when unknown), and the
# password store (get, set-once) kept with the instance's system metadata.
find_instance: Callable[[str], md.InstanceView | None] = lambda _id: None
get_password: Callable[[str], str] = lambda _id: ""
set_password: Callable[[str, str], bool] = lambda _id, _pw: False
_secret: bytes = b""


def configure(secret: str, finder, password_get, password_set) -> None:
    global _secret, find_instance, get_password, set_password
    _secret = secret.encode()
    find_instance, get_password, set_password = finder, password_get, password_set


def sign(instance_id: str, secret: str | None = None) -> str:
    key = secret.encode() if secret is not None else _secret
    return hmac.new(key, instance_id.encode(), hashlib.sha256).hexdigest()


def _instance(req) -> md.InstanceView:
    instance_id = req.headers.get("x-instance-id", "")
    signature = req.headers.get("x-instance-id-signature", "")
    if not instance_id or not signature or not _secret:
        raise BadRequest("X-Instance-ID and X-Instance-ID-Signature headers are required.")
    if not hmac.compare_digest(sign(instance_id), signature):
        raise Forbidden("Invalid proxy request signature.")
    inst = find_instance(instance_id)
    tenant = req.headers.get("x-tenant-id")
    if inst is None or (tenant and tenant != inst.project_id):
        raise NotFound("The resource could not be found.")
    return inst


def _text(body: str | bytes, content_type: str = "text/plain; charset=UTF-8") -> Response:
    return Response(body, media_type=content_type)


@api.route("/", "GET")
def root(req):
    _instance(req)
    return _text("\n".join(md.EC2_VERSIONS + ("latest",)) + "\nopenstack")


@api.route("/openstack", "GET")
@api.route("/openstack/", "GET")
def openstack_versions(req):
    _instance(req)
    return _text("\n".join(md.OPENSTACK_VERSIONS + ("latest",)))


def _check_openstack_version(version: str) -> None:
    if version not in md.OPENSTACK_VERSIONS + ("latest",):
        raise NotFound("The resource could not be found.")


@api.route("/openstack/{version}", "GET")
@api.route("/openstack/{version}/", "GET")
def openstack_listing(req):
    version = req.path_params["version"]
    _check_openstack_version(version)
    inst = _instance(req)
    names = ["meta_data.json", "password", "vendor_data.json", "network_data.json", "vendor_data2.json"]
    if inst.user_data is not None:
        names.append("user_data")
    return _text("\n".join(names))


@api.route("/openstack/{version}/{name}", ["GET", "POST"])
def openstack_file(req):
    version, name = req.path_params["version"], req.path_params["name"]
    _check_openstack_version(version)
    inst = _instance(req)
    if name == "password":
        if req.method == "POST":
            body = req.body
            if len(body) > MAX_PASSWORD:
                raise BadRequest("Request is too large.")
            if not set_password(inst.uuid, body.decode("utf-8", "replace")):
                raise Conflict("Password already set.")
            return _text("")
        return _text(get_password(inst.uuid))
    if req.method == "POST":
        raise MethodNotAllowed("The method is not allowed for this resource.")
    files = md.openstack_tree(inst)
    data = files.get(f"openstack/{version}/{name}")
    if data is None:
        raise NotFound("The resource could not be found.")
    if name == "user_data":
        return _text(data, "application/octet-stream")
    return _text(data, "application/json")


@api.route("/{version}", "GET")
@api.route("/{version}/", "GET")
def ec2_version(req):
    if req.path_params["version"] not in md.EC2_VERSIONS + ("latest",):
        raise NotFound("The resource could not be found.")
    inst = _instance(req)
    return _text("meta-data/" + ("\nuser-data" if inst.user_data is not None else ""))


@api.route("/{version}/user-data", "GET")
def ec2_user_data(req):
    if req.path_params["version"] not in md.EC2_VERSIONS + ("latest",):
        raise NotFound("The resource could not be found.")
    inst = _instance(req)
    if inst.user_data is None:
        raise NotFound("The resource could not be found.")
    return _text(inst.user_data, "application/octet-stream")


@api.route("/{version}/meta-data", "GET")
@api.route("/{version}/meta-data/{path:path}", "GET")
def ec2_meta_data(req):
    if req.path_params["version"] not in md.EC2_VERSIONS + ("latest",):
        raise NotFound("The resource could not be found.")
    inst = _instance(req)
    parts = [p for p in req.path_params.get("path", "").split("/") if p]
    node = md.lookup(md.ec2_meta_data(inst), parts)
    if node is None:
        raise NotFound("The resource could not be found.")
    if isinstance(node, dict):
        return _text(md.render_listing(node))
    return _text(node if isinstance(node, str) else json.dumps(node))
