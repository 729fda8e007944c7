"""Builds each Lambda container's long-lived parts once; each handler asks only for what it uses.

The worker's parts (Pillow, pillow-heif, libvips, httpx) are built in `worker_wiring`, which no
other function imports: this module stays free of them so the API's cold start never loads them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from photo_restore.errors import DependencyUnavailable
from photo_restore.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from photo_restore.c2pa_signing import SigningCredentials
    from photo_restore.events import EventPublisher, RestoreAnnouncer
    from photo_restore.queue import RestoreQueue
    from photo_restore.repository import SqlRepository
    from photo_restore.restore_giveup import RestoreGiveUp
    from photo_restore.restore_requests import RestoreRequests
    from photo_restore.storage import ObjectStorage

# Secrets are cached by Powertools for this long, so a rotated value is picked up without deploys.
SECRET_MAX_AGE_SECONDS = 300
# Caches that other wiring modules register, so that reset() forgets them too.
_RESET_HOOKS: list[Callable[[], None]] = []


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


def c2pa_credentials(settings: Settings) -> SigningCredentials | None:
    """The C2PA signing key and certificate chain when C2PA_ENABLED; None otherwise."""
    if not settings.c2pa_enabled:
        return None
    from photo_restore.c2pa_signing import SigningCredentials

    key = settings.c2pa_private_key.get_secret_value()
    if settings.c2pa_private_key_parameter:
        key = _parameter(settings.c2pa_private_key_parameter)
    chain = settings.c2pa_certificate_chain
    if settings.c2pa_certificate_chain_parameter:
        chain = _parameter(settings.c2pa_certificate_chain_parameter)
    return SigningCredentials(
        private_key=key,
        certificate_chain=chain,
        algorithm=settings.c2pa_signing_algorithm,
        timestamp_url=settings.c2pa_timestamp_url,
    )


class _EngineForCurrentUrl:
    """The engine for the database URL as it is now: the URL is read per transaction (from SSM
    through Powertools' cache when deployed), and a changed URL replaces the engine, so a
    rotated URL is used within SECRET_MAX_AGE_SECONDS without a redeploy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._url: str | None = None
        self._engine: Engine | None = None

    def __call__(self) -> Engine:
        settings = get_settings()
        url = database_url(settings)
        with self._lock:
            if self._engine is None or url != self._url:
                from photo_restore.db import create_db_engine

                previous = self._engine
                self._engine = create_db_engine(
                    url,
                    ssl_mode=settings.database_ssl_mode,
                    ssl_ca_file=settings.database_ssl_ca_file,
                    pool_size=settings.database_pool_size,
                )
                self._url = url
                if previous is not None:
                    previous.dispose()  # open connections close; new ones use the new URL
            return self._engine

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = self._url = None


@cache
def repository() -> SqlRepository:
    from photo_restore.repository import SqlRepository

    return SqlRepository(_engines)


@cache
def object_storage() -> ObjectStorage:
    from photo_restore import aws
    from photo_restore.storage import ObjectStorage

    return ObjectStorage(aws.on_first_use(aws.s3_client), get_settings().bucket_name)


@cache
def restore_queue() -> RestoreQueue:
    from photo_restore import aws
    from photo_restore.queue import RestoreQueue

    return RestoreQueue(aws.on_first_use(aws.sqs_client), get_settings().queue_url)


@cache
def event_publisher() -> EventPublisher:
    from photo_restore import aws
    from photo_restore.events import EventBridgePublisher, NoEvents

    bus = get_settings().event_bus_name
    return EventBridgePublisher(aws.on_first_use(aws.events_client), bus) if bus else NoEvents()


@cache
def restore_announcer() -> RestoreAnnouncer:
    from photo_restore.events import RestoreAnnouncer
    from photo_restore.observability import count_in_current_handler

    return RestoreAnnouncer(
        repository(),
        event_publisher(),
        on_publish_failed=lambda: count_in_current_handler("EventPublishFailed"),
    )


@cache
def restore_giveup() -> RestoreGiveUp:
    from photo_restore.restore_giveup import RestoreGiveUp

    return RestoreGiveUp(
        repository=repository(),
        storage=object_storage(),
        announcer=restore_announcer(),
        settings=get_settings(),
    )


@cache
def restore_requests() -> RestoreRequests:
    from photo_restore.restore_requests import RestoreRequests

    return RestoreRequests(
        repository(),
        restore_queue(),
        object_storage(),
        get_settings(),
        announcer=restore_announcer(),
    )


_engines = _EngineForCurrentUrl()


def on_reset(hook: Callable[[], None]) -> None:
    _RESET_HOOKS.append(hook)


def reset() -> None:
    """Forget every part built so far (tests, and the local stack after it changes settings)."""
    _engines.dispose()
    for hook in _RESET_HOOKS:
        hook()
    built_parts = (
        restore_requests,
        restore_giveup,
        restore_announcer,
        event_publisher,
        restore_queue,
        object_storage,
        repository,
    )
    for built in built_parts:
        built.cache_clear()
    get_settings.cache_clear()
