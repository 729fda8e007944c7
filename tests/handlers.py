"""Load a function's `app.py` as Lambda would, with settings taken from the environment."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

from photo_restore import wiring
from photo_restore.settings import Settings, get_settings

FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"


def settings_environment(settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "DATABASE_SSL_MODE": settings.database_ssl_mode,
        "QUEUE_URL": settings.queue_url,
        "DLQ_URL": settings.dlq_url,
        "BUCKET_NAME": settings.bucket_name,
        "VISIBILITY_TIMEOUT_SECONDS": str(settings.visibility_timeout_seconds),
        "MAX_RECEIVE_COUNT": str(settings.max_receive_count),
        "SILICONFLOW_BASE_URL": settings.siliconflow_base_url,
        "SILICONFLOW_API_KEY": settings.siliconflow_api_key.get_secret_value(),
        "SILICONFLOW_ALLOW_PRIVATE_URLS": str(settings.siliconflow_allow_private_urls).lower(),
        "IMAGE_TRANSPORT": settings.image_transport,
        "SILICONFLOW_MAX_RETRIES": str(settings.siliconflow_max_retries),
        "POWERTOOLS_METRICS_NAMESPACE": "PhotoRestoreTest",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def load_handler(name: str, settings: Settings) -> ModuleType:
    """A fresh import of functions/<name>/app.py, as a new Lambda container would do."""
    os.environ.update(settings_environment(settings))
    get_settings.cache_clear()
    wiring.database_engine.cache_clear()
    spec = importlib.util.spec_from_file_location(f"{name}_app", FUNCTIONS / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
