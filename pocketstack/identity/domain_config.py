"""Domain-specific configuration (`/v3/domains/{domain_id}/config`), with Keystone's rules.

Only the `identity` and `ldap` groups may be set, and only the options Keystone lists
for them; anything else is refused with 403, as upstream (`InvalidDomainConfig`). The
LDAP bind `password` is sensitive: it can be set, updated and deleted, but it is never
returned, and it is stored encrypted with the credential keys. A PUT replaces the whole
configuration (201 when the domain had none, 200 otherwise); a PATCH merges; a PATCH of
one group or option only changes what already exists (404 otherwise).

pocketstack keeps every user in its SQL backend: the configuration is stored and served
for clients and tools that manage it, but no LDAP backend reads it.
"""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pocketstack.common.errors import BadRequest, Forbidden, NotFound
from pocketstack.identity import core
from pocketstack.identity import models as m

# The options a domain may override, and their defaults (Keystone's [identity]/[ldap]).
DEFAULTS: dict[str, dict[str, Any]] = {
    "identity": {"driver": "sql", "list_limit": None},
    "ldap": {
        "url": "ldap://localhost", "user": None, "suffix": "cn=example,cn=com", "query_scope": "one",
        "page_size": 0, "alias_dereferencing": "default", "debug_level": None, "chase_referrals": None,
        "user_tree_dn": None, "user_filter": None, "user_objectclass": "inetOrgPerson",
        "user_id_attribute": "cn", "user_name_attribute": "sn", "user_mail_attribute": "mail",
        "user_description_attribute": "description", "user_pass_attribute": "userPassword",
        "user_enabled_attribute": "enabled", "user_enabled_invert": False, "user_enabled_mask": 0,
        "user_enabled_default": "True", "user_attribute_ignore": ["default_project_id"],
        "user_default_project_id_attribute": None, "user_enabled_emulation": False,
        "user_enabled_emulation_dn": None, "user_enabled_emulation_use_group_config": False,
        "user_additional_attribute_mapping": [], "group_tree_dn": None, "group_filter": None,
        "group_objectclass": "groupOfNames", "group_id_attribute": "cn", "group_name_attribute": "ou",
        "group_members_are_ids": False, "group_member_attribute": "member",
        "group_desc_attribute": "description", "group_attribute_ignore": [],
        "group_additional_attribute_mapping": [], "tls_cacertfile": None, "tls_cacertdir": None,
        "use_tls": False, "tls_req_cert": "demand", "use_pool": True, "pool_size": 10,
        "pool_retry_max": 3, "pool_retry_delay": 0.1, "pool_connection_timeout": -1,
        "pool_connection_lifetime": 600, "use_auth_pool": True, "auth_pool_size": 100,
        "auth_pool_connection_lifetime": 60,
    },
}
SENSITIVE: dict[str, set[str]] = {"identity": set(), "ldap": {"password"}}
SECURITY_COMPLIANCE = "security_compliance"
READABLE_SECURITY_OPTIONS = ("password_regex", "password_regex_description")


def _invalid(reason: str) -> Forbidden:
    return Forbidden(f"Invalid domain specific configuration: {reason}.")


def _not_found(domain_id: str, group: str | None, option: str | None) -> NotFound:
    what = (f"option {option} in group {group}" if option else f"group {group}" if group else "any options")
    return NotFound(f"Could not find {what} in domain configuration for domain {domain_id}.")


def check_group_and_option(group: str | None, option: str | None) -> None:
    if group and group not in DEFAULTS:
        raise _invalid(f"Group {group} is not supported for domain specific configurations")
    if option and option not in DEFAULTS[group] and option not in SENSITIVE[group]:
        raise _invalid(f"Option {option} in group {group} is not supported for domain specific configurations")


def _check_config(config: Any) -> dict:
    if config is None or config == {}:
        raise _invalid("No options specified")
    if not isinstance(config, dict):
        raise BadRequest("Invalid input for field 'config': it must be an object of groups.")
    for group, options in config.items():
        if not options or not isinstance(options, dict):
            raise _invalid(f"The value of group {group} specified in the config should be a dictionary of options")
        for option in options:
            check_group_and_option(group, option)
    return config


def _is_sensitive(group: str, option: str) -> bool:
    return option in SENSITIVE.get(group, ())


def _encrypt(value: Any) -> str:
    from pocketstack.identity.delegation import credential_keys

    return credential_keys().encrypt(json.dumps(value).encode("utf-8"))


def _rows(sess: Session, domain_id: str, group: str | None = None, option: str | None = None,
          sensitive: bool | None = None) -> list[m.DomainConfig]:
    q = select(m.DomainConfig).where(m.DomainConfig.domain_id == domain_id)
    if group:
        q = q.where(m.DomainConfig.group_name == group)
    if option:
        q = q.where(m.DomainConfig.option_name == option)
    if sensitive is not None:
        q = q.where(m.DomainConfig.sensitive.is_(sensitive))
    return list(sess.execute(q.order_by(m.DomainConfig.group_name, m.DomainConfig.option_name)).scalars())


