"""Self-service credentials and delegation: credentials (EC2 included), application
credentials with their access rules, trusts, and EC2/S3 signature authentication.

Like `core`, every function takes the session first and raises `ApiError`s; the API
layer (`identity/api/self_service.py`) only translates HTTP. The semantics follow
Keystone's (ids of EC2 credentials are the SHA-256 of the access key, application
credential secrets are shown once and stored hashed, a trust can only delegate roles
its trustor holds, deleting an application credential or a trust revokes its tokens),
and `ec2_identify` / `ec2_authenticate` are the reusable entry points for services
that accept AWS-style signatures (the S3 API).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets as pysecrets
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from pocketstack.common.db import new_id, utcnow
from pocketstack.common.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from pocketstack.common.runtime import current
from pocketstack.identity import core
from pocketstack.identity import models as m
from pocketstack.identity.fernet import InvalidToken, KeyRepository
from pocketstack.identity.passwords import hash_password

EC2 = "ec2"
# blob keys that bind an EC2 credential to the delegation it was created under
EC2_SCOPE_KEYS = ("trust_id", "app_cred_id", "access_token_id", "access_id")
ACCESS_RULE_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
_SERVICE_RE = re.compile(r"^[a-zA-Z0-9-]{1,64}$")


# ---------------------------------------------------------------------------- helpers
def _conf():
    return current().config


def _bad(field_name: str, why: str) -> BadRequest:
    return BadRequest(f"Invalid input for field '{field_name}': {why}")


def _opt_str(data: dict, key: str, *, max_len: int | None = None, nullable: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if not nullable and key in data:
            raise _bad(key, "None is not of type 'string'.")
        return None
    if not isinstance(value, str):
        raise _bad(key, f"{value!r} is not of type 'string'.")
    if max_len is not None and len(value) > max_len:
        raise _bad(key, f"it is longer than {max_len} characters.")
    return value


def _req_str(data: dict, key: str, *, max_len: int | None = None) -> str:
    value = data.get(key)
    if value is None:
        raise _bad(key, f"'{key}' is a required property.")
    if not isinstance(value, str) or not value:
        raise _bad(key, f"{value!r} is not a non-empty string.")
    if max_len is not None and len(value) > max_len:
        raise _bad(key, f"it is longer than {max_len} characters.")
    return value


def _opt_bool(data: dict, key: str, default: bool = False) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(key, f"{value!r} is not of type 'boolean'.")
    return value


def _opt_int(data: dict, key: str, minimum: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, f"{value!r} is not of type 'integer'.")
    if value < minimum:
        raise _bad(key, f"{value} is less than the minimum of {minimum}.")
    return value


def parse_expiry(value: Any, field_name: str = "expires_at") -> dt.datetime | None:
    """An ISO 8601 time in the future (naive means UTC), or None; 400 otherwise."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(field_name, f"{value!r} is not a date-time string.")
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        when = when.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        raise BadRequest(f"Timestamp not in expected format for field '{field_name}': {value!r}. "
                         "The server could not comply with the request since it is either malformed "
                         "or otherwise incorrect.") from None
    if when <= utcnow():
        raise BadRequest(f"The '{field_name}' must not be before now.")
    return when


def iso_naive(when: dt.datetime | None) -> str | None:
    """Keystone renders application credential expiry as a naive UTC isoformat."""
    if when is None:
        return None
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()


def iso_z(when: dt.datetime | None) -> str | None:
    """Trust expiry: `YYYY-MM-DDTHH:MM:SS.ffffffZ`."""
    if when is None:
        return None
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _aware(when: dt.datetime | None) -> dt.datetime | None:
    if when is not None and when.tzinfo is None:
        return when.replace(tzinfo=dt.timezone.utc)
    return when


def resolve_roles(sess: Session, refs: Any, field_name: str = "roles") -> list[m.Role]:
    """`[{"id": ...} | {"name": ...}, ...]` -> global roles (404 for an unknown one)."""
    if refs is None:
        return []
    if not isinstance(refs, list):
        raise _bad(field_name, f"{refs!r} is not of type 'array'.")
    out: dict[str, m.Role] = {}
    for ref in refs:
        if not isinstance(ref, dict) or len(ref) != 1 or not set(ref) <= {"id", "name"}:
            raise _bad(field_name, "each role must be an object with exactly one of 'id' or 'name'.")
        key, value = next(iter(ref.items()))
        if not isinstance(value, str) or not value or len(value) > 255:
            raise _bad(field_name, f"role {key} {value!r} is not a non-empty string.")
        role = sess.get(m.Role, value) if key == "id" else core.role_by_name(sess, value)
        if role is None:
            raise NotFound(f"Could not find role: {value}.")
        out[role.id] = role
    return list(out.values())


def _role_ref(role: m.Role) -> dict:
    return {"id": role.id, "name": role.name,
            "domain_id": None if role.domain_id == core.NULL_DOMAIN else role.domain_id}


def _is_delegated(ctx) -> bool:
    return bool(ctx is not None and (ctx.trust_id or ctx.application_credential_id))


def _app_cred_of(sess: Session, ctx) -> m.ApplicationCredential | None:
    if ctx is None or not ctx.application_credential_id:
        return None
    return sess.get(m.ApplicationCredential, ctx.application_credential_id)


def check_unrestricted(sess: Session, ctx, what: str) -> None:
    """A restricted application credential may not mint further credentials."""
    if ctx is None or not ctx.application_credential_id:
        return
    ac = _app_cred_of(sess, ctx)
    if ac is None or not ac.unrestricted:
        raise Forbidden(f"Using method 'application_credential' is not allowed for managing {what}.")


def check_delegation_scope(ctx, project_id: str | None, what: str = "credential") -> None:
    """Trust and application credential tokens only reach their own project's credentials."""
    if _is_delegated(ctx) and project_id != ctx.project_id:
        raise Forbidden(f"The {what} project does not match the project scope of the delegated token.")


# ---------------------------------------------------------------------------- credential blobs
_cred_repo: KeyRepository | None = None


