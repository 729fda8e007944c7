"""A production-sized copy of the existing app's data, generated inside Postgres (issue 17).

Every row is computed from its index by a hash (md5), so two seeds of the same `Volume` hold
the same rows; only the timestamps move with the anchor (the database's clock at seeding), so
that the newest attempts fall inside the quota and republish windows as they do in production.

The shape, with the skew a long-running app has:
- owners: photo `i` belongs to owner `floor(users * u^3)` (u uniform): the first owners have
  thousands of photos (owner 0: ~4.6% of all), the last ones ~10;
- attempts: 90% spread evenly over the photos (~3 each, ~5% of photos have none), 10% on 1% of
  them (photos with dozens of attempts), most soon after their photo's upload (the last day
  holds ~0.4% of them, not the pile-up at "now" that uniform times give); 80% succeeded (with
  `inference_time_seconds`), 17% failed, 3% canceled, with the params this service writes
  (phases, stamps, some Idempotency-Keys) beside the data model's (prompt, seed...);
- a few photos `processing`, each with a pending newest attempt started at the anchor;
- a handful of settled attempts whose event was never published (the sweeper's to republish).

Only the existing app's tables are seeded: this service's own (the estimate's ring, the events
outbox, the owners' requests) are filled from them by `photo-restore db migrate`, as on an
upgraded deployment (`SqlRepository.backfill_service_tables`).

`benchmarks/seed_volume.py` runs it from the command line; tests seed a smaller `Volume`.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, text

from photo_restore.repository import SqlRepository


@dataclass(frozen=True)
class Volume:
    users: int
    photos: int
    attempts: int

    @property
    def processing_photos(self) -> int:
        return max(1, self.photos // 1500)


# The production volume, and a small one for tests (big enough that the planner's
# choices are those of the large one: see tests/integration/test_data_volume.py).
PRODUCTION = Volume(users=10_000, photos=300_000, attempts=1_000_000)
SMALL = Volume(users=500, photos=15_000, attempts=50_000)

SPAN_DAYS = 730  # the app's age: photos and attempts spread over two years


def owner_id(index: int) -> str:
    """The owner id (a Supabase user id) of owner `index`, as the seed writes it."""
    return str(uuid.UUID(_md5_hex(f"user-{index}")))


def photo_id(index: int) -> uuid.UUID:
    return uuid.UUID(_md5_hex(f"photo-{index}"))


def _md5_hex(value: str) -> str:
    import hashlib

    return hashlib.md5(value.encode(), usedforsecurity=False).hexdigest()


_FUNCTIONS = """
CREATE OR REPLACE FUNCTION pg_temp.u01(seed text) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
  SELECT ('x' || substr(md5(seed), 1, 12))::bit(48)::bigint / 281474976710656.0
$$;
CREATE OR REPLACE FUNCTION pg_temp.owner_of(i bigint, users int) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
  SELECT least(users - 1, floor(users * power(pg_temp.u01('owner-' || i), 3))::int)
