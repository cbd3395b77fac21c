"""`/v3/auth/*`: issue, validate, check and revoke tokens; the caller's catalog and scopes."""
from __future__ import annotations

from starlette.responses import Response

from pocketstack.common.errors import Forbidden, NotFound, Unauthorized
from pocketstack.identity import core, tokens
from pocketstack.identity.api.common import (
    api,
    enforce,
    fmt_domain,
    fmt_project,
    list_links,
    session,
)


@api.route("/v3/auth/tokens", "POST")
def issue_token(req):
    auth = req.json_object("auth")
    with session() as sess:
        token_id, body = tokens.provider().issue(sess, auth)
    if req.query_flag("nocatalog"):
        body.pop("catalog", None)
    return 201, {"token": body}, {"X-Subject-Token": token_id}


def _subject(req, sess) -> tuple[str, tokens.Payload, dict]:
    subject = req.headers.get("x-subject-token")
    if not subject:
        raise NotFound("Could not find token: no X-Subject-Token given.")
    ctx = req.context
    try:
        payload, body = tokens.provider().validate(sess, subject, allow_expired=req.query_flag("allow_expired"))
    except NotFound:
        # An invalid subject is "not found" for every authenticated caller, as in Keystone.
        raise NotFound(f"Could not find token: {subject[:8]}...") from None
    if ctx.user_id != payload.user_id:
        enforce(req, "identity:validate_token", {"token": {"user_id": payload.user_id}})
    return subject, payload, body


# Validation is answered from the per-process cache after one indexed read (the
# generation), so it runs on the event loop: the thread hop would cost more than the work.
@api.route("/v3/auth/tokens", "GET", inline=True)
def validate_token(req):
    with session() as sess:
        subject, payload, body = _subject(req, sess)
        body = dict(body)
        if not req.query_flag("nocatalog") and ("project" in body or "domain" in body or "system" in body):
            body["catalog"] = tokens.provider().catalog(sess, payload.project_id)
    return 200, {"token": body}, {"X-Subject-Token": subject}


@api.route("/v3/auth/tokens", "HEAD", inline=True)
def check_token(req):
    with session() as sess:
        subject, _, _ = _subject(req, sess)
    return Response(status_code=200, headers={"X-Subject-Token": subject})


@api.route("/v3/auth/tokens", "DELETE")
def revoke_token(req):
    subject = req.headers.get("x-subject-token")
    if not subject:
        raise NotFound("Could not find token: no X-Subject-Token given.")
    ctx = req.context
    with session() as sess:
        try:
            payload, _ = tokens.provider().validate(sess, subject)
        except NotFound:
            raise NotFound("Could not find token.") from None
        if ctx.user_id != payload.user_id:
            enforce(req, "identity:revoke_token", {"token": {"user_id": payload.user_id}})
        core.revoke(sess, audit_id=payload.audit_ids[0])
    return Response(status_code=204)


@api.route("/v3/auth/catalog", "GET")
def auth_catalog(req):
    ctx = req.context
    if not (ctx.project_id or ctx.domain_id or ctx.system_scope):
        raise Forbidden("A scoped token is required to produce a service catalog.")
    with session() as sess:
        catalog = tokens.provider().catalog(sess, ctx.project_id)
    return {"catalog": catalog, "links": list_links(req)}


@api.route("/v3/auth/projects", "GET")
@api.route("/v3/OS-FEDERATION/projects", "GET")
def auth_projects(req):
    ctx = req.context
    if ctx.user_id is None:
        raise Unauthorized()
    with session() as sess:
        projects = [fmt_project(req, p) for p in core.user_projects(sess, ctx.user_id)
                    if p.enabled and core.get_domain(sess, p.domain_id).enabled]
    return {"projects": projects, "links": list_links(req)}


@api.route("/v3/auth/domains", "GET")
@api.route("/v3/OS-FEDERATION/domains", "GET")
def auth_domains(req):
    ctx = req.context
    if ctx.user_id is None:
        raise Unauthorized()
    with session() as sess:
        domains = [fmt_domain(req, d) for d in core.user_domains(sess, ctx.user_id) if d.enabled]
    return {"domains": domains, "links": list_links(req)}


@api.route("/v3/auth/system", "GET")
def auth_system(req):
    ctx = req.context
    if ctx.user_id is None:
        raise Unauthorized()
    with session() as sess:
        has = bool(core.effective_role_ids(sess, ctx.user_id, system=True))
    return {"system": [{"all": True}] if has else [], "links": list_links(req)}
