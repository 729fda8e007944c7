"""Load a function's `app.py` as Lambda would, with settings taken from the environment."""

from __future__ import annotations

import os
from types import ModuleType

from photo_restore import wiring
from photo_restore.local.functions import functions_dir, load_handler_module
from photo_restore.local.functions import settings_environment as all_settings
from photo_restore.settings import Settings

TEST_ENVIRONMENT = {
    "POWERTOOLS_METRICS_NAMESPACE": "PhotoRestoreTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def settings_environment(settings: Settings) -> dict[str, str]:
    """Every set setting as the environment variable a deployed function would get."""
    values = {name: value for name, value in all_settings(settings).items() if value is not None}
    return {**TEST_ENVIRONMENT, **values}


def load_handler(name: str, settings: Settings) -> ModuleType:
    """A fresh import of functions/<name>/app.py, as a new Lambda container would do."""
    for name_, value in all_settings(settings).items():
        if value is None:
            os.environ.pop(name_, None)
    os.environ.update(settings_environment(settings))
    wiring.reset()
    return load_handler_module(name, functions_dir())
