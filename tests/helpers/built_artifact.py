"""The `sam build` output as Lambda loads it: each function's directories and a clean interpreter.

Lambda puts the function's code dir first on sys.path, then `/opt/python`, where every layer is
unpacked in the template's order (a later layer overwrites an earlier one's files). Here each
layer stays in its own build dir, listed last layer first so the same copy wins. The interpreter
is the venv's base Python run with `-I -S -B`: no site-packages, no PYTHON* variables, no .pyc
written (Lambda's code dirs are read-only).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from photo_restore.settings import Settings
from photo_restore_tools.local.functions import settings_environment
from photo_restore_tools.template import load_template
from tests.helpers.handlers import TEST_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# The build dir `make sam-build` and `sam build` use; tests build into their own.
DEFAULT_BUILD_DIR = ROOT / ".aws-sam" / "build"


def function_layers(template: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """Logical id of each function -> logical ids of its layers, in the template's order."""
    template = template or load_template()
    return {
        name: [layer["Ref"] for layer in resource["Properties"].get("Layers", [])]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def function_handler(function: str, template: dict[str, Any] | None = None) -> str:
    """`function`'s `Handler` (its own, else the template's Globals)."""
    template = template or load_template()
    own = template["Resources"][function]["Properties"].get("Handler")
    handler: str = own or template["Globals"]["Function"]["Handler"]
    return handler


def function_sys_path(function: str, build_dir: Path = DEFAULT_BUILD_DIR) -> list[Path]:
    """The directories, in sys.path order, that `function` (a logical id) sees on Lambda."""
    layers = function_layers()[function]
    return [build_dir / function, *(build_dir / layer / "python" for layer in reversed(layers))]


def sam_command() -> list[str] | None:
    """`sam` from the project's venv (it needs a python3.13 beside it), else from PATH."""
    venv_bin = Path(sys.executable).parent
    found = shutil.which("sam", path=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    return [found] if found else None


def sam_environment() -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "SAM_CLI_TELEMETRY": "0",
    }


def run_sam(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    sam = sam_command()
    if sam is None:
        raise FileNotFoundError("sam is not installed (pip install -e '.[dev]')")
    return subprocess.run(
        [*sam, *args],
        cwd=ROOT,
        env=sam_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build(build_dir: Path, *, cache_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`sam build --cached` into `build_dir` (the layer cache is shared with `make sam-build`)."""
    return run_sam(
        "build",
        "--template-file",
        str(TEMPLATE),
        "--build-dir",
        str(build_dir),
        "--cache-dir",
        str(cache_dir or ROOT / ".aws-sam" / "cache"),
        "--cached",
        "--parallel",
    )


@functools.cache
def build_for_tests() -> Path:
    """One build per test process, shared by every test module that needs the artifact.

    A private temporary dir: `sam build` empties its build dir, so a shared one would be pulled
    from under a concurrent test run. The layers still come from SAM's shared cache.
    """
    scratch = Path(tempfile.mkdtemp(prefix="photo-restore-sam-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    result = build(scratch / "build")
    if result.returncode != 0:
        raise RuntimeError(f"sam build failed:\n{result.stdout}\n{result.stderr}")
    return scratch / "build"


def base_python() -> str:
    """The interpreter the venv was made from: it has no project packages of its own."""
    return str(getattr(sys, "_base_executable", None) or sys.executable)


TEST_FUNCTION_ARN = "arn:aws:lambda:eu-central-1:123456789012:function:invoke-test"


def lambda_environment(function: str, build_dir: Path, **overrides: str) -> dict[str, str]:
    """A Lambda-like environment (region, task root, function name); no AWS credentials."""
    environment = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": "eu-central-1",
        "AWS_DEFAULT_REGION": "eu-central-1",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "LAMBDA_TASK_ROOT": str(build_dir / function),
        "POWERTOOLS_SERVICE_NAME": "photo-restore",
        "POWERTOOLS_METRICS_NAMESPACE": "PhotoRestore",
    }
    environment.update(overrides)
    return environment


def function_environment(function: str, build_dir: Path, settings: Settings) -> dict[str, str]:
    """A deployed function's environment with `settings`, pointed at the session's moto."""
    configured = {k: v for k, v in settings_environment(settings).items() if v is not None}
    return lambda_environment(
        function,
        build_dir,
        **configured,
        **TEST_ENVIRONMENT,
        AWS_ENDPOINT_URL=os.environ["AWS_ENDPOINT_URL"],
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )


def run_in_function(
    function: str,
    code: str,
    *,
    build_dir: Path = DEFAULT_BUILD_DIR,
    environment: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter that sees only `function`'s built directories."""
    paths = [str(path) for path in function_sys_path(function, build_dir)]
    prologue = f"import sys\nsys.path[:0] = {paths!r}\n"
    return subprocess.run(
        [base_python(), "-I", "-S", "-B", "-c", prologue + code],
        cwd=build_dir / function,
        env=environment or lambda_environment(function, build_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Imports `app` as Lambda's bootstrap would and prints what it loaded, as one JSON line.
IMPORT_PROBE = """
import json, time
started = time.perf_counter()
import app
elapsed = time.perf_counter() - started
modules = {
    name: getattr(module, "__file__", None)
    for name, module in sys.modules.items()
    if "." not in name
}
print(json.dumps({
    "import_seconds": elapsed,
    "handler": callable(getattr(app, "lambda_handler", None)),
    "modules": modules,
}))
"""


def import_handler(
    function: str, *, build_dir: Path = DEFAULT_BUILD_DIR, **environment: str
) -> dict[str, Any]:
    """Import `function`'s `app` from the build output; its top-level modules and import time."""
    result = run_in_function(
        function,
        IMPORT_PROBE,
        build_dir=build_dir,
        environment=lambda_environment(function, build_dir, **environment),
    )
    if result.returncode != 0:
        raise AssertionError(f"importing {function}'s app failed:\n{result.stderr}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report
