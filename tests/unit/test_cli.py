"""`photo-restore` operator commands say what they miss instead of failing with a traceback."""

from __future__ import annotations

import pytest

from photo_restore_tools.cli import NEEDS, main

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
    assert set(NEEDS) == {"db", "sweep", "redrive dlq", "redrive failed"}


def test_a_region_from_the_environment_is_enough(
    bare_environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert main(["redrive", "dlq"]) == 2
    err = capsys.readouterr().err
    assert "AWS_REGION" not in err and "QUEUE_URL" in err
