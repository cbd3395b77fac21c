"""Block Storage tables (prefix `volume_`).

Close to Cinder's data model without its soft-deleted rows: a deleted volume, snapshot,
type or backup is gone (events and the journal keep the history). Metadata, admin
metadata and image metadata live in their own tables so lists filter on them in SQL.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.common.db import Base, JSONText, UTCDateTime, utcnow


class VolumeType(Base):
    __tablename__ = "volume_type"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    qos_specs_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class VolumeTypeExtraSpec(Base):
    __tablename__ = "volume_type_extra_spec"
    type_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_type.id", ondelete="CASCADE"),
                                         primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class VolumeTypeAccess(Base):
    __tablename__ = "volume_type_access"
    type_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_type.id", ondelete="CASCADE"),
                                         primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)


class QosSpecs(Base):
    __tablename__ = "volume_qos_specs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    consumer: Mapped[str] = mapped_column(String(32), nullable=False, default="back-end")
    specs: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Volume(Base):
    __tablename__ = "volume_volume"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    attach_status: Mapped[str] = mapped_column(String(32), nullable=False, default="detached")
    migration_status: Mapped[str | None] = mapped_column(String(32))
    availability_zone: Mapped[str] = mapped_column(String(255), nullable=False, default="nova")
    host: Mapped[str | None] = mapped_column(String(255))
    volume_type_id: Mapped[str | None] = mapped_column(String(36), index=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(36))
    source_volid: Mapped[str | None] = mapped_column(String(36))
    image_id: Mapped[str | None] = mapped_column(String(36))
    bootable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    multiattach: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    encrypted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    provider_location: Mapped[str | None] = mapped_column(String(255))
    consumes_quota: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    group_id: Mapped[str | None] = mapped_column(String(36))
    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)


class VolumeMetadata(Base):
    __tablename__ = "volume_metadata"
    volume_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_volume.id", ondelete="CASCADE"),
                                           primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class VolumeAdminMetadata(Base):
    """`readonly`, `attached_mode`, ... (admin metadata is never user-writable)."""

    __tablename__ = "volume_admin_metadata"
    volume_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_volume.id", ondelete="CASCADE"),
                                           primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class VolumeImageMetadata(Base):
    """`volume_image_metadata`: the image's properties carried by a volume made from it."""

    __tablename__ = "volume_image_metadata"
    volume_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_volume.id", ondelete="CASCADE"),
                                           primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class Attachment(Base):
    """One attachment of a volume to an instance (several when multiattach)."""

    __tablename__ = "volume_attachment"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_volume.id", ondelete="CASCADE"),
                                           nullable=False, index=True)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), index=True)
    attached_host: Mapped[str | None] = mapped_column(String(255))
    mountpoint: Mapped[str | None] = mapped_column(String(255))
    attach_mode: Mapped[str] = mapped_column(String(8), nullable=False, default="rw")
    attach_status: Mapped[str] = mapped_column(String(32), nullable=False, default="reserved")
    connector: Mapped[dict | None] = mapped_column(JSONText)
    connection_info: Mapped[dict | None] = mapped_column(JSONText)
    attach_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    detach_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Snapshot(Base):
    __tablename__ = "volume_snapshot"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    progress: Mapped[str] = mapped_column(String(8), nullable=False, default="0%")
    volume_type_id: Mapped[str | None] = mapped_column(String(36))
    provider_location: Mapped[str | None] = mapped_column(String(255))
    consumes_quota: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36), index=True)  # migration 0002
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SnapshotMetadata(Base):
    __tablename__ = "volume_snapshot_metadata"
    snapshot_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_snapshot.id", ondelete="CASCADE"),
                                             primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class Quota(Base):
    """Per-project limits (`hard_limit` -1 = unlimited); resources are Cinder's names
    (`volumes`, `gigabytes`, `snapshots`, `backups`, `backup_gigabytes`, `groups`,
    `per_volume_gigabytes`, and `volumes_<type>` etc. per volume type)."""

    __tablename__ = "volume_quota"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(255), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class QuotaLock(Base):
    """One row per project, updated first in every quota-checked write (see quotas.py)."""

    __tablename__ = "volume_quota_lock"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class QuotaClass(Base):
    __tablename__ = "volume_quota_class"
    class_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(255), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class Backup(Base):
    __tablename__ = "volume_backup"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(36))
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    object_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    fail_reason: Mapped[str | None] = mapped_column(String(255))
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    container: Mapped[str | None] = mapped_column(String(255))
    parent_id: Mapped[str | None] = mapped_column(String(36))
    is_incremental: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    data_timestamp: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    service_metadata: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONText, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Transfer(Base):
    __tablename__ = "volume_transfer"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    volume_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str | None] = mapped_column(String(255))
    salt: Mapped[str] = mapped_column(String(255), nullable=False)
    crypt_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    no_snapshots: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    source_project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Message(Base):
    """User messages (3.3+): why an asynchronous request failed."""

    __tablename__ = "volume_message"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    request_id: Mapped[str | None] = mapped_column(String(255))
    resource_type: Mapped[str] = mapped_column(String(255), nullable=False)
    resource_uuid: Mapped[str | None] = mapped_column(String(36))
    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    message_level: Mapped[str] = mapped_column(String(255), nullable=False, default="ERROR")
    user_message: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Service(Base):
    """cinder-scheduler and one cinder-volume per backend (`host@backend`), with heartbeats."""

    __tablename__ = "volume_service"
    __table_args__ = (UniqueConstraint("host", "binary", name="uq_volume_service_host_binary"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    binary: Mapped[str] = mapped_column(String(255), nullable=False)
    zone: Mapped[str] = mapped_column(String(255), nullable=False, default="nova")
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    frozen: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    capabilities: Mapped[dict] = mapped_column(JSONText, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)




# ---------------------------------------------------------------------------- groups (migration 0002)
class GroupType(Base):
    __tablename__ = "volume_group_type"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class GroupTypeSpec(Base):
    __tablename__ = "volume_group_type_spec"
    group_type_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_group_type.id", ondelete="CASCADE"),
                                               primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class Group(Base):
    """A generic volume group (3.13+): volumes of the group's volume types snapshotted together."""

    __tablename__ = "volume_group"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    availability_zone: Mapped[str] = mapped_column(String(255), nullable=False)
    group_type_id: Mapped[str] = mapped_column(String(36), nullable=False)
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36))
    source_group_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class GroupVolumeType(Base):
    __tablename__ = "volume_group_volume_type"
    group_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_group.id", ondelete="CASCADE"),
                                          primary_key=True)
    volume_type_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class GroupSnapshot(Base):
    __tablename__ = "volume_group_snapshot"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    group_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    group_type_id: Mapped[str] = mapped_column(String(36), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class VolumeTypeEncryption(Base):
    """A volume type's encryption spec (`/types/{id}/encryption`; migration 0002)."""

    __tablename__ = "volume_type_encryption"
    volume_type_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_type.id", ondelete="CASCADE"),
                                                primary_key=True)
    encryption_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    provider: Mapped[str] = mapped_column(String(255), nullable=False)
    cipher: Mapped[str | None] = mapped_column(String(255))
    key_size: Mapped[int | None] = mapped_column(Integer)
    control_location: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ProjectDefaultType(Base):
    """A project's own default volume type (3.62 `/default-types`; migration 0002)."""

    __tablename__ = "volume_project_default_type"
    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    volume_type_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_type.id"), nullable=False)
