"""Tokens: authentication methods, Fernet issue, validation (cached) and revocation.

A token is a Fernet message holding only ids (user, scope, trust, application
credential), methods, audit ids and times; roles and the catalog are computed at
validation, so a role removal or a disabled project takes effect at once. Validation
results are cached per process and dropped whenever the identity generation changes
(any identity write or revocation bumps it), which keeps several controllers coherent.
"""
from __future__ import annotations

import datetime as dt
import os
import struct
import threading
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pocketstack.common.context import AuthContext
from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, Forbidden, NotFound, Unauthorized
from pocketstack.common.runtime import current
from pocketstack.identity import catalog as catalog_mod
from pocketstack.identity import core
from pocketstack.identity import models as m
from pocketstack.identity.fernet import InvalidToken, KeyRepository, b64, pack_id, unb64, unpack_id
from pocketstack.identity.passwords import check_password

METHODS = ["password", "token", "application_credential", "external", "oauth1", "mapped", "totp",
           "ec2credential"]  # appended only: a method's bit is its index (8 fit the mask byte)
SCOPE_NONE, SCOPE_PROJECT, SCOPE_DOMAIN, SCOPE_SYSTEM = 0, 1, 2, 3
PAYLOAD_VERSION = 1


@dataclass
class Payload:
    user_id: str
    methods: list[str]
    expires_at: float
    issued_at: float
    audit_ids: list[str]
    project_id: str | None = None
    domain_id: str | None = None
    system: bool = False
    trust_id: str | None = None
    app_cred_id: str | None = None
    # trustee when the token impersonates the trustor (the token's user is the trustor)
    trustee_id: str | None = None

    def pack(self) -> bytes:
        mask = sum(1 << METHODS.index(x) for x in self.methods if x in METHODS)
        scope = SCOPE_PROJECT if self.project_id else SCOPE_DOMAIN if self.domain_id else \
            SCOPE_SYSTEM if self.system else SCOPE_NONE
        out = [struct.pack(">BBBdd", PAYLOAD_VERSION, mask, scope, self.expires_at, self.issued_at),
               pack_id(self.user_id), pack_id(self.project_id or self.domain_id),
               pack_id(self.trust_id), pack_id(self.app_cred_id), pack_id(self.trustee_id),
               struct.pack(">B", len(self.audit_ids))]
        out += [unb64(a) for a in self.audit_ids]
        return b"".join(out)

    @classmethod
    def unpack(cls, raw: bytes) -> "Payload":
        version, mask, scope, expires, issued = struct.unpack(">BBBdd", raw[:19])
        if version != PAYLOAD_VERSION:
            raise ValueError("unknown payload version")
        pos = 19
        user_id, pos = unpack_id(raw, pos)
        target, pos = unpack_id(raw, pos)
        trust_id, pos = unpack_id(raw, pos)
        app_cred_id, pos = unpack_id(raw, pos)
        trustee_id, pos = unpack_id(raw, pos)
        (n,) = struct.unpack(">B", raw[pos:pos + 1])
        pos += 1
        audit = [b64(raw[pos + 16 * i:pos + 16 * (i + 1)]) for i in range(n)]
        return cls(user_id=user_id, methods=[x for i, x in enumerate(METHODS) if mask & (1 << i)],
                   expires_at=expires, issued_at=issued, audit_ids=audit,
                   project_id=target if scope == SCOPE_PROJECT else None,
                   domain_id=target if scope == SCOPE_DOMAIN else None,
                   system=scope == SCOPE_SYSTEM, trust_id=trust_id, app_cred_id=app_cred_id,
                   trustee_id=trustee_id)


def new_audit_id() -> str:
    return b64(os.urandom(16))


def fmt_time(ts: float | dt.datetime | None) -> str | None:
    if ts is None:
        return None
    if not isinstance(ts, dt.datetime):
        ts = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------- provider
