"""The SAM build as Lambda would load it: each handler imports from its own dirs and layers only."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import built_artifact

pytestmark = pytest.mark.sam

FUNCTION_DIRS = {
    "ApiFunction": "api",
    "WorkerFunction": "worker",
    "DlqFunction": "dlq",
    "SweeperFunction": "sweeper",
    "IngestFunction": "ingest",
}
IMAGING_MODULES = {"PIL", "pillow_heif", "httpx", "pyvips", "_libvips", "cffi"}
# Lambda's limit for a function and all its layers, unzipped.
UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


def require_sam() -> None:
    # A dev dependency: missing means a broken install, which must fail, not skip.
    assert built_artifact.sam_command() is not None, "sam is not installed: pip install -e .[dev]"


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
    domain = str(build_dir / "DomainLayer" / "python")
    core = str(build_dir / "CoreLayer" / "python")
    modules: dict[str, str | None] = report["modules"]
    assert modules["app"] == os.path.join(function_dir, "app.py")
    assert (modules["photo_restore"] or "").startswith(domain)
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


@pytest.mark.parametrize("function", FUNCTION_DIRS)
def test_only_the_api_starts_without_the_xray_sdk(
    function: str, imports: dict[str, dict[str, Any]]
) -> None:
    # Its ~0.35 s import is a cold start a user would wait for: Lambda's active tracing only.
    loaded = "aws_xray_sdk" in imports[function]["modules"]
    assert loaded == (function != "ApiFunction")


def test_the_api_starts_without_sqlalchemys_orm(build_dir: Path) -> None:
    # The tables are Core: the ORM's import would cost every cold start ~0.1 s for nothing.
    code = "import app, sys\nprint(' '.join(sorted(sys.modules)))"
    result = built_artifact.run_in_function("ApiFunction", code, build_dir=build_dir)
    assert result.returncode == 0, result.stderr
    assert "sqlalchemy.orm" not in result.stdout.split()


# Run in the worker's sandbox, where IMAGING names the imaging layer's dir.
HEIF_PROBE = """
import io
import pillow_heif
from PIL import Image
from photo_restore.preprocess import PreprocessLimits, preprocess_image

heif = io.BytesIO()
pillow_heif.from_pillow(Image.new("RGB", (1200, 800), (90, 60, 30))).save(heif, quality=60)
limits = PreprocessLimits(
    max_side=600, max_pixels=10**8, jpeg_quality=90, memory_budget_bytes=2**28
)
result = preprocess_image(heif.getvalue(), limits)
assert Image.__file__.startswith(IMAGING), Image.__file__
print(result.original_format, *result.new_dimensions)
"""


def test_worker_decodes_heif_with_the_pinned_imaging_layer(build_dir: Path) -> None:
    """The layer's own Pillow and pillow-heif wheels (manylinux, not the venv's): run our code."""
    imaging = str(build_dir / "ImagingLayer" / "python")
    code = f"IMAGING = {imaging!r}\n{HEIF_PROBE}"
    result = built_artifact.run_in_function("WorkerFunction", code, build_dir=build_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["HEIC", "600", "400"]  # HEVC-coded, as the seed calls it


JPEG_PROBE = """
import io
import pyvips
from PIL import Image
from photo_restore.preprocess import PreprocessLimits, preprocess_image

jpeg = io.BytesIO()
Image.new("RGB", (1200, 800), (90, 60, 30)).save(jpeg, "JPEG")
limits = PreprocessLimits(
    max_side=600, max_pixels=10**8, jpeg_quality=90, memory_budget_bytes=2**28
)
result = preprocess_image(jpeg.getvalue(), limits)
assert pyvips.__file__.startswith(IMAGING), pyvips.__file__
print(pyvips.API_mode, *Image.open(io.BytesIO(result.image_bytes)).size)
"""


def test_worker_reencodes_jpegs_with_the_layers_libvips(build_dir: Path) -> None:
    """pyvips and the libvips that pyvips-binary carries, from the imaging layer alone."""
    imaging = str(build_dir / "ImagingLayer" / "python")
    code = f"IMAGING = {imaging!r}\n{JPEG_PROBE}"
    result = built_artifact.run_in_function("WorkerFunction", code, build_dir=build_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "600", "400"]


C2PA_PROBE = """
import io
from datetime import UTC, datetime

import c2pa
from PIL import Image
from photo_restore.c2pa_signing import C2paSigner, SigningCredentials
from photo_restore.provenance import Provenance