def credential_keys() -> KeyRepository:
    """The credential key repository (not the token one): blobs are encrypted at rest."""
    global _cred_repo
    from pocketstack.identity.service import credential_keys as make

    repo = make(current())
    if _cred_repo is None or _cred_repo.path != repo.path:
        repo.setup()  # a no-op when the keys exist (made by bootstrap)
        _cred_repo = repo
    return _cred_repo


def encrypt_blob(blob: str) -> str:
    return credential_keys().encrypt(blob.encode("utf-8"))


def decrypt_blob(cred: m.Credential) -> str:
    try:
        return credential_keys().decrypt(cred.encrypted_blob).decode("utf-8")
    except (InvalidToken, ValueError, binascii.Error):
        raise Forbidden("The credential could not be decrypted; its key may have been rotated away.") \
            from None


def hash_access_key(access: str) -> str:
    return hashlib.sha256(access.encode("utf-8")).hexdigest()


def _ec2_blob(blob: Any) -> dict:
    if not isinstance(blob, str):
        raise _bad("blob", f"{blob!r} is not of type 'string'.")
    try:
        data = json.loads(blob)
    except ValueError:
        raise BadRequest("Invalid blob in credential: an ec2 blob must be a JSON object.") from None
    if not isinstance(data, dict) or not data:
        raise _bad("blob", "an ec2 blob must be a non-empty JSON object.")
    if not isinstance(data.get("access"), str) or not data["access"]:
        raise _bad("blob", "an ec2 blob needs an 'access' string.")
    if "secret" in data and not isinstance(data["secret"], str):
        raise _bad("blob", "the ec2 'secret' must be a string.")
    return data


# ---------------------------------------------------------------------------- credentials
_CRED_FIELDS = {"id", "user_id", "project_id", "type", "blob", "links"}


def get_credential(sess: Session, credential_id: str) -> m.Credential:
    cred = sess.get(m.Credential, credential_id) if credential_id else None
    if cred is None:
        raise NotFound(f"Could not find credential: {credential_id}.")
    return cred


def create_credential(sess: Session, data: dict, ctx=None) -> m.Credential:
    user_id = _req_str(data, "user_id", max_len=64)
    ctype = _req_str(data, "type", max_len=255)
    blob = data.get("blob")
    if blob is None:
        raise _bad("blob", "'blob' is a required property.")
    if not isinstance(blob, str):
        raise _bad("blob", f"{blob!r} is not of type 'string'.")
    project_id = _opt_str(data, "project_id", max_len=64)
    core.get_user(sess, user_id)
    if project_id:
        core.get_project(sess, project_id)
    check_delegation_scope(ctx, project_id)
    if ctype.lower() == EC2:
        check_unrestricted(sess, ctx, "additional credentials")
        if not project_id:
            raise _bad("project_id", "an ec2 credential requires project_id.")
        parsed = _ec2_blob(blob)
        cred_id = hash_access_key(parsed["access"])
        # A credential made under a delegation yields delegated EC2 tokens later.
        if ctx is not None and ctx.trust_id:
            parsed["trust_id"] = ctx.trust_id
            blob = json.dumps(parsed)
        if ctx is not None and ctx.application_credential_id:
            parsed["app_cred_id"] = ctx.application_credential_id
            blob = json.dumps(parsed)
        if sess.get(m.Credential, cred_id) is not None:
            raise Conflict("Conflict occurred attempting to store credential - Duplicate entry found "
                           "with the same access key.")
    else:
        cred_id = new_id()
    cred = m.Credential(id=cred_id, user_id=user_id, project_id=project_id, type=ctype,
                        encrypted_blob=encrypt_blob(blob),
                        extra={k: v for k, v in data.items() if k not in _CRED_FIELDS})
    sess.add(cred)
    sess.flush()
    core.emit("credential.created", cred.id, ctx)
    return cred


def update_credential(sess: Session, cred: m.Credential, data: dict, ctx=None) -> m.Credential:
    if "id" in data and data["id"] != cred.id:
        raise BadRequest("Cannot change the credential ID.")
    check_delegation_scope(ctx, cred.project_id)
    new_type = _req_str(data, "type", max_len=255) if "type" in data else cred.type
    new_user = _req_str(data, "user_id", max_len=64) if "user_id" in data else cred.user_id
    new_project = _opt_str(data, "project_id", max_len=64) if "project_id" in data else cred.project_id
    if new_user != cred.user_id:
        core.get_user(sess, new_user)
    if new_project and new_project != cred.project_id:
        core.get_project(sess, new_project)
    check_delegation_scope(ctx, new_project)
    blob = None
    if "blob" in data:
        blob = data["blob"]
        if not isinstance(blob, str):
            raise _bad("blob", f"{blob!r} is not of type 'string'.")
    if new_type.lower() == EC2 or cred.type.lower() == EC2:
        if new_type.lower() != cred.type.lower():
            raise BadRequest("The type of an ec2 credential cannot be changed.")
        if not new_project:
            raise _bad("project_id", "an ec2 credential requires project_id.")
        if blob is not None:
            new_blob = _ec2_blob(blob)
            old_blob = json.loads(decrypt_blob(cred))
            for key in EC2_SCOPE_KEYS:
                if old_blob.get(key) != new_blob.get(key):
                    raise BadRequest(f"{key} can not be updated for credential.")
    cred.type, cred.user_id, cred.project_id = new_type, new_user, new_project
    if blob is not None:
        cred.encrypted_blob = encrypt_blob(blob)
    extra = {k: v for k, v in data.items() if k not in _CRED_FIELDS}
    if extra:
        cred.extra = {**(cred.extra or {}), **extra}
    sess.flush()
    core.emit("credential.updated", cred.id, ctx)
    return cred


def delete_credential(sess: Session, cred: m.Credential, ctx=None) -> None:
    check_delegation_scope(ctx, cred.project_id)
    cred_id = cred.id
    sess.delete(cred)
    sess.flush()
    core.emit("credential.deleted", cred_id, ctx)


def list_credentials(sess: Session, user_id: str | None = None, ctype: str | None = None) -> list[m.Credential]:
    q = select(m.Credential).order_by(m.Credential.created_at, m.Credential.id)
    if user_id is not None:
        q = q.where(m.Credential.user_id == user_id)
    if ctype is not None:
        q = q.where(m.Credential.type == ctype)
    return list(sess.execute(q).scalars())


