"""API errors, raised anywhere in a service and rendered in that service's own error body.

Each service's API names an `ErrorFormat` (Keystone's `{"error": {...}}`, Nova's
`{"itemNotFound": {...}}`, Neutron's `{"NeutronError": {...}}`, ...). Service logic only
raises `ApiError` subclasses; it never formats bodies.
"""
from __future__ import annotations

import json
from typing import Callable

from starlette.responses import Response

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


class ApiError(Exception):
    code = 500
    default_message = "An unexpected error prevented the server from fulfilling your request."

    def __init__(self, message: str | None = None, *, headers: dict | None = None, **extra):
        self.message = message or self.default_message
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.message)

    @property
    def title(self) -> str:
        return TITLES.get(self.code, "Error")


class BadRequest(ApiError):
    code = 400
    default_message = "The request you have made is invalid."


class Unauthorized(ApiError):
    code = 401
    default_message = "The request you have made requires authentication."


class Forbidden(ApiError):
    code = 403
    default_message = "You are not authorized to perform the requested action."


class NotFound(ApiError):
    code = 404
    default_message = "Could not find the requested resource."


class MethodNotAllowed(ApiError):
    code = 405
    default_message = "The method is not allowed for the requested URL."


class Conflict(ApiError):
    code = 409
    default_message = "Conflict occurred attempting to store the resource."


class Gone(ApiError):
    code = 410


class PreconditionFailed(ApiError):
    code = 412


class PayloadTooLarge(ApiError):
    code = 413
    default_message = "Request is too large."


class UnsupportedMediaType(ApiError):
    code = 415


class NotImplementedYet(ApiError):
    code = 501
    default_message = "The action you have requested has not been implemented."


# ---------------------------------------------------------------------------- formats
ErrorFormat = Callable[[ApiError], dict]


def keystone_format(err: ApiError) -> dict:
    return {"error": {"code": err.code, "message": err.message, "title": err.title}}


def json_error_response(err: ApiError, fmt: ErrorFormat = keystone_format) -> Response:
    body = json.dumps(fmt(err)).encode()
    return Response(body, status_code=err.code, headers=err.headers, media_type="application/json")


# Nova's and Cinder's error body: `{"<fault name>": {"code": N, "message": "..."}}` with
# webob-era fault names by status (anything unlisted is a `computeFault`, in Cinder too).
FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 406: "notAcceptable", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented", 503: "serviceUnavailable"}


def fault_format(err: ApiError) -> dict:
    return {FAULT_NAMES.get(err.code, "computeFault"): {"code": err.code, "message": err.message}}
