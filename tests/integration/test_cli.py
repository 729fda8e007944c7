"""`photo-restore` operator commands against real parts, and against parts that are down."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from photo_restore.settings import Settings
from photo_restore_tools.cli import main
from tests.helpers.handlers import use_settings


def test_an_unreachable_database_is_a_one_line_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from photo_restore import wiring

    monkeypatch.setenv("DATABASE_URL", "postgresql+pg8000://u@127.0.0.1:9/db")
    monkeypatch.setenv("DATABASE_SSL_MODE", "disable")
    wiring.reset()
    assert main(["db", "create"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: dependency_unavailable: ") and "Traceback" not in err
    wiring.reset()


def test_the_sweep_and_a_dry_run_redrive_run_with_the_functions_environment(
    settings: Settings, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    use_settings(settings)
    assert main(["sweep"]) == 0
    assert main(["redrive", "failed", "--dry-run", "--since-hours", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "stuck photo(s) handled" in out and "(dry run)" in out
