"""`photo-restore siliconflow-check IMAGE`: one real request with the configured key and model,
and everything an operator needs to see of it. Never run by CI (it needs a key and the
internet); the runbook says when to run it."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from photo_restore import wiring
from photo_restore.edit_request import EditRequest
from photo_restore.errors import RestoreError
from photo_restore.preprocess import PreprocessLimits, preprocess_image
from photo_restore.provenance import Provenance
from photo_restore.result_download import ResultDownloader
from photo_restore.result_image import decode_result
from photo_restore.settings import Settings
from photo_restore.siliconflow import SiliconFlowClient, SiliconFlowRequest


def check(image: Path, out_dir: Path, settings: Settings, out: TextIO) -> int:
    """0 when SiliconFlow restored the image; 1 with the classified error; 2 without a key."""
    api_key = wiring.siliconflow_api_key(settings)
    if not api_key.strip():
        print("error: no SiliconFlow API key (SILICONFLOW_API_KEY or _PARAMETER)", file=out)
        return 2
    try:
        prepared = preprocess_image(image.read_bytes(), PreprocessLimits.from_settings(settings))
    except (OSError, RestoreError) as error:
        print(f"error: cannot prepare {image}: {error}", file=out)
        return 2
    # A data URI: this machine's S3 (if any) is not reachable from SiliconFlow.
    data_uri = "data:image/jpeg;base64," + base64.b64encode(prepared.image_bytes).decode()
    request = SiliconFlowRequest(edit=EditRequest.from_settings(settings), image=data_uri)
    sent = {**request.to_json(), "image": f"data:image/jpeg;base64,... ({len(data_uri)} chars)"}
    print(f"POST {settings.siliconflow_base_url}/images/generations", file=out)
    print(f"submitted {prepared.new_dimensions[0]}x{prepared.new_dimensions[1]} JPEG", file=out)
    print("request fields:\n" + json.dumps(sent, indent=2), file=out)
    client = SiliconFlowClient.from_settings(settings, api_key=api_key)
    started = time.perf_counter()
    try:
        response = client.edit_image(request)
        elapsed = time.perf_counter() - started
        downloader = ResultDownloader(
            allow_private_urls=settings.siliconflow_allow_private_urls,
            max_bytes=settings.result_max_bytes,
            timeout_seconds=settings.result_download_timeout_seconds,
        )
        restored = decode_result(
            downloader.download(response.image_url),
            max_pixels=settings.result_max_pixels,
            jpeg_quality=settings.jpeg_quality,
            provenance=Provenance(model=settings.siliconflow_model, created_at=datetime.now(UTC)),
        )
    except RestoreError as error:
        print(f"failed: {error.code}: {error.message}", file=out)
        print(f"trace id: {error.trace_id or '-'}", file=out)
        return 1
    finally:
        client.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = out_dir / f"{image.stem}.siliconflow.jpg"
    saved.write_bytes(restored.jpeg)
    print("response fields:", file=out)
    print(f"  image url (valid 1 h): {response.image_url[:80]}...", file=out)
    print(f"  seed: {response.seed}  timings.inference: {response.inference_time} s", file=out)
    print(f"trace id: {response.trace_id}", file=out)
    print(f"wall time: {elapsed:.1f} s", file=out)
    print(
        f"result: {restored.width}x{restored.height} {restored.provider_format}, "
        f"{len(restored.jpeg)} bytes as stored -> {saved}",
        file=out,
    )
    return 0
