"""S3 object keys (one place for each pattern), bounded downloads and presigned URLs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from photo_restore.errors import DependencyUnavailable, ImageTooLarge, OriginalMissing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from photo_restore.attempts import Attempt


ORIGINALS_PREFIX = "originals/"
RESTORED_PREFIX = "restored/"


def original_key(owner_id: str, photo_id: uuid.UUID, extension: str) -> str:
    """Where the existing app's upload stores an original (template: OriginalsPrefix), and
    where a direct upload puts it (its upload id is the photo id it becomes)."""
    return f"{ORIGINALS_PREFIX}{owner_id}/{photo_id}{extension}"


def owner_originals_prefix(owner_id: str) -> str:
    """Under which every original of the owner is stored (an erasure empties it)."""
    return f"{ORIGINALS_PREFIX}{owner_id}/"


def photo_id_of_original(key: str) -> tuple[str, uuid.UUID] | None:
    """(owner id, photo id) of a key `original_key` made; None for any other key."""
    if not key.startswith(ORIGINALS_PREFIX):
        return None
    owner_id, _, name = key.removeprefix(ORIGINALS_PREFIX).rpartition("/")
    stem = name.split(".", 1)[0]
    try:
        return (owner_id, uuid.UUID(stem)) if owner_id and "/" not in owner_id else None
    except ValueError:
        return None


def restored_prefix(photo_id: uuid.UUID) -> str:
    """Under which every attempt image of the photo is stored (restorations, before images,
    thumbnails)."""
    return f"{RESTORED_PREFIX}{photo_id}/"


def restored_key(attempt: Attempt) -> str:
    """`restored/{job_id}/{timestamp}.jpg` (job id = photo id), fixed per attempt by its creation
    time: a retry overwrites the same key, never orphans another."""
    return f"{_attempt_prefix(attempt)}.jpg"


def before_key(attempt: Attempt) -> str:
    """Beside the restoration: the upright JPEG the model was given (the "before" view, and the
    input SiliconFlow fetches when it fetches by URL)."""
    return f"{_attempt_prefix(attempt)}.before.jpg"


def thumbnail_key(attempt: Attempt) -> str:
    """Beside the restoration: its gallery thumbnail."""
    return f"{_attempt_prefix(attempt)}.thumb.jpg"


def framed_before_key(attempt: Attempt) -> str:
    """Beside the restoration: the before image scaled and cropped to the restoration's framing
    (when the model zoomed or shifted it), for a before/after slider."""
    return f"{_attempt_prefix(attempt)}.before-framed.jpg"


def attempt_image_keys(attempt: Attempt) -> list[str]:
    return [
        restored_key(attempt),
        before_key(attempt),
        thumbnail_key(attempt),
        framed_before_key(attempt),
    ]


def _attempt_prefix(attempt: Attempt) -> str:
    stamp = attempt.created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{restored_prefix(attempt.photo_id)}{stamp}"


def discard_images_of_unsuccessful_attempt(storage: ObjectStorage, attempt: Attempt) -> None:
    """A failed or canceled attempt owns no image: remove what a delivery stored before.

    Only for attempts already recorded as settled that way, so no later commit can point at
    these keys.
    """
    storage.delete_many(attempt_image_keys(attempt))


# S3's DeleteObjects takes at most this many keys.
DELETE_BATCH = 1000


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str
    checksum_sha256: str | None  # base64, as S3 records it; None when it recorded none


def _is_missing(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code in {"NoSuchKey", "404", "NotFound"}


def _unavailable(operation: str, error: Exception) -> DependencyUnavailable:
    # The message can reach users through params.error: the AWS error code, never more.
    code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
    return DependencyUnavailable(f"S3 {operation} failed ({code or type(error).__name__})")


class ObjectStorage:
    """The photo bucket; S3 errors become domain errors (missing: permanent; others: transient)."""

    def __init__(self, s3_client: S3Client, bucket: str) -> None:
        self._s3 = s3_client
        self.bucket = bucket

    def read(self, key: str, *, max_bytes: int) -> bytes:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
            size = response["ContentLength"]
            if size > max_bytes:
                response["Body"].close()
                raise ImageTooLarge(f"{key} is {size} bytes; the limit is {max_bytes}")
            return response["Body"].read()
        except ClientError as error:
            if _is_missing(error):
                raise OriginalMissing(f"s3://{self.bucket}/{key} does not exist") from error
            raise _unavailable("read", error) from error
        except BotoCoreError as error:
            raise _unavailable("read", error) from error

    def write_jpeg(self, key: str, data: bytes) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="image/jpeg")
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("write", error) from error

    def delete(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("delete", error) from error

    def delete_many(self, keys: list[str]) -> None:
        """One request per 1,000 keys (S3's most); missing ones are fine, as for `delete`."""
        for start in range(0, len(keys), DELETE_BATCH):
            objects: Any = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
            try:
                answer = self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            except (ClientError, BotoCoreError) as error:
                raise _unavailable("delete", error) from error
            if answer.get("Errors"):
                code = answer["Errors"][0].get("Code")
                raise DependencyUnavailable(f"S3 delete failed ({code})")

    def keys_under(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix`."""
        keys: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys += [item["Key"] for item in page.get("Contents", [])]
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("list", error) from error
        return keys

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_missing(error):
                return False
            raise _unavailable("head", error) from error
        except BotoCoreError as error:
            raise _unavailable("head", error) from error
        return True

    def head(self, key: str) -> StoredObject | None:
        """The object's size, type and the SHA-256 S3 recorded (when it did); None if missing."""
        try:
            answer = self._s3.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as error:
            if _is_missing(error):
                return None
            raise _unavailable("head", error) from error
        except BotoCoreError as error:
            raise _unavailable("head", error) from error
        return StoredObject(
            size=answer["ContentLength"],
            content_type=answer.get("ContentType", ""),
            checksum_sha256=answer.get("ChecksumSHA256"),
        )

    def presigned_put_url(
        self, key: str, *, content_type: str, size: int, checksum_sha256: str, expires_seconds: int
    ) -> str:
        """A PUT that S3 accepts only with exactly these headers: Content-Type, Content-Length
        and x-amz-checksum-sha256 (base64) are signed, and S3 checks the body against the
        checksum itself (400 BadDigest), so neither the size nor the bytes can differ."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "ContentType": content_type,
            "ContentLength": size,
            "ChecksumSHA256": checksum_sha256,
        }
        return self._s3.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires_seconds
        )

    def presigned_get_url(self, key: str, *, expires_seconds: int) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        return self._s3.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_seconds
        )