def credential_dict(cred: m.Credential) -> dict:
    """Everything but links (the API adds them); the blob is decrypted."""
    return {**(cred.extra or {}), "id": cred.id, "user_id": cred.user_id, "project_id": cred.project_id,
            "type": cred.type, "blob": decrypt_blob(cred)}


# ---------------------------------------------------------------------------- OS-EC2
def create_ec2_credential(sess: Session, user_id: str, project_id: Any, ctx=None) -> tuple[m.Credential, dict]:
    """A fresh access/secret pair for a user on a project; returns (row, blob)."""
    check_unrestricted(sess, ctx, "additional credentials")
    core.get_user(sess, user_id)
    if project_id is None:
        raise _bad("tenant_id", "'tenant_id' is a required property.")
    if not isinstance(project_id, str) or not project_id:
        raise _bad("tenant_id", f"{project_id!r} is not a non-empty string.")
    core.get_project(sess, project_id)
    check_delegation_scope(ctx, project_id, "EC2 credential")
    blob = {"access": new_id(), "secret": new_id(), "trust_id": ctx.trust_id if ctx is not None else None}
    if ctx is not None and ctx.application_credential_id:
        blob["app_cred_id"] = ctx.application_credential_id
    cred = m.Credential(id=hash_access_key(blob["access"]), user_id=user_id, project_id=project_id, type=EC2,
                        encrypted_blob=encrypt_blob(json.dumps(blob)), extra={})
    sess.add(cred)
    sess.flush()
    core.emit("credential.created", cred.id, ctx)
    return cred, blob


def list_ec2_credentials(sess: Session, user_id: str, ctx=None) -> list[tuple[m.Credential, dict]]:
    core.get_user(sess, user_id)
    out = []
    for cred in list_credentials(sess, user_id=user_id, ctype=EC2):
        if _is_delegated(ctx) and cred.project_id != ctx.project_id:
            continue
        try:
            out.append((cred, json.loads(decrypt_blob(cred))))
        except (Forbidden, ValueError):
            continue
    return out


def get_ec2_credential(sess: Session, user_id: str, access: str, ctx=None) -> tuple[m.Credential, dict]:
    core.get_user(sess, user_id)
    cred = sess.get(m.Credential, hash_access_key(access))
    if cred is None or cred.type != EC2 or cred.user_id != user_id:
        raise NotFound(f"Could not find credential: {access}.")
    check_delegation_scope(ctx, cred.project_id, "EC2 credential")
    return cred, json.loads(decrypt_blob(cred))


def ec2_dict(cred: m.Credential, blob: dict) -> dict:
    return {"user_id": cred.user_id, "tenant_id": cred.project_id, "access": blob.get("access"),
            "secret": blob.get("secret"), "trust_id": blob.get("trust_id")}


