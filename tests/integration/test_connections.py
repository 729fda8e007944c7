"""Connections that survive: one closed while the container was frozen (an idle timeout, a
failover, a pooler restart) never costs a request, and nothing pings on the hot path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from photo_restore.db import create_db_engine
from photo_restore.errors import DependencyUnavailable
from photo_restore.repository import SqlRepository
from photo_restore_tools.local.services import PgBouncer
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline
from tests.helpers.records import insert_photo

pytestmark = pytest.mark.database  # runs direct and through PgBouncer (tests/conftest.py)


def terminate_client_backends(postgres_url: str) -> int:
    """What a failover or an idle timeout does to every open connection (the pooler's server
    connections included): `pg_terminate_backend`, from a connection of its own."""
    admin = create_engine(postgres_url, connect_args={"ssl_context": False})
    try:
        with admin.begin() as conn:
            terminated = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                    "AND datname = current_database()"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    return int(terminated)


@pytest.fixture
def connections_lost(postgres_url: str, pooler: PgBouncer | None) -> Callable[[], None]:
    def lose() -> None:
        assert terminate_client_backends(postgres_url) >= 1
        if pooler is not None:
            pooler.restart()  # the clients' own connections to the pooler die too

    return lose


@pytest.fixture
def pings(pipeline: Pipeline) -> Iterator[list[object]]:
    """Every connection ping of the handlers' engine (there must be none)."""
    engine = pipeline.api.wiring.repository().engine
    seen: list[object] = []
    original = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        seen.append(dbapi_connection)
        return bool(original(dbapi_connection))

    engine.dialect.do_ping = counted
    yield seen
    engine.dialect.do_ping = original


def test_the_api_reconnects_after_its_connection_was_closed_without_a_503(
    pipeline: Pipeline, connections_lost: Callable[[], None], pings: list[object]
) -> None:
    photo = pipeline.add_photo(old_photo())
    assert pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)[0] == 200
    connections_lost()

    status, body = pipeline.call_api("GET", f"/photos/{photo.id}", photo.owner_id)
    assert (status, body["status"]) == (200, "uploaded")
    assert pipeline.call_api("POST", f"/photos/{photo.id}/restore", photo.owner_id)[0] == 202
    assert pings == []  # found dead by the first statement, not by a ping per request


def test_the_worker_reconnects_too_and_the_restore_is_not_retried(
    pipeline: Pipeline, connections_lost: Callable[[], None], pings: list[object]
) -> None:
    first = pipeline.add_photo(old_photo())
    pipeline.request_restore(first)
    pipeline.drain()
    connections_lost()

    second = pipeline.add_photo(old_photo())
    attempt_id = pipeline.request_restore(second)
    pipeline.drain()
    assert pipeline.photo(second.id).status == "ready"
    attempt = pipeline.attempt(attempt_id)
    assert attempt.deliveries == 1 and attempt.last_transient_error is None
    assert len(pipeline.standin.requests) == 2
    assert pings == []


def test_a_connection_lost_inside_a_transaction_is_a_503_not_a_replay(
    database_url: str, postgres_url: str, engine: Any
) -> None:
    """Only the first statement may be retried: after it, the transaction has done something."""
    repository = SqlRepository(create_db_engine(database_url, ssl_mode="disable"))
    photo = insert_photo(engine)
    with pytest.raises(DependencyUnavailable), repository.transaction() as tx:
        assert tx.photo(photo.id) is not None
        # The backend serving this transaction (through a pooler: its server connection).
        pid = tx._conn.execute(select(func.pg_backend_pid())).scalar_one()
        admin = create_engine(postgres_url, connect_args={"ssl_context": False})
        with admin.begin() as conn:
            conn.execute(select(func.pg_terminate_backend(pid)))
        admin.dispose()
        tx.photo(photo.id)
    # And the next transaction simply works.
    with repository.transaction() as tx:
        assert tx.photo(photo.id) is not None
    repository.engine.dispose()


def test_the_claim_stays_exactly_once_when_connections_are_lost_between_requests(
    pipeline: Pipeline, connections_lost: Callable[[], None]
) -> None:
    photo = pipeline.add_photo(old_photo())
    assert pipeline.call_api("POST", f"/photos/{photo.id}/restore", photo.owner_id)[0] == 202
    connections_lost()
    status, body = pipeline.call_api("POST", f"/photos/{photo.id}/restore", photo.owner_id)
    assert (status, body["error"]) == (409, "already_processing")
