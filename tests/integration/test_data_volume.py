"""At data volume (issue 17): on a seeded database, no hot path scans the existing app's tables,
and this service's aggregate tables, filled by `photo-restore db migrate`, answer as the scans
of the existing tables did.

The database is one of its own on the session's Postgres, reached directly: query plans are the
server's, a pooler in between changes none of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, make_url, text

from photo_restore.db import create_db_engine
from photo_restore.errors import NOT_USER_CAUSED_CODES
from photo_restore.events import REPUBLISH_AFTER, REPUBLISH_WINDOW
from photo_restore.models import inference_times, owner_requests, unannounced_events
from photo_restore.repository import SqlRepository
from photo_restore.restore_giveup import GiveUpOutcome
from photo_restore.restore_requests import MEDIAN_SAMPLE, QUOTA_WINDOW, Caller
from photo_restore.restore_runs import RunOutcome, RunReport
from photo_restore.settings import Settings
from photo_restore.status import RESTORABLE_STATUSES, PhotoStatus
from photo_restore_tools.cli import main
from photo_restore_tools.local.photos import add_photo, old_photo
from photo_restore_tools.local.services import LocalResources
from photo_restore_tools.local.siliconflow_standin import SiliconFlowStandIn
from photo_restore_tools.volume_seed import SMALL, owner_id, seed
from tests.helpers.hot_paths import HotPaths, Statement, StatementLog

pytestmark = pytest.mark.database

VOLUME_DATABASE = "photo_restore_volume"
EXISTING_TABLES = {"photos", "jobs", "restore_attempts"}


@pytest.fixture(scope="module")
def volume_url(postgres_url: str) -> Iterator[str]:
    """A database of its own, seeded with `volume_seed.SMALL`, analysed, then migrated."""
    server = create_db_engine(postgres_url, ssl_mode="disable")

    def run_on_server(statement: str) -> None:
        with server.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(statement))

    run_on_server(f"DROP DATABASE IF EXISTS {VOLUME_DATABASE} WITH (FORCE)")
    run_on_server(f"CREATE DATABASE {VOLUME_DATABASE}")
    url = make_url(postgres_url).set(database=VOLUME_DATABASE).render_as_string(False)
    engine = create_db_engine(url, ssl_mode="disable")
    seed(engine, SMALL)
    SqlRepository(engine).backfill_service_tables(republish_window=REPUBLISH_WINDOW)
    engine.dispose()
    yield url
    run_on_server(f"DROP DATABASE IF EXISTS {VOLUME_DATABASE} WITH (FORCE)")
    server.dispose()


@pytest.fixture
def volume_engine(volume_url: str) -> Iterator[Engine]:
    engine = create_db_engine(volume_url, ssl_mode="disable", pool_size=4)
    yield engine
    engine.dispose()


def sequential_scans(plan: Mapping[str, Any]) -> list[str]:
    """The existing tables a plan (EXPLAIN's JSON node) reads by a sequential scan."""
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in EXISTING_TABLES:
        found.append(str(plan["Relation Name"]))
    for child in plan.get("Plans", []):
        found.extend(sequential_scans(child))
    return found


def plan_of(engine: Engine, statement: Statement) -> dict[str, Any]:
    """EXPLAIN (without ANALYZE: nothing runs) of the statement as the driver got it."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement.sql, statement.parameters)
        [[explained]] = cursor.fetchall()
        raw.rollback()
    finally:
        raw.close()
    document = json.loads(explained) if isinstance(explained, str) else explained
    plan: dict[str, Any] = document[0]["Plan"]
    return plan


def is_query(statement: Statement) -> bool:
    """A statement with a plan (the driver's own `SHOW`s on connecting have none)."""
    return statement.sql.lstrip().split(None, 1)[0].upper() in {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
    }


def test_the_seed_holds_the_volume_and_the_skew_it_promises(volume_engine: Engine) -> None:
    with volume_engine.connect() as conn:
        attempts, busiest, most_attempted, recent = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM restore_attempts),"
                " (SELECT max(n) FROM (SELECT count(*) AS n FROM photos GROUP BY owner_id) o),"
                " (SELECT max(n) FROM (SELECT count(*) AS n FROM restore_attempts"
                "   GROUP BY job_id) a),"
                " (SELECT count(*) FROM photo_restore_owner_requests)"
            )
        ).one()
    assert attempts >= SMALL.attempts + SMALL.processing_photos
    assert busiest >= 1000  # owners with thousands of photos (1,904 of 15,000 here)
    assert most_attempted >= 24  # photos with dozens of attempts
    assert recent > 0  # the windows' requests, filled by the migration


