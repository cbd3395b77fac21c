"""Identity's default policy, in upstream Keystone's personas.

`admin` (on any project, or system-scoped) administers the cloud, as Keystone's
`rule:admin_required` does by default; `reader` on the system or a domain may read
what that scope covers; every user manages their own password, application
credentials, credentials and trusts. Override any rule in `<state_dir>/policy.yaml`.
"""
ADMIN = "rule:admin_required"
SYSTEM_READER = "(role:reader and system_scope:all)"
DOMAIN_READER = "(role:reader and domain_id:%(target.domain_id)s)"
OWNER = "user_id:%(target.user_id)s"
ADMIN_OR_SYSTEM_READER = f"{ADMIN} or {SYSTEM_READER}"
ADMIN_OR_READER_OF_DOMAIN = f"{ADMIN} or {SYSTEM_READER} or {DOMAIN_READER}"
ADMIN_OR_OWNER = f"{ADMIN} or {OWNER}"
ADMIN_OR_READER_OR_OWNER = f"{ADMIN} or {SYSTEM_READER} or {OWNER}"

DEFAULTS = {
    "admin_required": "role:admin or is_admin:1",
    "service_role": "role:service",
    "service_or_admin": "rule:admin_required or rule:service_role",
    "owner": "user_id:%(user_id)s",
    "admin_or_owner": "rule:admin_required or rule:owner",
    "default": "rule:admin_required",
    # tokens
    "identity:validate_token": f"rule:service_or_admin or {SYSTEM_READER} or user_id:%(target.token.user_id)s",
    "identity:check_token": f"rule:service_or_admin or {SYSTEM_READER} or user_id:%(target.token.user_id)s",
    "identity:revoke_token": "rule:admin_required or user_id:%(target.token.user_id)s",
    # domains
    "identity:get_domain": f"{ADMIN_OR_SYSTEM_READER} or token.project.domain.id:%(target.domain.id)s"
                           f" or domain_id:%(target.domain.id)s",
    "identity:list_domains": ADMIN_OR_SYSTEM_READER,
    "identity:create_domain": ADMIN,
    "identity:update_domain": ADMIN,
    "identity:delete_domain": ADMIN,
    # projects
    "identity:get_project": f"{ADMIN_OR_READER_OF_DOMAIN} or project_id:%(target.project.id)s",
    "identity:list_projects": ADMIN_OR_READER_OF_DOMAIN,
    "identity:list_user_projects": ADMIN_OR_READER_OR_OWNER,
    "identity:create_project": ADMIN,
    "identity:update_project": ADMIN,
    "identity:delete_project": ADMIN,
    "identity:project_tags": f"{ADMIN_OR_READER_OF_DOMAIN} or project_id:%(target.project.id)s",
    "identity:update_project_tags": ADMIN,
    # users
    "identity:get_user": f"{ADMIN_OR_READER_OF_DOMAIN} or user_id:%(target.user.id)s",
    "identity:list_users": ADMIN_OR_READER_OF_DOMAIN,
    "identity:create_user": ADMIN,
    "identity:update_user": ADMIN,
    "identity:delete_user": ADMIN,
    "identity:change_password": "user_id:%(target.user.id)s",
    # groups
    "identity:get_group": ADMIN_OR_READER_OF_DOMAIN,
    "identity:list_groups": ADMIN_OR_READER_OF_DOMAIN,
    "identity:list_groups_for_user": f"{ADMIN_OR_READER_OF_DOMAIN} or user_id:%(target.user.id)s",
    "identity:create_group": ADMIN,
    "identity:update_group": ADMIN,
    "identity:delete_group": ADMIN,
    "identity:list_users_in_group": ADMIN_OR_READER_OF_DOMAIN,
    "identity:add_user_to_group": ADMIN,
    "identity:remove_user_from_group": ADMIN,
    "identity:check_user_in_group": ADMIN_OR_READER_OF_DOMAIN,
    # roles and assignments
    "identity:get_role": ADMIN_OR_SYSTEM_READER + " or role:reader",
    "identity:list_roles": ADMIN_OR_SYSTEM_READER + " or role:reader",
    "identity:create_role": ADMIN,
    "identity:update_role": ADMIN,
    "identity:delete_role": ADMIN,
    "identity:get_domain_role": ADMIN_OR_SYSTEM_READER,
    "identity:list_domain_roles": ADMIN_OR_SYSTEM_READER,
    "identity:create_domain_role": ADMIN,
    "identity:update_domain_role": ADMIN,
    "identity:delete_domain_role": ADMIN,
    "identity:get_implied_role": ADMIN_OR_SYSTEM_READER,
    "identity:list_implied_roles": ADMIN_OR_SYSTEM_READER,
    "identity:create_implied_role": ADMIN,
    "identity:delete_implied_role": ADMIN,
    "identity:list_role_inference_rules": ADMIN_OR_SYSTEM_READER,
    "identity:check_implied_role": ADMIN_OR_SYSTEM_READER,
    "identity:check_grant": ADMIN_OR_READER_OF_DOMAIN,
    "identity:list_grants": ADMIN_OR_READER_OF_DOMAIN,
    "identity:create_grant": ADMIN,
    "identity:revoke_grant": ADMIN,
    "identity:list_system_grants_for_user": ADMIN_OR_SYSTEM_READER,
    "identity:check_system_grant_for_user": ADMIN_OR_SYSTEM_READER,
    "identity:create_system_grant_for_user": ADMIN,
    "identity:revoke_system_grant_for_user": ADMIN,
    "identity:list_system_grants_for_group": ADMIN_OR_SYSTEM_READER,
    "identity:check_system_grant_for_group": ADMIN_OR_SYSTEM_READER,
    "identity:create_system_grant_for_group": ADMIN,
    "identity:revoke_system_grant_for_group": ADMIN,
    "identity:list_role_assignments": ADMIN_OR_READER_OF_DOMAIN,
    "identity:list_role_assignments_for_tree": ADMIN_OR_READER_OF_DOMAIN,
    # catalog
    "identity:get_region": "@",
    "identity:list_regions": "@",
    "identity:create_region": ADMIN,
    "identity:update_region": ADMIN,
    "identity:delete_region": ADMIN,
    "identity:get_service": ADMIN_OR_SYSTEM_READER,
    "identity:list_services": ADMIN_OR_SYSTEM_READER,
    "identity:create_service": ADMIN,
    "identity:update_service": ADMIN,
    "identity:delete_service": ADMIN,
    "identity:get_endpoint": ADMIN_OR_SYSTEM_READER,
    "identity:list_endpoints": ADMIN_OR_SYSTEM_READER,
    "identity:create_endpoint": ADMIN,
    "identity:update_endpoint": ADMIN,
    "identity:delete_endpoint": ADMIN,
    "identity:endpoint_groups": ADMIN_OR_SYSTEM_READER,
    "identity:manage_endpoint_groups": ADMIN,
    "identity:project_endpoints": ADMIN_OR_SYSTEM_READER,
    "identity:manage_project_endpoints": ADMIN,
    "identity:policies": ADMIN_OR_SYSTEM_READER,
    "identity:manage_policies": ADMIN,
    "identity:limits": "@",
    "identity:manage_limits": ADMIN,
    # self-service
    "identity:get_credential": ADMIN_OR_READER_OR_OWNER,
    "identity:list_credentials": ADMIN_OR_READER_OR_OWNER,
    "identity:create_credential": ADMIN_OR_OWNER,
    "identity:update_credential": ADMIN_OR_OWNER,
    "identity:delete_credential": ADMIN_OR_OWNER,
    "identity:ec2_get_credential": ADMIN_OR_READER_OR_OWNER,
    "identity:ec2_list_credentials": ADMIN_OR_READER_OR_OWNER,
    "identity:ec2_create_credential": ADMIN_OR_OWNER,
    "identity:ec2_delete_credential": ADMIN_OR_OWNER,
    "identity:get_application_credential": ADMIN_OR_READER_OR_OWNER,
    "identity:list_application_credentials": ADMIN_OR_READER_OR_OWNER,
    "identity:create_application_credential": OWNER,
    "identity:delete_application_credential": ADMIN_OR_OWNER,
    "identity:get_access_rule": ADMIN_OR_READER_OR_OWNER,
    "identity:list_access_rules": ADMIN_OR_READER_OR_OWNER,
    "identity:delete_access_rule": ADMIN_OR_OWNER,
    "identity:create_trust": "user_id:%(trust.trustor_user_id)s",
    "identity:list_trusts": ADMIN_OR_SYSTEM_READER,
    "identity:list_trusts_for_trustor": f"{ADMIN_OR_SYSTEM_READER} or user_id:%(target.trust.trustor_user_id)s",
    "identity:list_trusts_for_trustee": f"{ADMIN_OR_SYSTEM_READER} or user_id:%(target.trust.trustee_user_id)s",
    "identity:get_trust": f"{ADMIN_OR_SYSTEM_READER} or user_id:%(target.trust.trustor_user_id)s"
                          f" or user_id:%(target.trust.trustee_user_id)s",
    "identity:delete_trust": f"{ADMIN} or user_id:%(target.trust.trustor_user_id)s",
    "identity:list_roles_for_trust": f"{ADMIN_OR_SYSTEM_READER} or user_id:%(target.trust.trustor_user_id)s"
                                     f" or user_id:%(target.trust.trustee_user_id)s",
    "identity:get_role_for_trust": f"{ADMIN_OR_SYSTEM_READER} or user_id:%(target.trust.trustor_user_id)s"
                                   f" or user_id:%(target.trust.trustee_user_id)s",
}

# domain configuration and OS-OAUTH1 consumers (api/extras.py)
DEFAULTS.update({
    "identity:get_domain_config": ADMIN_OR_SYSTEM_READER,
    "identity:get_domain_config_default": ADMIN_OR_SYSTEM_READER,
    "identity:create_domain_config": ADMIN,
    "identity:update_domain_config": ADMIN,
    "identity:delete_domain_config": ADMIN,
    # Anyone may read the default domain's password rules, so clients can explain them.
    "identity:get_security_compliance_domain_config": "@",
    "identity:get_consumer": ADMIN_OR_SYSTEM_READER,
    "identity:list_consumers": ADMIN_OR_SYSTEM_READER,
    "identity:create_consumer": ADMIN,
    "identity:update_consumer": ADMIN,
    "identity:delete_consumer": ADMIN,
})
