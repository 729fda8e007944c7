"""What a client does to add a photo, for the local stack: POST /uploads, the presigned PUT to
S3 over HTTP, and waiting for the ingest's verdict (`POST /local/photos` and the demo use it)."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from photo_restore.image_formats import sniff_media_type

# How long the ingest may take to settle a local upload (its poller long-polls for 1 s).
INGEST_TIMEOUT_SECONDS = 60.0


class UploadRefused(ValueError):
    """The API or the ingest refused the bytes; the message says why."""


def upload_directly(
    call_api: Callable[..., tuple[int, Any]],
    owner_id: str,
    data: bytes,
    *,
    timeout: float = INGEST_TIMEOUT_SECONDS,
) -> uuid.UUID:
    """The photo id the bytes became (or that the user had already with that checksum)."""
    if not data:
        raise UploadRefused("the upload is empty")
    body = {
        # The bytes' own type: the ingest refuses a declared type they do not have.
        "content_type": sniff_media_type(data) or "application/octet-stream",
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    status, answer = call_api("POST", "/uploads", owner_id=owner_id, body=body)
    if status == 200:
        return uuid.UUID(answer["photo_id"])
    if status != 201:
        raise UploadRefused(f"{answer['error']}: {answer['message']}")
    put = answer["upload"]
    headers = {k: v for k, v in put["headers"].items() if k != "Content-Length"}
    sent = httpx.put(put["url"], content=data, headers=headers, timeout=30)
    if sent.status_code != 200:
        raise UploadRefused(f"S3 refused the upload ({sent.status_code})")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, upload = call_api("GET", f"/uploads/{answer['upload_id']}", owner_id=owner_id)
        if upload["status"] == "accepted":
            return uuid.UUID(upload["photo_id"])
        if upload["status"] == "rejected":
            raise UploadRefused(f"{upload['reason_code']}: {upload['reason']}")
        time.sleep(0.1)
    raise TimeoutError(f"the ingest did not settle upload {answer['upload_id']} in {timeout} s")
