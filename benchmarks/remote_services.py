"""moto (S3, SQS, EventBridge) and the SiliconFlow stand-in in a process of their own, for the
benchmarks: in production S3 and the provider do their work elsewhere, so their server-side
work must not share the measured process's interpreter (its GIL) as the in-process servers of
the tests do."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RemoteServices:
    aws_endpoint: str
    siliconflow_base_url: str
    # The stand-in's counts, filled in when the services stop.
    provider_calls: int = 0
    provider_429s: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _serve(pipe: Any, stop: Any, images_per_minute: int | None) -> None:
    import logging

    from photo_restore_tools.local.services import moto_server
    from photo_restore_tools.local.siliconflow_standin import SiliconFlowStandIn

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto logs every request
    with (
        moto_server() as endpoint,
        SiliconFlowStandIn(images_per_minute=images_per_minute) as standin,
    ):
        pipe.send((endpoint, standin.base_url))
        stop.wait()
        pipe.send((len(standin.requests), standin.refused_for_rate))


@contextmanager
def remote_services(images_per_minute: int | None = None) -> Iterator[RemoteServices]:
    """Start them in a spawned process; on exit, read the stand-in's counts and stop them."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    stop = context.Event()
    process = context.Process(target=_serve, args=(theirs, stop, images_per_minute), daemon=True)
    process.start()
    try:
        if not ours.poll(60):
            raise RuntimeError("moto and the stand-in did not start within 60 s")
        endpoint, base_url = ours.recv()
        services = RemoteServices(endpoint, base_url)
        yield services
        stop.set()
        if ours.poll(30):
            services.provider_calls, services.provider_429s = ours.recv()
    finally:
        stop.set()
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
