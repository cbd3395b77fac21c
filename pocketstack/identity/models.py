"""Identity tables (prefix `identity_`).

Deliberately close to Keystone's own data model (domains, projects, users with a
password history, groups, roles with implications, one assignment table for every
actor/target pair, catalog, credentials, trusts, application credentials, revocation
events) so that its semantics carry over, but with our own simpler layout.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.common.db import Base, JSONText, UTCDateTime, new_id, utcnow

ID = String(64)


class Domain(Base):
    __tablename__ = "identity_domain"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    options: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    tags: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)


class Project(Base):
    __tablename__ = "identity_project"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_identity_project_name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    domain_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_domain.id"), nullable=False, index=True)
    parent_id: Mapped[str | None] = mapped_column(ID, ForeignKey("identity_project.id"), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    options: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    tags: Mapped[list] = mapped_column(JSONText, nullable=False, default=list)


class User(Base):
    __tablename__ = "identity_user"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_identity_user_name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    domain_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_domain.id"), nullable=False, index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    default_project_id: Mapped[str | None] = mapped_column(ID)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    options: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_active_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failed_auth_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed_auth_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Password(Base):
    """Every password a user has had; the newest is the current one (history for PCI-DSS)."""

    __tablename__ = "identity_password"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_user.id", ondelete="CASCADE"),
                                         nullable=False, index=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    self_service: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Group(Base):
    __tablename__ = "identity_group"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_identity_group_name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    domain_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_domain.id"), nullable=False, index=True)
    description: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)


class Membership(Base):
    __tablename__ = "identity_membership"
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_user.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_group.id", ondelete="CASCADE"),
                                          primary_key=True, index=True)


class Role(Base):
    __tablename__ = "identity_role"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_identity_role_name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    # '<<null>>' for global roles keeps the unique constraint working on every engine.
    domain_id: Mapped[str] = mapped_column(ID, nullable=False, default="<<null>>")
    description: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    options: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)


class ImpliedRole(Base):
    __tablename__ = "identity_implied_role"
    prior_role_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True)
    implied_role_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True)


class Assignment(Base):
    """A role of an actor (user/group) on a target (project/domain/system).

    type is one of UserProject, GroupProject, UserDomain, GroupDomain, UserSystem,
    GroupSystem; target_id is 'system' for the system target.
    """

    __tablename__ = "identity_assignment"
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    actor_id: Mapped[str] = mapped_column(ID, primary_key=True)
    target_id: Mapped[str] = mapped_column(ID, primary_key=True)
    role_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_role.id", ondelete="CASCADE"), primary_key=True)
    inherited: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=False)
    __table_args__ = (Index("ix_identity_assignment_target", "target_id"),
                      Index("ix_identity_assignment_actor", "actor_id"))


class Region(Base):
    __tablename__ = "identity_region"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    parent_region_id: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)


class Service(Base):
    __tablename__ = "identity_service"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)  # name, description, ...


class Endpoint(Base):
    __tablename__ = "identity_endpoint"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_service.id", ondelete="CASCADE"),
                                            nullable=False, index=True)
    interface: Mapped[str] = mapped_column(String(8), nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    region_id: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    legacy_endpoint_id: Mapped[str | None] = mapped_column(ID)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)


class EndpointGroup(Base):
    __tablename__ = "identity_endpoint_group"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    filters: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)


class ProjectEndpoint(Base):
    __tablename__ = "identity_project_endpoint"
    endpoint_id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ID, primary_key=True)


class ProjectEndpointGroup(Base):
    __tablename__ = "identity_project_endpoint_group"
    endpoint_group_id: Mapped[str] = mapped_column(ID, primary_key=True)
    project_id: Mapped[str] = mapped_column(ID, primary_key=True)


class Policy(Base):
    """The legacy v3 `/policies` blobs (stored, never interpreted), as Keystone keeps them."""

    __tablename__ = "identity_policy"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    blob: Mapped[str] = mapped_column(Text, nullable=False)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)


class Credential(Base):
    """Credentials (ec2, totp, cert...). The blob is encrypted at rest (Fernet)."""

    __tablename__ = "identity_credential"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    project_id: Mapped[str | None] = mapped_column(ID)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    encrypted_blob: Mapped[str] = mapped_column(Text, nullable=False)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Trust(Base):
    __tablename__ = "identity_trust"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    trustor_user_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    trustee_user_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    project_id: Mapped[str | None] = mapped_column(ID)
    impersonation: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    remaining_uses: Mapped[int | None] = mapped_column(Integer)
    redelegated_trust_id: Mapped[str | None] = mapped_column(ID)
    redelegation_count: Mapped[int | None] = mapped_column(Integer)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)


class TrustRole(Base):
    __tablename__ = "identity_trust_role"
    trust_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_trust.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[str] = mapped_column(ID, primary_key=True)


class ApplicationCredential(Base):
    __tablename__ = "identity_application_credential"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_identity_app_cred_name"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    project_id: Mapped[str | None] = mapped_column(ID)
    system: Mapped[str | None] = mapped_column(String(16))
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    unrestricted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ApplicationCredentialRole(Base):
    __tablename__ = "identity_application_credential_role"
    application_credential_id: Mapped[str] = mapped_column(
        ID, ForeignKey("identity_application_credential.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[str] = mapped_column(ID, primary_key=True)


class AccessRule(Base):
    __tablename__ = "identity_access_rule"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, nullable=False, index=True)
    service: Mapped[str] = mapped_column(String(64), nullable=False)
    path: Mapped[str] = mapped_column(String(128), nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False)


class ApplicationCredentialAccessRule(Base):
    __tablename__ = "identity_application_credential_access_rule"
    application_credential_id: Mapped[str] = mapped_column(
        ID, ForeignKey("identity_application_credential.id", ondelete="CASCADE"), primary_key=True)
    access_rule_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_access_rule.id"), primary_key=True)


class RevocationEvent(Base):
    """Tokens matching every non-null field and issued before `issued_before` are revoked."""

    __tablename__ = "identity_revocation_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(ID, index=True)
    project_id: Mapped[str | None] = mapped_column(ID, index=True)
    domain_id: Mapped[str | None] = mapped_column(ID)
    role_id: Mapped[str | None] = mapped_column(ID)
    trust_id: Mapped[str | None] = mapped_column(ID)
    application_credential_id: Mapped[str | None] = mapped_column(ID)
    audit_id: Mapped[str | None] = mapped_column(String(32), index=True)
    audit_chain_id: Mapped[str | None] = mapped_column(String(32), index=True)
    issued_before: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    revoked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)


class RegisteredLimit(Base):
    __tablename__ = "identity_registered_limit"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    service_id: Mapped[str] = mapped_column(ID, nullable=False)
    region_id: Mapped[str | None] = mapped_column(String(255))
    resource_name: Mapped[str] = mapped_column(String(255), nullable=False)
    default_limit: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class Limit(Base):
    __tablename__ = "identity_limit"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    project_id: Mapped[str | None] = mapped_column(ID)
    domain_id: Mapped[str | None] = mapped_column(ID)
    service_id: Mapped[str] = mapped_column(ID, nullable=False)
    region_id: Mapped[str | None] = mapped_column(String(255))
    resource_name: Mapped[str] = mapped_column(String(255), nullable=False)
    resource_limit: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class DomainConfig(Base):
    """One domain-specific configuration option (`/v3/domains/{id}/config`), as Keystone's
    whitelisted and sensitive config tables in one. `value` is the option's JSON value;
    for a sensitive option (the LDAP bind password) it is the Fernet token of that JSON,
    made with the credential keys, and it is never returned by the API."""

    __tablename__ = "identity_domain_config"
    domain_id: Mapped[str] = mapped_column(ID, ForeignKey("identity_domain.id", ondelete="CASCADE"),
                                           primary_key=True)
    group_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    option_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value = mapped_column(JSONText)
    sensitive: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class OAuthConsumer(Base):
    """An OS-OAUTH1 consumer. Its secret is needed in clear to check OAuth1 signatures
    (HMAC), so it is encrypted at rest with the credential keys rather than hashed."""

    __tablename__ = "identity_oauth_consumer"
    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    description: Mapped[str | None] = mapped_column(Text)
    encrypted_secret: Mapped[str] = mapped_column(Text, nullable=False)
    extra: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
