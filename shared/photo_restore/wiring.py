"""Builds each Lambda container's long-lived parts once; each handler asks only for what it uses."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from photo_restore.errors import DependencyUnavailable
from photo_restore.settings import Settings, get_settings

if TYPE_CHECKING:
    from photo_restore.queue import RestoreQueue
    from photo_restore.restore_giveup import RestoreGiveUp
    from photo_restore.restore_requests import RestoreRequests
    from photo_restore.restore_runs import RestoreRun
    from photo_restore.storage import ObjectStorage

# Secrets are cached by Powertools for this long, so a rotated value is picked up without deploys.
SECRET_MAX_AGE_SECONDS = 300


def _parameter(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters

    try:
        return str(parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_SECONDS))
    except parameters.exceptions.GetParameterError as error:
        # SSM throttled or unreachable: a retryable outage (503, or an SQS redelivery).
        raise DependencyUnavailable(f"could not read the parameter {name}") from error


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
        pool_size=settings.database_pool_size,
    )


@cache
def object_storage() -> ObjectStorage:
    from photo_restore import aws
    from photo_restore.storage import ObjectStorage

    return ObjectStorage(aws.s3_client(), get_settings().bucket_name)


@cache
def restore_queue() -> RestoreQueue:
    from photo_restore import aws
    from photo_restore.queue import RestoreQueue

    return RestoreQueue(aws.sqs_client(), get_settings().queue_url)


@cache
def restore_run() -> RestoreRun:
    """The worker's use case; imports Pillow and httpx, so only the worker calls it."""
    settings = get_settings()
    return build_restore_run(
        settings,
        engine=database_engine(),
        storage=object_storage(),
        queue=restore_queue(),
        # Looked up per request (Powertools caches it for SECRET_MAX_AGE_SECONDS): rotation works.
        api_key=partial(siliconflow_api_key, settings),
    )


def build_restore_run(
    settings: Settings,
    *,
    engine: Engine,
    storage: ObjectStorage,
    queue: RestoreQueue,
    api_key: str | Callable[[], str],
) -> RestoreRun:
    from photo_restore.preprocess import preprocess_image
    from photo_restore.restore_runs import RestoreRun
    from photo_restore.result_download import download_result_image
    from photo_restore.siliconflow import SiliconFlowClient

    return RestoreRun(
        engine=engine,
        storage=storage,
        queue=queue,
        editor=SiliconFlowClient.from_settings(settings, api_key=api_key),
        preprocess=partial(
            preprocess_image,
            max_side=settings.max_side,
            max_pixels=settings.max_input_pixels,
            jpeg_quality=settings.jpeg_quality,
        ),
        fetch_result=partial(
            download_result_image,
            allow_private_urls=settings.siliconflow_allow_private_urls,
            max_bytes=settings.result_max_bytes,
            timeout_seconds=settings.result_download_timeout_seconds,
        ),
        settings=settings,
    )


@cache
def restore_giveup() -> RestoreGiveUp:
    from photo_restore.restore_giveup import RestoreGiveUp

    return RestoreGiveUp(
        engine=database_engine(), storage=object_storage(), settings=get_settings()
    )


@cache
def restore_requests() -> RestoreRequests:
    from photo_restore.restore_requests import RestoreRequests

    return RestoreRequests(database_engine(), restore_queue(), object_storage(), get_settings())


def reset() -> None:
    """Forget every part built so far (tests, and the local stack after it changes settings)."""
    if database_engine.cache_info().currsize:
        database_engine().dispose()
    for built in (
        restore_requests,
        restore_giveup,
        restore_run,
        restore_queue,
        object_storage,
        database_engine,
    ):
        built.cache_clear()
    get_settings.cache_clear()