# ---------------------------------------------------------------------------- EC2 / S3 signatures
def _utf8(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def _canonical_query(params: dict) -> str:
    """Sorted, RFC 3986-encoded `key=value&...` (AWS signature v2 and v4)."""
    pairs = []
    for key in sorted(params):
        pairs.append(urllib.parse.quote(_utf8(key), safe="-_.~") + "=" +
                     urllib.parse.quote(_utf8(params[key]), safe="-_.~"))
    return "&".join(pairs)


def _ci_get(mapping: dict | None, key: str) -> Any:
    if not mapping:
        return None
    if key in mapping:
        return mapping[key]
    low = key.lower()
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


def _signature_v2(secret: str, params: dict, verb: str, host: str, path: str) -> str:
    method = params.get("SignatureMethod", "HmacSHA256")
    digest = hashlib.sha1 if method == "HmacSHA1" else hashlib.sha256
    signed = {k: v for k, v in params.items() if k != "Signature"}
    text = f"{verb.upper()}\n{host}\n{path}\n{_canonical_query(signed)}"
    return base64.b64encode(hmac.new(_utf8(secret), _utf8(text), digest).digest()).decode()


def _v4_key(secret: str, datestamp: str, region: str, service: str) -> bytes:
    key = hmac.new(_utf8("AWS4" + secret), _utf8(datestamp), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, _utf8(part), hashlib.sha256).digest()
    return key


def _v4_auth_param(headers: dict, params: dict, name: str) -> str | None:
    auth = _ci_get(headers, "Authorization")
    if isinstance(auth, str) and auth.startswith("AWS4-HMAC-SHA256"):
        match = re.search(rf"{name}=([^,\s]*)", auth)
        return match.group(1) if match else None
    value = params.get(f"X-Amz-{name}")
    return value if isinstance(value, str) else None


def _is_v4(credentials: dict) -> bool:
    auth = _ci_get(credentials.get("headers"), "Authorization")
    if isinstance(auth, str) and auth.startswith("AWS4-HMAC-SHA256"):
        return True
    return (credentials.get("params") or {}).get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256"


def _signatures_v4(secret: str, credentials: dict) -> list[str]:
    params = dict(credentials.get("params") or {})
    headers = dict(credentials.get("headers") or {})
    verb = str(credentials.get("verb") or "GET").upper()
    path = str(credentials.get("path") or "/")
    body_hash = str(credentials.get("body_hash") or hashlib.sha256(b"").hexdigest())
    signed_headers = _v4_auth_param(headers, params, "SignedHeaders")
    scope = _v4_auth_param(headers, params, "Credential")
    if not signed_headers or not scope:
        raise Unauthorized("Invalid EC2 signature: incomplete AWS4-HMAC-SHA256 authorization.")
    scope_parts = urllib.parse.unquote(scope).split("/")
    if len(scope_parts) != 5 or scope_parts[4] != "aws4_request":
        raise Unauthorized("Invalid EC2 signature: malformed credential scope.")
    date = _ci_get(headers, "X-Amz-Date") or params.get("X-Amz-Date")
    if not isinstance(date, str) or not date.startswith(scope_parts[1]):
        raise Unauthorized("Invalid EC2 signature: the request date does not match the credential scope.")
    lowered = {str(k).lower().strip(): " ".join(str(v).strip().split()) for k, v in headers.items()}
    header_lines = []
    for name in signed_headers.split(";"):
        if name in lowered:
            header_lines.append(f"{name}:{lowered[name]}")
    canonical_headers = "\n".join(header_lines) + "\n"
    query_params = {k: v for k, v in params.items() if k != "X-Amz-Signature"}
    # For a POST the EC2 parameters travel in the body (so the canonical query is
    # empty), but a POST may also carry a real query string: accept either form.
    queries = [_canonical_query(query_params)]
    if verb == "POST":
        queries.insert(0, "")
    key = _v4_key(secret, scope_parts[1], scope_parts[2], scope_parts[3])
    out = []
    for query in queries:
        canonical = "\n".join((verb, path, query, canonical_headers, signed_headers, body_hash))
        to_sign = "\n".join(("AWS4-HMAC-SHA256", date, "/".join(scope_parts[1:]),
                             hashlib.sha256(_utf8(canonical)).hexdigest()))
        out.append(hmac.new(key, _utf8(to_sign), hashlib.sha256).hexdigest())
    return out


def ec2_signatures(secret: str, credentials: dict) -> list[str]:
    """Every acceptable signature of an EC2 request (`params`, `verb`, `host`, `path`,
    `headers`, `body_hash`) made with `secret`: AWS signature v2 (HmacSHA256 or
    HmacSHA1) or v4 (AWS4-HMAC-SHA256, Authorization header or X-Amz-* parameters)."""
    params = credentials.get("params") or {}
    if not isinstance(params, dict):
        raise BadRequest("Invalid input for field 'params': it must be an object.")
    version = params.get("SignatureVersion")
    if version is not None and str(version) == "2":
        host = str(credentials.get("host") or "")
        verb = str(credentials.get("verb") or "GET")
        path = str(credentials.get("path") or "/")
        out = [_signature_v2(secret, params, verb, host, path)]
        if ":" in host:  # some clients sign without the port
            out.append(_signature_v2(secret, params, verb, urllib.parse.urlsplit("//" + host).hostname or host,
                                     path))
        return out
    if _is_v4(credentials):
        out = _signatures_v4(secret, credentials)
        headers = credentials.get("headers") or {}
        host_key = next((k for k in headers if str(k).lower() == "host"), None)
        if host_key and ":" in str(headers[host_key]):
            stripped = dict(credentials, headers={**headers, host_key: str(headers[host_key]).split(":")[0]})
            out += _signatures_v4(secret, stripped)
        return out
    if version is not None:
        raise Unauthorized(f"Unsupported EC2 signature version: {version}.")
    raise Unauthorized("Unexpected EC2 signature format.")


def s3_signature(secret: str, string_to_sign: str) -> str:
    """The signature of an S3 request's string to sign: AWS4-HMAC-SHA256 (hex) when it
    is a v4 string to sign, else the v2 HMAC-SHA1 (base64)."""
    if string_to_sign.startswith("AWS4-HMAC-SHA256"):
        parts = string_to_sign.split("\n")
        if len(parts) != 4:
            raise Unauthorized("Invalid S3 signature: malformed AWS4-HMAC-SHA256 string to sign.")
        scope = parts[2].split("/")
        if len(scope) != 4 or scope[3] != "aws4_request":
            raise Unauthorized("Invalid S3 signature: malformed credential scope.")
        return hmac.new(_v4_key(secret, scope[0], scope[1], scope[2]), _utf8(string_to_sign),
                        hashlib.sha256).hexdigest()
    return base64.b64encode(hmac.new(_utf8(secret), _utf8(string_to_sign), hashlib.sha1).digest()).decode()


def s3_signing_key(sess: Session, access: str, datestamp: str, region: str, service: str) -> bytes:
    """The AWS4 key derived from EC2 access key `access`'s secret for one day, region and
    service: what the S3 API needs to check the per-chunk signatures of a streaming upload
    (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) once `ec2_identify` accepted its seed signature.
    Only the derived key leaves identity, never the secret."""
    cred = sess.get(m.Credential, hash_access_key(access)) if access else None
    if cred is None or cred.type != EC2:
        raise Unauthorized("EC2 access key not found.")
    try:
        secret = json.loads(decrypt_blob(cred)).get("secret")
    except (Forbidden, ValueError):
        raise Unauthorized("EC2 access key not found.") from None
    if not isinstance(secret, str) or not secret:
        raise Unauthorized("EC2 credential has no secret.")
    return _v4_key(secret, datestamp, region, service)


def _parse_amz_time(value: str) -> dt.datetime:
    text = value.strip()
    for fmt in ("%Y%m%dT%H%M%SZ",):
        try:
            return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc)
        except ValueError:
            pass
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    when = dt.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)


def _check_timestamp(credentials: dict) -> None:
    params = credentials.get("params") or {}
    stamp = params.get("Timestamp") or _ci_get(credentials.get("headers"), "X-Amz-Date") \
        or params.get("X-Amz-Date")
    if not stamp:
        return
    try:
        ttl = dt.timedelta(minutes=int(_conf().get("credential", "auth_ttl", "15") or 15))
        expired = utcnow() > _parse_amz_time(str(stamp)) + ttl
    except (ValueError, OverflowError) as exc:
        raise Unauthorized(f"Credential timestamp is invalid: {exc}") from None
    if expired:
        raise Unauthorized("Credential is expired.")


@dataclass
class Ec2Auth:
    """Who an EC2/S3-signed request acts as (what its token would say)."""

    credential_id: str
    access: str
    user_id: str  # the token's user (the trustor for an impersonating trust)
    project_id: str
    role_ids: set[str] = field(default_factory=set)
    trust_id: str | None = None
    trustee_id: str | None = None  # set when the token impersonates the trustor
    app_cred_id: str | None = None
    expires_at: dt.datetime | None = None  # of the delegation, if any


