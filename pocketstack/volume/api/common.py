"""The Block Storage API object and what its route modules share.

Errors are Cinder's (the same fault names as Nova's: `{"itemNotFound": {"code": 404,
"message": ...}}`, `badRequest`, `overLimit`, ...). Requests are microversioned
(`OpenStack-API-Version: volume 3.x`); handlers read `version(req)`. Routes exist both
with the project id in the URL (`/v3/{project_id}/volumes`, what the catalog gives) and
without it (`/v3/volumes`, 3.67+), registered together by `route()`.
"""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from pocketstack.common import microversions as mv
from pocketstack.common.errors import ApiError, BadRequest, fault_format
from pocketstack.common.runtime import current
from pocketstack.common.web import Api

MIN_VERSION = "3.0"
MAX_VERSION = "3.71"
SCOPE_KEY = "pocketstack.volume.version"


def render_error(err: ApiError, request: Request | None) -> Response:
    headers = dict(err.headers)
    if request is not None and SCOPE_KEY in request.scope:
        headers.update(mv.response_headers("volume", request.scope[SCOPE_KEY]))
    return Response(json.dumps(fault_format(err)).encode(), status_code=err.code, headers=headers,
                    media_type="application/json")


api = Api("volume", error_renderer=render_error, www_authenticate="Keystone uri='{}'")


def route(path: str, methods="GET", **kw):
    """Register `path` under `/v3/{project_id}` and `/v3` (project id optional since 3.67)."""
    def decorate(handler):
        api.route("/v3/{project_id}" + path, methods, **kw)(handler)
        api.route("/v3" + path, methods, **kw)(handler)
        return handler
    return decorate


def MicroversionMiddleware(app):
    return mv.MicroversionMiddleware(app, service_type="volume", minimum=MIN_VERSION, maximum=MAX_VERSION,
                                     legacy_header=None, scope_key=SCOPE_KEY, render_error=render_error)


def version(req) -> mv.Version:
    return req.raw.scope.get(SCOPE_KEY) or mv.Version.parse(MIN_VERSION)


def at_least(req, text: str) -> bool:
    return version(req) >= mv.Version.parse(text)


def session():
    return current().db.session()


def service_url(req) -> str:
    raw = req.raw
    return str(raw.url.replace(path=raw.scope.get("root_path", ""), query="", fragment="")).rstrip("/")


def project_url(req) -> str:
    """`<root>/v3/<project_id>` as the caller addressed us (links keep the same form)."""
    pid = req.path_params.get("project_id")
    return f"{service_url(req)}/v3/{pid}" if pid else f"{service_url(req)}/v3"


def body_of(req, key: str) -> dict:
    body = req.json
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise BadRequest(f"Missing required element '{key}' in request body.")
    return body[key]


def bool_param(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "t", "1", "yes", "y", "on"):
        return True
    if text in ("false", "f", "0", "no", "n", "off"):
        return False
    raise BadRequest(f"Invalid value '{value}' for {name}: it must be a boolean.")
