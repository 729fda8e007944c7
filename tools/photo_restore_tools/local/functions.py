"""The Lambda handlers of `functions/`, loaded as a fresh container would, with env settings."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

from pydantic import SecretStr

from photo_restore.settings import Settings

FUNCTIONS_DIR_ENV = "PHOTO_RESTORE_FUNCTIONS_DIR"


def project_root() -> Path:
    """The repository root (template.yaml, functions/): $PHOTO_RESTORE_FUNCTIONS_DIR's parent,
    else the checkout this package is installed from (editable), else the working directory."""
    configured = os.environ.get(FUNCTIONS_DIR_ENV)
    candidates = [Path(configured).parent] if configured else []
    # tools/photo_restore_tools/local/functions.py -> the repository root is three levels up.
    candidates += [Path(__file__).resolve().parents[3], Path.cwd()]
    for candidate in candidates:
        if (candidate / "functions" / "api" / "app.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"no checkout with functions/ found (tried {', '.join(map(str, candidates))});"
        f" set {FUNCTIONS_DIR_ENV} to the repository's functions/ folder"
    )


def functions_dir() -> Path:
    """`functions/` of the source tree, where the four handlers live."""
    return project_root() / "functions"


def load_handler_module(name: str, folder: Path) -> ModuleType:
    """A fresh import of functions/<name>/app.py, as a new Lambda container does it."""
    spec = importlib.util.spec_from_file_location(
        f"photo_restore_local_{name}_app", folder / name / "app.py"
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {folder / name / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def settings_environment(settings: Settings) -> dict[str, str | None]:
    """Every setting as the environment variable a deployed function gets; None = unset."""
    env: dict[str, str | None] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None:
            env[name.upper()] = None
        elif isinstance(value, bool):
            env[name.upper()] = "true" if value else "false"
        else:
            env[name.upper()] = str(value)
    return env
