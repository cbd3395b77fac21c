"""Identity as a pocketstack service: its ASGI app, its policy and its bootstrap."""
from __future__ import annotations

import logging

from sqlalchemy import select

from pocketstack.common import web
from pocketstack.common.runtime import Runtime
from pocketstack.identity import catalog, core, tokens
from pocketstack.identity import models as m
from pocketstack.identity.fernet import KeyRepository
from pocketstack.identity.policies import DEFAULTS

log = logging.getLogger("pocketstack.identity")

ROLE_CHAIN = ("admin", "manager", "member", "reader")  # each implies the next, as upstream's bootstrap


def app():
    # Importing the route modules registers their routes on the shared Api object.
    from pocketstack.identity.api import auth, catalog as _c, resources, roles, versions  # noqa: F401
    from pocketstack.identity.api import self_service  # noqa: F401
    from pocketstack.identity.api import v2  # noqa: F401
    from pocketstack.identity.api import extras  # noqa: F401
    from pocketstack.identity.api.common import api

    return api.app()


def setup(rt: Runtime) -> None:
    rt.enforcer.register_defaults(DEFAULTS)
    web.set_authenticator(tokens.authenticate)
    from pocketstack.identity.api.common import api

    api.www_authenticate = f'Keystone uri="{rt.config.public_url}"'
    api.max_body = rt.config.getint("DEFAULT", "max_request_body_size")
    if rt.config.get("DEFAULT", "admin_token"):
        log.warning("[DEFAULT] admin_token is set: anyone holding it is a full administrator, with no user "
                    "behind the calls. Use it only to bootstrap, then remove it (pocketstack config set "
                    "DEFAULT admin_token '').")


def keys(rt: Runtime) -> KeyRepository:
    return KeyRepository(rt.config.state_dir / "fernet-keys", rt.config.getint("fernet_tokens", "max_active_keys"))


def credential_keys(rt: Runtime) -> KeyRepository:
    return KeyRepository(rt.config.state_dir / "credential-keys", 3)


def bootstrap(rt: Runtime, admin_password: str, reset_password: bool = False) -> dict:
    """Idempotent: default domain, roles, admin + service projects, admin user, catalog."""
    created = {}
    keys(rt).setup()
    credential_keys(rt).setup()
    cfg = rt.config
    with rt.db.session() as sess:
        default_id = cfg.get("identity", "default_domain_id")
        if sess.get(m.Domain, default_id) is None:
            core.create_domain(sess, {"name": "Default", "description": "The default domain"},
                               domain_id=default_id)
            created["domain"] = default_id
        roles = {}
        for name in ROLE_CHAIN + ("service", "ResellerAdmin"):
            role = core.role_by_name(sess, name)
            if role is None:
                role = core.create_role(sess, {"name": name})
                created.setdefault("roles", []).append(name)
            roles[name] = role
        for prior, implied in zip(ROLE_CHAIN, ROLE_CHAIN[1:]):
            if sess.get(m.ImpliedRole, (roles[prior].id, roles[implied].id)) is None:
                sess.add(m.ImpliedRole(prior_role_id=roles[prior].id, implied_role_id=roles[implied].id))
        projects = {}
        for name, desc in (("admin", "Bootstrap project for the cloud administrator"),
                           ("service", "Project of the services' own users")):
            proj = sess.execute(select(m.Project).where(m.Project.name == name,
                                                        m.Project.domain_id == default_id)).scalar()
            if proj is None:
                proj = core.create_project(sess, {"name": name, "domain_id": default_id, "description": desc})
            projects[name] = proj
        admin = sess.execute(select(m.User).where(m.User.name == "admin",
                                                  m.User.domain_id == default_id)).scalar()
        if admin is None:
            admin = core.create_user(sess, {"name": "admin", "domain_id": default_id, "password": admin_password,
                                            "options": {"ignore_change_password_upon_first_use": True,
                                                        "ignore_password_expiry": True,
                                                        "ignore_lockout_failure_attempts": True}})
            created["admin"] = admin.id
        elif reset_password:
            cur = core.current_password(sess, admin.id)
            if cur is None or not _is_admin_password(rt, admin_password, cur.password_hash):
                core.update_user(sess, admin.id, {"password": admin_password})
        core.grant(sess, "user", admin.id, "project", projects["admin"].id, roles["admin"].id)
        core.grant(sess, "user", admin.id, "system", "system", roles["admin"].id)
        catalog.sync_catalog(sess, cfg.public_url, cfg.region, cfg.enabled_services)
    return created


def _is_admin_password(rt: Runtime, password: str, hashed: str | None) -> bool:
    """bcrypt's answer to "is this still the admin's password?", asked at every
    `up --admin-password`, remembered once positive: at the default cost 12 the check is
    ~0.25 s, a fifth of a cold start. The memo is an HMAC of the password keyed by the
    stored hash, whose salt changes with every new password, so it can only ever repeat
    bcrypt's answer. (It reveals nothing new: clouds.yaml and openrc next to it hold the
    password in clear.)"""
    import hashlib
    import hmac
    import os

    from pocketstack.identity.passwords import check_password

    if not hashed:
        return False
    memo = rt.config.state_dir / ".admin-password-verified"
    tag = hmac.new(hashed.encode(), password.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    try:
        if hmac.compare_digest(memo.read_text().strip(), tag):
            return True
    except (OSError, UnicodeDecodeError):
        pass
    if not check_password(password, hashed):
        return False
    try:
        fd = os.open(memo, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(tag + "\n")
    except OSError:
        pass  # a read-only state dir only costs the next start the bcrypt check
    return True
