"""Self-service routes: `/v3/credentials`, OS-EC2 credentials and `/v3/ec2tokens`
(+ `/v3/s3tokens`), application credentials and access rules, and OS-TRUST trusts.

Only HTTP <-> JSON here; the rules live in `pocketstack.identity.delegation`.
"""
from __future__ import annotations

import base64
import binascii


from pocketstack.common.errors import BadRequest, Forbidden, NotFound
from pocketstack.identity import core, delegation
from pocketstack.identity import models as m
from pocketstack.identity.api.common import (
    no_content,
    api,
    apply_filters,
    body_of,
    enforce,
    fmt_role,
    listing,
    session,
    v3_url,
)




def _target(**fields) -> dict:
    """A policy target (`enforce` makes it readable as `%(x)s` and `%(target.x)s`)."""
    return dict(fields)


def _allowed(req, action: str, target: dict) -> bool:
    try:
        enforce(req, action, target)
        return True
    except Forbidden:
        return False


# ---------------------------------------------------------------------------- credentials
def _fmt_credential(req, cred) -> dict:
    out = delegation.credential_dict(cred)
    out["links"] = {"self": v3_url(req, f"credentials/{cred.id}")}
    return out


def _cred_target(cred_or_data) -> dict:
    if isinstance(cred_or_data, dict):
        data = cred_or_data
        return _target(user_id=data.get("user_id"), project_id=data.get("project_id"),
                       credential={"user_id": data.get("user_id"), "project_id": data.get("project_id"),
                                   "type": data.get("type")})
    c = cred_or_data
    return _target(user_id=c.user_id, project_id=c.project_id,
                   credential={"id": c.id, "user_id": c.user_id, "project_id": c.project_id, "type": c.type})


@api.route("/v3/credentials", "GET")
def list_credentials(req):
    ctx = req.context
    enforce(req, "identity:list_credentials", _target(user_id=ctx.user_id, credential={"user_id": ctx.user_id}))
    with session() as sess:
        items = []
        for cred in delegation.list_credentials(sess, user_id=req.query.get("user_id"),
                                                ctype=req.query.get("type")):
            # Members see their own credentials only; admins and system readers all.
            if not _allowed(req, "identity:get_credential", _cred_target(cred)):
                continue
            if delegation._is_delegated(ctx) and cred.project_id != ctx.project_id:
                continue
            try:
                items.append(_fmt_credential(req, cred))
            except Forbidden:
                continue
    return listing(req, "credentials", apply_filters(req, items, {"user_id", "type", "project_id"}))


@api.route("/v3/credentials", "POST")
def create_credential(req):
    data = body_of(req, "credential")
    enforce(req, "identity:create_credential", _cred_target(data))
    with session() as sess:
        cred = delegation.create_credential(sess, data, req.context)
        return 201, {"credential": _fmt_credential(req, cred)}


def _load_credential(req, sess, action: str):
    cid = req.path_params["credential_id"]
    cred = sess.get(m.Credential, cid)
    if cred is None:
        enforce(req, action, _target(user_id=None))  # an outsider learns nothing
        raise NotFound(f"Could not find credential: {cid}.")
    enforce(req, action, _cred_target(cred))
    return cred


@api.route("/v3/credentials/{credential_id}", "GET")
def get_credential(req):
    with session() as sess:
        cred = _load_credential(req, sess, "identity:get_credential")
        delegation.check_delegation_scope(req.context, cred.project_id)
        return {"credential": _fmt_credential(req, cred)}


@api.route("/v3/credentials/{credential_id}", "PATCH")
def update_credential(req):
    data = body_of(req, "credential")
    if not data:
        raise BadRequest("Invalid input for field 'credential': it must have at least one property.")
    with session() as sess:
        cred = _load_credential(req, sess, "identity:update_credential")
        merged = {"user_id": data.get("user_id", cred.user_id), "project_id": data.get("project_id", cred.project_id),
                  "type": data.get("type", cred.type)}
        enforce(req, "identity:update_credential", _cred_target(merged))  # no handing it to someone else
        cred = delegation.update_credential(sess, cred, data, req.context)
        return {"credential": _fmt_credential(req, cred)}


