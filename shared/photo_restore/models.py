"""SQLAlchemy models of the existing app's tables (photos, jobs, restore_attempts): match them;
and of the one small table this service owns (provider pacing), kept apart in its own metadata."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, String, Table, Uuid, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """The existing app's tables."""


class ServiceBase(DeclarativeBase):
    """This service's own table: created by `photo-restore db create` (README)."""


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = (
        Index("ix_photos_owner_id", "owner_id"),
        Index("ix_photos_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[str] = mapped_column(String, nullable=False)
    original_key: Mapped[str] = mapped_column(String, nullable=False)
    processed_key: Mapped[str | None] = mapped_column(String, nullable=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String, nullable=True)
    # Changed only through photo_restore.status, which owns the transition table.
    status: Mapped[str] = mapped_column(String, nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mime_type: Mapped[str] = mapped_column(String, nullable=False)
    checksum_sha256: Mapped[str] = mapped_column(String, nullable=False)
    metadata_json: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class Job(Base):
    """The existing app's unit of work; for photo restorations `job.id == photo.id`."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_email", "email"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    # Tokens of phone-only users carry no email: the column stays nullable.
    email: Mapped[str | None] = mapped_column(String, nullable=True)
    selected_restore_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    latest_animation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    thumbnail_s3_key: Mapped[str | None] = mapped_column(String, nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class RestoreAttempt(Base):
    __tablename__ = "restore_attempts"
    __table_args__ = (Index("ix_restore_attempts_job_id", "job_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("jobs.id"), nullable=False)
    # 'pending' until the worker stores the restored image.
    s3_key: Mapped[str] = mapped_column(String, nullable=False)
    model: Mapped[str] = mapped_column(String, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class ProviderPacing(ServiceBase):
    """One row per provider model: when its next call may start, shared by every worker so
    that together they stay under the account's images-per-minute limit."""

    __tablename__ = "photo_restore_provider_pacing"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    next_free_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


# Core tables for SQL expressions (the conditional UPDATEs are Core, not ORM unit-of-work).
photos = cast(Table, Photo.__table__)
jobs = cast(Table, Job.__table__)
restore_attempts = cast(Table, RestoreAttempt.__table__)
provider_pacing = cast(Table, ProviderPacing.__table__)
