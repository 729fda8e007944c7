"""S3 object keys (one place for each pattern), bounded downloads and presigned URLs."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from photo_restore.errors import DependencyUnavailable, ImageTooLarge, OriginalMissing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from photo_restore.attempts import Attempt


def original_key(owner_id: str, photo_id: uuid.UUID, extension: str) -> str:
    """Where the existing app's upload stores an original (template: OriginalsPrefix)."""
    return f"originals/{owner_id}/{photo_id}{extension}"


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
    return f"restored/{attempt.photo_id}/{stamp}"


def discard_images_of_unsuccessful_attempt(storage: ObjectStorage, attempt: Attempt) -> None:
    """A failed or canceled attempt owns no image: remove what a delivery stored before.

    Only for attempts already recorded as settled that way, so no later commit can point at
    these keys.
    """
    storage.delete_many(attempt_image_keys(attempt))


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
        """One request for several keys; missing ones are fine, as for `delete`."""
        objects: Any = [{"Key": key} for key in keys]
        try:
            answer = self._s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        except (ClientError, BotoCoreError) as error:
            raise _unavailable("delete", error) from error
        if answer.get("Errors"):
            raise DependencyUnavailable(f"S3 delete failed ({answer['Errors'][0].get('Code')})")

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

    def presigned_get_url(self, key: str, *, expires_seconds: int) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        return self._s3.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_seconds
        )