@api.route("/v3/credentials/{credential_id}", "DELETE")
def delete_credential(req):
    with session() as sess:
        cred = _load_credential(req, sess, "identity:delete_credential")
        delegation.delete_credential(sess, cred, req.context)
    return no_content()


# ---------------------------------------------------------------------------- OS-EC2
def _fmt_ec2(req, cred, blob) -> dict:
    out = delegation.ec2_dict(cred, blob)
    out["links"] = {"self": v3_url(req, f"users/{cred.user_id}/credentials/OS-EC2/{blob.get('access')}")}
    return out


@api.route("/v3/users/{user_id}/credentials/OS-EC2", "GET")
def list_ec2_credentials(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:ec2_list_credentials", _target(user_id=uid, credential={"user_id": uid}))
    with session() as sess:
        items = [_fmt_ec2(req, c, b) for c, b in delegation.list_ec2_credentials(sess, uid, req.context)]
    return {"credentials": items, "links": {"self": req.url, "previous": None, "next": None}}


@api.route("/v3/users/{user_id}/credentials/OS-EC2", "POST")
def create_ec2_credential(req):
    uid = req.path_params["user_id"]
    data = req.json_object()
    enforce(req, "identity:ec2_create_credential", _target(user_id=uid, credential={"user_id": uid}))
    with session() as sess:
        cred, blob = delegation.create_ec2_credential(sess, uid, data.get("tenant_id"), req.context)
        return 201, {"credential": _fmt_ec2(req, cred, blob)}


def _ec2_target(sess, uid: str, access: str) -> dict:
    # Policy looks at the credential's real owner, never only at the path.
    cred = sess.get(m.Credential, delegation.hash_access_key(access))
    owner = cred.user_id if cred is not None else uid
    return _target(user_id=owner, credential={"user_id": owner})


@api.route("/v3/users/{user_id}/credentials/OS-EC2/{credential_id}", "GET")
def get_ec2_credential(req):
    uid, access = req.path_params["user_id"], req.path_params["credential_id"]
    with session() as sess:
        enforce(req, "identity:ec2_get_credential", _ec2_target(sess, uid, access))
        cred, blob = delegation.get_ec2_credential(sess, uid, access, req.context)
        return {"credential": _fmt_ec2(req, cred, blob)}


@api.route("/v3/users/{user_id}/credentials/OS-EC2/{credential_id}", "DELETE")
def delete_ec2_credential(req):
    uid, access = req.path_params["user_id"], req.path_params["credential_id"]
    with session() as sess:
        enforce(req, "identity:ec2_delete_credential", _ec2_target(sess, uid, access))
        cred, _ = delegation.get_ec2_credential(sess, uid, access, req.context)
        delegation.delete_credential(sess, cred, req.context)
    return no_content()


def _signed_credentials(req) -> dict:
    data = req.json_object()
    creds = data.get("credentials") or data.get("credential") or data.get("ec2Credentials")
    if not isinstance(creds, dict):
        raise BadRequest("Invalid input for field 'credentials': it must be an object.")
    return creds


@api.route("/v3/ec2tokens", "POST")
def ec2tokens(req):
    """Unauthenticated, as upstream: the signature is the proof."""
    creds = _signed_credentials(req)
    for key in ("params", "headers"):
        if key in creds and not isinstance(creds[key], dict):
            raise BadRequest(f"Invalid input for field '{key}': it must be an object.")
    with session() as sess:
        token_id, body = delegation.ec2_authenticate(sess, creds.get("access"), creds.get("signature"),
                                                     credentials=creds)
    return 200, {"token": body}, {"X-Subject-Token": token_id}


@api.route("/v3/s3tokens", "POST")
def s3tokens(req):
    """`{"credentials": {"access", "token": base64(string to sign), "signature"}}`."""
    creds = _signed_credentials(req)
    token = creds.get("token")
    if not isinstance(token, str):
        raise BadRequest("Invalid input for field 'token': the base64 string to sign is required.")
    try:
        string_to_sign = base64.b64decode(token.encode(), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BadRequest("Invalid input for field 'token': it is not base64 text.") from None
    with session() as sess:
        token_id, body = delegation.ec2_authenticate(sess, creds.get("access"), creds.get("signature"),
                                                     string_to_sign=string_to_sign)
    return 200, {"token": body}, {"X-Subject-Token": token_id}


# ---------------------------------------------------------------------------- application credentials
def _fmt_app_cred(req, sess, ac, secret: str | None = None) -> dict:
    out = delegation.application_credential_dict(sess, ac)
    out["links"] = {"self": v3_url(req, f"users/{ac.user_id}/application_credentials/{ac.id}")}
    if secret is not None:
        out["secret"] = secret
    return out


def _block_trust_token(req, what: str = "application credentials") -> None:
    if req.context.trust_id:
        raise Forbidden(f"Cannot manage {what} with a token issued via a trust.")


@api.route("/v3/users/{user_id}/application_credentials", "GET")
def list_application_credentials(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:list_application_credentials", _target(user_id=uid, user={"id": uid}))
    _block_trust_token(req)
    with session() as sess:
        core.get_user(sess, uid)
        items = [_fmt_app_cred(req, sess, ac) for ac in delegation.list_application_credentials(sess, uid)]
    return listing(req, "application_credentials", apply_filters(req, items, {"name", "project_id"}))


@api.route("/v3/users/{user_id}/application_credentials", "POST")
def create_application_credential(req):
    uid = req.path_params["user_id"]
    data = body_of(req, "application_credential")
    enforce(req, "identity:create_application_credential", _target(user_id=uid, user={"id": uid}))
    with session() as sess:
        ac, secret = delegation.create_application_credential(sess, uid, data, req.context)
        return 201, {"application_credential": _fmt_app_cred(req, sess, ac, secret)}


def _load_app_cred(req, sess, action: str):
    uid, acid = req.path_params["user_id"], req.path_params["application_credential_id"]
    ac = sess.get(m.ApplicationCredential, acid)
    # The owner for policy is the credential's, not the path's (upstream's fix).
    owner = ac.user_id if ac is not None else uid
    enforce(req, action, _target(user_id=owner, user={"id": owner}))
    _block_trust_token(req)
    return delegation.get_application_credential(sess, acid, uid)


@api.route("/v3/users/{user_id}/application_credentials/{application_credential_id}", "GET")
def get_application_credential(req):
    with session() as sess:
        ac = _load_app_cred(req, sess, "identity:get_application_credential")
        return {"application_credential": _fmt_app_cred(req, sess, ac)}


@api.route("/v3/users/{user_id}/application_credentials/{application_credential_id}", "DELETE")
def delete_application_credential(req):
    with session() as sess:
        ac = _load_app_cred(req, sess, "identity:delete_application_credential")
        delegation.delete_application_credential(sess, ac, req.context)
    return no_content()


# ---------------------------------------------------------------------------- access rules
def _fmt_access_rule(req, ar) -> dict:
    out = delegation.access_rule_dict(ar)
    out["links"] = {"self": v3_url(req, f"users/{ar.user_id}/access_rules/{ar.id}")}
    return out


@api.route("/v3/users/{user_id}/access_rules", "GET")
def list_access_rules(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:list_access_rules", _target(user_id=uid, user={"id": uid}))
    _block_trust_token(req, "access rules")
    with session() as sess:
        core.get_user(sess, uid)
        items = [_fmt_access_rule(req, ar) for ar in delegation.list_access_rules(sess, uid)]
    return {"access_rules": apply_filters(req, items, {"service", "path", "method"}),
            "links": {"self": req.url, "previous": None, "next": None}}


@api.route("/v3/users/{user_id}/access_rules/{access_rule_id}", "GET")
def get_access_rule(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:get_access_rule", _target(user_id=uid, user={"id": uid}))
    _block_trust_token(req, "access rules")
    with session() as sess:
        return {"access_rule": _fmt_access_rule(req, delegation.get_access_rule(
            sess, uid, req.path_params["access_rule_id"]))}


@api.route("/v3/users/{user_id}/access_rules/{access_rule_id}", "DELETE")
def delete_access_rule(req):
    uid = req.path_params["user_id"]
    enforce(req, "identity:delete_access_rule", _target(user_id=uid, user={"id": uid}))
    _block_trust_token(req, "access rules")
    with session() as sess:
        ar = delegation.get_access_rule(sess, uid, req.path_params["access_rule_id"])
        delegation.delete_access_rule(sess, ar, req.context)
    return no_content()


# ---------------------------------------------------------------------------- trusts
def _trust_role(req, role) -> dict:
    full = fmt_role(req, role)
    return {"id": full["id"], "name": full["name"], "domain_id": full["domain_id"],
            "options": full["options"], "links": full["links"]}


def _fmt_trust(req, sess, trust, with_roles: bool = True) -> dict:
    out = delegation.trust_dict(trust)
    out["links"] = {"self": v3_url(req, f"OS-TRUST/trusts/{trust.id}")}
    if with_roles:
        out["roles"] = [_trust_role(req, r) for r in delegation.trust_roles(sess, trust)]
        out["roles_links"] = {"self": v3_url(req, f"OS-TRUST/trusts/{trust.id}/roles"),
                              "previous": None, "next": None}
    return out


def _trust_target(trust) -> dict:
    return _target(trust={"id": trust.id, "trustor_user_id": trust.trustor_user_id,
                          "trustee_user_id": trust.trustee_user_id, "project_id": trust.project_id})


def _block_app_cred_token(req) -> None:
    if req.context.application_credential_id:
        raise Forbidden("Using method 'application_credential' is not allowed for managing trusts.")


@api.route("/v3/OS-TRUST/trusts", "GET")
@api.route("/v3/OS-TRUST/trusts/", "GET")
def list_trusts(req):
    ctx = req.context
    _block_app_cred_token(req)
    trustor, trustee = req.query.get("trustor_user_id"), req.query.get("trustee_user_id")
    involving = None
    if not _allowed(req, "identity:list_trusts", _target()):
        ok_trustor = trustor and _allowed(req, "identity:list_trusts_for_trustor",
                                          _target(trust={"trustor_user_id": trustor}))
        ok_trustee = trustee and _allowed(req, "identity:list_trusts_for_trustee",
                                          _target(trust={"trustee_user_id": trustee}))
        if not (ok_trustor or ok_trustee):
            if trustor or trustee:
                raise Forbidden("You are not authorized to perform the requested action: identity:list_trusts.")
            involving = ctx.user_id  # a user sees the trusts they are party to
    with session() as sess:
        items = [_fmt_trust(req, sess, t, with_roles=False)
                 for t in delegation.list_trusts(sess, trustor, trustee, involving)]
    return {"trusts": items, "links": {"self": req.url, "previous": None, "next": None}}


@api.route("/v3/OS-TRUST/trusts", "POST")
def create_trust(req):
    data = body_of(req, "trust")
    enforce(req, "identity:create_trust", _target(trust={"trustor_user_id": data.get("trustor_user_id")}))
    with session() as sess:
        trust = delegation.create_trust(sess, data, req.context)
        return 201, {"trust": _fmt_trust(req, sess, trust)}


def _load_trust(req, sess, action: str):
    trust = delegation.get_trust(sess, req.path_params["trust_id"])  # 404 first, as upstream
    enforce(req, action, _trust_target(trust))
    _block_app_cred_token(req)
    return trust


@api.route("/v3/OS-TRUST/trusts/{trust_id}", "GET")
def get_trust(req):
    with session() as sess:
        trust = _load_trust(req, sess, "identity:get_trust")
        return {"trust": _fmt_trust(req, sess, trust)}


@api.route("/v3/OS-TRUST/trusts/{trust_id}", "DELETE")
def delete_trust(req):
    with session() as sess:
        trust = _load_trust(req, sess, "identity:delete_trust")
        delegation.delete_trust(sess, trust, req.context)
    return no_content()


@api.route("/v3/OS-TRUST/trusts/{trust_id}/roles", "GET")
def list_trust_roles(req):
    with session() as sess:
        trust = _load_trust(req, sess, "identity:list_roles_for_trust")
        roles = [_trust_role(req, r) for r in delegation.trust_roles(sess, trust)]
    return {"roles": roles, "links": {"self": req.url, "previous": None, "next": None}}


@api.route("/v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}", "GET")
def get_trust_role(req):
    rid = req.path_params["role_id"]
    with session() as sess:
        trust = _load_trust(req, sess, "identity:get_role_for_trust")
        for role in delegation.trust_roles(sess, trust):
            if role.id == rid:
                return {"role": _trust_role(req, role)}
    raise NotFound(f"Could not find role: {rid}.")
