"""The Object Storage service's default policy: Swift's keystoneauth middleware, as rules.

Swift's keystoneauth grants an account `AUTH_<project_id>` to tokens scoped to that project
that carry an operator role (`admin`, `member`, and upstream's `SwiftOperator`), every
account to `ResellerAdmin`, and read-only access to the project's `reader` role. The
target's `project_id` is the project the account belongs to. Container and account ACLs
(`acl.py`) grant further access on top of these rules.
"""
DEFAULTS = {
    "swift_owner": "(role:admin or role:member or role:SwiftOperator) and project_id:%(project_id)s",
    "swift_reseller_admin": "role:ResellerAdmin",
    "swift_reader": "role:reader and project_id:%(project_id)s",
    # Owners: every write (PUT/POST/DELETE/COPY on an account, container or object), and the
    # privileged headers (ACLs, TempURL keys).
    "object_store:write": "rule:swift_owner or rule:swift_reseller_admin",
    # Every read (HEAD/GET, listings) by the account's own project.
    "object_store:read": "rule:swift_owner or rule:swift_reseller_admin or rule:swift_reader",
    # A reseller request (keystoneauth's `reseller_request`): may set account quotas.
    "object_store:reseller_request": "rule:swift_reseller_admin",
}
