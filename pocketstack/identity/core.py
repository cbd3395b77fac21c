"""Identity service logic: resources, assignments, catalog and their rules.

This is the public Python interface other services use (never our tables). The API
layer (`identity/api`) only translates HTTP <-> JSON and calls these functions inside
`db.session()`; every function here takes the session as its first argument.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Iterable

from sqlalchemy import delete, event, inspect, or_, select, update
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.db import new_id, utcnow
from pocketstack.common.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.common.models import Generation
from pocketstack.common.runtime import current
from pocketstack.identity import models as m
from pocketstack.identity.passwords import check_password, hash_password

NULL_DOMAIN = "<<null>>"
ASSIGNMENT_TYPES = {
    ("user", "project"): "UserProject",
    ("group", "project"): "GroupProject",
    ("user", "domain"): "UserDomain",
    ("group", "domain"): "GroupDomain",
    ("user", "system"): "UserSystem",
    ("group", "system"): "GroupSystem",
}


# ---------------------------------------------------------------------------- generation
# Columns that change on every login; they never affect what a token says.
_VOLATILE = {"identity_user": {"last_active_at", "failed_auth_count", "failed_auth_at"}}


def _touches_tokens(sess: Session) -> bool:
    for obj in list(sess.new) + list(sess.deleted):
        if getattr(obj, "__tablename__", "").startswith("identity_"):
            return True
    for obj in sess.dirty:
        table = getattr(obj, "__tablename__", "")
        if not table.startswith("identity_"):
            continue
        state = inspect(obj)
        changed = {a.key for a in state.attrs if a.history.has_changes()}
        if changed - _VOLATILE.get(table, set()):
            return True
    return False


@event.listens_for(Session, "before_flush")
def _bump_generation(sess: Session, flush_context, instances):
    if sess.info.get("identity_bumped") or not _touches_tokens(sess):
        return
    sess.info["identity_bumped"] = True
    bump_generation(sess)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _reset_bump(sess: Session):
    sess.info.pop("identity_bumped", None)
    sess.info.pop(_GENERATION_MEMO, None)


def bump_generation(sess: Session) -> None:
    """Invalidate every process's identity caches (token validations, catalogs)."""
    sess.info.pop(_GENERATION_MEMO, None)
    res = sess.execute(update(Generation).where(Generation.name == "identity")
                       .values(value=Generation.value + 1))
    if res.rowcount == 0:
        sess.add(Generation(name="identity", value=1))


_GENERATION_MEMO = "identity_generation"
_GENERATION_SQL = "SELECT value FROM common_generation WHERE name = 'identity'"


def generation(sess: Session) -> int:
    """The identity generation, read once per transaction (a validation asks up to three
    times per request); our own bumps, commit and rollback drop the memo. Plain SQL: this
    runs on every request, and SQLAlchemy's statement compilation would cost more than
    the query itself.

    A session that has not begun a transaction yet (a cached token validation, which then
    needs nothing else from the database) reads it on a bare pooled connection, so the
    session never begins, commits or closes one. That read happens before anything the
    session reads later, so a cache entry is never filed under a newer generation than
    the data it holds."""
    value = sess.info.get(_GENERATION_MEMO)
    if value is None:
        bind = sess.get_bind()
        if not sess.in_transaction() and hasattr(bind, "raw_connection"):  # an Engine
            raw = bind.raw_connection()
            try:
                cur = raw.cursor()
                try:
                    cur.execute(_GENERATION_SQL)
                    row = cur.fetchone()
                finally:
                    cur.close()
            finally:
                raw.close()  # back to the pool
            value = (row[0] if row else 0) or 0
        else:
            if sess.autoflush:
                sess.flush()  # as an ORM query would: our pending writes bump the counter first
            value = sess.connection().exec_driver_sql(_GENERATION_SQL).scalar() or 0
        sess.info[_GENERATION_MEMO] = value
    return value


# ---------------------------------------------------------------------------- helpers
def conf():
    return current().config


def emit(event_type: str, resource_id: str, ctx=None, **extra) -> None:
    events.emit(f"identity.{event_type}", {"resource_info": resource_id, **extra}, context=ctx)


def _get(sess: Session, model, ident: str, what: str):
    obj = sess.get(model, ident) if isinstance(ident, str) and ident else None
    if obj is None:
        raise NotFound(f"Could not find {what}: {ident}.")
    return obj


def check_name(value, field: str = "name", max_len: int = 255) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"Invalid input for field '{field}': it must be a non-empty string.")
    if len(value) > max_len:
        raise BadRequest(f"Invalid input for field '{field}': it is longer than {max_len} characters.")
    return value


