"""The default run fails when a test folder collects nothing (tests/collection_guard.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def project(tmp_path: Path, ini: str) -> Path:
    """A project with tests/unit and tests/build, each holding one passing test."""
    (tmp_path / "pytest.ini").write_text(f"[pytest]\ntestpaths = tests\n{ini}")
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.collection_guard"]\n')
    for folder in ("unit", "build"):
        (tmp_path / "tests" / folder).mkdir(parents=True)
        (tmp_path / "tests" / folder / f"test_{folder}.py").write_text("def test_it():\n    pass\n")
    return tmp_path


def run_pytest(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The guard is imported from this checkout; the project under test has only its tests.
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_folder_that_pytest_skips_by_name_fails_the_default_run(tmp_path: Path) -> None:
    result = run_pytest(project(tmp_path, ini=""))  # pytest's default norecursedirs has `build`
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout
    assert "these test folders collected no test: tests/build" in result.stderr


def test_every_folder_collected_passes_and_skips_are_counted_by_reason(tmp_path: Path) -> None:
    root = project(tmp_path, ini="norecursedirs = .*\n")
    (root / "tests" / "unit" / "test_skips.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_needs_a_pooler(n):\n    pytest.skip('pgbouncer not on PATH')\n"
    )
    result = run_pytest(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 2 skipped" in result.stdout
    assert "    2  pgbouncer not on PATH" in result.stdout


def test_a_run_narrowed_to_some_paths_is_not_held_to_every_folder(tmp_path: Path) -> None:
    root = project(tmp_path, ini="")
    assert run_pytest(root, "tests/unit").returncode == 0
