"""The request auth context: who is calling, with which scope and roles.

Built once per request from the `X-Auth-Token` header by asking Identity's public
Python interface; every service's API reads it and hands `policy_creds()` to policy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class AuthContext:
    token_id: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    user_domain_id: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    domain_id: str | None = None
    domain_name: str | None = None
    system_scope: str | None = None
    roles: list[str] = field(default_factory=list)
    role_ids: list[str] = field(default_factory=list)
    is_admin_token: bool = False  # the bootstrap `admin_token` (guide's OS_SERVICE_TOKEN)
    trust_id: str | None = None
    trustor_id: str | None = None
    trustee_id: str | None = None
    application_credential_id: str | None = None
    methods: list[str] = field(default_factory=list)
    audit_ids: list[str] = field(default_factory=list)
    expires_at: Any = None
    issued_at: Any = None
    token_body: dict | None = None  # the validated token, for services that pass it on

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None or self.is_admin_token

    @property
    def is_admin(self) -> bool:
        return self.is_admin_token or "admin" in [r.lower() for r in self.roles]

    @property
    def is_reader(self) -> bool:
        return bool({"reader", "member", "admin"} & {r.lower() for r in self.roles})

    def policy_creds(self) -> dict:
        return {
            "user_id": self.user_id,
            "user_domain_id": self.user_domain_id,
            "project_id": self.project_id,
            "project_domain_id": self.project_domain_id,
            "domain_id": self.domain_id,
            "system_scope": self.system_scope,
            "roles": self.roles,
            "is_admin": self.is_admin_token,
            "trust_id": self.trust_id,
            "application_credential_id": self.application_credential_id,
        }


ANONYMOUS = AuthContext()
