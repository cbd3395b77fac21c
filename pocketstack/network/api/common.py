"""The Networking API object and what its route modules share.

Errors are Neutron's: `{"NeutronError": {"type": "NetworkNotFound", "message": "...",
"detail": ""}}`. An `ApiError` may carry `type` (as an attribute or `type=` extra);
otherwise the type is derived from the status as neutron-lib's base exceptions name it.
"""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import current
from pocketstack.common.web import Api

DEFAULT_TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden", 404: "HTTPNotFound",
                 405: "HTTPMethodNotAllowed", 409: "HTTPConflict", 412: "HTTPPreconditionFailed",
                 413: "HTTPRequestEntityTooLarge", 415: "HTTPUnsupportedMediaType", 501: "HTTPNotImplemented"}


def neutron_format(err: ApiError) -> dict:
    etype = err.extra.get("type") or getattr(err, "type", None) or DEFAULT_TYPES.get(err.code, "HTTPInternalServerError")
    return {"NeutronError": {"type": etype, "message": err.message, "detail": err.extra.get("detail", "")}}


def render_error(err: ApiError, request: Request | None) -> Response:
    return Response(json.dumps(neutron_format(err)).encode(), status_code=err.code, headers=dict(err.headers),
                    media_type="application/json")


api = Api("network", error_renderer=render_error, www_authenticate="Keystone uri='{}'")


def session():
    return current().db.session()
