"""The Compute API object and what its route modules share.

Errors are Nova's: `{"<fault name>": {"code": N, "message": "..."}}` where the fault
name follows the status (`badRequest`, `itemNotFound`, `conflictingRequest`, ...).
Every request is given a microversion (`OpenStack-API-Version: compute X.Y` or the
legacy `X-OpenStack-Nova-API-Version`), negotiated once by `MicroversionMiddleware`
and read by handlers with `version(req)`; every response carries the served version.
"""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from pocketstack.common import microversions as mv
from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import current
from pocketstack.common.web import Api

MIN_VERSION = "2.1"
MAX_VERSION = "2.1"  # raised as each microversion's behaviour is implemented
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SCOPE_KEY = "pocketstack.compute.version"

FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 406: "notAcceptable", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}


def nova_format(err: ApiError) -> dict:
    return {FAULT_NAMES.get(err.code, "computeFault"): {"code": err.code, "message": err.message}}


def render_error(err: ApiError, request: Request | None) -> Response:
    body = json.dumps(nova_format(err)).encode()
    headers = dict(err.headers)
    if request is not None and SCOPE_KEY in request.scope:
        headers.update(mv.response_headers("compute", request.scope[SCOPE_KEY], LEGACY_HEADER))
    return Response(body, status_code=err.code, headers=headers, media_type="application/json")


api = Api("compute", error_renderer=render_error, www_authenticate="Keystone uri='{}'")


def version(req) -> mv.Version:
    """The microversion this request is served at."""
    return req.raw.scope.get(SCOPE_KEY) or mv.Version.parse(MIN_VERSION)


def at_least(req, text: str) -> bool:
    return version(req) >= mv.Version.parse(text)


def session():
    return current().db.session()


class MicroversionMiddleware:
    """Negotiate the microversion before routing; stamp it on every response (errors too)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers

        try:
            ver = mv.negotiate(Headers(scope=scope), "compute", MIN_VERSION, MAX_VERSION, LEGACY_HEADER)
        except ApiError as err:
            resp = render_error(err, None)
            return await resp(scope, receive, send)
        scope[SCOPE_KEY] = ver
        extra = [(k.lower().encode(), v.encode())
                 for k, v in mv.response_headers("compute", ver, LEGACY_HEADER).items()]

        async def stamped(message):
            if message["type"] == "http.response.start":
                names = {k for k, _ in extra}
                message["headers"] = [(k, v) for k, v in message.get("headers", [])
                                      if k.lower() not in names] + extra
            await send(message)

        await self.app(scope, receive, stamped)