assert c2pa.__file__.startswith(C2PA), c2pa.__file__
signer = C2paSigner(SigningCredentials(private_key=KEY, certificate_chain=CHAIN))
marks = Provenance(model="Qwen/Qwen-Image-Edit", created_at=datetime.now(UTC), signer=signer)
jpeg = marks.save_jpeg(Image.new("RGB", (64, 48), (90, 60, 30)), quality=90)
print(c2pa.Reader("image/jpeg", io.BytesIO(jpeg)).get_validation_state())
"""


def test_worker_signs_content_credentials_with_the_c2pa_layer(build_dir: Path) -> None:
    """c2pa-python from its own layer, less its static library, with none of its declared
    dependencies: a manifest signed by the local pair reads back Valid (signed, untrusted)."""
    from photo_restore_tools.local.c2pa_credentials import local_signing_pair

    layer = build_dir / "WorkerLayer" / "python"
    assert not list(layer.rglob("*.rlib")) and not (layer / "cryptography").exists()
    credentials = local_signing_pair().credentials
    code = (
        f"C2PA = {str(layer)!r}\nKEY = {credentials.private_key!r}\n"
        f"CHAIN = {credentials.certificate_chain!r}\n{C2PA_PROBE}"
    )
    result = built_artifact.run_in_function("WorkerFunction", code, build_dir=build_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Valid"]


def bytes_once_compiled(path: Path) -> int:
    """Its files, plus room for a .pyc beside each .py that has none yet (make sam-build
    precompiles them; a .pyc is about its source's size). Binaries and model files get none:
    a flat factor on the total overstated the faces layer's 31 MB of models and 11 MB of dlib."""
    files = [f for f in path.rglob("*") if f.is_file()]
    # dir/__pycache__/name.cpython-313.pyc is the bytecode of dir/name.py.
    compiled = {(f.parent.parent, f.name.split(".")[0]) for f in files if f.suffix == ".pyc"}
    uncompiled = (f for f in files if f.suffix == ".py" and (f.parent, f.stem) not in compiled)
    return sum(f.stat().st_size for f in files) + sum(f.stat().st_size for f in uncompiled)


@pytest.mark.parametrize("function", FUNCTION_DIRS)
def test_each_function_with_its_layers_fits_lambdas_unzipped_limit(
    function: str, build_dir: Path
) -> None:
    dirs = built_artifact.function_sys_path(function, build_dir)
    sizes = {str(d.relative_to(build_dir)): bytes_once_compiled(d) / 2**20 for d in dirs}
    assert sum(sizes.values()) * 2**20 < UNZIPPED_LIMIT_BYTES, sizes


# --- The DomainLayer holds exactly what the functions run -------------------------------------


def imported_modules(source: Path, package: str) -> set[str]:
    """Modules of `package` that `source` imports anywhere (lazy imports in functions count),
    except under `if TYPE_CHECKING:`, which never runs."""
    tree = ast.parse(source.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from package import module` names modules as well as attributes.
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name == package or name.startswith(package + ".")}


def module_files(layer_python: Path) -> dict[str, Path]:
    """Every module in a built layer, by dotted name."""
    modules = {}
    for path in layer_python.rglob("*.py"):
        parts = path.relative_to(layer_python).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def reachable_modules(entry: Path, modules: dict[str, Path]) -> set[str]:
    """The layer's modules that `entry` reaches, following imports through the layer."""
    seen: set[str] = set()
    pending = [entry]
    while pending:
        for name in imported_modules(pending.pop(), "photo_restore"):
            # Importing a.b.c imports its packages a and a.b too.
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):
                prefix = ".".join(parts[:depth])
                if prefix in modules and prefix not in seen:
                    seen.add(prefix)
                    pending.append(modules[prefix])
    return seen


def test_the_domain_layer_holds_only_python_modules_of_the_domain_package(
    build_dir: Path,
) -> None:
    layer = build_dir / "DomainLayer" / "python"
    files = [p.relative_to(layer) for p in layer.rglob("*") if p.is_file()]
    assert files
    assert [f for f in files if f.suffix != ".py" or f.parts[0] != "photo_restore"] == []


def test_every_module_in_the_domain_layer_is_imported_by_a_deployed_function(
    build_dir: Path,
) -> None:
    modules = module_files(build_dir / "DomainLayer" / "python")
    used = set().union(
        *(reachable_modules(build_dir / name / "app.py", modules) for name in FUNCTION_DIRS)
    )
    assert sorted(set(modules) - used) == []


@pytest.mark.parametrize("function", FUNCTION_DIRS)
def test_every_domain_module_a_function_reaches_imports_in_its_sandbox(
    function: str, build_dir: Path
) -> None:
    """Only the function dir and its layers on sys.path, as on Lambda: a dependency no layer
    carries (the local gateway's `jwt`, say) fails here."""
    modules = module_files(build_dir / "DomainLayer" / "python")
    reached = sorted(reachable_modules(build_dir / function / "app.py", modules))
    code = f"import importlib\nfor name in {reached!r}:\n    importlib.import_module(name)\n"
    result = built_artifact.run_in_function(function, code, build_dir=build_dir)
    assert result.returncode == 0, result.stderr
