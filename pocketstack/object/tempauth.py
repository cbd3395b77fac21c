"""TempAuth-style v1.0 authentication (`GET /object/auth/v1.0`), mapped onto Identity users.

Swift's tempauth answers `X-Auth-User: <account>:<user>` + `X-Auth-Key: <key>` (or the older
`X-Storage-User` / `X-Storage-Pass`) with a token and the account's storage URL. Here the
account is an Identity project (name in the default domain, or id), the user an Identity user
of that project (name in the default domain, or id) and the key its password: the answer is
an ordinary project-scoped Keystone token (`X-Auth-Token` = `X-Storage-Token`, its lifetime in
`X-Auth-Token-Expires`) and `X-Storage-Url` `.../object/v1/AUTH_<project_id>`. Password rules
(lockout, expiry, disabled users) are Identity's own, and the token is revoked, validated and
role-checked like any other, so nothing here keeps state.
"""
from __future__ import annotations

import datetime

from starlette.responses import Response

from pocketstack.common.errors import ApiError
from pocketstack.common.runtime import current
from pocketstack.object import capabilities

capabilities.register("tempauth", {"account_acls": True})


def _unauthorized():
    from pocketstack.object.api import SwiftError

    return SwiftError(401)


def _ref(value: str) -> dict:
    """A name in the default domain, or (when no such name exists) an id."""
    return {"name": value, "domain": {"id": "default"}}


def get_token(req) -> Response:
    from pocketstack.identity import core, tokens
    from pocketstack.object.api import trans_id

    user = req.headers.get("x-auth-user") or req.headers.get("x-storage-user")
    key = req.headers.get("x-auth-key") or req.headers.get("x-storage-pass")
    if not user or not key or ":" not in user:
        raise _unauthorized()
    project, _, name = user.partition(":")
    if not project or not name:
        raise _unauthorized()
    with current().db.session() as sess:
        user_ref = _pick(sess, core.find_user, name, {"name": name, "domain": {"id": "default"}})
        project_ref = _pick(sess, core.find_project, project, {"name": project, "domain": {"id": "default"}})
        if user_ref is None or project_ref is None:
            raise _unauthorized()
        auth = {"identity": {"methods": ["password"], "password": {"user": {**user_ref, "password": key}}},
                "scope": {"project": project_ref}}
        try:
            token_id, body = tokens.provider().issue(sess, auth)
        except ApiError as err:
            if err.code in (400, 401, 403, 404):
                raise _unauthorized() from None
            raise
    expires = datetime.datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    left = int(expires.timestamp() - datetime.datetime.now(datetime.timezone.utc).timestamp())
    headers = {"X-Auth-Token": token_id, "X-Storage-Token": token_id, "X-Auth-Token-Expires": str(max(left, 0)),
               "X-Storage-Url": f"{_service_url(req)}/v1/AUTH_{body['project']['id']}", "X-Trans-Id": trans_id(),
               "Content-Length": "0"}
    return Response(status_code=200, headers=headers, media_type="text/html; charset=UTF-8")


def _service_url(req) -> str:
    """This service's root as the client reached it (upstream's `$HOST`), mount prefix included."""
    url = req.raw.url
    return f"{url.scheme}://{url.netloc}{req.raw.scope.get('root_path', '')}"


def _pick(sess, finder, value: str, by_name: dict) -> dict | None:
    from pocketstack.common.errors import ApiError as Err

    try:
        return {"id": finder(sess, by_name).id}
    except Err:
        pass
    try:
        return {"id": finder(sess, {"id": value}).id}
    except Err:
        return None
