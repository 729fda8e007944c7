"""Builds each Lambda container's long-lived parts once: settings, secrets, engine, clients."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Engine

from photo_restore.settings import Settings, get_settings

# Secrets are cached by Powertools for this long, so a rotated value is picked up without deploys.
SECRET_MAX_AGE_SECONDS = 300


def _parameter(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_SECONDS))


def database_url(settings: Settings) -> str:
    if settings.database_url_parameter:
        return _parameter(settings.database_url_parameter)
    return settings.database_url.get_secret_value()


def siliconflow_api_key(settings: Settings) -> str:
    if settings.siliconflow_api_key_parameter:
        return _parameter(settings.siliconflow_api_key_parameter)
    return settings.siliconflow_api_key.get_secret_value()


@cache
def database_engine() -> Engine:
    from photo_restore.db import create_db_engine

    settings = get_settings()
    return create_db_engine(
        database_url(settings),
        ssl_mode=settings.database_ssl_mode,
        ssl_ca_file=settings.database_ssl_ca_file,
    )