$$;
CREATE OR REPLACE FUNCTION pg_temp.photo_created(i bigint, anchor timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
  SELECT anchor - make_interval(secs => pg_temp.u01('photo-created-' || i) * {span} * 86400)
$$;
"""

_PHOTOS = """
INSERT INTO photos (id, owner_id, original_key, processed_key, thumbnail_key, status,
                    size_bytes, mime_type, checksum_sha256, metadata_json, created_at, updated_at)
SELECT md5('photo-' || i)::uuid,
       md5('user-' || pg_temp.owner_of(i, :users))::uuid::text,
       'originals/' || md5('user-' || pg_temp.owner_of(i, :users))::uuid || '/'
         || md5('photo-' || i)::uuid || '.jpg',
       NULL, NULL, 'uploaded',
       200000 + floor(pg_temp.u01('size-' || i) * 9000000)::bigint,
       CASE WHEN i % 7 = 0 THEN 'image/heic' ELSE 'image/jpeg' END,
       md5('checksum-' || i) || md5('checksum2-' || i),
       json_build_object('source', 'upload', 'camera', 'phone-' || (i % 40)),
       pg_temp.photo_created(i, :anchor), pg_temp.photo_created(i, :anchor)
FROM generate_series(0, :photos - 1) AS i
"""

_JOBS = """
INSERT INTO jobs (id, email, created_at)
SELECT md5('photo-' || i)::uuid,
       CASE WHEN i % 9 = 0 THEN NULL
            ELSE 'user-' || pg_temp.owner_of(i, :users) || '@example.com' END,
       pg_temp.photo_created(i, :anchor)
FROM generate_series(0, :photos - 1) AS i
"""

# Attempt j's photo, state and time; its params built from them below.
_ATTEMPTS = """
WITH hashed AS (
  SELECT j, md5('attempt-' || j) AS h FROM generate_series(0, :attempts - 1) AS j
), drawn AS (
  -- Four uniform draws from the one hash of the attempt (md5 is most of the seeding time).
  SELECT j, h, h::uuid AS attempt_id,
         CASE WHEN j < :attempts * 0.9 THEN :photos ELSE greatest(1, :photos / 100) END
           * (('x' || substr(h, 1, 8))::bit(32)::bigint / 4294967296.0) AS photo_draw,
         ('x' || substr(h, 9, 8))::bit(32)::bigint / 4294967296.0 AS s,
         ('x' || substr(h, 17, 8))::bit(32)::bigint / 4294967296.0 AS t,
         6 + 30 * (('x' || substr(h, 25, 8))::bit(32)::bigint / 4294967296.0) AS inference
  FROM hashed
), dated AS (
  SELECT j, h, attempt_id, floor(photo_draw)::bigint AS p, s, t, inference,
         md5('photo-' || floor(photo_draw)::bigint)::uuid AS photo_id,
         pg_temp.photo_created(floor(photo_draw)::bigint, :anchor) AS photo_created
  FROM drawn
), placed AS (
  SELECT j, h, attempt_id, p, photo_id, inference,
         photo_created + (:anchor - photo_created) * (power(t, 4) * 0.999) AS created_at,
         CASE WHEN s < 0.80 THEN 'succeeded' WHEN s < 0.97 THEN 'failed' ELSE 'canceled' END
           AS state
  FROM dated
)
INSERT INTO restore_attempts (id, job_id, s3_key, model, params, created_at)
SELECT attempt_id,
       photo_id,
       CASE WHEN state = 'succeeded' THEN 'restored/' || photo_id || '/' || attempt_id || '.jpg'
            ELSE 'pending' END,
       'Qwen/Qwen-Image-Edit',
       (jsonb_build_object(
          'provider', 'siliconflow',
          'prompt', 'Restore this old damaged photo: remove scratches, dust and stains, '
                    'repair tears, recover faded detail; keep faces and composition unchanged.',
          'num_inference_steps', 20,
          'guidance_scale', 7.5,
          'deliveries', 1 + (j % 11 = 0)::int,
          'started_at', to_jsonb(created_at + interval '1 second'),
          'finished_at', to_jsonb(created_at + make_interval(secs => inference + 4)),
          'phase_started_at', to_jsonb(created_at + make_interval(secs => inference + 2)),
          'event_published_at', to_jsonb(created_at + make_interval(secs => inference + 5)),
          'phase', state
        )
        || CASE WHEN j % 3 = 0
                THEN jsonb_build_object('idempotency_key', 'key-' || h,
                                        'enqueued_at', to_jsonb(created_at))
                ELSE '{}'::jsonb END
        || CASE state
             WHEN 'succeeded' THEN jsonb_build_object(
               'inference_time_seconds', round(inference::numeric, 2),
               'seed', (j * 2654435761) % 2147483647,
               'provider_trace_id', h,
               'result_dimensions', jsonb_build_array(1664, 1248),
               'result_bytes', 400000 + (j % 300000),
               'before_key', 'before/' || photo_id || '/' || attempt_id || '.jpg',
               'thumbnail_key', 'thumbnails/' || photo_id || '/' || attempt_id || '.jpg',
               'preprocessed', jsonb_build_object(
                 'resized', j % 2 = 0,
                 'original_dimensions', jsonb_build_array(4000, 3000),
                 'submitted_dimensions', jsonb_build_array(1664, 1248),
                 'format_converted', p % 7 = 0,
                 'original_format', CASE WHEN p % 7 = 0 THEN 'HEIF' ELSE 'JPEG' END))
             WHEN 'failed' THEN jsonb_build_object('error', jsonb_build_object(
               'code', (ARRAY['provider_rejected', 'corrupt_image', 'retries_exhausted',
                              'unsupported_image', 'provider_unavailable'])[1 + j % 5],
               'message', 'seeded failure',
               'at', to_jsonb(created_at + make_interval(secs => inference + 4)),
               'kind', 'permanent'))
             ELSE jsonb_build_object('error', jsonb_build_object(
               'code', 'canceled', 'message', 'canceled by its user',
               'at', to_jsonb(created_at + interval '3 seconds')))
           END)::json,
       created_at
FROM placed
"""

# A million inserts into two B-trees cost more than building them once after (a scratch
# database: nobody reads it meanwhile).
_DROP_ATTEMPT_INDEXES = """
ALTER TABLE restore_attempts DROP CONSTRAINT restore_attempts_pkey;
DROP INDEX ix_restore_attempts_job_id
"""
_REBUILD_ATTEMPT_INDEXES = """
ALTER TABLE restore_attempts ADD PRIMARY KEY (id);
CREATE INDEX ix_restore_attempts_job_id ON restore_attempts (job_id)
"""

# A photo is ready when one of its attempts succeeded: the newest such is its restoration, and
# its job's selected one (found once for both).
_READY = """
CREATE TEMP TABLE newest_success ON COMMIT DROP AS
SELECT DISTINCT ON (job_id) job_id, id, s3_key, params::jsonb ->> 'thumbnail_key' AS thumbnail,
       created_at
FROM restore_attempts WHERE s3_key <> 'pending'
ORDER BY job_id, created_at DESC, id DESC;
UPDATE photos SET status = 'ready', processed_key = newest.s3_key,
                  thumbnail_key = newest.thumbnail, updated_at = newest.created_at
FROM newest_success AS newest WHERE photos.id = newest.job_id;
UPDATE jobs SET selected_restore_id = newest.id, thumbnail_s3_key = newest.thumbnail
FROM newest_success AS newest WHERE jobs.id = newest.job_id
"""

# In flight now: a pending newest attempt, generating, and its photo `processing`.
_IN_FLIGHT = """
WITH chosen AS (
  SELECT k, (k * 1499 + 7) % :photos AS p FROM generate_series(0, :processing - 1) AS k
), inserted AS (
  INSERT INTO restore_attempts (id, job_id, s3_key, model, params, created_at)
  SELECT md5('in-flight-' || k)::uuid, md5('photo-' || p)::uuid, 'pending',
         'Qwen/Qwen-Image-Edit',
         json_build_object('provider', 'siliconflow', 'deliveries', 1, 'phase', 'generating',
                           'started_at', to_jsonb(:anchor - interval '20 seconds'),
                           'phase_started_at', to_jsonb(:anchor - interval '15 seconds')),
         :anchor - interval '21 seconds'
  FROM chosen
  RETURNING job_id
)
UPDATE photos SET status = 'processing', updated_at = :anchor
WHERE id IN (SELECT job_id FROM inserted)
"""

# Settled within the republish window, their event never published (the bus refused it).
_UNANNOUNCED = """
UPDATE restore_attempts
SET params = ((params::jsonb - 'event_published_at')
              || jsonb_build_object('finished_at', to_jsonb(:anchor - interval '1 hour')))::json,
    created_at = :anchor - interval '1 hour 1 minute'
WHERE id IN (SELECT md5('attempt-' || j)::uuid FROM generate_series(0, 9) AS j)
"""


def seed(engine: Engine, volume: Volume, *, log: bool = False) -> dict[str, float]:
    """Create the schema where missing and fill empty tables with `volume`; seconds per step.

    Refuses a database whose `restore_attempts` already has rows: seeding is for scratch
    databases (benchmarks, tests), never a real one.
    """
    SqlRepository(engine).create_schema()
    timings: dict[str, float] = {}
    with engine.begin() as conn:
        if conn.execute(text("SELECT EXISTS (SELECT FROM restore_attempts)")).scalar_one():
            raise RuntimeError("restore_attempts already has rows: seed only a scratch database")
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        for statement in _FUNCTIONS.format(span=SPAN_DAYS).split(";\n"):
            if statement.strip():
                conn.execute(text(statement))
        anchor = conn.execute(text("SELECT now()")).scalar_one()
        values = {
            "users": volume.users,
            "photos": volume.photos,
            "attempts": volume.attempts,
            "processing": volume.processing_photos,
            "anchor": anchor,
        }
        steps = [
            ("photos", _PHOTOS),
            ("jobs", _JOBS),
            ("drop attempts' indexes", _DROP_ATTEMPT_INDEXES),
            ("restore_attempts", _ATTEMPTS),
            ("rebuild attempts' indexes", _REBUILD_ATTEMPT_INDEXES),
            ("ready photos, selected restorations", _READY),
            ("photos in flight", _IN_FLIGHT),
            ("unannounced events", _UNANNOUNCED),
        ]
        for name, statement in steps:
            started = time.perf_counter()
            # pg8000's paramstyle reads `%` as a placeholder: the modulo operators are escaped;
            # and it sends a datetime untyped, which `anchor - interval` cannot resolve.
            sql = statement.replace("%", "%%").replace(":anchor", "CAST(:anchor AS timestamptz)")
            for part in sql.split(";\n"):
                conn.execute(text(part), values)
            timings[name] = time.perf_counter() - started
            if log:
                print(f"  {name}: {timings[name]:.1f} s", flush=True)
    # The planner's statistics of the seeded tables, as autovacuum would have them in production.
    started = time.perf_counter()
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("VACUUM ANALYZE photos, jobs, restore_attempts"))
    timings["vacuum analyze"] = time.perf_counter() - started
    if log:
        print(f"  vacuum analyze: {timings['vacuum analyze']:.1f} s", flush=True)
    return timings


def describe(engine: Engine) -> str:
    """The seeded skew in one line: what the README quotes."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM restore_attempts),"
                " (SELECT max(n) FROM (SELECT count(*) AS n FROM photos GROUP BY owner_id) o),"
                " (SELECT max(n) FROM (SELECT count(*) AS n FROM restore_attempts"
                "   GROUP BY job_id) a),"
                " (SELECT count(*) FROM restore_attempts"
                "   WHERE created_at > now() - interval '24 hours')"
            )
        ).one()
    return (
        f"{row[0]} attempts; the busiest owner has {row[1]} photos; the most attempted photo "
        f"{row[2]} attempts; {row[3]} attempts in the last 24 h"
    )