def test_the_scan_check_finds_the_scan_of_the_old_median_query(volume_engine: Engine) -> None:
    """The check below can fail: the estimate's median as it was (a sort of every attempt)."""
    old_median = Statement(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FROM ("
        "SELECT (params::jsonb ->> 'inference_time_seconds')::float AS seconds "
        "FROM restore_attempts WHERE s3_key <> 'pending' "
        "AND jsonb_typeof(params::jsonb -> 'inference_time_seconds') = 'number' "
        "ORDER BY created_at DESC, id DESC LIMIT 50) AS recent",
        (),
        0.0,
    )
    assert sequential_scans(plan_of(volume_engine, old_median)) == ["restore_attempts"]


def test_the_migrated_service_tables_answer_as_the_scans_of_the_existing_tables(
    volume_engine: Engine,
) -> None:
    """The estimate's median, an owner's quota count, an Idempotency-Key and the unannounced
    events, read from the service's tables, equal what the old queries read from the existing
    tables (kept here as the reference). Before the hot paths' test, whose sweeper publishes
    the seeded unannounced events."""
    heaviest = owner_id(0)
    with volume_engine.connect() as conn:
        old_median = conn.execute(
            text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FROM ("
                "SELECT (params::jsonb ->> 'inference_time_seconds')::float AS seconds "
                "FROM restore_attempts WHERE s3_key <> 'pending' "
                "AND jsonb_typeof(params::jsonb -> 'inference_time_seconds') = 'number' "
                "ORDER BY created_at DESC, id DESC LIMIT :sample) AS recent"
            ),
            {"sample": MEDIAN_SAMPLE},
        ).scalar_one()
        old_counted = conn.execute(
            text(
                "SELECT count(*) FROM restore_attempts a JOIN photos p ON p.id = a.job_id "
                "WHERE p.owner_id = :owner "
                "AND a.created_at > clock_timestamp() - CAST(:window AS interval) "
                "AND NOT coalesce(a.params::jsonb -> 'error' ->> 'code', '') = ANY(:codes)"
            ),
            {"owner": heaviest, "window": QUOTA_WINDOW, "codes": sorted(NOT_USER_CAUSED_CODES)},
        ).scalar_one()
        keyed = conn.execute(
            text(
                "SELECT a.id, a.params::jsonb ->> 'idempotency_key' FROM restore_attempts a "
                "JOIN photos p ON p.id = a.job_id WHERE p.owner_id = :owner "
                "AND a.created_at > clock_timestamp() - interval '20 hours' "
                "AND a.params::jsonb ? 'idempotency_key' ORDER BY a.created_at LIMIT 1"
            ),
            {"owner": heaviest},
        ).one()
        old_unannounced = set(
            conn.execute(
                text(
                    "SELECT id FROM restore_attempts "
                    "WHERE created_at > now() - CAST(:window AS interval) "
                    "AND params::jsonb ? 'finished_at' "
                    "AND NOT params::jsonb ? 'event_published_at' "
                    "AND (params::jsonb ->> 'finished_at')::timestamptz "
                    "< now() - CAST(:after AS interval)"
                ),
                {"window": REPUBLISH_WINDOW, "after": REPUBLISH_AFTER},
            ).scalars()
        )
    with SqlRepository(volume_engine).transaction() as tx:
        median = tx.inference_seconds_median(sample=MEDIAN_SAMPLE)
        usage = tx.quota_usage(heaviest, window=QUOTA_WINDOW)
        found = tx.keyed_attempt(heaviest, keyed[1], window=QUOTA_WINDOW)
        unannounced = tx.unannounced_attempts(
            finished_before=REPUBLISH_AFTER, window=REPUBLISH_WINDOW
        )
    assert median == pytest.approx(old_median)
    assert usage.counted == old_counted > 0
    assert found is not None and found.id == keyed[0]
    assert {a.id for a in unannounced} == old_unannounced != set()


def test_no_hot_path_scans_photos_jobs_or_restore_attempts_at_volume(
    volume_engine: Engine,
    resources: LocalResources,
    standin: SiliconFlowStandIn,
    s3: Any,
    sqs: Any,
) -> None:
    """Every statement each hot path emits (captured from the real use cases, worker run
    included), EXPLAINed on the seeded database: no sequential scan of an existing table.

    Honest plans, not forced ones: the tables hold 15,000 photos and 50,000 attempts with the
    production seed's skew, VACUUM ANALYZEd, and the planner keeps every default (no
    `enable_seqscan = off`, which would only prove that an index *could* serve a query, even
    one the planner would scan in production). At this size a scan costs the planner far more
    than an index probe for every query that has one, so a scan here means a query without an
    index to ride, as the old median's (the test above). The owner is the seed's heaviest
    (owner 0: ~1,900 photos here) and the photo one of theirs, as the benchmark's.
    """
    settings = Settings(
        database_url=SecretStr("postgresql+pg8000://unused/unused"),
        database_ssl_mode="disable",
        **resources.settings_fields(),  # type: ignore[arg-type]
        siliconflow_base_url=standin.base_url,
        siliconflow_api_key=SecretStr("test-key"),
        siliconflow_allow_private_urls=True,
        siliconflow_max_retries=1,
        transient_retry_delays_seconds=[0],
        daily_restores_per_user=1_000_000,  # the heaviest owner's seeded day counts too
    )
    heaviest = owner_id(0)
    photo = add_photo(
        volume_engine,
        owner_id=heaviest,
        data=old_photo((320, 240)),
        s3=s3,
        bucket=settings.bucket_name,
    )
    paths = HotPaths(
        volume_engine, settings, s3, sqs, Caller(heaviest, "owner0@example.com"), photo.id
    )
    # Stuck for the settling sweep: besides the seed's in-flight photos, one without attempt.
    attemptless = add_photo(
        volume_engine, owner_id=heaviest, data=b"never read", status=PhotoStatus.PROCESSING
    )
    log = StatementLog(volume_engine)
    scans: dict[str, list[str]] = {}
    results: dict[str, object] = {}
    for step in [*paths.cycle(), paths.settling_sweep()]:
        with log.recording() as statements:
            results[step.name] = result = step.run()
        if isinstance(result, RunReport):
            assert result.outcome is RunOutcome.SUCCEEDED, result
        if not step.measured:
            continue
        queries = [s for s in statements if is_query(s)]
        assert queries, f"{step.name} sent no query: nothing was checked"
        for statement in queries:
            if found := sequential_scans(plan_of(volume_engine, statement)):
                scans.setdefault(step.name, []).append(f"{found}: {statement.sql}")
    assert scans == {}
    with paths.repository.transaction() as tx:
        settled = tx.photo(photo.id)
    assert settled is not None and settled.status in RESTORABLE_STATUSES
    swept = results["sweeper run (settling stuck photos)"]
    assert isinstance(swept, list)
    reverted = {r.photo_id for r in swept if r.outcome is GiveUpOutcome.REVERTED}
    assert attemptless.id in reverted and len(reverted) == SMALL.processing_photos + 1


def test_db_migrate_run_again_fills_nothing_twice(
    volume_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fixture's backfill is `db migrate`'s; the command run again adds no row."""
    from photo_restore import wiring

    monkeypatch.setenv("DATABASE_URL", volume_url)
    monkeypatch.setenv("DATABASE_SSL_MODE", "disable")
    wiring.reset()
    try:
        assert main(["db", "migrate"]) == 0
    finally:
        wiring.reset()
    out = capsys.readouterr().out
    for table in (inference_times, unannounced_events, owner_requests):
        assert f"{table.name}: 0 row(s) filled" in out
    assert "service tables ready" in out
