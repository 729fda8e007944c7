"""The worker container's use case, built once: the only wiring that loads Pillow and httpx."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

from photo_restore import wiring
from photo_restore.events import RestoreAnnouncer
from photo_restore.provenance import ManifestSigner
from photo_restore.queue import RestoreQueue
from photo_restore.repository import Repository
from photo_restore.restore_runs import RestoreRun
from photo_restore.settings import Settings, get_settings
from photo_restore.storage import ObjectStorage


@cache
def restore_run() -> RestoreRun:
    settings = get_settings()
    return build_restore_run(
        settings,
        repository=wiring.repository(),
        storage=wiring.object_storage(),
        queue=wiring.restore_queue(),
        announcer=wiring.restore_announcer(),
        # Looked up per request (Powertools caches it for a few minutes): rotation works.
        api_key=partial(wiring.siliconflow_api_key, settings),
        manifest_signer=c2pa_signer(settings),
    )


def c2pa_signer(settings: Settings) -> ManifestSigner | None:
    """Content Credentials' signer when C2PA_ENABLED: its key is read once per container, and
    bad credentials fail the container's start rather than each photo after its provider call."""
    credentials = wiring.c2pa_credentials(settings)
    if credentials is None:
        return None
    from photo_restore.c2pa_signing import C2paSigner

    return C2paSigner(credentials)


wiring.on_reset(restore_run.cache_clear)


def build_restore_run(
    settings: Settings,
    *,
    repository: Repository,
    storage: ObjectStorage,
    queue: RestoreQueue,
    api_key: str | Callable[[], str],
    announcer: RestoreAnnouncer | None = None,
    manifest_signer: ManifestSigner | None = None,
) -> RestoreRun:
    from photo_restore.faithfulness.policy import FaithfulnessGate
    from photo_restore.pacing import ProviderPacer
    from photo_restore.preprocess import PreprocessLimits, preprocess_image
    from photo_restore.result_download import ResultDownloader
    from photo_restore.siliconflow import SiliconFlowClient

    downloader = ResultDownloader(
        allow_private_urls=settings.siliconflow_allow_private_urls,
        max_bytes=settings.result_max_bytes,
        timeout_seconds=settings.result_download_timeout_seconds,
    )

    return RestoreRun(
        repository=repository,
        storage=storage,
        queue=queue,
        editor=SiliconFlowClient.from_settings(settings, api_key=api_key),
        preprocess=partial(preprocess_image, limits=PreprocessLimits.from_settings(settings)),
        fetch_result=downloader.download,
        announcer=announcer,
        pacer=ProviderPacer.from_settings(settings, repository),
        faithfulness=FaithfulnessGate.from_settings(settings),
        settings=settings,
        manifest_signer=manifest_signer,
    )
