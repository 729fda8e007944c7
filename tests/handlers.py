"""Load a function's `app.py` as Lambda would, with settings taken from the environment."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

from pydantic import SecretStr

from photo_restore import wiring
from photo_restore.settings import Settings

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"


def settings_environment(settings: Settings) -> dict[str, str]:
    """Every setting as the environment variable a deployed function would get."""
    env = {
        "POWERTOOLS_METRICS_NAMESPACE": "PhotoRestoreTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            os.environ.pop(name.upper(), None)
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def load_handler(name: str, settings: Settings) -> ModuleType:
    """A fresh import of functions/<name>/app.py, as a new Lambda container would do."""
    os.environ.update(settings_environment(settings))
    wiring.reset()
    spec = importlib.util.spec_from_file_location(f"{name}_app", FUNCTIONS / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
