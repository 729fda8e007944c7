"""`photo-restore` operator commands say what they miss instead of failing with a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from photo_restore_tools.cli import NEEDS, main
from tests.helpers.images import old_photo

CONFIGURATION = (
    "DATABASE_URL",
    "DATABASE_URL_PARAMETER",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "QUEUE_URL",
    "DLQ_URL",
    "BUCKET_NAME",
)


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in CONFIGURATION:
        monkeypatch.delenv(name, raising=False)
    # No ~/.aws/config region either.
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["db", "create"], ["DATABASE_URL"]),
        (["db", "migrate"], ["DATABASE_URL"]),
        (["sweep"], ["DATABASE_URL", "AWS_REGION", "BUCKET_NAME"]),
        (["redrive", "dlq"], ["AWS_REGION", "QUEUE_URL", "DLQ_URL"]),
        (["redrive", "failed", "--dry-run"], ["DATABASE_URL", "AWS_REGION", "QUEUE_URL"]),
    ],
)
def test_an_operator_command_names_what_is_missing_and_exits_non_zero(
    bare_environment: None, capsys: pytest.CaptureFixture[str], argv: list[str], named: list[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    for name in named:
        assert name in captured.err


def test_every_operator_command_declares_what_it_needs() -> None:
    assert set(NEEDS) == {
        "db create",
        "db migrate",
        "sweep",
        "redrive dlq",
        "redrive failed",
        "redrive attempt",
        "erase-user",
    }


def test_the_siliconflow_check_refuses_to_run_without_a_key(
    bare_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from photo_restore import wiring

    monkeypatch.delenv("SILICONFLOW_API_KEY", raising=False)
    monkeypatch.delenv("SILICONFLOW_API_KEY_PARAMETER", raising=False)
    wiring.reset()
    image = tmp_path / "photo.jpg"
    image.write_bytes(old_photo())
    assert main(["siliconflow-check", str(image), "--out", str(tmp_path)]) == 2
    assert "no SiliconFlow API key" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == [image]  # nothing was sent, nothing saved


def test_a_region_from_the_environment_is_enough(
    bare_environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert main(["redrive", "dlq"]) == 2
    err = capsys.readouterr().err
    assert "AWS_REGION" not in err and "QUEUE_URL" in err