def check_bool(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for field '{field}': {value!r} is not of type 'boolean'.")
    return value


def check_str(value, field: str, nullable=True, max_len: int | None = None):
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field '{field}': {value!r} is not of type 'string'.")
    if max_len and len(value) > max_len:
        raise BadRequest(f"Invalid input for field '{field}': it is longer than {max_len} characters.")
    return value


_TAG_RE = re.compile(r"^[^,/]{1,255}$")


def check_tags(tags) -> list[str]:
    if not isinstance(tags, list) or len(tags) > 80:
        raise BadRequest("Invalid input for field 'tags': a list of at most 80 strings.")
    for t in tags:
        if not isinstance(t, str) or not _TAG_RE.match(t):
            raise BadRequest(f"Invalid tag {t!r}: 1-255 characters, no ',' or '/'.")
    return list(dict.fromkeys(tags))


def check_options(options, allowed: dict[str, type]) -> dict:
    if not isinstance(options, dict):
        raise BadRequest("Invalid input for field 'options': it must be an object.")
    for key, value in options.items():
        if key not in allowed:
            raise BadRequest(f"Invalid option {key!r}.")
        if value is not None and not isinstance(value, allowed[key]):
            raise BadRequest(f"Invalid value for option {key!r}.")
    return options


# ---------------------------------------------------------------------------- domains
def get_domain(sess: Session, domain_id: str) -> m.Domain:
    return _get(sess, m.Domain, domain_id, "domain")


def _check_ref(ref, what: str) -> None:
    """An `{"id"|"name": ...}` reference (auth bodies, scope): its id and name are strings."""
    if not isinstance(ref, dict):
        raise BadRequest(f"Invalid {what} reference.")
    for key in ("id", "name"):
        if ref.get(key) is not None and not isinstance(ref[key], str):
            raise BadRequest(f"Invalid input for field '{key}' of the {what}: it must be a string.")


def find_domain(sess: Session, ref: dict) -> m.Domain:
    """A domain from `{"id": ...}` or `{"name": ...}` (auth bodies, scope)."""
    _check_ref(ref, "domain")
    if ref.get("id"):
        return get_domain(sess, ref["id"])
    if ref.get("name"):
        dom = sess.execute(select(m.Domain).where(m.Domain.name == ref["name"])).scalar()
        if dom is None:
            raise NotFound(f"Could not find domain: {ref['name']}.")
        return dom
    raise BadRequest("A domain needs an id or a name.")


def create_domain(sess: Session, data: dict, ctx=None, domain_id: str | None = None) -> m.Domain:
    name = check_name(data.get("name"), max_len=64)
    if sess.execute(select(m.Domain.id).where(m.Domain.name == name)).first():
        raise Conflict(f"Conflict occurred attempting to store domain - Duplicate entry found with name {name}.")
    dom_id = domain_id or check_str(data.get("explicit_domain_id"), "explicit_domain_id", max_len=64) or new_id()
    if sess.get(m.Domain, dom_id) is not None:
        raise Conflict(f"Conflict occurred attempting to store domain - Duplicate ID, {dom_id}.")
    dom = m.Domain(id=dom_id, name=name,
                   description=check_str(data.get("description"), "description"),
                   enabled=check_bool(data.get("enabled", True), "enabled"),
                   tags=check_tags(data.get("tags", [])),
                   options=check_options(data.get("options", {}), {"immutable": bool}),
                   extra=_extra(data, {"name", "description", "enabled", "tags", "options", "id",
                                       "explicit_domain_id"}))
    sess.add(dom)
    sess.flush()
    emit("domain.created", dom.id, ctx)
    return dom


def update_domain(sess: Session, domain_id: str, data: dict, ctx=None) -> m.Domain:
    dom = get_domain(sess, domain_id)
    _check_immutable(dom, data)
    if "name" in data and data["name"] != dom.name:
        name = check_name(data["name"], max_len=64)
        if sess.execute(select(m.Domain.id).where(m.Domain.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store domain - Duplicate entry found with name {name}.")
        dom.name = name
    if "description" in data:
        dom.description = check_str(data["description"], "description")
    if "tags" in data:
        dom.tags = check_tags(data["tags"])
    if "options" in data:
        dom.options = {**dom.options, **check_options(data["options"], {"immutable": bool})}
    if "enabled" in data:
        enabled = check_bool(data["enabled"], "enabled")
        if dom.id == conf().get("identity", "default_domain_id") and not enabled:
            raise Forbidden("The default domain cannot be disabled.")
        if dom.enabled and not enabled:
            revoke(sess, domain_id=dom.id)
        dom.enabled = enabled
    dom.extra = {**dom.extra, **_extra(data, {"name", "description", "enabled", "tags", "options", "id"})}
    emit("domain.updated", dom.id, ctx)
    return dom


def delete_domain(sess: Session, domain_id: str, ctx=None) -> None:
    dom = get_domain(sess, domain_id)
    _check_immutable(dom, {})
    if dom.enabled:
        raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
    # Everything that lives in the domain goes with it, as in Keystone.
    for proj in sess.execute(select(m.Project).where(m.Project.domain_id == dom.id,
                                                     m.Project.parent_id.is_(None))).scalars():
        _delete_project_tree(sess, proj)
    for user in sess.execute(select(m.User).where(m.User.domain_id == dom.id)).scalars():
        delete_user(sess, user.id, ctx)
    for group in sess.execute(select(m.Group).where(m.Group.domain_id == dom.id)).scalars():
        delete_group(sess, group.id, ctx)
    for role in sess.execute(select(m.Role).where(m.Role.domain_id == dom.id)).scalars():
        delete_role(sess, role.id, ctx)
    sess.execute(delete(m.Assignment).where(m.Assignment.target_id == dom.id))
    sess.delete(dom)
    emit("domain.deleted", domain_id, ctx)


def _check_immutable(obj, data) -> None:
    opts = getattr(obj, "options", None) or {}
    if opts.get("immutable") and not (set(data) == {"options"} and isinstance(data["options"], dict)
                                      and data["options"].get("immutable") is False):
        raise Forbidden(f"Resource {obj.id} is immutable; unset the 'immutable' option first.")


def _extra(data: dict, known: set) -> dict:
    return {k: v for k, v in data.items() if k not in known and k != "links"}


# ---------------------------------------------------------------------------- projects
def get_project(sess: Session, project_id: str) -> m.Project:
    return _get(sess, m.Project, project_id, "project")


def find_project(sess: Session, ref: dict) -> m.Project:
    _check_ref(ref, "project")
    if ref.get("id"):
        return get_project(sess, ref["id"])
    if ref.get("name"):
        if "domain" not in ref:
            raise BadRequest("A project name needs its domain.")
        dom = find_domain(sess, ref["domain"])
        proj = sess.execute(select(m.Project).where(m.Project.name == ref["name"],
                                                    m.Project.domain_id == dom.id)).scalar()
        if proj is None:
            raise NotFound(f"Could not find project: {ref['name']}.")
        return proj
    raise BadRequest("A project needs an id or a name.")


def create_project(sess: Session, data: dict, ctx=None) -> m.Project:
    if data.get("is_domain"):
        dom = create_domain(sess, data, ctx)
        return dom  # type: ignore[return-value]
    name = check_name(data.get("name"), max_len=64)
    parent_id = check_str(data.get("parent_id"), "parent_id")
    if parent_id == "":
        raise BadRequest("Invalid input for field 'parent_id': it must be a project or domain id, or null.")
    domain_id = check_str(data.get("domain_id"), "domain_id")
    if parent_id:
        parent = sess.get(m.Project, parent_id)
        if parent is None:
            if sess.get(m.Domain, parent_id) is not None:
                domain_id, parent_id = parent_id, None
            else:
                raise NotFound(f"Could not find project: {parent_id}.")
        else:
            if domain_id and domain_id != parent.domain_id:
                raise BadRequest("A project's domain must be its parent's domain.")
            domain_id = parent.domain_id
    domain_id = domain_id or (ctx.project_domain_id if ctx and ctx.project_domain_id else None) \
        or conf().get("identity", "default_domain_id")
    get_domain(sess, domain_id)
    if sess.execute(select(m.Project.id).where(m.Project.domain_id == domain_id,
                                               m.Project.name == name)).first():
        raise Conflict(f"Conflict occurred attempting to store project - it is not permitted to have two "
                       f"projects with the same name in the same domain : {name}.")
    proj = m.Project(id=new_id(), name=name, domain_id=domain_id, parent_id=parent_id,
                     description=check_str(data.get("description"), "description"),
                     enabled=check_bool(data.get("enabled", True), "enabled"),
                     tags=check_tags(data.get("tags", [])),
                     options=check_options(data.get("options", {}), {"immutable": bool}),
                     extra=_extra(data, {"name", "description", "enabled", "tags", "options", "domain_id",
                                         "parent_id", "is_domain", "id"}))
    sess.add(proj)
    sess.flush()
    emit("project.created", proj.id, ctx)
    return proj


def update_project(sess: Session, project_id: str, data: dict, ctx=None) -> m.Project:
    proj = get_project(sess, project_id)
    _check_immutable(proj, data)
    if "domain_id" in data and data["domain_id"] != proj.domain_id:
        raise BadRequest("Update of `domain_id` is not allowed.")
    if "parent_id" in data and data["parent_id"] != proj.parent_id:
        raise BadRequest("Update of `parent_id` is not allowed.")
    if "is_domain" in data and data["is_domain"]:
        raise BadRequest("Update of `is_domain` is not allowed.")
    if "name" in data and data["name"] != proj.name:
        name = check_name(data["name"], max_len=64)
        if sess.execute(select(m.Project.id).where(m.Project.domain_id == proj.domain_id,
                                                   m.Project.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store project - it is not permitted to have "
                           f"two projects with the same name in the same domain : {name}.")
        proj.name = name
    if "description" in data:
        proj.description = check_str(data["description"], "description")
    if "tags" in data:
        proj.tags = check_tags(data["tags"])
    if "options" in data:
        proj.options = {**proj.options, **check_options(data["options"], {"immutable": bool})}
    if "enabled" in data:
        enabled = check_bool(data["enabled"], "enabled")
        if enabled and proj.parent_id:
            parent = sess.get(m.Project, proj.parent_id)
            if parent is not None and not parent.enabled:
                raise Forbidden("Cannot enable project %s since it has disabled parents." % proj.id)
        if not enabled and proj.enabled:
            if any(p.enabled for p in subtree(sess, proj.id)):
                raise Forbidden(f"Cannot disable project {proj.id} since its subtree contains enabled projects.")
            revoke(sess, project_id=proj.id)
        proj.enabled = enabled
    proj.extra = {**proj.extra, **_extra(data, {"name", "description", "enabled", "tags", "options",
                                                "domain_id", "parent_id", "is_domain", "id"})}
    emit("project.updated", proj.id, ctx)
    return proj


def children(sess: Session, project_id: str) -> list[m.Project]:
    return list(sess.execute(select(m.Project).where(m.Project.parent_id == project_id)).scalars())


def subtree(sess: Session, project_id: str) -> list[m.Project]:
    out, todo = [], [project_id]
    while todo:
        kids = list(sess.execute(select(m.Project).where(m.Project.parent_id.in_(todo))).scalars())
        out.extend(kids)
        todo = [k.id for k in kids]
    return out


def ancestors(sess: Session, proj: m.Project) -> list[m.Project]:
    out, seen = [], set()
    cur = proj
    while cur.parent_id and cur.parent_id not in seen:
        seen.add(cur.parent_id)
        cur = sess.get(m.Project, cur.parent_id)
        if cur is None:
            break
        out.append(cur)
    return out


def delete_project(sess: Session, project_id: str, ctx=None, cascade: bool = False) -> None:
    proj = get_project(sess, project_id)
    _check_immutable(proj, {})
    if children(sess, proj.id):
        if not cascade:
            raise Forbidden(f"Cannot delete the project {proj.id} since it is not a leaf in the hierarchy. "
                            "Use the cascade option if you want to delete a whole subtree.")
    _delete_project_tree(sess, proj, ctx)


def _delete_project_tree(sess: Session, proj: m.Project, ctx=None) -> None:
    for child in children(sess, proj.id):
        _delete_project_tree(sess, child, ctx)
    sess.execute(delete(m.Assignment).where(m.Assignment.target_id == proj.id))
    sess.execute(delete(m.ProjectEndpoint).where(m.ProjectEndpoint.project_id == proj.id))
    sess.execute(delete(m.ProjectEndpointGroup).where(m.ProjectEndpointGroup.project_id == proj.id))
    sess.execute(update(m.User).where(m.User.default_project_id == proj.id).values(default_project_id=None))
    revoke(sess, project_id=proj.id)
    sess.delete(proj)
    sess.flush()
    emit("project.deleted", proj.id, ctx)


# ---------------------------------------------------------------------------- users
USER_OPTIONS = {
    "ignore_change_password_upon_first_use": bool,
    "ignore_password_expiry": bool,
    "ignore_lockout_failure_attempts": bool,
    "lock_password": bool,
    "multi_factor_auth_enabled": bool,
    "multi_factor_auth_rules": list,
    "ignore_user_inactivity": bool,
}


def get_user(sess: Session, user_id: str) -> m.User:
    return _get(sess, m.User, user_id, "user")


def find_user(sess: Session, ref: dict) -> m.User:
    _check_ref(ref, "user")
    if ref.get("id"):
        return get_user(sess, ref["id"])
    if ref.get("name"):
        if not isinstance(ref.get("domain"), dict):
            raise BadRequest("A user name needs its domain.")
        dom = find_domain(sess, ref["domain"])
        user = sess.execute(select(m.User).where(m.User.name == ref["name"],
                                                 m.User.domain_id == dom.id)).scalar()
        if user is None:
            raise NotFound(f"Could not find user: {ref['name']}.")
        return user
    raise BadRequest("A user needs an id or a name.")


def current_password(sess: Session, user_id: str) -> m.Password | None:
    return sess.execute(select(m.Password).where(m.Password.user_id == user_id)
                        .order_by(m.Password.id.desc()).limit(1)).scalar()


def validate_password_rules(password) -> str:
    if not isinstance(password, str):
        raise BadRequest("Invalid input for field 'password': it must be a string.")
    if len(password) > conf().getint("identity", "max_password_length"):
        raise BadRequest("Invalid input for field 'password': it is too long.")
    regex = conf().get("security_compliance", "password_regex")
    if regex and not re.match(regex, password):
        desc = conf().get("security_compliance", "password_regex_description")
        raise BadRequest("Password validation error: The password does not meet the requirements"
                         + (f": {desc}" if desc else "."))
    return password


def _set_password(sess: Session, user: m.User, password: str, *, self_service: bool) -> None:
    validate_password_rules(password)
    count = conf().getint("security_compliance", "unique_last_password_count")
    if count > 0 and self_service:  # an administrator's reset is not held to the history
        recent = sess.execute(select(m.Password.password_hash).where(m.Password.user_id == user.id)
                              .order_by(m.Password.id.desc()).limit(count)).scalars()
        for old in recent:
            if check_password(password, old):
                raise BadRequest(f"Password validation error: The new password cannot be identical "
                                 f"to a previous password. The number of previous passwords that must "
                                 f"be unique is: {count}.")
    now = utcnow()
    expires = None
    days = conf().getint("security_compliance", "password_expires_days")
    if days > 0 and not user.options.get("ignore_password_expiry"):
        expires = now + dt.timedelta(days=days)
    if (not self_service and conf().getbool("security_compliance", "change_password_upon_first_use")
            and not user.options.get("ignore_change_password_upon_first_use")):
        expires = now  # must be changed at first use
    pw = m.Password(user_id=user.id,
                    password_hash=hash_password(password, conf().getint("identity", "password_hash_rounds")),
                    created_at=now, expires_at=expires, self_service=self_service)
    sess.add(pw)


def create_user(sess: Session, data: dict, ctx=None) -> m.User:
    name = check_name(data.get("name"), max_len=255)
    domain_id = check_str(data.get("domain_id"), "domain_id") \
        or (ctx.project_domain_id if ctx and ctx.project_domain_id else None) \
        or conf().get("identity", "default_domain_id")
    get_domain(sess, domain_id)
    if sess.execute(select(m.User.id).where(m.User.domain_id == domain_id, m.User.name == name)).first():
        raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry found with name {name} "
                       f"at domain ID {domain_id}.")
    default_project_id = check_str(data.get("default_project_id"), "default_project_id")
    if default_project_id:
        get_project(sess, default_project_id)
    user = m.User(id=new_id(), name=name, domain_id=domain_id,
                  enabled=check_bool(data.get("enabled", True), "enabled"),
                  default_project_id=default_project_id,
                  options=check_options(data.get("options", {}), USER_OPTIONS),
                  extra=_extra(data, {"name", "domain_id", "enabled", "default_project_id", "options",
                                      "password", "id"}))
    sess.add(user)
    sess.flush()
    if data.get("password") is not None:
        _set_password(sess, user, data["password"], self_service=False)
    emit("user.created", user.id, ctx)
    return user


def update_user(sess: Session, user_id: str, data: dict, ctx=None) -> m.User:
    user = get_user(sess, user_id)
    if "domain_id" in data and data["domain_id"] != user.domain_id:
        raise BadRequest("Update of `domain_id` is not allowed.")
    if "name" in data and data["name"] != user.name:
        name = check_name(data["name"], max_len=255)
        if sess.execute(select(m.User.id).where(m.User.domain_id == user.domain_id, m.User.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry found with name "
                           f"{name} at domain ID {user.domain_id}.")
        user.name = name
    if "default_project_id" in data:
        dp = check_str(data["default_project_id"], "default_project_id")
        if dp:
            get_project(sess, dp)
        user.default_project_id = dp
    if "options" in data:
        opts = dict(user.options)
        for k, v in check_options(data["options"], USER_OPTIONS).items():
            if v is None:
                opts.pop(k, None)
            else:
                opts[k] = v
        user.options = opts
    if "enabled" in data:
        enabled = check_bool(data["enabled"], "enabled")
        if user.enabled and not enabled:
            revoke(sess, user_id=user.id)
        if enabled:
            user.failed_auth_count = 0
        user.enabled = enabled
    if data.get("password") is not None:
        _set_password(sess, user, data["password"], self_service=False)
        user.failed_auth_count = 0
        revoke(sess, user_id=user.id)
    user.extra = {**user.extra, **_extra(data, {"name", "domain_id", "enabled", "default_project_id",
                                                "options", "password", "id"})}
    emit("user.updated", user.id, ctx)
    return user


def change_own_password(sess: Session, user_id: str, original: str, new: str) -> None:
    user = get_user(sess, user_id)
    cur = current_password(sess, user.id)
    if cur is None or not check_password(original, cur.password_hash):
        raise_unauthorized("The password is not correct.")
    if user.options.get("lock_password"):
        raise Forbidden("You are not allowed to change the password of this user.")
    min_age = conf().getint("security_compliance", "minimum_password_age")
    if min_age > 0 and cur.self_service and cur.created_at + dt.timedelta(days=min_age) > utcnow():
        raise BadRequest(f"Password validation error: You cannot change your password at this time "
                         f"due to the minimum password age. Once you change your password, it must be "
                         f"used for {min_age} day(s) before it can be changed.")
    _set_password(sess, user, new, self_service=True)
    user.failed_auth_count = 0
    revoke(sess, user_id=user.id)
    emit("user.password_changed", user.id)


def raise_unauthorized(message: str | None = None):
    from pocketstack.common.errors import Unauthorized

    raise Unauthorized(message)


def delete_user(sess: Session, user_id: str, ctx=None) -> None:
    user = get_user(sess, user_id)
    sess.execute(delete(m.Assignment).where(m.Assignment.actor_id == user.id))
    sess.execute(delete(m.Membership).where(m.Membership.user_id == user.id))
    sess.execute(delete(m.Password).where(m.Password.user_id == user.id))
    sess.execute(delete(m.Credential).where(m.Credential.user_id == user.id))
    for ac in sess.execute(select(m.ApplicationCredential).where(m.ApplicationCredential.user_id == user.id)).scalars():
        sess.delete(ac)
    sess.execute(delete(m.AccessRule).where(m.AccessRule.user_id == user.id))
    sess.execute(update(m.Trust).where(or_(m.Trust.trustor_user_id == user.id, m.Trust.trustee_user_id == user.id),
                                       m.Trust.deleted_at.is_(None)).values(deleted_at=utcnow()))
    revoke(sess, user_id=user.id)
    sess.delete(user)
    sess.flush()
    emit("user.deleted", user_id, ctx)


def authenticate_password(sess: Session, user: m.User, password: str) -> None:
    """Check a password with lockout and expiry rules; raises 401 on any failure."""
    if not isinstance(password, str):
        raise BadRequest("Invalid input for field 'password': it must be a string.")
    attempts = conf().getint("security_compliance", "lockout_failure_attempts")
    duration = conf().getint("security_compliance", "lockout_duration")
    now = utcnow()
    locked = (attempts > 0 and not user.options.get("ignore_lockout_failure_attempts")
              and user.failed_auth_count >= attempts)
    if locked and user.failed_auth_at and duration and user.failed_auth_at + dt.timedelta(seconds=duration) <= now:
        user.failed_auth_count = 0
        locked = False
    if locked:
        raise_unauthorized("The account is locked for user: %s." % user.id)
    cur = current_password(sess, user.id)
    if cur is None or not check_password(password, cur.password_hash):
        if attempts > 0:
            user.failed_auth_count = (user.failed_auth_count or 0) + 1
            user.failed_auth_at = now
            sess.commit()  # the failed attempt must count even though we answer 401
        raise_unauthorized()
    if not user.enabled:
        raise_unauthorized(f"User {user.id} is disabled.")
    dom = sess.get(m.Domain, user.domain_id)
    if dom is None or not dom.enabled:
        raise_unauthorized(f"Domain {user.domain_id} is disabled.")
    if (cur.expires_at is not None and cur.expires_at <= now
            and not user.options.get("ignore_password_expiry")):
        if (conf().getbool("security_compliance", "change_password_upon_first_use")
                and not cur.self_service and not user.options.get("ignore_change_password_upon_first_use")):
            raise_unauthorized(f"You are required to change your password on first use: user {user.id}.")
        raise_unauthorized(f"The password is expired and needs to be changed for user: {user.id}.")
    if user.failed_auth_count:
        user.failed_auth_count = 0
    if conf().getint("security_compliance", "disable_user_account_days_inactive") > 0:
        user.last_active_at = now


def password_expires_at(sess: Session, user: m.User):
    cur = current_password(sess, user.id)
    return cur.expires_at if cur is not None else None


# ---------------------------------------------------------------------------- groups
def get_group(sess: Session, group_id: str) -> m.Group:
    return _get(sess, m.Group, group_id, "group")


def create_group(sess: Session, data: dict, ctx=None) -> m.Group:
    name = check_name(data.get("name"), max_len=255)
    domain_id = check_str(data.get("domain_id"), "domain_id") \
        or (ctx.project_domain_id if ctx and ctx.project_domain_id else None) \
        or conf().get("identity", "default_domain_id")
    get_domain(sess, domain_id)
    if sess.execute(select(m.Group.id).where(m.Group.domain_id == domain_id, m.Group.name == name)).first():
        raise Conflict(f"Conflict occurred attempting to store group - Duplicate entry found with name {name}.")
    grp = m.Group(id=new_id(), name=name, domain_id=domain_id,
                  description=check_str(data.get("description"), "description"),
                  extra=_extra(data, {"name", "domain_id", "description", "id"}))
    sess.add(grp)
    sess.flush()
    emit("group.created", grp.id, ctx)
    return grp


def update_group(sess: Session, group_id: str, data: dict, ctx=None) -> m.Group:
    grp = get_group(sess, group_id)
    if "domain_id" in data and data["domain_id"] != grp.domain_id:
        raise BadRequest("Update of `domain_id` is not allowed.")
    if "name" in data and data["name"] != grp.name:
        name = check_name(data["name"])
        if sess.execute(select(m.Group.id).where(m.Group.domain_id == grp.domain_id, m.Group.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store group - Duplicate entry found with name {name}.")
        grp.name = name
    if "description" in data:
        grp.description = check_str(data["description"], "description")
    grp.extra = {**grp.extra, **_extra(data, {"name", "domain_id", "description", "id"})}
    emit("group.updated", grp.id, ctx)
    return grp


def delete_group(sess: Session, group_id: str, ctx=None) -> None:
    grp = get_group(sess, group_id)
    for uid in group_user_ids(sess, grp.id):
        revoke(sess, user_id=uid)
    sess.execute(delete(m.Assignment).where(m.Assignment.actor_id == grp.id))
    sess.execute(delete(m.Membership).where(m.Membership.group_id == grp.id))
    sess.delete(grp)
    sess.flush()
    emit("group.deleted", group_id, ctx)


def group_user_ids(sess: Session, group_id: str) -> list[str]:
    return list(sess.execute(select(m.Membership.user_id).where(m.Membership.group_id == group_id)).scalars())


def user_group_ids(sess: Session, user_id: str) -> list[str]:
    return list(sess.execute(select(m.Membership.group_id).where(m.Membership.user_id == user_id)).scalars())


def add_user_to_group(sess: Session, group_id: str, user_id: str, ctx=None) -> None:
    grp, user = get_group(sess, group_id), get_user(sess, user_id)
    if sess.get(m.Membership, (user.id, grp.id)) is None:
        sess.add(m.Membership(user_id=user.id, group_id=grp.id))
        emit("group.member_added", grp.id, ctx, user_id=user.id)


def remove_user_from_group(sess: Session, group_id: str, user_id: str, ctx=None) -> None:
    grp, user = get_group(sess, group_id), get_user(sess, user_id)
    row = sess.get(m.Membership, (user.id, grp.id))
    if row is None:
        raise NotFound(f"Could not find membership: user {user_id} in group {group_id}.")
    sess.delete(row)
    revoke(sess, user_id=user.id)
    emit("group.member_removed", grp.id, ctx, user_id=user.id)


# ---------------------------------------------------------------------------- roles
def get_role(sess: Session, role_id: str) -> m.Role:
    return _get(sess, m.Role, role_id, "role")


def role_by_name(sess: Session, name: str, domain_id: str | None = None) -> m.Role | None:
    return sess.execute(select(m.Role).where(m.Role.name == name,
                                             m.Role.domain_id == (domain_id or NULL_DOMAIN))).scalar()


def create_role(sess: Session, data: dict, ctx=None, role_id: str | None = None) -> m.Role:
    name = check_name(data.get("name"), max_len=255)
    domain_id = check_str(data.get("domain_id"), "domain_id")
    if domain_id:
        get_domain(sess, domain_id)
    if role_by_name(sess, name, domain_id) is not None:
        raise Conflict(f"Conflict occurred attempting to store role - Duplicate entry found with name {name}.")
    role = m.Role(id=role_id or new_id(), name=name, domain_id=domain_id or NULL_DOMAIN,
                  description=check_str(data.get("description"), "description"),
                  options=check_options(data.get("options", {}), {"immutable": bool}),
                  extra=_extra(data, {"name", "domain_id", "description", "options", "id"}))
    sess.add(role)
    sess.flush()
    emit("role.created", role.id, ctx)
    return role


def update_role(sess: Session, role_id: str, data: dict, ctx=None) -> m.Role:
    role = get_role(sess, role_id)
    _check_immutable(role, data)
    if "domain_id" in data and (data["domain_id"] or NULL_DOMAIN) != role.domain_id:
        raise BadRequest("Update of `domain_id` is not allowed.")
    if "name" in data and data["name"] != role.name:
        name = check_name(data["name"])
        if role_by_name(sess, name, None if role.domain_id == NULL_DOMAIN else role.domain_id) is not None:
            raise Conflict(f"Conflict occurred attempting to store role - Duplicate entry found with name {name}.")
        role.name = name
    if "description" in data:
        role.description = check_str(data["description"], "description")
    if "options" in data:
        role.options = {**role.options, **check_options(data["options"], {"immutable": bool})}
    role.extra = {**role.extra, **_extra(data, {"name", "domain_id", "description", "options", "id"})}
    emit("role.updated", role.id, ctx)
    return role


def delete_role(sess: Session, role_id: str, ctx=None) -> None:
    role = get_role(sess, role_id)
    _check_immutable(role, {})
    revoke(sess, role_id=role.id)
    sess.execute(delete(m.Assignment).where(m.Assignment.role_id == role.id))
    sess.execute(delete(m.ImpliedRole).where(or_(m.ImpliedRole.prior_role_id == role.id,
                                                 m.ImpliedRole.implied_role_id == role.id)))
    sess.execute(delete(m.TrustRole).where(m.TrustRole.role_id == role.id))
    sess.execute(delete(m.ApplicationCredentialRole).where(m.ApplicationCredentialRole.role_id == role.id))
    sess.delete(role)
    sess.flush()
    emit("role.deleted", role_id, ctx)


def create_implied_role(sess: Session, prior_id: str, implied_id: str, ctx=None) -> None:
    prior, implied = get_role(sess, prior_id), get_role(sess, implied_id)
    if implied.domain_id != NULL_DOMAIN and prior.domain_id == NULL_DOMAIN:
        raise Forbidden("A global role cannot imply a domain-specific role.")
    # refuse cycles
    if prior.id == implied.id or prior.id in implied_closure(sess, [implied.id]):
        raise Conflict("Implied role creation would create a cycle.")
    if sess.get(m.ImpliedRole, (prior.id, implied.id)) is None:
        sess.add(m.ImpliedRole(prior_role_id=prior.id, implied_role_id=implied.id))
        revoke(sess, role_id=prior.id)
    emit("implied_role.created", prior.id, ctx, implied_role_id=implied.id)


def get_implied_role(sess: Session, prior_id: str, implied_id: str) -> m.ImpliedRole:
    get_role(sess, prior_id)
    get_role(sess, implied_id)
    row = sess.get(m.ImpliedRole, (prior_id, implied_id))
    if row is None:
        raise NotFound(f"{prior_id} does not imply {implied_id}.")
    return row


def delete_implied_role(sess: Session, prior_id: str, implied_id: str, ctx=None) -> None:
    row = get_implied_role(sess, prior_id, implied_id)
    sess.delete(row)
    revoke(sess, role_id=prior_id)
    emit("implied_role.deleted", prior_id, ctx, implied_role_id=implied_id)


def implied_closure(sess: Session, role_ids: Iterable[str]) -> set[str]:
    """All roles reachable from `role_ids` through implications (not including the roots)."""
    rules = {}
    for prior, implied in sess.execute(select(m.ImpliedRole.prior_role_id, m.ImpliedRole.implied_role_id)):
        rules.setdefault(prior, []).append(implied)
    out, todo = set(), list(role_ids)
    while todo:
        rid = todo.pop()
        for nxt in rules.get(rid, ()):
            if nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return out


# ---------------------------------------------------------------------------- assignments
def grant(sess: Session, actor_type: str, actor_id: str, target_type: str, target_id: str,
          role_id: str, inherited: bool = False, ctx=None) -> None:
    _check_assignment_parts(sess, actor_type, actor_id, target_type, target_id, role_id)
    kind = ASSIGNMENT_TYPES[(actor_type, target_type)]
    if sess.get(m.Assignment, (kind, actor_id, target_id, role_id, inherited)) is None:
        sess.add(m.Assignment(type=kind, actor_id=actor_id, target_id=target_id, role_id=role_id,
                              inherited=inherited))
        emit("role_assignment.created", role_id, ctx, actor=actor_id, target=target_id)


def revoke_grant(sess: Session, actor_type: str, actor_id: str, target_type: str, target_id: str,
                 role_id: str, inherited: bool = False, ctx=None) -> None:
    _check_assignment_parts(sess, actor_type, actor_id, target_type, target_id, role_id)
    kind = ASSIGNMENT_TYPES[(actor_type, target_type)]
    row = sess.get(m.Assignment, (kind, actor_id, target_id, role_id, inherited))
    if row is None:
        raise NotFound(f"Could not find role assignment with role: {role_id}, "
                       f"{actor_type}: {actor_id}, {target_type}: {target_id}.")
    sess.delete(row)
    # Tokens scoped to that project die, as in Keystone; the user's other tokens live on
    # (roles are computed at validation, so they lose the role at once anyway).
    if target_type == "project" and not inherited:
        uids = [actor_id] if actor_type == "user" else group_user_ids(sess, actor_id)
        for uid in uids:
            revoke(sess, user_id=uid, project_id=target_id)
    emit("role_assignment.deleted", role_id, ctx, actor=actor_id, target=target_id)


def check_grant(sess: Session, actor_type, actor_id, target_type, target_id, role_id, inherited=False) -> None:
    _check_assignment_parts(sess, actor_type, actor_id, target_type, target_id, role_id)
    kind = ASSIGNMENT_TYPES[(actor_type, target_type)]
    if sess.get(m.Assignment, (kind, actor_id, target_id, role_id, inherited)) is None:
        raise NotFound(f"Could not find role assignment with role: {role_id}, "
                       f"{actor_type}: {actor_id}, {target_type}: {target_id}.")


def _check_assignment_parts(sess, actor_type, actor_id, target_type, target_id, role_id) -> None:
    role = get_role(sess, role_id)
    if actor_type == "user":
        get_user(sess, actor_id)
    else:
        get_group(sess, actor_id)
    if target_type == "project":
        proj = get_project(sess, target_id)
        if role.domain_id != NULL_DOMAIN and role.domain_id != proj.domain_id:
            raise Forbidden("A domain-specific role can only be granted within its domain.")
    elif target_type == "domain":
        get_domain(sess, target_id)
        if role.domain_id != NULL_DOMAIN and role.domain_id != target_id:
            raise Forbidden("A domain-specific role can only be granted within its domain.")


def list_grants(sess: Session, actor_type, actor_id, target_type, target_id, inherited=False) -> list[m.Role]:
    if actor_type == "user":
        get_user(sess, actor_id)
    else:
        get_group(sess, actor_id)
    if target_type == "project":
        get_project(sess, target_id)
    elif target_type == "domain":
        get_domain(sess, target_id)
    kind = ASSIGNMENT_TYPES[(actor_type, target_type)]
    ids = sess.execute(select(m.Assignment.role_id).where(
        m.Assignment.type == kind, m.Assignment.actor_id == actor_id, m.Assignment.target_id == target_id,
        m.Assignment.inherited == inherited)).scalars()
    return [r for r in (sess.get(m.Role, i) for i in ids) if r is not None]


def effective_role_ids(sess: Session, user_id: str, *, project_id: str | None = None,
                       domain_id: str | None = None, system: bool = False, expand_implied: bool = True,
                       include_domain_roles: bool = False) -> set[str]:
    """Roles a user holds on a target: direct, via groups, inherited, then implied."""
    actors = [user_id] + user_group_ids(sess, user_id)
    A = m.Assignment
    conds = []
    if project_id:
        proj = sess.get(m.Project, project_id)
        if proj is None:
            return set()
        conds.append((A.target_id == project_id) & (A.type.in_(("UserProject", "GroupProject")))
                     & (A.inherited.is_(False)))
        parents = [p.id for p in ancestors(sess, proj)]
        if parents:
            conds.append((A.target_id.in_(parents)) & (A.type.in_(("UserProject", "GroupProject")))
                         & (A.inherited.is_(True)))
        conds.append((A.target_id == proj.domain_id) & (A.type.in_(("UserDomain", "GroupDomain")))
                     & (A.inherited.is_(True)))
    elif domain_id:
        conds.append((A.target_id == domain_id) & (A.type.in_(("UserDomain", "GroupDomain")))
                     & (A.inherited.is_(False)))
    elif system:
        conds.append((A.target_id == "system") & (A.type.in_(("UserSystem", "GroupSystem"))))
    else:
        return set()
    ids = set(sess.execute(select(A.role_id).where(A.actor_id.in_(actors), or_(*conds))).scalars())
    if expand_implied and ids:
        ids |= implied_closure(sess, ids)
    if not include_domain_roles and ids:
        domain_roles = set(sess.execute(select(m.Role.id).where(m.Role.id.in_(ids),
                                                                m.Role.domain_id != NULL_DOMAIN)).scalars())
        ids -= domain_roles
    return ids


def roles_by_ids(sess: Session, ids: Iterable[str]) -> list[m.Role]:
    ids = list(ids)
    if not ids:
        return []
    return list(sess.execute(select(m.Role).where(m.Role.id.in_(ids)).order_by(m.Role.name)).scalars())


def user_projects(sess: Session, user_id: str) -> list[m.Project]:
    """Projects on which a user has any effective role (for /v3/auth/projects)."""
    actors = [user_id] + user_group_ids(sess, user_id)
    A = m.Assignment
    rows = sess.execute(select(A.type, A.target_id, A.inherited).where(A.actor_id.in_(actors))).all()
    pids = set()
    for kind, target, inherited in rows:
        if kind in ("UserProject", "GroupProject"):
            if inherited:  # only an inherited grant reaches the subprojects
                pids.update(p.id for p in subtree(sess, target))
            else:
                pids.add(target)
        elif kind in ("UserDomain", "GroupDomain") and inherited:
            pids.update(sess.execute(select(m.Project.id).where(m.Project.domain_id == target)).scalars())
    if not pids:
        return []
    return list(sess.execute(select(m.Project).where(m.Project.id.in_(pids)).order_by(m.Project.name)).scalars())


def user_domains(sess: Session, user_id: str) -> list[m.Domain]:
    actors = [user_id] + user_group_ids(sess, user_id)
    A = m.Assignment
    dids = set(sess.execute(select(A.target_id).where(A.actor_id.in_(actors),
                                                      A.type.in_(("UserDomain", "GroupDomain")),
                                                      A.inherited.is_(False))).scalars())
    if not dids:
        return []
    return list(sess.execute(select(m.Domain).where(m.Domain.id.in_(dids)).order_by(m.Domain.name)).scalars())


# ---------------------------------------------------------------------------- revocation
def revoke(sess: Session, **fields) -> None:
    """Record a revocation event: tokens matching all given fields, issued before now, die."""
    sess.add(m.RevocationEvent(issued_before=utcnow(), revoked_at=utcnow(), **fields))
    bump_generation(sess)
    sess.info["identity_bumped"] = True
