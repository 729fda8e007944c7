"""The existing app's tables (photos, jobs, restore_attempts), which we match, and the small
tables this service owns (provider pacing, uploads, and what it aggregates so that no hot path
reads the existing tables beyond their indexes: issue 17), kept apart in their own metadata.

SQLAlchemy Core tables, not ORM classes: every statement here is a Core expression (the
conditional UPDATEs above all), and the ORM's import alone cost the API's cold start ~0.1 s.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Uuid,
    func,
    text,
    true,
)

app_metadata = MetaData()  # the existing app's tables
service_metadata = MetaData()  # this service's own: created by `photo-restore db create` (README)


def _created_at() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


photos = Table(
    "photos",
    app_metadata,
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("owner_id", String, nullable=False),
    Column("original_key", String, nullable=False),
    Column("processed_key", String, nullable=True),
    Column("thumbnail_key", String, nullable=True),
    # Changed only through photo_restore.status, which owns the transition table.
    Column("status", String, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("mime_type", String, nullable=False),
    Column("checksum_sha256", String, nullable=False),
    Column("metadata_json", JSON, nullable=False, default=dict),
    _created_at(),
    Column(
        "updated_at",
        DateTime(timezone=True),
        nullable=False,
        server_default=func.now(),
        onupdate=func.now(),
    ),
    Index("ix_photos_owner_id", "owner_id"),
    Index("ix_photos_status", "status"),
)

# The existing app's unit of work; for photo restorations `job.id == photo.id`.
jobs = Table(
    "jobs",
    app_metadata,
    Column("id", Uuid, primary_key=True),
    # Tokens of phone-only users carry no email: the column stays nullable.
    Column("email", String, nullable=True),
    Column("selected_restore_id", Uuid, nullable=True),
    Column("latest_animation_id", Uuid, nullable=True),
    Column("thumbnail_s3_key", String, nullable=True),
    _created_at(),
    Index("ix_jobs_email", "email"),
)

restore_attempts = Table(
    "restore_attempts",
    app_metadata,
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("job_id", Uuid, ForeignKey("jobs.id"), nullable=False),
    # 'pending' until the worker stores the restored image.
    Column("s3_key", String, nullable=False),
    Column("model", String, nullable=False),
    Column("params", JSON, nullable=False, default=dict),
    _created_at(),
    Index("ix_restore_attempts_job_id", "job_id"),
)

# One row per provider model: when its next call may start, shared by every worker so that
# together they stay under the account's images-per-minute limit.
provider_pacing = Table(
    "photo_restore_provider_pacing",
    service_metadata,
    Column("key", String, primary_key=True),
    Column("next_free_at", DateTime(timezone=True), nullable=False),
)

# Direct uploads (photo_restore.lifecycle): one row per presigned upload; its id is the id of
# the photo it becomes. `photo_id` is the photo it ended as: its own, or the user's live photo
# with the same checksum (a duplicate). Status: pending | accepted | rejected (+ reason).
uploads = Table(
    "photo_restore_uploads",
    service_metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", String, nullable=False),
    Column("object_key", String, nullable=False),
    Column("content_type", String, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("checksum_sha256", String, nullable=False),  # hex, as photos.checksum_sha256
    Column("status", String, nullable=False),
    Column("reason_code", String, nullable=True),
    Column("reason", String, nullable=True),
    Column("photo_id", Uuid, nullable=True),
    _created_at(),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("settled_at", DateTime(timezone=True), nullable=True),
    # When PhotoUploaded was published (at least once: a redelivery publishes a missing one).
    Column("announced_at", DateTime(timezone=True), nullable=True),
    Index("ix_photo_restore_uploads_owner_checksum", "owner_id", "checksum_sha256"),
)

# The inference times of the newest succeeded attempts, a ring of INFERENCE_RING_SLOTS rows
# written by the attempt's completion: the estimate's median reads these rows, not a sort of
# every attempt (12.8 s at a million attempts).
INFERENCE_RING_SLOTS = 100
inference_times = Table(
    "photo_restore_inference_times",
    service_metadata,
    Column("slot", Integer, primary_key=True),
    Column("attempt_id", Uuid, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
inference_slot = Sequence("photo_restore_inference_slot", metadata=service_metadata)

# Settled attempts whose final event is not published yet (an outbox): written in the commit
# that settles the attempt, deleted when its event is published. The sweeper's republish reads
# these few rows instead of every recent attempt's params.
unannounced_events = Table(
    "photo_restore_unannounced_events",
    service_metadata,
    Column("attempt_id", Uuid, primary_key=True),
    Column("settled_at", DateTime(timezone=True), nullable=False),
)

# This service's recent restore requests by owner, written with each attempt: the quota and
# the Idempotency-Key check read an owner's last day here, where the existing tables reach an
# owner's attempts only through every one of their photos (thousands for some owners).
owner_requests = Table(
    "photo_restore_owner_requests",
    service_metadata,
    Column("attempt_id", Uuid, primary_key=True),
    Column("owner_id", String, nullable=False),
    Column("idempotency_key", String, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # Whether it counts in the quota: false once it failed for a provider or system reason
    # (errors.NOT_USER_CAUSED_CODES), set by the commit that records the failure.
    Column("counted", Boolean, nullable=False, server_default=true()),
    Index("ix_photo_restore_owner_requests_owner_created", "owner_id", "created_at"),
    # A key's lookup reads its own rows, not every request of a busy owner's day.
    Index(
        "ix_photo_restore_owner_requests_owner_key",
        "owner_id",
        "idempotency_key",
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
)