def ec2_identify(sess: Session, access: str, signature: str | None, *, credentials: dict | None = None,
                 string_to_sign: str | None = None, consume_trust_use: bool = False) -> Ec2Auth:
    """Check an EC2 (`credentials`: params/verb/host/path/headers/body_hash) or S3
    (`string_to_sign`) signature made with the secret of EC2 access key `access`, and
    return who it authenticates. Raises Unauthorized for anything wrong."""
    if not isinstance(access, str) or not access:
        raise Unauthorized("EC2 access key not supplied.")
    if not isinstance(signature, str) or not signature:
        raise Unauthorized("EC2 signature not supplied.")
    cred = sess.get(m.Credential, hash_access_key(access))
    if cred is None or cred.type != EC2:
        raise Unauthorized("EC2 access key not found.")
    try:
        blob = json.loads(decrypt_blob(cred))
    except (Forbidden, ValueError):
        raise Unauthorized("EC2 access key not found.") from None
    secret = blob.get("secret")
    if not isinstance(secret, str) or not secret:
        raise Unauthorized("EC2 credential has no secret.")
    if string_to_sign is not None:
        expected = [s3_signature(secret, string_to_sign)]
    elif credentials is not None:
        expected = ec2_signatures(secret, credentials)
    else:
        raise BadRequest("An EC2 authentication needs the signed request or its string to sign.")
    if not any(hmac.compare_digest(_utf8(signature), _utf8(e)) for e in expected):
        raise Unauthorized("Invalid EC2 signature.")
    if credentials is not None:
        _check_timestamp(credentials)

    user = sess.get(m.User, cred.user_id)
    project = sess.get(m.Project, cred.project_id) if cred.project_id else None
    if user is None or not user.enabled or project is None or not project.enabled:
        raise Unauthorized("The user or the project of this EC2 credential is disabled or gone.")
    for dom_id in {user.domain_id, project.domain_id}:
        dom = sess.get(m.Domain, dom_id)
        if dom is None or not dom.enabled:
            raise Unauthorized("The domain of this EC2 credential is disabled.")

    result = Ec2Auth(credential_id=cred.id, access=access, user_id=user.id, project_id=project.id)
    trust_id, app_cred_id = blob.get("trust_id"), blob.get("app_cred_id")
    if trust_id:
        trust = sess.get(m.Trust, trust_id)
        if trust is None or trust.deleted_at is not None or trust_expired(trust):
            raise Unauthorized("The trust of this EC2 credential is gone or expired.")
        if trust.project_id != project.id:
            raise Unauthorized("EC2 credential project does not match the trust project.")
        try:
            result.role_ids = trust_role_ids(sess, trust, check_trustor=True)
        except Forbidden as exc:
            raise Unauthorized(exc.message) from None
        trustee = sess.get(m.User, trust.trustee_user_id)
        if trustee is None or not trustee.enabled:
            raise Unauthorized("The trustee is disabled or gone.")
        if trust.impersonation:
            result.user_id, result.trustee_id = trust.trustor_user_id, trust.trustee_user_id
        if consume_trust_use and trust.remaining_uses is not None:
            if trust.remaining_uses <= 0:
                raise Unauthorized("The trust has no remaining uses.")
            trust.remaining_uses -= 1
        result.trust_id, result.expires_at = trust.id, _aware(trust.expires_at)
    elif app_cred_id:
        ac = sess.get(m.ApplicationCredential, app_cred_id)
        if ac is None or (ac.expires_at is not None and _aware(ac.expires_at) <= utcnow()):
            raise Unauthorized("The application credential of this EC2 credential is gone or expired.")
        if ac.project_id != project.id:
            raise Unauthorized("EC2 credential project does not match the application credential project.")
        wanted = app_cred_role_ids(sess, ac)
        have = core.effective_role_ids(sess, ac.user_id, project_id=ac.project_id)
        if not wanted or not wanted <= have:
            raise Unauthorized("User not valid for project.")
        result.role_ids = wanted | core.implied_closure(sess, wanted)
        result.app_cred_id, result.expires_at = ac.id, _aware(ac.expires_at)
    else:
        result.role_ids = core.effective_role_ids(sess, user.id, project_id=project.id)
    if not result.role_ids:
        raise Unauthorized("User not valid for project.")
    return result


def ec2_authenticate(sess: Session, access: str, signature: str | None, *, credentials: dict | None = None,
                     string_to_sign: str | None = None) -> tuple[str, dict]:
    """`ec2_identify`, then issue a project-scoped token (method `ec2credential`);
    returns (token id, token body with catalog), as POST /v3/ec2tokens does."""
    from pocketstack.identity import tokens

    who = ec2_identify(sess, access, signature, credentials=credentials, string_to_sign=string_to_sign,
                       consume_trust_use=True)
    now = utcnow().timestamp()
    expires = now + _conf().getint("token", "expiration")
    if who.expires_at is not None:
        expires = min(expires, who.expires_at.timestamp())
    payload = tokens.Payload(user_id=who.user_id, methods=["ec2credential"], expires_at=expires, issued_at=now,
                             audit_ids=[tokens.new_audit_id()], project_id=who.project_id,
                             trust_id=who.trust_id, app_cred_id=who.app_cred_id, trustee_id=who.trustee_id)
    prov = tokens.provider()
    try:
        body = prov.render(sess, payload, include_catalog=True)
    except NotFound as exc:
        raise Unauthorized(exc.message) from None
    return prov.keys.encrypt(payload.pack()), body


# ---------------------------------------------------------------------------- application credentials
_APP_CRED_FIELDS = {"id", "name", "description", "secret", "expires_at", "roles", "unrestricted",
                    "access_rules", "project_id", "system"}


def generate_secret() -> str:
    return base64.urlsafe_b64encode(pysecrets.token_bytes(64)).rstrip(b"=").decode()


def app_cred_role_ids(sess: Session, ac: m.ApplicationCredential) -> set[str]:
    return set(sess.execute(select(m.ApplicationCredentialRole.role_id).where(
        m.ApplicationCredentialRole.application_credential_id == ac.id)).scalars())


