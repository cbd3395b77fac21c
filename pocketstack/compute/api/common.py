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
from pocketstack.common import errors
from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import current
from pocketstack.common.web import Api

MIN_VERSION = "2.1"
MAX_VERSION = "2.104"  # every server field a microversion adds or removes up to here follows it
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
SCOPE_KEY = "pocketstack.compute.version"

FAULT_NAMES = errors.FAULT_NAMES
nova_format = errors.fault_format


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


def MicroversionMiddleware(app):
    """Negotiate the compute microversion before routing (see common.microversions)."""
    return mv.MicroversionMiddleware(app, service_type="compute", minimum=MIN_VERSION,
                                     maximum=lambda: MAX_VERSION, legacy_header=LEGACY_HEADER,
                                     scope_key=SCOPE_KEY, render_error=render_error)
