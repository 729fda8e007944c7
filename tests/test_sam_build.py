"""The SAM build as Lambda would load it: each handler imports from its own dirs and layers only."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import built_artifact

pytestmark = pytest.mark.sam

FUNCTION_DIRS = {
    "ApiFunction": "api",
    "WorkerFunction": "worker",
    "DlqFunction": "dlq",
    "SweeperFunction": "sweeper",
}
IMAGING_MODULES = {"PIL", "pillow_heif", "httpx"}
# Lambda's limit for a function and all its layers, unzipped.
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


def require_sam() -> None:
    # A dev dependency: missing means a broken install, which must fail, not skip.
    assert built_artifact.sam_command() is not None, "sam is not installed: pip install -e .[dev]"


@pytest.fixture(scope="session")
def build_dir() -> Path:
    """One `sam build --cached` per session, into a temporary dir; layers from SAM's cache."""
    require_sam()
    return built_artifact.build_for_tests()


@pytest.fixture(scope="session")
def imports(build_dir: Path) -> dict[str, dict[str, Any]]:
    """Each handler imported once, in its own fresh interpreter, from the build output."""
    return {
        function: built_artifact.import_handler(function, build_dir=build_dir)
        for function in FUNCTION_DIRS
    }


def test_template_passes_sam_validate_lint() -> None:
    require_sam()
    result = built_artifact.run_sam("validate", "--lint", "--template-file", "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("function", FUNCTION_DIRS)
def test_handler_imports_from_its_function_dir_and_layers_only(
    function: str, build_dir: Path, imports: dict[str, dict[str, Any]]
) -> None:
    report = imports[function]
    assert report["handler"], "app.lambda_handler is not callable"
    dirs = [str(path) for path in built_artifact.function_sys_path(function, build_dir)]
    function_dir = dirs[0]
    shared = str(build_dir / "SharedLayer" / "python")
    core = str(build_dir / "CoreLayer" / "python")
    modules: dict[str, str | None] = report["modules"]
    assert modules["app"] == os.path.join(function_dir, "app.py")
    assert (modules["photo_restore"] or "").startswith(shared)
    for package in ("sqlalchemy", "pydantic", "aws_lambda_powertools"):
        assert (modules[package] or "").startswith(core), package
    # Nothing from the venv or the source tree: only the build output and the stdlib.
    stdlib = os.path.realpath(os.path.join(sys.base_prefix, "lib"))
    for name, path in modules.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        assert real.startswith((stdlib, *map(os.path.realpath, dirs))), f"{name}: {path}"


@pytest.mark.parametrize("function", ["ApiFunction", "DlqFunction", "SweeperFunction"])
def test_handlers_without_the_imaging_layer_never_load_imaging_modules(
    function: str, imports: dict[str, dict[str, Any]]
) -> None:
    assert not IMAGING_MODULES & set(imports[function]["modules"])


# Run in the worker's sandbox, where IMAGING names the imaging layer's dir.
HEIF_PROBE = """
import io
import pillow_heif
from PIL import Image
from photo_restore.preprocess import preprocess_image

heif = io.BytesIO()
pillow_heif.from_pillow(Image.new("RGB", (1200, 800), (90, 60, 30))).save(heif, quality=60)
result = preprocess_image(heif.getvalue(), max_side=600)
assert Image.__file__.startswith(IMAGING), Image.__file__
print(result.original_format, *result.new_dimensions)
"""


def test_worker_decodes_heif_with_the_pinned_imaging_layer(build_dir: Path) -> None:
    """Pillow and pillow-heif are older than the venv's (manylinux2014 wheels): run our code."""
    imaging = str(build_dir / "ImagingLayer" / "python")
    code = f"IMAGING = {imaging!r}\n{HEIF_PROBE}"
    result = built_artifact.run_in_function("WorkerFunction", code, build_dir=build_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["HEIC", "600", "400"]  # HEVC-coded, as the seed calls it


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("function", FUNCTION_DIRS)
def test_each_function_with_its_layers_fits_lambdas_unzipped_limit(
    function: str, build_dir: Path
) -> None:
    dirs = built_artifact.function_sys_path(function, build_dir)
    # Precompiled .pyc (make sam-build) add about a third; keep room for them.
    assert sum(map(directory_bytes, dirs)) * 1.5 < UNZIPPED_LIMIT_BYTES