def _check_access_rule(rule: Any) -> dict:
    if not isinstance(rule, dict):
        raise _bad("access_rules", f"{rule!r} is not of type 'object'.")
    unknown = set(rule) - {"id", "service", "path", "method"}
    if unknown:
        raise _bad("access_rules", f"additional properties are not allowed ({', '.join(sorted(unknown))}).")
    if "id" in rule and (not isinstance(rule["id"], str) or not rule["id"] or len(rule["id"]) > 64):
        raise _bad("access_rules", "an access rule id must be a non-empty string.")
    if set(rule) == {"id"}:
        return rule
    for key in ("service", "path", "method"):
        if key not in rule:
            raise _bad("access_rules", f"'{key}' is a required property of an access rule.")
    if not isinstance(rule["service"], str) or not _SERVICE_RE.match(rule["service"]):
        raise _bad("access_rules", f"service {rule['service']!r} must be a service type (letters, digits, '-').")
    path = rule["path"]
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 128:
        raise _bad("access_rules", f"path {path!r} must be a string starting with '/' (at most 128 characters).")
    if rule["method"] not in ACCESS_RULE_METHODS:
        raise _bad("access_rules", f"method {rule['method']!r} is not one of {', '.join(ACCESS_RULE_METHODS)}.")
    return rule


def create_application_credential(sess: Session, user_id: str, data: dict, ctx) -> tuple[m.ApplicationCredential, str]:
    """Create an application credential for the caller; returns (row, clear secret)."""
    if ctx is None or ctx.user_id != user_id:
        raise Forbidden("Cannot create an application credential for another user.")
    if ctx.trust_id:
        raise Forbidden("Cannot manage application credentials with a token issued via a trust.")
    check_unrestricted(sess, ctx, "additional application credentials")
    if not ctx.project_id:
        raise Forbidden("Application credentials can only be created with a project-scoped token.")
    unknown = set(data) - _APP_CRED_FIELDS
    if unknown:
        raise BadRequest(f"Invalid input for field 'application_credential': additional properties are not "
                         f"allowed ({', '.join(sorted(unknown))}).")
    user = core.get_user(sess, user_id)
    name = _req_str(data, "name", max_len=255)
    if not name.strip():
        raise _bad("name", "it must not be blank.")
    description = _opt_str(data, "description")
    secret = _opt_str(data, "secret") or generate_secret()
    expires_at = parse_expiry(data.get("expires_at"))
    unrestricted = _opt_bool(data, "unrestricted", False)
    if data.get("project_id") not in (None, ctx.project_id):
        raise BadRequest("An application credential is always created for the token's project.")
    if data.get("system") is not None:
        raise BadRequest("System-scoped application credentials are not supported.")

    token_roles = set(ctx.role_ids or [])
    if data.get("roles"):
        roles = resolve_roles(sess, data["roles"])
        role_ids = {r.id for r in roles}
        role_ids |= core.implied_closure(sess, role_ids)
        missing = role_ids - token_roles
        if missing:
            raise BadRequest("Cannot create an application credential with unassigned role "
                             f"({', '.join(sorted(missing))}): the roles must be in the caller's token.")
    else:
        if data.get("roles") is not None and not isinstance(data["roles"], list):
            raise _bad("roles", f"{data['roles']!r} is not of type 'array'.")
        role_ids = token_roles
    have = core.effective_role_ids(sess, user.id, project_id=ctx.project_id)
    if not role_ids or not role_ids <= have:
        raise BadRequest("The user does not hold every requested role on the project.")

    rules = data.get("access_rules")
    if rules is not None and not isinstance(rules, list):
        raise _bad("access_rules", f"{rules!r} is not of type 'array'.")
    rules = [_check_access_rule(r) for r in rules or []]

    limit = _conf().getint("application_credential", "user_limit")
    if limit >= 0:
        count = sess.execute(select(func.count()).select_from(m.ApplicationCredential).where(
            m.ApplicationCredential.user_id == user.id)).scalar() or 0
        if count >= limit:
            raise Forbidden(f"Unable to create additional application credentials, maximum of {limit} "
                            "already exceeded for user.")
    if sess.execute(select(m.ApplicationCredential.id).where(m.ApplicationCredential.user_id == user.id,
                                                             m.ApplicationCredential.name == name)).first():
        raise Conflict(f"Conflict occurred attempting to store application_credential - Duplicate entry found "
                       f"with name {name}.")

    rounds = _conf().getint("identity", "password_hash_rounds") or 12
    ac = m.ApplicationCredential(id=new_id(), name=name, secret_hash=hash_password(secret, rounds),
                                 description=description, user_id=user.id, project_id=ctx.project_id,
                                 expires_at=expires_at, unrestricted=unrestricted)
    sess.add(ac)
    sess.flush()
    for rid in sorted(role_ids):
        sess.add(m.ApplicationCredentialRole(application_credential_id=ac.id, role_id=rid))
    linked: set[str] = set()
    for rule in rules:
        ar = None
        if "id" in rule:
            ar = sess.get(m.AccessRule, rule["id"])
            if ar is not None and ar.user_id != user.id:
                raise Conflict(f"Access rule id {rule['id']} is already in use.")
            if ar is None and set(rule) == {"id"}:
                raise NotFound(f"Could not find access rule: {rule['id']}.")
        if ar is None:
            ar = sess.execute(select(m.AccessRule).where(
                m.AccessRule.user_id == user.id, m.AccessRule.service == rule["service"],
                m.AccessRule.path == rule["path"], m.AccessRule.method == rule["method"])).scalar()
        if ar is None:
            ar = m.AccessRule(id=rule.get("id") or new_id(), user_id=user.id, service=rule["service"],
                              path=rule["path"], method=rule["method"])
            sess.add(ar)
            sess.flush()
        if ar.id not in linked:
            linked.add(ar.id)
            sess.add(m.ApplicationCredentialAccessRule(application_credential_id=ac.id, access_rule_id=ar.id))
    sess.flush()
    core.emit("application_credential.created", ac.id, ctx)
    return ac, secret


def get_application_credential(sess: Session, app_cred_id: str, user_id: str | None = None) -> m.ApplicationCredential:
    ac = sess.get(m.ApplicationCredential, app_cred_id) if app_cred_id else None
    if ac is None or (user_id is not None and ac.user_id != user_id):
        raise NotFound(f"Could not find Application Credential: {app_cred_id}.")
    return ac


def list_application_credentials(sess: Session, user_id: str) -> list[m.ApplicationCredential]:
    return list(sess.execute(select(m.ApplicationCredential).where(m.ApplicationCredential.user_id == user_id)
                             .order_by(m.ApplicationCredential.created_at, m.ApplicationCredential.name))
                .scalars())


