"""`photo-restore` operator commands against real parts, and against parts that are down."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from photo_restore.settings import Settings
from photo_restore_tools.cli import main
from photo_restore_tools.local.siliconflow_standin import SiliconFlowStandIn
from tests.helpers import records
from tests.helpers.handlers import use_settings
from tests.helpers.images import old_photo
from tests.helpers.pipeline import Pipeline


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


def test_the_siliconflow_check_shows_what_was_sent_and_what_came_back(
    standin: SiliconFlowStandIn,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Against the stand-in (the real service is never called from tests)."""
    from photo_restore import wiring

    monkeypatch.setenv("SILICONFLOW_BASE_URL", standin.base_url)
    monkeypatch.setenv("SILICONFLOW_API_KEY", "sk-check")
    monkeypatch.setenv("SILICONFLOW_ALLOW_PRIVATE_URLS", "true")
    wiring.reset()
    image = tmp_path / "grandpa.jpg"
    image.write_bytes(old_photo((1600, 1200)))
    assert main(["siliconflow-check", str(image), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert '"cfg": 4.0' in out and "guidance_scale" not in out
    assert "trace id: ti_" in out
    assert "result: 1184x896" in out
    assert (tmp_path / "out" / "grandpa.siliconflow.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    [sent] = standin.requests
    assert sent["image"].startswith("data:image/jpeg;base64,")
    wiring.reset()


def test_an_attempt_re_run_with_its_recorded_seed_asks_the_provider_for_it(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = pipeline.add_photo(old_photo())
    first = pipeline.request_restore(photo)
    pipeline.drain()
    recorded_seed = pipeline.attempt(first).params["seed"]
    use_settings(pipeline.settings)

    assert main(["redrive", "attempt", str(first), "--same-seed"]) == 0
    line = capsys.readouterr().out
    assert f"with seed {recorded_seed}" in line
    pipeline.drain()

    assert pipeline.standin.requests[-1]["seed"] == recorded_seed
    [newest, _] = records.attempts_of(pipeline.engine, photo.id)
    assert newest.params["requested_seed"] == newest.params["seed"] == recorded_seed
    assert pipeline.photo(photo.id).processed_key == newest.s3_key