class TokenProvider:
    """Issues and validates tokens for one state dir's key repository."""

    def __init__(self, keys: KeyRepository):
        self.keys = keys
        self._cache: dict[str, tuple[int, dict, "Payload"]] = {}
        self._catalogs: dict[str | None, tuple[int, list]] = {}
        self._lock = threading.Lock()

    # -- issue ----------------------------------------------------------------
    def issue(self, sess: Session, auth: dict) -> tuple[str, dict]:
        """POST /v3/auth/tokens: authenticate, scope, and return (token id, token body)."""
        if not isinstance(auth, dict):
            raise BadRequest("Invalid input for field 'auth'.")
        identity = auth.get("identity")
        if not isinstance(identity, dict) or not isinstance(identity.get("methods"), list) \
                or not identity["methods"]:
            raise BadRequest("Invalid input for field 'identity': 'methods' is a required list.")
        methods = identity["methods"]
        for name in methods:
            if name not in ("password", "token", "application_credential"):
                raise Unauthorized("Attempted to authenticate with an unsupported method.")
            if not isinstance(identity.get(name), dict):
                raise BadRequest(f"Invalid input for field 'identity': '{name}' is required.")
        scope = auth.get("scope")
        if scope is not None and scope != "unscoped" and not isinstance(scope, dict):
            raise BadRequest("Invalid input for field 'scope'.")
        if scope == "unscoped":
            scope, explicit_unscoped = None, True
        else:
            explicit_unscoped = False

        now = utcnow().timestamp()
        expires = now + current().config.getint("token", "expiration")
        audit_ids = [new_audit_id()]
        user_id = None
        app_cred = None
        parent: Payload | None = None
        for name in methods:
            if name == "password":
                uid = self._auth_password(sess, identity["password"])
            elif name == "token":
                parent = self._auth_token(sess, identity["token"])
                uid = parent.user_id
            else:
                app_cred = self._auth_app_cred(sess, identity["application_credential"])
                uid = app_cred.user_id
            if user_id is not None and uid != user_id:
                raise Unauthorized("The methods identify different users.")
            user_id = uid
        user = sess.get(m.User, user_id)
        if user is None or not user.enabled:
            raise Unauthorized()

        payload = Payload(user_id=user_id, methods=list(dict.fromkeys(methods)), expires_at=expires,
                          issued_at=now, audit_ids=audit_ids)
        if parent is not None:
            if parent.trust_id or parent.app_cred_id:
                if scope:
                    raise Forbidden("Trust and application credential tokens cannot be rescoped.")
            payload.expires_at = min(payload.expires_at, parent.expires_at)
            payload.methods = list(dict.fromkeys(parent.methods + payload.methods))
            payload.audit_ids = [audit_ids[0], parent.audit_ids[-1]]
            if not scope:
                payload.project_id, payload.domain_id, payload.system = \
                    parent.project_id, parent.domain_id, parent.system
                payload.trust_id, payload.app_cred_id, payload.trustee_id = \
                    parent.trust_id, parent.app_cred_id, parent.trustee_id
        if app_cred is not None:
            if scope:
                want = scope.get("project") if isinstance(scope, dict) else None
                if not want or (want.get("id") and want.get("id") != app_cred.project_id):
                    raise Unauthorized("Application credentials cannot request a scope.")
            payload.project_id, payload.app_cred_id = app_cred.project_id, app_cred.id
            if app_cred.expires_at is not None:
                payload.expires_at = min(payload.expires_at, app_cred.expires_at.timestamp())
            scope = None
        if scope:
            self._apply_scope(sess, payload, user, scope)
        elif (parent is None and app_cred is None and not explicit_unscoped
              and user.default_project_id):
            proj = sess.get(m.Project, user.default_project_id)
            if proj is not None and proj.enabled and core.effective_role_ids(sess, user.id, project_id=proj.id):
                payload.project_id = proj.id

        body = self.render(sess, payload, include_catalog=True)
        token_id = self.keys.encrypt(payload.pack())
        return token_id, body

    def _auth_password(self, sess: Session, data: dict) -> str:
        ref = data.get("user")
        if not isinstance(ref, dict):
            raise BadRequest("Invalid input for field 'password': 'user' is required.")
        if "password" not in ref:
            raise BadRequest("Invalid input for field 'user': 'password' is required.")
        try:
            user = core.find_user(sess, ref)
        except NotFound:
            raise Unauthorized() from None
        core.authenticate_password(sess, user, ref["password"])
        return user.id

    def _auth_token(self, sess: Session, data: dict) -> Payload:
        token_id = data.get("id")
        if not isinstance(token_id, str) or not token_id:
            raise BadRequest("Invalid input for field 'token': 'id' is required.")
        # An invalid or revoked token is 404 here, as Keystone answers (Tempest expects it).
        payload, _ = self.validate(sess, token_id)
        return payload

    def _auth_app_cred(self, sess: Session, data: dict):
        secret = data.get("secret")
        if not isinstance(secret, str):
            raise BadRequest("Invalid input for field 'application_credential': 'secret' is required.")
        if data.get("id"):
            if not isinstance(data["id"], str):
                raise BadRequest("Invalid input for field 'application_credential': 'id' must be a string.")
            ac = sess.get(m.ApplicationCredential, data["id"])
        elif isinstance(data.get("name"), str) and data["name"] and isinstance(data.get("user"), dict):
            try:
                user = core.find_user(sess, data["user"])
            except NotFound:
                raise Unauthorized() from None
            ac = sess.execute(select(m.ApplicationCredential).where(
                m.ApplicationCredential.user_id == user.id,
                m.ApplicationCredential.name == data["name"])).scalar()
        else:
            raise BadRequest("An application credential needs an id, or a name and a user.")
        if ac is None or not check_password(secret, ac.secret_hash):
            raise Unauthorized()
        if ac.expires_at is not None and ac.expires_at <= utcnow():
            raise Unauthorized("The application credential has expired.")
        return ac

    def _apply_scope(self, sess: Session, payload: Payload, user: m.User, scope: dict) -> None:
        keys = [k for k in ("project", "domain", "system", "OS-TRUST:trust") if k in scope]
        if len(keys) != 1:
            raise BadRequest("Specify exactly one of project, domain, system or trust scope.")
        kind = keys[0]
        if kind == "project":
            try:
                proj = core.find_project(sess, scope["project"])
            except NotFound:
                raise Unauthorized("Could not find the project to scope to.") from None
            dom = sess.get(m.Domain, proj.domain_id)
            if not proj.enabled or dom is None or not dom.enabled:
                raise Unauthorized(f"Project {proj.id} is disabled.")
            if not core.effective_role_ids(sess, user.id, project_id=proj.id):
                raise Unauthorized(f"User {user.id} has no access to project {proj.id}.")
            payload.project_id = proj.id
        elif kind == "domain":
            try:
                dom = core.find_domain(sess, scope["domain"])
            except NotFound:
                raise Unauthorized("Could not find the domain to scope to.") from None
            if not dom.enabled:
                raise Unauthorized(f"Domain {dom.id} is disabled.")
            if not core.effective_role_ids(sess, user.id, domain_id=dom.id):
                raise Unauthorized(f"User {user.id} has no access to domain {dom.id}.")
            payload.domain_id = dom.id
        elif kind == "system":
            if scope["system"] != {"all": True}:
                raise BadRequest("Only system scope 'all' exists.")
            if not core.effective_role_ids(sess, user.id, system=True):
                raise Unauthorized(f"User {user.id} has no access to the system.")
            payload.system = True
        else:
            ref = scope["OS-TRUST:trust"]
            trust = sess.get(m.Trust, ref["id"]) if isinstance(ref, dict) and isinstance(ref.get("id"), str) \
                else None
            if trust is None or trust.deleted_at is not None:
                raise Unauthorized("Could not find the trust.")
            if trust.trustee_user_id != user.id:
                raise Forbidden("The user is not the trustee of this trust.")
            if trust.expires_at is not None and trust.expires_at <= utcnow():
                raise Unauthorized("The trust has expired.")
            if trust.remaining_uses is not None:
                if trust.remaining_uses <= 0:
                    raise Unauthorized("The trust has no remaining uses.")
                trust.remaining_uses -= 1
            trustor = sess.get(m.User, trust.trustor_user_id)
            if trustor is None or not trustor.enabled:
                raise Forbidden("The trustor is disabled.")
            payload.trust_id = trust.id
            payload.project_id = trust.project_id
            if trust.expires_at is not None:
                payload.expires_at = min(payload.expires_at, trust.expires_at.timestamp())
            if trust.impersonation:
                payload.trustee_id = user.id
                payload.user_id = trustor.id
            self._trust_roles(sess, trust)  # fails now if the trustor lost the roles

    # -- validation -----------------------------------------------------------
    def validate(self, sess: Session, token_id: str, *, allow_expired: bool = False) -> tuple[Payload, dict]:
        """Return (payload, token body without catalog); NotFound for anything invalid."""
        gen = core.generation(sess)
        cached = self._cache.get(token_id)
        if cached is not None and cached[0] == gen:
            payload, body = cached[2], cached[1]
        else:
            try:
                raw = self.keys.decrypt(token_id)
                payload = Payload.unpack(raw)
            except (InvalidToken, ValueError, struct.error, IndexError, UnicodeDecodeError):
                raise NotFound("Could not find token.") from None
            self._check_revoked(sess, payload)
            body = self.render(sess, payload, include_catalog=False)
            with self._lock:
                if len(self._cache) > 20000:
                    self._cache.clear()
                self._cache[token_id] = (gen, body, payload)
        now = utcnow().timestamp()
        if payload.expires_at <= now:
            window = current().config.getint("token", "allow_expired_window")
            if not allow_expired or payload.expires_at + window <= now:
                raise NotFound("The token has expired.")
        return payload, body

    def _check_revoked(self, sess: Session, p: Payload) -> None:
        issued = dt.datetime.fromtimestamp(p.issued_at, dt.timezone.utc)
        E = m.RevocationEvent
        users = [u for u in (p.user_id, p.trustee_id) if u]
        conds = [E.user_id.in_(users), E.audit_id.in_(p.audit_ids), E.audit_chain_id.in_(p.audit_ids)]
        if p.project_id:
            conds.append(E.project_id == p.project_id)
        if p.trust_id:
            conds.append(E.trust_id == p.trust_id)
        if p.app_cred_id:
            conds.append(E.application_credential_id == p.app_cred_id)
        conds.append(E.domain_id.is_not(None))
        conds.append(E.role_id.is_not(None))
        events = sess.execute(select(E).where(E.issued_before >= issued, or_(*conds))).scalars().all()
        if not events:
            return
        user = sess.get(m.User, p.user_id)
        domains = {user.domain_id} if user else set()
        if p.project_id:
            proj = sess.get(m.Project, p.project_id)
            if proj:
                domains.add(proj.domain_id)
        if p.domain_id:
            domains.add(p.domain_id)
        role_ids = None
        for ev in events:
            if ev.user_id and ev.user_id not in users:
                continue
            if ev.project_id and ev.project_id != p.project_id:
                continue
            if ev.domain_id and ev.domain_id not in domains:
                continue
            if ev.trust_id and ev.trust_id != p.trust_id:
                continue
            if ev.application_credential_id and ev.application_credential_id != p.app_cred_id:
                continue
            if ev.audit_id and ev.audit_id not in p.audit_ids[:1]:
                continue
            if ev.audit_chain_id and ev.audit_chain_id not in p.audit_ids:
                continue
            if ev.role_id:
                if role_ids is None:
                    role_ids = self._role_ids(sess, p, expand=True, include_domain_roles=True)
                if ev.role_id not in role_ids:
                    continue
            raise NotFound("The token has been revoked.")

    def _role_ids(self, sess: Session, p: Payload, expand=True, include_domain_roles=False) -> set[str]:
        if p.trust_id:
            trust = sess.get(m.Trust, p.trust_id)
            if trust is None or trust.deleted_at is not None:
                return set()
            return self._trust_roles(sess, trust)
        if p.app_cred_id:
            ac = sess.get(m.ApplicationCredential, p.app_cred_id)
            if ac is None:
                return set()
            wanted = set(sess.execute(select(m.ApplicationCredentialRole.role_id).where(
                m.ApplicationCredentialRole.application_credential_id == ac.id)).scalars())
            have = core.effective_role_ids(sess, ac.user_id, project_id=ac.project_id)
            if not wanted <= have:
                return set()
            return wanted | core.implied_closure(sess, wanted) if expand else wanted
        return core.effective_role_ids(sess, p.user_id, project_id=p.project_id, domain_id=p.domain_id,
                                       system=p.system, expand_implied=expand,
                                       include_domain_roles=include_domain_roles)

    def _trust_roles(self, sess: Session, trust: m.Trust) -> set[str]:
        wanted = set(sess.execute(select(m.TrustRole.role_id).where(m.TrustRole.trust_id == trust.id)).scalars())
        if trust.project_id:
            from pocketstack.identity.delegation import original_trustor  # redelegation acts for the first trustor

            have = core.effective_role_ids(sess, original_trustor(sess, trust), project_id=trust.project_id)
            if not wanted <= have:
                raise Forbidden("The trustor no longer has the delegated roles.")
        return wanted | core.implied_closure(sess, wanted)

    def render(self, sess: Session, p: Payload, include_catalog: bool) -> dict:
        """The token body of the API (`{"token": {...}}` contents)."""
        user = sess.get(m.User, p.user_id)
        if user is None or not user.enabled:
            raise NotFound("Could not find token: the user is gone or disabled.")
        udom = sess.get(m.Domain, user.domain_id)
        if udom is None or not udom.enabled:
            raise NotFound("Could not find token: the user's domain is disabled.")
        body: dict = {
            "methods": list(p.methods),
            "user": {"domain": {"id": udom.id, "name": udom.name}, "id": user.id, "name": user.name,
                     "password_expires_at": fmt_time(core.password_expires_at(sess, user))},
            "audit_ids": list(p.audit_ids),
            "expires_at": fmt_time(p.expires_at),
            "issued_at": fmt_time(p.issued_at),
        }
        if p.project_id or p.domain_id or p.system:
            if p.project_id:
                proj = sess.get(m.Project, p.project_id)
                pdom = sess.get(m.Domain, proj.domain_id) if proj else None
                if proj is None or not proj.enabled or pdom is None or not pdom.enabled:
                    raise NotFound("Could not find token: its project is gone or disabled.")
                body["project"] = {"domain": {"id": pdom.id, "name": pdom.name}, "id": proj.id,
                                   "name": proj.name}
                body["is_domain"] = False
            elif p.domain_id:
                dom = sess.get(m.Domain, p.domain_id)
                if dom is None or not dom.enabled:
                    raise NotFound("Could not find token: its domain is gone or disabled.")
                body["domain"] = {"id": dom.id, "name": dom.name}
            else:
                body["system"] = {"all": True}
            try:
                role_ids = self._role_ids(sess, p)
            except Forbidden:
                role_ids = set()
            if not role_ids:
                raise NotFound("Could not find token: the user has no roles on its scope.")
            body["roles"] = [{"id": r.id, "name": r.name} for r in core.roles_by_ids(sess, role_ids)
                             if r.domain_id == core.NULL_DOMAIN]
            if include_catalog:
                body["catalog"] = self.catalog(sess, p.project_id)
        if p.trust_id:
            trust = sess.get(m.Trust, p.trust_id)
            if trust is None or trust.deleted_at is not None:
                raise NotFound("Could not find token: its trust is gone.")
            body["OS-TRUST:trust"] = {"id": trust.id, "impersonation": trust.impersonation,
                                      "trustee_user": {"id": trust.trustee_user_id},
                                      "trustor_user": {"id": trust.trustor_user_id}}
        if p.app_cred_id:
            ac = sess.get(m.ApplicationCredential, p.app_cred_id)
            if ac is None:
                raise NotFound("Could not find token: its application credential is gone.")
            body["application_credential"] = {"id": ac.id, "name": ac.name, "restricted": not ac.unrestricted}
            if ac.expires_at is not None and ac.expires_at.timestamp() <= utcnow().timestamp():
                raise NotFound("The application credential has expired.")
        return body

    def catalog(self, sess: Session, project_id: str | None) -> list:
        gen = core.generation(sess)
        hit = self._catalogs.get(project_id)
        if hit is not None and hit[0] == gen:
            return hit[1]
        cat = catalog_mod.build_catalog(sess, project_id)
        with self._lock:
            if len(self._catalogs) > 5000:
                self._catalogs.clear()
            self._catalogs[project_id] = (gen, cat)
        return cat

    # -- revocation -------------------------------------------------------------
    def revoke_token(self, sess: Session, token_id: str) -> None:
        payload, _ = self.validate(sess, token_id)
        core.revoke(sess, audit_id=payload.audit_ids[0])

    def context_for(self, token_id: str, payload: Payload, body: dict) -> AuthContext:
        proj = body.get("project") or {}
        dom = body.get("domain") or {}
        trust = body.get("OS-TRUST:trust") or {}
        return AuthContext(
            token_id=token_id, user_id=body["user"]["id"], user_name=body["user"]["name"],
            user_domain_id=body["user"]["domain"]["id"],
            project_id=proj.get("id"), project_name=proj.get("name"),
            project_domain_id=(proj.get("domain") or {}).get("id"),
            domain_id=dom.get("id"), domain_name=dom.get("name"),
            system_scope="all" if body.get("system") else None,
            roles=[r["name"] for r in body.get("roles", [])], role_ids=[r["id"] for r in body.get("roles", [])],
            trust_id=trust.get("id"), trustor_id=(trust.get("trustor_user") or {}).get("id"),
            trustee_id=(trust.get("trustee_user") or {}).get("id"),
            application_credential_id=(body.get("application_credential") or {}).get("id"),
            methods=body["methods"], audit_ids=body["audit_ids"], expires_at=body["expires_at"],
            issued_at=body["issued_at"], token_body=body)


_provider: TokenProvider | None = None
_provider_config = None  # the Config the provider was made for (a new runtime = a new one)


def provider() -> TokenProvider:
    global _provider, _provider_config
    cfg = current().config
    if _provider is not None and cfg is _provider_config:
        return _provider  # hot path: several calls per request, no path arithmetic
    keys_dir = cfg.state_dir / "fernet-keys"
    if _provider is None or _provider.keys.path != keys_dir:
        _provider = TokenProvider(KeyRepository(keys_dir, cfg.getint("fernet_tokens", "max_active_keys")))
    _provider_config = cfg
    return _provider


def authenticate(token_id: str) -> AuthContext:
    """The authenticator every service's API uses (registered in `common.web`)."""
    admin_token = current().config.get("DEFAULT", "admin_token")
    if admin_token and len(token_id) == len(admin_token):
        from pocketstack.identity.passwords import constant_time_equal

        if constant_time_equal(token_id, admin_token):
            return AuthContext(token_id=token_id, is_admin_token=True, roles=["admin"], system_scope="all")
    with current().db.session() as sess:
        try:
            payload, body = provider().validate(sess, token_id)
        except NotFound:
            raise Unauthorized("The request you have made requires authentication.") from None
        return provider().context_for(token_id, payload, body)