def delete_application_credential(sess: Session, ac: m.ApplicationCredential, ctx=None) -> None:
    """Delete it and revoke every token it issued (its access rules stay, as upstream)."""
    if ctx is not None and ctx.trust_id:
        raise Forbidden("Cannot manage application credentials with a token issued via a trust.")
    check_unrestricted(sess, ctx, "additional application credentials")
    ac_id = ac.id
    sess.execute(delete(m.ApplicationCredentialRole).where(
        m.ApplicationCredentialRole.application_credential_id == ac_id))
    sess.execute(delete(m.ApplicationCredentialAccessRule).where(
        m.ApplicationCredentialAccessRule.application_credential_id == ac_id))
    sess.delete(ac)
    core.revoke(sess, application_credential_id=ac_id)
    sess.flush()
    core.emit("application_credential.deleted", ac_id, ctx)


def app_cred_access_rules(sess: Session, ac: m.ApplicationCredential) -> list[m.AccessRule]:
    return list(sess.execute(select(m.AccessRule).join(
        m.ApplicationCredentialAccessRule,
        m.ApplicationCredentialAccessRule.access_rule_id == m.AccessRule.id).where(
        m.ApplicationCredentialAccessRule.application_credential_id == ac.id).order_by(m.AccessRule.id)).scalars())


def application_credential_dict(sess: Session, ac: m.ApplicationCredential) -> dict:
    roles = []
    for role in core.roles_by_ids(sess, app_cred_role_ids(sess, ac)):
        ref = _role_ref(role)
        if role.description is not None:
            ref["description"] = role.description
        ref["options"] = dict(role.options or {})
        roles.append(ref)
    out = {"id": ac.id, "name": ac.name, "description": ac.description, "user_id": ac.user_id,
           "project_id": ac.project_id, "system": ac.system, "expires_at": iso_naive(_aware(ac.expires_at)),
           "unrestricted": bool(ac.unrestricted), "roles": roles}
    rules = app_cred_access_rules(sess, ac)
    if rules:
        out["access_rules"] = [access_rule_dict(r) for r in rules]
    return out


# ---------------------------------------------------------------------------- access rules
def access_rule_dict(ar: m.AccessRule) -> dict:
    return {"id": ar.id, "service": ar.service, "path": ar.path, "method": ar.method}


def list_access_rules(sess: Session, user_id: str) -> list[m.AccessRule]:
    return list(sess.execute(select(m.AccessRule).where(m.AccessRule.user_id == user_id)
                             .order_by(m.AccessRule.service, m.AccessRule.path, m.AccessRule.method)).scalars())


def get_access_rule(sess: Session, user_id: str, rule_id: str) -> m.AccessRule:
    ar = sess.get(m.AccessRule, rule_id) if rule_id else None
    if ar is None or ar.user_id != user_id:
        raise NotFound(f"Could not find Access Rule: {rule_id}.")
    return ar


def delete_access_rule(sess: Session, ar: m.AccessRule, ctx=None) -> None:
    if ctx is not None and ctx.trust_id:
        raise Forbidden("Cannot manage access rules with a token issued via a trust.")
    used = sess.execute(select(m.ApplicationCredentialAccessRule.application_credential_id).where(
        m.ApplicationCredentialAccessRule.access_rule_id == ar.id)).first()
    if used:
        raise Forbidden("May not delete access rule in use.")
    rule_id = ar.id
    sess.delete(ar)
    sess.flush()
    core.emit("access_rule.deleted", rule_id, ctx)


# ---------------------------------------------------------------------------- trusts
_TRUST_FIELDS = {"trustor_user_id", "trustee_user_id", "project_id", "impersonation", "expires_at",
                 "remaining_uses", "allow_redelegation", "redelegation_count", "roles", "id", "links",
                 "roles_links", "redelegated_trust_id", "deleted_at"}


def trust_expired(trust: m.Trust) -> bool:
    return trust.expires_at is not None and _aware(trust.expires_at) <= utcnow()


def trust_role_ids(sess: Session, trust: m.Trust, check_trustor: bool = False) -> set[str]:
    """The trust's roles plus what they imply; with `check_trustor`, Forbidden if the
    (original) trustor no longer holds them on the project."""
    wanted = set(sess.execute(select(m.TrustRole.role_id).where(m.TrustRole.trust_id == trust.id)).scalars())
    if check_trustor and trust.project_id:
        have = core.effective_role_ids(sess, original_trustor(sess, trust), project_id=trust.project_id)
        if not wanted <= have:
            raise Forbidden("The trustor no longer has the delegated roles.")
    return wanted | core.implied_closure(sess, wanted)


def original_trustor(sess: Session, trust: m.Trust) -> str:
    seen = set()
    while trust.redelegated_trust_id and trust.id not in seen:
        seen.add(trust.id)
        parent = sess.get(m.Trust, trust.redelegated_trust_id)
        if parent is None:
            break
        trust = parent
    return trust.trustor_user_id


def get_trust(sess: Session, trust_id: str) -> m.Trust:
    """A live trust: deleted, expired and used-up trusts are 404, as upstream."""
    trust = sess.get(m.Trust, trust_id) if trust_id else None
    if trust is None or trust.deleted_at is not None or trust_expired(trust) \
            or (trust.remaining_uses is not None and trust.remaining_uses <= 0):
        raise NotFound(f"Could not find trust: {trust_id}.")
    return trust


def list_trusts(sess: Session, trustor_user_id: str | None = None, trustee_user_id: str | None = None,
                involving: str | None = None) -> list[m.Trust]:
    q = select(m.Trust).where(m.Trust.deleted_at.is_(None)).order_by(m.Trust.id)
    if trustor_user_id:
        q = q.where(m.Trust.trustor_user_id == trustor_user_id)
    if trustee_user_id:
        q = q.where(m.Trust.trustee_user_id == trustee_user_id)
    if involving:
        q = q.where((m.Trust.trustor_user_id == involving) | (m.Trust.trustee_user_id == involving))
    return list(sess.execute(q).scalars())


