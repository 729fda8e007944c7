"""Every test: the environment restored after it. Real parts come from tests/fixtures.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.fixtures"]


@pytest.fixture(autouse=True)
def restored_environment() -> Iterator[None]:
    """Handlers read settings from os.environ: one test's settings must not leak into the next."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
