"""Every test: the environment restored after it. Real parts come from tests/fixtures.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.fixtures", "tests.collection_guard"]

# How the database is reached: directly, or through a transaction-mode pooler (PgBouncer, as
# Supabase's Supavisor and RDS Proxy pool). Tests marked `database` run both ways.
DATABASE_ROUTES = ["direct", "pgbouncer"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("database") and (
        "database_route" in metafunc.fixturenames
    ):
        metafunc.parametrize("database_route", DATABASE_ROUTES, indirect=True, scope="session")


@pytest.fixture(autouse=True)
def restored_environment() -> Iterator[None]:
    """Handlers read settings from os.environ: one test's settings must not leak into the next."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