def _render(rows: list[m.DomainConfig], option: str | None = None) -> dict:
    """Groups of options, or `{option: value}` when one option was asked for. Never secrets."""
    rows = [r for r in rows if not r.sensitive]
    if option:
        return {r.option_name: r.value for r in rows if r.option_name == option}
    out: dict[str, dict] = {}
    for r in rows:
        out.setdefault(r.group_name, {})[r.option_name] = r.value
    return out


def _store(sess: Session, domain_id: str, config: dict) -> None:
    """Insert or update every option of `config` (groups of options)."""
    for group, options in config.items():
        for option, value in options.items():
            sensitive = _is_sensitive(group, option)
            stored = _encrypt(value) if sensitive else value
            row = sess.get(m.DomainConfig, (domain_id, group, option))
            if row is None:
                sess.add(m.DomainConfig(domain_id=domain_id, group_name=group, option_name=option,
                                        value=stored, sensitive=sensitive))
            else:
                row.value, row.sensitive = stored, sensitive
    sess.flush()


# ---------------------------------------------------------------------------- operations
def get_config(sess: Session, domain_id: str, group: str | None = None, option: str | None = None) -> dict:
    check_group_and_option(group, option)
    core.get_domain(sess, domain_id)
    out = _render(_rows(sess, domain_id, group, option, sensitive=False), option)
    if not out:
        raise _not_found(domain_id, group, option)
    return out


def create_config(sess: Session, domain_id: str, config: Any) -> tuple[dict, bool]:
    """Replace the domain's whole configuration. Returns it and whether it is new."""
    core.get_domain(sess, domain_id)
    config = _check_config(config)
    existed = bool(_rows(sess, domain_id))
    sess.execute(delete(m.DomainConfig).where(m.DomainConfig.domain_id == domain_id))
    _store(sess, domain_id, config)
    return _render(_rows(sess, domain_id)), not existed


def update_config(sess: Session, domain_id: str, config: Any, group: str | None = None,
                  option: str | None = None) -> dict:
    """Merge `config` into the domain's; with a group (or option) in the URL only that
    group (option) may be in the body, and it must already be set."""
    core.get_domain(sess, domain_id)
    check_group_and_option(group, option)
    if option:
        if config is not None and not isinstance(config, dict):
            raise BadRequest("Invalid input for field 'config': it must be an object of options.")
        if not config:
            raise _invalid("No options specified")
        config = {group: config}
    config = _check_config(config)
    if group:
        if len(config) != 1 or (option and len(config.get(group, {})) != 1):
            what = (f"option {option} in group {group}, so that, and only that, option" if option
                    else f"group {group}, so that, and only that, group")
            raise _invalid(f"Trying to update {what} must be specified in the config")
        if group not in config:
            raise _invalid(f"request to update group {group}, but config provided contains group "
                           f"{next(iter(config))} instead")
        if option and option not in config[group]:
            raise _invalid(f"Trying to update option {option} in group {group}, but config provided "
                           f"contains option {next(iter(config[group]))} instead")
        if not _rows(sess, domain_id, group, option):
            raise _not_found(domain_id, group, option)
    _store(sess, domain_id, config)
    return _render(_rows(sess, domain_id))


def delete_config(sess: Session, domain_id: str, group: str | None = None, option: str | None = None) -> None:
    check_group_and_option(group, option)
    core.get_domain(sess, domain_id)
    rows = _rows(sess, domain_id, group, option)
    if group and not rows:
        raise _not_found(domain_id, group, option)
    for row in rows:
        sess.delete(row)
    sess.flush()


def get_default(group: str | None = None, option: str | None = None) -> dict:
    check_group_and_option(group, option)
    if option:
        if option not in DEFAULTS[group]:
            raise _invalid(f"Reading the default for option {option} in group {group} is not supported")
        return {option: DEFAULTS[group][option]}
    groups = [group] if group else list(DEFAULTS)
    return {g: dict(DEFAULTS[g]) for g in groups}


def get_security_compliance(sess: Session, domain_id: str, option: str | None = None) -> dict:
    """The default domain's password rules, readable by anyone (Keystone's exception)."""
    core.get_domain(sess, domain_id)
    if domain_id != core.conf().get("identity", "default_domain_id"):
        raise _invalid("Reading security compliance information for any domain other than the "
                       "default domain is not allowed or supported")
    if option and option not in READABLE_SECURITY_OPTIONS:
        raise _invalid("Reading security compliance values other than password_regex and "
                       "password_regex_description is not allowed")
    values = {o: core.conf().get(SECURITY_COMPLIANCE, o) or None for o in READABLE_SECURITY_OPTIONS}
    if option:
        return {option: values[option]}
    return {SECURITY_COMPLIANCE: values}