def create_trust(sess: Session, data: dict, ctx) -> m.Trust:
    if ctx is not None and ctx.application_credential_id:
        raise Forbidden("Using method 'application_credential' is not allowed for managing trusts.")
    trustor_id = _req_str(data, "trustor_user_id", max_len=64)
    trustee_id = _req_str(data, "trustee_user_id", max_len=64)
    if "impersonation" not in data:
        raise _bad("impersonation", "'impersonation' is a required property.")
    impersonation = _opt_bool(data, "impersonation", False)
    if ctx is None or ctx.user_id != trustor_id:
        raise Forbidden("The authenticated user should match the trustor.")
    project_id = _opt_str(data, "project_id", max_len=64) or None
    expires_at = parse_expiry(data.get("expires_at"))
    remaining_uses = _opt_int(data, "remaining_uses", 1)
    allow_redelegation = _opt_bool(data, "allow_redelegation", False)
    requested_count = _opt_int(data, "redelegation_count", 0)
    if "roles" in data and data["roles"] is not None and not isinstance(data["roles"], list):
        raise _bad("roles", f"{data['roles']!r} is not of type 'array'.")

    core.get_user(sess, trustor_id)
    core.get_user(sess, trustee_id)
    if project_id:
        core.get_project(sess, project_id)
    roles = resolve_roles(sess, data.get("roles"))
    if project_id and not roles:
        raise Forbidden("At least one role should be specified.")
    if roles and not project_id:
        raise BadRequest("Roles can only be delegated on a project: give project_id.")

    parent = None
    if ctx.trust_id:
        parent = sess.get(m.Trust, ctx.trust_id)
        if parent is None or parent.deleted_at is not None or trust_expired(parent):
            raise Forbidden("The trust of this token cannot be redelegated.")
    max_count = _conf().getint("trust", "max_redelegation_count")

    redelegatable = allow_redelegation and requested_count != 0
    if not redelegatable:
        count = 0
    else:
        if requested_count is not None and requested_count > max_count:
            raise Forbidden(f"Requested redelegation depth of {requested_count} is greater than allowed "
                            f"{max_count}.")
        if remaining_uses is not None:
            raise BadRequest("remaining_uses must not be set if redelegation is allowed.")
        count = requested_count if requested_count is not None else max_count

    if parent is not None:
        depth = parent.redelegation_count or 0
        if not (0 < depth <= max_count):
            raise Forbidden(f"Remaining redelegation depth of {depth} out of allowed range of [0..{max_count}].")
        if remaining_uses is not None:
            raise Forbidden('Field "remaining_uses" must not be set in order to redelegate a trust.')
        if parent.project_id != project_id:
            raise Forbidden("A redelegated trust must be on the project of the trust it comes from.")
        parent_expiry = _aware(parent.expires_at)
        if expires_at is None:
            expires_at = parent_expiry
        elif parent_expiry is not None and expires_at > parent_expiry:
            raise Forbidden("Requested expiration time is more than redelegated trust can provide.")
        parent_roles = set(sess.execute(select(m.TrustRole.role_id).where(m.TrustRole.trust_id == parent.id))
                           .scalars())
        parent_roles |= core.implied_closure(sess, parent_roles)
        if not {r.id for r in roles} <= parent_roles:
            raise Forbidden("Some of requested roles are not in redelegated trust.")
        if impersonation and not parent.impersonation:
            raise Forbidden("Impersonation is not allowed because redelegated trust does not specify "
                            f"impersonation. Redelegated trust id: {parent.id}")
        remaining = depth - 1
        if redelegatable and requested_count and requested_count != remaining:
            raise Forbidden('Modifying "redelegation_count" upon redelegation is forbidden. Omitting this '
                            "parameter is advised.")
        count = remaining if redelegatable else 0
        trustor_for_roles = original_trustor(sess, parent)
    else:
        trustor_for_roles = trustor_id

    if project_id:
        have = core.effective_role_ids(sess, trustor_for_roles, project_id=project_id)
        for role in roles:
            if role.id not in have:
                raise NotFound(f"Could not find role: {role.id} (the trustor does not have it on project "
                               f"{project_id}).")

    trust = m.Trust(id=new_id(), trustor_user_id=trustor_id, trustee_user_id=trustee_id, project_id=project_id,
                    impersonation=impersonation, expires_at=expires_at, remaining_uses=remaining_uses,
                    redelegated_trust_id=parent.id if parent is not None else None, redelegation_count=count,
                    extra={k: v for k, v in data.items() if k not in _TRUST_FIELDS})
    sess.add(trust)
    sess.flush()
    for role in roles:
        sess.add(m.TrustRole(trust_id=trust.id, role_id=role.id))
    sess.flush()
    core.emit("OS-TRUST:trust.created", trust.id, ctx)
    return trust


def delete_trust(sess: Session, trust: m.Trust, ctx=None) -> None:
    """Soft-delete a trust and the trusts redelegated from it; revoke their tokens."""
    if ctx is not None and ctx.application_credential_id:
        raise Forbidden("Using method 'application_credential' is not allowed for managing trusts.")
    now = utcnow()
    todo, seen = [trust], set()
    while todo:
        t = todo.pop()
        if t.id in seen:
            continue
        seen.add(t.id)
        todo += list(sess.execute(select(m.Trust).where(m.Trust.redelegated_trust_id == t.id,
                                                         m.Trust.deleted_at.is_(None))).scalars())
        t.deleted_at = now
        core.revoke(sess, trust_id=t.id)
        core.emit("OS-TRUST:trust.deleted", t.id, ctx)
    sess.flush()


def trust_roles(sess: Session, trust: m.Trust) -> list[m.Role]:
    ids = sess.execute(select(m.TrustRole.role_id).where(m.TrustRole.trust_id == trust.id)).scalars()
    return core.roles_by_ids(sess, ids)


def trust_dict(trust: m.Trust) -> dict:
    count = trust.redelegation_count
    return {**(trust.extra or {}), "id": trust.id, "trustor_user_id": trust.trustor_user_id,
            "trustee_user_id": trust.trustee_user_id, "project_id": trust.project_id,
            "impersonation": bool(trust.impersonation), "expires_at": iso_z(_aware(trust.expires_at)),
            "remaining_uses": trust.remaining_uses, "redelegated_trust_id": trust.redelegated_trust_id,
            "redelegation_count": count, "allow_redelegation": bool(count),
            "deleted_at": iso_z(_aware(trust.deleted_at))}
